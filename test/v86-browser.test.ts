// Issue 21, route 1 in a browser: the v86 page (examples/v86/page.ts) in headless Chromium
// (Debian `chromium`, driven by playwright-core), served cross-origin isolated: v86 boots the
// guest of support/build-v86-guest.sh in the page and virtq's device serves its network on a Web
// Worker with the host stack behind it; the guest's arping is answered and every one of 200
// `ping -A` comes back, each frame crossing the device once. Skips with a message when chromium,
// playwright-core, the v86 package or the guest's Debian packages are missing.

import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const BUILD = fileURLToPath(new URL('../../test/support/build-v86-guest.sh', import.meta.url));
const COUNT = 200;

test(`v86 in headless Chromium with virtq's device on a Web Worker: ARP and ${COUNT} pings, 0 % loss, every frame once`, { timeout: 300_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  let pw: typeof import('playwright-core');
  let serve: typeof import('../examples/v86/serve.js');
  try {
    pw = await import('playwright-core');
    serve = await import('../examples/v86/serve.js');
    import.meta.resolve('v86');
  } catch (e) {
    return t.skip(`playwright-core or v86 is not installed (npm ci): ${String(e)}`);
  }
  const dir = join(process.env['VIRTQ_CACHE_DIR'] ?? join(homedir(), '.cache', 'virtq'), 'v86-guest');
  const built = spawnSync('bash', [BUILD, dir], { encoding: 'utf8' });
  if (built.status !== 0) return t.skip(`the v86 guest could not be built (Debian packages missing?): ${built.stderr.trim().slice(-300)}`);
  const server = await serve.startV86Server(0, dir);
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/examples/v86/index.html?count=${COUNT}`);
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), true, 'page is cross-origin isolated');
    const pageLog = (): Promise<string> => page.evaluate(() => (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } }).document.getElementById('log').textContent);
    try {
      await page.waitForFunction(() => (globalThis as { __virtqV86?: unknown }).__virtqV86 !== undefined, undefined, { timeout: 240_000 });
    } catch (e) {
      const serial = await page.evaluate(() => (globalThis as { __virtqV86Serial?: () => string }).__virtqV86Serial?.() ?? '(no serial output)');
      assert.fail(`the page did not finish: ${String(e)}\n${await pageLog()}\npage errors: ${JSON.stringify(errors)}\nguest console (last 3000 chars):\n${serial.slice(-3000)}`);
    }
    const r = (await page.evaluate(() => (globalThis as { __virtqV86?: unknown }).__virtqV86)) as {
      ok: boolean;
      error?: string;
      transmitted: number;
      received: number;
      arping: boolean;
      stats: { framesFromGuest: number; framesToGuest: number; txDropped: number };
      deviceTx: number;
      deviceRx: number;
      seconds: number;
    };
    const log = await pageLog();
    for (const l of log.split('\n')) t.diagnostic(l);
    assert.deepEqual(errors, []);
    assert.equal(r.error, undefined, r.error);
    assert.ok(r.arping, 'the host stack answered the guest kernel\'s ARP request');
    assert.equal(r.transmitted, COUNT);
    assert.equal(r.received, COUNT, 'every echo answered');
    assert.equal(r.stats.txDropped, 0);
    assert.equal(r.deviceTx, r.stats.framesFromGuest, 'every frame from v86 crossed the device once');
    assert.equal(r.deviceRx, r.stats.framesToGuest);
    assert.ok(r.ok);
  } finally {
    await browser.close();
    await server.close();
  }
});
