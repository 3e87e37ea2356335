// A small stub OpenID provider for hostile-provider tests (uses jose, a
// dependency of oidc-provider). No login: /auth redirects straight back with a
// code. The ID token is crafted per --case. Not a real IdP: see idp.mjs.
//
//   node hostile-idp.mjs --case CASE [--alg RS256|ES256|EdDSA] [--client-id demo]
// Cases: ok bad-signature alg-none wrong-iss wrong-aud wrong-nonce expired
//   missing-sub iat-in-future azp-wrong multiple-aud-without-azp
//   discovery-issuer-mismatch callback-iss-mismatch unknown-kid-then-rotation
//   token-endpoint-500-with-token-looking-body token-endpoint-non-json
// stdout: `ISSUER http://127.0.0.1:PORT`; GET /_stats -> {"token":N,"jwks":N,"auth":N}.
// Exits when stdin closes or on SIGTERM.
import http from 'node:http';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';

const opt = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const kase = opt('case', 'ok');
const alg = opt('alg', 'RS256');
const clientId = opt('client-id', 'demo');
const CASES = ['ok', 'bad-signature', 'alg-none', 'wrong-iss', 'wrong-aud', 'wrong-nonce', 'expired', 'missing-sub',
  'iat-in-future', 'azp-wrong', 'multiple-aud-without-azp', 'discovery-issuer-mismatch', 'callback-iss-mismatch',
  'unknown-kid-then-rotation', 'token-endpoint-500-with-token-looking-body', 'token-endpoint-non-json'];
if (!CASES.includes(kase)) { console.error(`hostile-idp: unknown case ${kase}; one of ${CASES.join(' ')}`); process.exit(2); }

const gen = (a) => generateKeyPair(a, a === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true });
const signing = await gen(alg);
const other = await gen(alg);
const kid = 'sig-1';
const pubJwk = { ...(await exportJWK(signing.publicKey)), kid, alg, use: 'sig' };
const decoyJwk = { ...(await exportJWK(other.publicKey)), kid: 'old-0', alg, use: 'sig' };

const server = http.createServer();
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const issuer = `http://127.0.0.1:${server.address().port}`;
const stats = { token: 0, jwks: 0, auth: 0 };
const codes = new Map(); // code -> nonce

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: issuer, sub: 'alice', aud: clientId, azp: clientId, nonce, iat: now, exp: now + 3600 };
  switch (kase) {
    case 'wrong-iss': claims.iss = 'http://127.0.0.1:1/evil'; break;
    case 'wrong-aud': claims.aud = 'someone-else'; delete claims.azp; break;
    case 'wrong-nonce': claims.nonce = 'not-the-nonce'; break;
    case 'expired': claims.iat = now - 7200; claims.exp = now - 3600; break;
    case 'missing-sub': delete claims.sub; break;
    case 'iat-in-future': claims.iat = now + 3600; claims.exp = now + 7200; break;
    case 'azp-wrong': claims.azp = 'someone-else'; break;
    case 'multiple-aud-without-azp': claims.aud = [clientId, 'another-client']; delete claims.azp; break;
    default: break;
  }
  if (nonce === undefined && kase !== 'wrong-nonce') delete claims.nonce;
  if (kase === 'alg-none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
  const key = kase === 'bad-signature' ? other.privateKey : signing.privateKey;
  return new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(key);
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

server.on('request', async (req, res) => {
  try {
    const u = new URL(req.url, issuer);
    if (u.pathname === '/.well-known/openid-configuration') {
      return send(res, 200, {
        issuer: kase === 'discovery-issuer-mismatch' ? `${issuer}/other` : issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [alg],
        scopes_supported: ['openid', 'offline_access', 'profile', 'email'],
        grant_types_supported: ['authorization_code', 'refresh_token'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
        ...(kase === 'callback-iss-mismatch' ? { authorization_response_iss_parameter_supported: true } : {}),
      });
    }
    if (u.pathname === '/jwks') {
      stats.jwks += 1;
      const keys = kase === 'unknown-kid-then-rotation' && stats.jwks === 1 ? [decoyJwk] : [pubJwk];
      return send(res, 200, { keys });
    }
    if (u.pathname === '/auth') {
      stats.auth += 1;
      const redirect = u.searchParams.get('redirect_uri');
      if (!redirect || !/^http:\/\/127\.0\.0\.1(:\d+)?\//.test(redirect)) return send(res, 400, 'bad redirect_uri', 'text/plain');
      const code = `code-${Math.random().toString(36).slice(2)}`;
      codes.set(code, u.searchParams.get('nonce') ?? undefined);
      const back = new URL(redirect);
      back.searchParams.set('code', code);
      if (u.searchParams.has('state')) back.searchParams.set('state', u.searchParams.get('state'));
      if (kase === 'callback-iss-mismatch') back.searchParams.set('iss', 'http://127.0.0.1:1/evil');
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (u.pathname === '/token' && req.method === 'POST') {
      stats.token += 1;
      const form = await readBody(req);
      const nonce = codes.get(form.get('code') ?? '');
      const tok = {
        access_token: `at-${Math.random().toString(36).slice(2)}`,
        token_type: 'Bearer',
        expires_in: 3600,
        refresh_token: `rt-${Math.random().toString(36).slice(2)}`,
        id_token: await idToken(form.get('grant_type') === 'authorization_code' ? nonce : undefined),
      };
      if (kase === 'token-endpoint-500-with-token-looking-body') return send(res, 500, tok);
      if (kase === 'token-endpoint-non-json') return send(res, 200, `<html>${tok.id_token}</html>`, 'text/html');
      return send(res, 200, tok);
    }
    if (u.pathname === '/_stats') return send(res, 200, stats);
    return send(res, 404, { error: 'not_found' });
  } catch (e) {
    console.error('hostile-idp:', e);
    return send(res, 500, { error: 'server_error' });
  }
});

const stop = () => { server.closeAllConnections?.(); server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 300).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
console.log(`ISSUER ${issuer}`);
