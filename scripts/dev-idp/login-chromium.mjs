// Real-browser login driver for the dev IdP, usable as `--browser-command`
// (the authorization URL is the last argument): Debian /usr/bin/chromium via
// playwright-core, headless, a fresh profile, every non-loopback request
// blocked. Signs in, approves (or denies) consent and lets the browser follow
// the redirect to the loopback callback.
// Env: DEV_IDP_USER (alice), DEV_IDP_PASSWORD (dev), DEV_IDP_DENY=1,
// DEV_IDP_DRIVER_LOG=FILE, DEV_IDP_CHROMIUM (default /usr/bin/chromium).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const log = (msg) => { if (process.env.DEV_IDP_DRIVER_LOG) fs.appendFileSync(process.env.DEV_IDP_DRIVER_LOG, `login-chromium: ${msg}\n`); };
const url = process.argv[process.argv.length - 1];
const user = process.env.DEV_IDP_USER ?? 'alice';
const password = process.env.DEV_IDP_PASSWORD ?? 'dev';
const deny = process.env.DEV_IDP_DENY === '1';
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'dev-idp-chromium-'));
let context;
let code = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.DEV_IDP_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === 'localhost' || host === '[::1]') return route.continue();
    log(`blocked ${host}`);
    return route.abort();
  });
  const page = context.pages()[0] ?? await context.newPage();
  const reachedCallback = (u) => { const x = new URL(u); return x.hostname === '127.0.0.1' && x.searchParams.has('state') && (x.searchParams.has('code') || x.searchParams.has('error')); };
  log('open authorization URL');
  await page.goto(url);
  for (let i = 0; i < 10 && !reachedCallback(page.url()); i += 1) {
    if (await page.locator('input[name="password"]').count()) {
      log('sign in');
      await page.fill('input[name="username"]', user);
      await page.fill('input[name="password"]', password);
      await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    } else if (await page.locator('#approve').count()) {
      log(deny ? 'deny consent' : 'approve consent');
      await Promise.all([page.waitForNavigation(), page.click(deny ? '#deny' : '#approve')]);
    } else {
      await page.waitForLoadState();
      if (!reachedCallback(page.url())) throw new Error(`unexpected page at ${page.url().split('?')[0]}`);
    }
  }
  if (!reachedCallback(page.url())) throw new Error('never reached the callback');
  log(`callback page loaded: ${(await page.textContent('body') ?? '').slice(0, 80)}`);
} catch (e) {
  log(`error: ${e.message}`);
  console.error(`login-chromium: ${e.message}`);
  code = 1;
} finally {
  await context?.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
