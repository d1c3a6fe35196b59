// The study chart rendered by a real browser: headless Chromium (Debian `chromium`) lays out the
// SVG inline in a page whose script measures every row group, and the test checks that each
// row shows up as one visible group with its four bars, in row order. Skipped, with a message,
// when no Chromium is installed.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { renderSvg, studyPresets } from '../src/study/index.js';
import { syntheticReport } from './workers/fake-net-report.js';

function findChromium(): string | null {
  for (const bin of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return bin;
  }
  return null;
}

const chromium = findChromium();

// Runs inside the page: per row group, its box and how many bars were laid out with a size.
const MEASURE = `
const out = [...document.querySelectorAll('g.row-group')].map((g) => {
  const box = g.getBoundingClientRect();
  const bars = [...g.querySelectorAll('rect.bar')].filter((r) => { const b = r.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length;
  return { row: g.getAttribute('data-row'), top: box.top, width: box.width, height: box.height, bars };
});
document.getElementById('out').textContent = JSON.stringify(out);
`;

test('headless Chromium renders the study chart with one visible bar group per row', { skip: chromium === null ? 'no chromium on this machine (Debian package `chromium`); skipping the browser rendering check' : false, timeout: 120_000 }, async () => {
  const rows = studyPresets();
  const svg = renderSvg(syntheticReport(rows));
  const dir = mkdtempSync(join(tmpdir(), 'virtq-svg-'));
  const page = join(dir, 'chart.html');
  writeFileSync(page, `<!doctype html><html><body>${svg}<pre id="out"></pre><script>${MEASURE}</script></body></html>`);
  const args = ['--headless', '--disable-gpu', '--no-sandbox', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`, '--dump-dom', pathToFileURL(page).href];
  const { stdout } = await promisify(execFile)(chromium!, args, { timeout: 90_000, maxBuffer: 32 << 20 });
  const m = /<pre id="out">([^<]*)<\/pre>/.exec(stdout);
  assert.ok(m, 'the page script ran and wrote its measurements');
  const groups = JSON.parse(m![1]!.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as { row: string; top: number; width: number; height: number; bars: number }[];
  assert.deepEqual(groups.map((g) => g.row), rows.map((r) => r.name));
  for (const g of groups) {
    assert.ok(g.width > 0 && g.height > 0, `row ${g.row} is laid out`);
    assert.equal(g.bars, 4, `row ${g.row}: two throughput bars and two latency bars`);
  }
  for (let i = 1; i < groups.length; i++) assert.ok(groups[i]!.top > groups[i - 1]!.top, 'rows stack top to bottom in order');
});
