// Dev OpenID provider for authplug's tests, benchmarks and demo: npm
// oidc-provider 9.13.3 on 127.0.0.1 with a free port, configured by one JSON
// argument (inline JSON or a file path). Not for production: any username logs
// in with the fixed password, and the /_admin endpoints revoke grants for tests.
//
// stdout carries exactly one line, `ISSUER http://127.0.0.1:PORT`; everything
// else goes to stderr. Exits when stdin closes or on SIGTERM/SIGINT.
import fs from 'node:fs';
import http from 'node:http';

// oidc-provider prints NOTICE lines with console.info/log: keep stdout clean
// before it is even imported.
const printReady = console.log.bind(console);
console.log = console.info = (...a) => console.error(...a);

const { default: Provider, errors } = await import('oidc-provider');

const arg = process.argv[2];
let cfg = {};
if (arg) {
  const text = arg.trim().startsWith('{') ? arg : fs.readFileSync(arg, 'utf8');
  cfg = JSON.parse(text);
}

const PASSWORD = cfg.password ?? 'dev';
const ttl = { idToken: 3600, accessToken: 3600, refreshToken: 86400, deviceCode: 600, ...(cfg.ttl ?? {}) };
const deviceInterval = cfg.deviceInterval ?? 1;
const rotateRefreshToken = cfg.rotateRefreshToken ?? true;
const clients = cfg.clients ?? [
  {
    client_id: 'demo',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
  },
  {
    client_id: 'machine',
    client_secret: 'machine-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  },
];
// Deviations of other providers, on demand (see README.md, "Bending it").
const bend = cfg.bend ?? {};

// null = any absolute http(s) URI is an acceptable resource indicator.
const resources = cfg.resources ?? null;
const resourceScope = cfg.resourceScope ?? 'api';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  pkce: { required: (ctx, client) => client.tokenEndpointAuthMethod === 'none' },
  rotateRefreshToken,
  // offline_access is dropped unless prompt=consent: always issue refresh
  // tokens to clients allowed the grant.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    IdToken: ttl.idToken,
    AccessToken: ttl.accessToken,
    RefreshToken: ttl.refreshToken,
    DeviceCode: ttl.deviceCode,
    ClientCredentials: ttl.accessToken,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  cookies: { keys: ['dev-idp-not-secret'] },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: sub, preferred_username: sub, email: `${sub}@example.test`, email_verified: true }),
  }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    // RFC 7591, open (no initial access token): clients that find the
    // server from a resource's metadata register themselves.
    registration: { enabled: cfg.registration ?? true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (resources ? !resources.includes(indicator) : !/^https?:\/\/[^#]+$/.test(indicator)) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return { scope: resourceScope, audience: indicator, accessTokenTTL: ttl.accessToken, accessTokenFormat: 'jwt' };
      },
    },
  },
});
provider.proxy = false;

// oidc-provider never sets azp; clients (and the spec's usual shape) expect it.
const origPayload = provider.IdToken.prototype.payload;
provider.IdToken.prototype.payload = async function payload() {
  const p = await origPayload.call(this);
  if (this.client && p.azp === undefined) p.azp = this.client.clientId;
  return p;
};

// Track grants per account so /_admin can revoke all of an account's grants.
const grantsByAccount = new Map();
provider.on('grant.saved', (g) => {
  if (!grantsByAccount.has(g.accountId)) grantsByAccount.set(g.accountId, new Set());
  grantsByAccount.get(g.accountId).add(g.jti);
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`;

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function revokeGrant(grantId) {
  const grant = await provider.Grant.find(grantId);
  if (grant) await grant.destroy();
  return !!grant;
}

// oidc-provider serves its metadata at both well-known URLs: OIDC
// discovery's and RFC 8414's (the same document). `bend` edits them.
const AS_METADATA = '/.well-known/oauth-authorization-server';
const DISCOVERY = '/.well-known/openid-configuration';
// Endpoints OIDC Discovery 1.0 does not define, which some providers list
// only in their RFC 8414 metadata.
const ONLY_IN_8414 = ['revocation_endpoint', 'device_authorization_endpoint'];

provider.use(async (ctx, next) => {
  const path = ctx.path;
  const m = path.match(/^\/interaction\/([^/]+)(\/(login|confirm|deny))?$/);
  if (m) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { uid, prompt, params } = details;
    ctx.type = 'html';
    if (!m[2] && ctx.method === 'GET') {
      if (prompt.name === 'login') {
        ctx.body = page('Sign in', `<p>Client: ${esc(params.client_id)}. Any username; password: ${esc(PASSWORD)}. Username "deny" refuses.</p>
<form method="post" action="/interaction/${esc(uid)}/login">
<input name="username" autofocus> <input name="password" type="password"> <button type="submit">Sign in</button></form>`);
      } else {
        ctx.body = page('Authorize', `<p>Client ${esc(params.client_id)} asks for: ${esc(params.scope)}</p>
<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit" id="approve">Approve</button></form>
<form method="post" action="/interaction/${esc(uid)}/deny"><button type="submit" id="deny">Deny</button></form>`);
      }
      return;
    }
    if (ctx.method !== 'POST') { ctx.status = 405; return; }
    const form = await readForm(ctx.req);
    let result;
    if (m[3] === 'login') {
      const username = form.get('username') ?? '';
      if (username === 'deny') {
        result = { error: 'access_denied', error_description: 'the user refused to sign in' };
      } else if (!username || form.get('password') !== PASSWORD) {
        ctx.status = 401;
        ctx.body = page('Sign in failed', `<p>Wrong username or password. <a href="/interaction/${esc(uid)}">Try again</a></p>`);
        return;
      } else {
        result = { login: { accountId: username } };
      }
    } else if (m[3] === 'deny') {
      result = { error: 'access_denied', error_description: 'the user denied consent' };
    } else {
      const { grantId, session } = details;
      const d = prompt.details;
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.respond = false;
    return;
  }

  if (path.startsWith('/_admin/')) {
    if (ctx.method !== 'POST') { ctx.status = 405; return; }
    const form = await readForm(ctx.req);
    ctx.type = 'json';
    if (path === '/_admin/revoke-account') {
      const account = form.get('account');
      const ids = grantsByAccount.get(account) ?? new Set();
      let revoked = 0;
      for (const id of ids) if (await revokeGrant(id)) revoked += 1;
      grantsByAccount.delete(account);
      ctx.body = { revoked_grants: revoked };
      return;
    }
    if (path === '/_admin/revoke-refresh-token') {
      const rt = await provider.RefreshToken.find(form.get('token') ?? '');
      if (!rt) { ctx.status = 404; ctx.body = { error: 'unknown refresh token' }; return; }
      await rt.destroy();
      const grant = form.get('grant') === '1' ? await revokeGrant(rt.grantId) : false;
      ctx.body = { revoked_refresh_token: true, revoked_grant: grant };
      return;
    }
    ctx.status = 404;
    ctx.body = { error: 'unknown admin endpoint' };
    return;
  }

  await next();

  if (path === '/token') bendTokenResponse(ctx);
  if ((path === DISCOVERY || path === AS_METADATA) && ctx.body && typeof ctx.body === 'object') {
    const doc = { ...ctx.body };
    if (bend.metadataOnlyIn8414 && path === DISCOVERY) for (const field of ONLY_IN_8414) delete doc[field];
    for (const field of bend.unlisted ?? []) delete doc[field];
    ctx.body = doc;
  }

  // oidc-provider omits `interval`; clients then wait 5 s between polls.
  if (path === '/device/auth' && ctx.body && typeof ctx.body === 'object' && ctx.body.device_code) {
    ctx.body = { ...ctx.body, interval: deviceInterval };
  }
});

// The token endpoint as other providers answer: what `bend` asks for.
function bendTokenResponse(ctx) {
  const grant = ctx.oidc?.params?.grant_type;
  const ok = ctx.status === 200 && ctx.body && typeof ctx.body === 'object';
  if (ok && grant === 'refresh_token' && bend.refreshWithoutIdToken) {
    const { id_token, ...rest } = ctx.body;
    ctx.body = rest;
  }
  if (ok && grant === 'urn:ietf:params:oauth:grant-type:device_code' && bend.deviceWithoutIdToken) {
    const { id_token, ...rest } = ctx.body;
    ctx.body = rest;
  }
  if (ok && bend.extraMembers) {
    // Keycloak's and Entra ID's extras.
    ctx.body = { ...ctx.body, refresh_expires_in: 1800, 'not-before-policy': 0, session_state: 'a-session', ext_expires_in: 3600 };
  }
  if (ok && bend.expiresInString && ctx.body.expires_in !== undefined) {
    ctx.body = { ...ctx.body, expires_in: String(ctx.body.expires_in) };
  }
  if (ok && bend.accessTokenUnusable) {
    // An access token no client can send (a space in it), the rest real:
    // the refresh token in the same answer is rotated all the same.
    ctx.body = { ...ctx.body, access_token: `${ctx.body.access_token} broken` };
  }
  if (ok && bend.tokenTypeCase) {
    ctx.body = { ...ctx.body, token_type: bend.tokenTypeCase };
  }
  if (ok && bend.contentType) {
    const text = JSON.stringify(ctx.body);
    ctx.body = text;
    ctx.type = bend.contentType;
  }
  // Errors without a JSON body: `empty`, `html` or `text`, with the status
  // as it was or the one given (e.g. a wrong client secret as a bare 403).
  const errors = bend.tokenErrors;
  if (errors && ctx.status >= 400) {
    if (errors.status) ctx.status = errors.status;
    if (errors.body === 'empty') { ctx.body = ''; ctx.remove('content-type'); }
    if (errors.body === 'html') { ctx.type = 'html'; ctx.body = '<!doctype html><html><body><h1>Bad Request</h1><p>Something went wrong.</p></body></html>'; }
    if (errors.body === 'text') { ctx.type = 'text/plain'; ctx.body = 'invalid request'; }
  }
}

server.on('request', provider.callback());

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.on('error', stop);
process.stdin.resume();

printReady(`ISSUER ${issuer}`);
