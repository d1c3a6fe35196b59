// The core in browser Web Workers: serves the example page cross-origin isolated (COOP/COEP) from
// Node's http module on localhost and runs it in headless Chromium (Debian `chromium`, driven by
// playwright-core). The page's emulator worker loads memory, virtqueue, notify, sync and net
// unchanged, drives the virtio-mmio virtio-net device (NetDevice under the DeviceLoop, preset
// 'vhost', a loopback port) whose data path runs on a second Web Worker, passes verified traffic,
// snapshots mid-stream, restores onto a new device worker and resets; then the same device with
// the host stack behind it under the 'rfc-baseline' preset answers ARP and 200 pings. Skips with
// a message when chromium or playwright-core is absent.

import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer } from '../examples/browser/serve.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function loadPlaywright(): Promise<typeof import('playwright-core') | null> {
  try {
    return await import('playwright-core');
  } catch {
    return null;
  }
}

test('a guest and a device in browser Web Workers pass verified traffic through virtio-mmio', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    return;
  }
  const pw = await loadPlaywright();
  if (pw === null) {
    t.skip('playwright-core is not installed (npm install --save-dev playwright-core)');
    return;
  }
  const server = await startServer();
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/examples/browser/index.html?frames=40000&bytes=1514`);
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), true, 'page is cross-origin isolated');
    await page.waitForFunction(() => (globalThis as { __virtqResult?: unknown }).__virtqResult !== undefined, undefined, { timeout: 60_000 });
    const result = (await page.evaluate(() => (globalThis as { __virtqResult?: unknown }).__virtqResult)) as {
      ok: boolean;
      frames: number;
      gbps: number;
      kfps: number;
      pingReplies: number;
      error?: string;
    };
    const log = await page.evaluate(() => (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } }).document.getElementById('log').textContent);
    assert.deepEqual(errors, []);
    assert.equal(result.ok, true, `page reported failure: ${result.error ?? ''}\n${log}`);
    assert.equal(result.frames, 40000);
    assert.equal(result.pingReplies, 200, 'the full virtio-net device on a Web Worker answered every ping');
    t.diagnostic(`browser throughput (1514 B frames, device on a Web Worker, noisy shared VM): ${result.gbps.toFixed(2)} Gb/s, ${result.kfps.toFixed(0)} kfps`);
    for (const line of log.split("\n")) t.diagnostic(line);
  } finally {
    await browser.close();
    await server.close();
  }
});
