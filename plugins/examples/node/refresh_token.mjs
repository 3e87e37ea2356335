#!/usr/bin/env node
// An authplug plugin in Node.js (20 or later; no dependencies).
//
// It keeps an OAuth 2.0 refresh token in its JSON state and trades it at a
// token endpoint (the refresh_token grant, RFC 6749 section 6) for an
// access token, which it prints. If the server rotates refresh tokens, the
// new one is what it keeps; if the answer is unusable after a rotation, the
// new refresh token still goes back to the host (rule 4's keep-state exit).
// The first run has no state: it starts from $EXAMPLE_REFRESH_TOKEN (a real
// plugin would log in with a browser here, when AUTHPLUG_INTERACTIVE is 1).
//
//   node refresh_token.mjs --token-endpoint URL --client-id ID
//
// Node opens descriptors of its own before this code runs (libuv's epoll
// instance, an eventfd, on some systems a pipe whose read end comes first),
// so "decide before opening any file" (rule 4) is met this way: fd 3 is the
// host's state pipe only if it is a pipe or socket that takes a write (what
// a host passes, epithet included, which sets no variables); fd 4 only if
// the host also offers it (AUTHPLUG_INFO_FD). Node cannot mark a descriptor
// close-on-exec, so this plugin starts no child process (rule 9); one that
// must, writes and closes fd 3 (and 4) first. Standard input is the state
// even when it is a terminal (started by hand): then there is none.

import fs from 'node:fs';
import { parseArgs } from 'node:util';

const STATE_FD = 3;
const INFO_FD = 4;
const NAME = 'refresh_token.mjs';

const say = (message) => { try { fs.writeSync(2, `${NAME}: ${message}\n`); } catch {} };
const fail = (message) => { say(message); process.exit(1); };

// Whether fd is a host's pipe: a pipe or socket, and writable (a write of
// nothing fails on a descriptor open for reading only).
function hostPipe(fd) {
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFIFO() && !stat.isSocket()) return false;
    fs.writeSync(fd, Buffer.alloc(0));
    return true;
  } catch {
    return false;
  }
}

// The exit code the host offers in the variable, if any.
function offered(variable) {
  const value = process.env[variable] ?? '';
  return /^\d+$/.test(value) && Number(value) > 0 && Number(value) < 256 ? Number(value) : null;
}

function writeFd(fd, text) {
  fs.writeSync(fd, text);
  fs.closeSync(fd);
}

// Decided first, before this plugin opens anything.
const hasStateFd = hostPipe(STATE_FD);
const hasInfoFd = process.env.AUTHPLUG_INFO_FD === String(INFO_FD) && hostPipe(INFO_FD);

// The provider rotated the refresh token, then the run failed: the old one
// is spent, so the new one goes to the host (rule 4).
function failKeeping(message, refreshToken) {
  const code = offered('AUTHPLUG_KEEP_STATE_EXIT');
  if (hasStateFd && code !== null) {
    writeFd(STATE_FD, JSON.stringify({ refresh_token: refreshToken }));
    say(`${message} (the new refresh token is kept)`);
    process.exit(code);
  }
  fail(`${message}; the provider rotated the refresh token and this host cannot keep it: log in again`);
}

// Only a login gets a new refresh token, and this plugin cannot log in: a
// host that offers it is told so by its exit code (rule 6), in a run that
// may not interact (in one that may, it is an ordinary failure).
function loginNeeded(message) {
  say(message);
  const quiet = process.env.AUTHPLUG_INTERACTIVE === '0';
  process.exit((quiet && offered('AUTHPLUG_LOGIN_NEEDED_EXIT')) || 1);
}

const printable = (text) => String(text).replace(/[\p{Cc}]/gu, ' ');

async function trade(endpoint, clientId, refreshToken, timeoutSeconds) {
  let response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
  } catch (error) {
    fail(`cannot reach the token endpoint ${endpoint}: ${error.cause?.code ?? error.message}`);
  }
  const body = await response.text().catch(() => '');
  if (body.length > 1024 * 1024) fail('the token endpoint answered with more than 1 MiB');
  let answer = null;
  try { answer = JSON.parse(body); } catch {}
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) answer = null;
  if (response.status !== 200) {
    let reason = 'no JSON error body';
    if (answer && typeof answer.error === 'string') {
      reason = answer.error + (typeof answer.error_description === 'string' ? `: ${answer.error_description}` : '');
    }
    const message = `the token endpoint refused the refresh token: HTTP ${response.status}, ${printable(reason)}`;
    if (answer?.error === 'invalid_grant') {
      loginNeeded(`${message} (the refresh token is expired or revoked: log in again, e.g. set EXAMPLE_REFRESH_TOKEN and clear the state)`);
    }
    fail(message);
  }
  if (!answer) fail('the token endpoint answered with something that is not a JSON object');
  let rotated = refreshToken;
  if (answer.refresh_token !== undefined) {
    if (typeof answer.refresh_token !== 'string' || !answer.refresh_token) fail("the token endpoint's answer has an invalid refresh_token");
    rotated = answer.refresh_token;
  }
  const accessToken = answer.access_token;
  if (typeof accessToken !== 'string' || !accessToken || /\s/.test(accessToken)) {
    const message = "the token endpoint's answer has no usable access_token";
    if (rotated !== refreshToken) failKeeping(message, rotated);
    fail(message);
  }
  let lifetime = answer.expires_in;
  if (!(typeof lifetime === 'number' && Number.isFinite(lifetime) && lifetime > 0 && lifetime < 10 * 366 * 24 * 3600)) {
    lifetime = null; // not said (RFC 6749 makes it optional), or unusable
  }
  return { accessToken, rotated, lifetime };
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      'token-endpoint': { type: 'string', default: process.env.EXAMPLE_TOKEN_ENDPOINT },
      'client-id': { type: 'string', default: process.env.EXAMPLE_CLIENT_ID },
      timeout: { type: 'string', default: '30' },
    },
  });
  if (!args['token-endpoint']) fail('no token endpoint: pass --token-endpoint URL or set EXAMPLE_TOKEN_ENDPOINT');
  if (!args['client-id']) fail('no client id: pass --client-id ID or set EXAMPLE_CLIENT_ID');

  let raw = '';
  if (!process.stdin.isTTY) {
    try { raw = fs.readFileSync(0, 'utf8'); } catch {}
  }
  let state = {};
  if (raw) {
    try { state = JSON.parse(raw); } catch { state = null; }
    if (state === null || typeof state !== 'object' || Array.isArray(state)) {
      fail('the state is not a JSON object; it was not written by this plugin');
    }
  }
  let refreshToken = state.refresh_token;
  if (!refreshToken) {
    refreshToken = process.env.EXAMPLE_REFRESH_TOKEN;
    if (!refreshToken) loginNeeded('no refresh token yet: set EXAMPLE_REFRESH_TOKEN for the first run');
  }
  if (process.env.AUTHPLUG_REASON === 'rejected') say('the last token was rejected; getting a new one');

  const started = Math.floor(Date.now() / 1000);
  const { accessToken, rotated, lifetime } = await trade(
    args['token-endpoint'], args['client-id'], refreshToken, Number(args.timeout) || 30);

  if (hasStateFd) {
    writeFd(STATE_FD, JSON.stringify({ refresh_token: rotated }));
  } else {
    say('no fd 3 (not started by a host), so the new refresh token is lost');
  }
  if (hasInfoFd && lifetime !== null) {
    // Counted from before the request: never later than the server meant.
    writeFd(INFO_FD, JSON.stringify({ expires_at: started + Math.floor(lifetime) }));
  }
  fs.writeSync(1, `${accessToken}\n`);
}

await main();
