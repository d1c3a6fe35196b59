// The HTML view of a real traced run, loaded in headless Chromium (Debian package `chromium`,
// driven by playwright-core): the stage table has the expected rows, every row a histogram, and
// the slowest packet (past the first 1000, the warm-up) a timeline whose segments are the packet's stages. Skips with a message
// when Chromium is not installed.

import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runTraced } from '../src/engine/index.js';
import { analyzeTraceFile, writeTraceHtml } from '../src/trace/node.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (install the Debian package "chromium", or set CHROMIUM_PATH)`;

test('the HTML view of a traced stream run shows the expected stage rows in headless Chromium', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-trace-html-'));
  try {
    const file = join(dir, 'run.ndjson');
    const html = join(dir, 'run.html');
    const { trace } = await runTraced(
      { workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 1500, count: 3000, publishEvery: 16, verify: 'seq' }, wait: { strategy: 'block' }, timeoutMs: 30_000 },
      { file, sample: 1 },
    );
    assert.equal(trace.packets, 3000);
    const report = await analyzeTraceFile(file, { slowest: 5 });
    writeTraceHtml(report, html, 'stream run');

    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(pathToFileURL(html).href);
      const rows = await page.$$eval('#stages tr.stage-row', (trs) => trs.map((tr) => ({ stage: tr.getAttribute('data-stage'), count: Number(tr.querySelector('td')?.textContent), bars: tr.querySelectorAll('svg.hist rect').length })));
      const names = rows.map((r) => r.stage);
      for (const expected of ['add→publish', 'pop→done', 'done→used']) {
        assert.ok(names.includes(expected), `row ${expected} in ${names.join(', ')}`);
        assert.equal(rows.find((r) => r.stage === expected)!.count, 3000);
      }
      assert.ok(names.some((n) => n!.endsWith('→pop')), 'a stage ends at pop');
      assert.ok(names.some((n) => n!.endsWith('→reap')), 'a stage ends at reap');
      assert.ok(rows.every((r) => r.bars > 0), 'every stage row draws a histogram');
      assert.equal(await page.locator('tr.e2e-row').getAttribute('data-stage'), 'end-to-end');
      const slow = report.slowest[0]!;
      const segs = await page.$$eval('details.packet[open] svg.timeline rect.seg', (rs) => rs.map((r) => r.getAttribute('data-stage')));
      assert.deepEqual(segs, slow.stages.map((s) => s.name));
      assert.equal(await page.locator('details.packet').count(), 5);
      // The slowest list skips the JIT warm-up (packets 0–999), and the page says so.
      const seqs = await page.$$eval('details.packet', (ds) => ds.map((d) => Number(d.getAttribute('data-seq'))));
      assert.ok(seqs.every((q) => q >= 1000), `listed packets ${seqs.join(', ')} are past the warm-up`);
      assert.match((await page.locator('#slowest-title').textContent()) ?? '', /^Slowest 5 packets after the first 1000 \(warm-up/);
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
