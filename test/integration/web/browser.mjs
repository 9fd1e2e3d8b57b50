// Drives Converse.js in Debian's chromium for TestBrowser (browser_test.go):
//   node browser.mjs PAGE_URL PEER_JID TEXT_TO_SEND TEXT_TO_EXPECT
// It prints "connected", then "sent" once TEXT_TO_SEND went out through
// the chat box, then "shown" once TEXT_TO_EXPECT appears in the chat,
// and exits 0; anything else exits 1 with the reason on stderr.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [pageURL, peer, toSend, toExpect] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'parley-chromium-'));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors'],
    timeout: 60000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('console:', m.text()); });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(pageURL);
  await page.waitForFunction(() => window.parleyTest && window.parleyTest.connected, null, { timeout: 60000 });
  console.log('connected');
  await page.evaluate((jid) => window.parleyTest.api.chats.open(jid, {}, true), peer);
  const box = page.locator('textarea.chat-textarea').first();
  await box.waitFor({ timeout: 30000 });
  await box.fill(toSend);
  await box.press('Enter');
  // Our own message is shown once Converse sent it.
  await page.locator('.chat-msg__text', { hasText: toSend }).first().waitFor({ timeout: 30000 });
  console.log('sent');
  await page.locator('.chat-msg__text', { hasText: toExpect }).first().waitFor({ timeout: 60000 });
  console.log('shown');
  await ctx.close();
  process.exitCode = 0;
} catch (e) {
  console.error(e && e.stack || String(e));
  if (ctx) await ctx.close().catch(() => {});
  process.exitCode = 1;
} finally {
  rmSync(profile, { recursive: true, force: true });
}
