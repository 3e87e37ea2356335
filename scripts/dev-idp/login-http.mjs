// Browserless login driver for the dev IdP, usable as `--browser-command`
// (the authorization URL is the last argument). Walks the login and consent
// forms with fetch and a cookie jar, follows redirects up to the loopback
// callback, then requests the callback itself.
// Env: DEV_IDP_USER (default alice), DEV_IDP_PASSWORD (default dev),
// DEV_IDP_DENY=1 (deny consent -> access_denied), DEV_IDP_STRAY=1 (first hit
// the callback with a wrong state), DEV_IDP_DRIVER_LOG=FILE (log steps),
// DEV_IDP_CALLBACK_FILE=FILE (a browser on another machine: write the
// callback address to FILE instead of requesting it, for paste-back).
// Also: `login-http.mjs --device URL` approves a device code given
// verification_uri_complete (DEV_IDP_DENY=1 denies).
import fs from 'node:fs';

const log = (msg) => { if (process.env.DEV_IDP_DRIVER_LOG) fs.appendFileSync(process.env.DEV_IDP_DRIVER_LOG, `login-http: ${msg}\n`); };
const args = process.argv.slice(2);
const device = args.includes('--device');
const url = args[args.length - 1];
const user = process.env.DEV_IDP_USER ?? 'alice';
const password = process.env.DEV_IDP_PASSWORD ?? 'dev';
const deny = process.env.DEV_IDP_DENY === '1';
const jar = new Map();

function isCallback(u) {
  const x = new URL(u);
  return x.hostname === '127.0.0.1' && !x.pathname.startsWith('/interaction') && !x.pathname.startsWith('/auth') && !x.pathname.startsWith('/device') && x.searchParams.has('state') || (x.searchParams.has('code') || x.searchParams.has('error')) && x.searchParams.has('state');
}

async function request(u, opts = {}) {
  const origin = new URL(u).host;
  const cookies = jar.get(origin);
  const headers = { ...(opts.headers ?? {}) };
  if (cookies && cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  log(`${opts.method ?? 'GET'} ${u.split('?')[0]}`);
  const res = await fetch(u, { ...opts, headers, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) {
    const [kv] = c.split(';');
    const i = kv.indexOf('=');
    if (!jar.has(origin)) jar.set(origin, new Map());
    jar.get(origin).set(kv.slice(0, i), kv.slice(i + 1));
  }
  return res;
}

function formAction(html, id) {
  const forms = [...html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)];
  const f = id ? forms.find((x) => x[2].includes(`id="${id}"`)) ?? forms[0] : forms[0];
  if (!f) throw new Error('no form on page');
  const fields = new URLSearchParams();
  for (const [tag] of f[2].matchAll(/<input[^>]*>/g)) {
    const name = tag.match(/name="([^"]*)"/);
    const value = tag.match(/value="([^"]*)"/);
    if (name) fields.set(name[1], (value ? value[1] : '').replace(/&#(\d+);/g, (_, n) => String.fromCharCode(+n)));
  }
  return { action: f[1].replace(/&#(\d+);/g, (_, n) => String.fromCharCode(+n)), fields };
}

async function walk(start) {
  let u = start;
  let method = 'GET';
  let body;
  let aborted = false;
  for (let i = 0; i < 30; i += 1) {
    if (method === 'GET' && /^http:\/\/127\.0\.0\.1(:\d+)?\//.test(u) && (new URL(u).searchParams.has('code') || new URL(u).searchParams.has('error')) && new URL(u).searchParams.has('state')) return u;
    const res = await request(u, method === 'POST' ? { method, body, headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {});
    method = 'GET'; body = undefined;
    if (res.status >= 300 && res.status < 400) { u = new URL(res.headers.get('location'), u).href; continue; }
    const html = await res.text();
    if (res.status >= 400) throw new Error(`HTTP ${res.status} at ${u}: ${html.slice(0, 300)}`);
    if (/name="password"/.test(html)) {
      const { action, fields } = formAction(html);
      fields.set('username', deny && process.env.DEV_IDP_DENY_LOGIN === '1' ? 'deny' : user); fields.set('password', password);
      u = new URL(action, u).href; method = 'POST'; body = fields.toString(); continue;
    }
    if (/id="approve"/.test(html)) {
      const { action, fields } = formAction(html, deny ? 'deny' : 'approve');
      u = new URL(action, u).href; method = 'POST'; body = fields.toString(); continue;
    }
    // oidc-provider's device pages: user-code confirm form (confirm/abort).
    if (/name="confirm"|name="user_code"/.test(html)) {
      const { action, fields } = formAction(html);
      if (aborted) { log('device code denied'); return null; }
      if (deny) { fields.delete('confirm'); fields.set('abort', 'yes'); aborted = true; } else fields.set('confirm', 'yes');
      u = new URL(action, u).href; method = 'POST'; body = fields.toString(); continue;
    }
    if (device || aborted) { log('device flow finished'); return null; }
    throw new Error(`unexpected page at ${u}: ${html.slice(0, 300)}`);
  }
  throw new Error('too many steps');
}

try {
  if (!url) throw new Error('usage: login-http.mjs [--device] URL');
  const cb = await walk(url);
  if (cb) {
    if (process.env.DEV_IDP_STRAY === '1') {
      const stray = new URL(cb); stray.searchParams.set('state', 'wrong-state');
      log('stray callback with a wrong state');
      await fetch(stray).then((r) => r.text()).catch((e) => log(`stray: ${e}`));
    }
    if (process.env.DEV_IDP_CALLBACK_FILE) {
      // Whole or not at all: the reader polls for the file.
      fs.writeFileSync(`${process.env.DEV_IDP_CALLBACK_FILE}.part`, cb);
      fs.renameSync(`${process.env.DEV_IDP_CALLBACK_FILE}.part`, process.env.DEV_IDP_CALLBACK_FILE);
      log('callback written, not requested');
      process.exit(0);
    }
    log('callback');
    const r = await fetch(cb);
    log(`callback answered ${r.status}`);
  }
} catch (e) {
  log(`error: ${e.message}`);
  console.error(`login-http: ${e.message}`);
  process.exit(1);
}
