// The study chart rendered by a real browser: headless Chromium (Debian `chromium`) lays out the
// SVG inline in a page whose script measures every row group, and the test checks that each
// row shows up as one visible group with its four bars, in row order. A second test loads the
// chart with playwright-core and checks that every <text> lies inside the viewBox (the "max …
// ms" labels were once cut off at the right edge) and that the two panel titles do not touch.
// Skipped, with a message, when no Chromium is installed.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
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

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

test('every text of the study chart, the longest "max … ms" label included, lies inside the viewBox and the panel titles do not overlap', { skip: existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (Debian package "chromium", or set CHROMIUM_PATH)`, timeout: 120_000 }, async (t) => {
  const report = syntheticReport(studyPresets());
  // A row whose p99 sits at the top of the log axis puts its max label at the far right; a
  // six-digit max makes it the longest label there is.
  const last = report.rows[report.rows.length - 1]!.ping.h2g!.result!;
  report.rows[report.rows.length - 1]!.ping.h2g!.result = { ...last, p99Us: 9999, rtt: { ...last.rtt, maxUs: 123456.7 } };
  const svg = renderSvg(report);
  assert.match(svg, /max 123\.5 ms/);
  const dir = mkdtempSync(join(tmpdir(), 'virtq-svg-boxes-'));
  const page = join(dir, 'chart.html');
  writeFileSync(page, `<!doctype html><html><body style="margin:0">${svg}</body></html>`);
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const p = await browser.newPage();
    await p.goto(pathToFileURL(page).href);
    type Box = { text: string; cls: string | null; x: number; y: number; width: number; height: number };
    // Runs in the page (a string: the test is compiled without the DOM lib).
    const m = (await p.evaluate(`(() => {
      const svgEl = document.querySelector('svg');
      const vb = svgEl.viewBox.baseVal;
      const texts = [...svgEl.querySelectorAll('text')].map((el) => {
        const b = el.getBBox();
        return { text: el.textContent, cls: el.getAttribute('class'), x: b.x, y: b.y, width: b.width, height: b.height };
      });
      return { vb: { width: vb.width, height: vb.height }, texts };
    })()`)) as { vb: { width: number; height: number }; texts: Box[] };
    const shot = join(dir, 'chart.png');
    await p.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot of the chart: ${shot}`);
    assert.ok(m.texts.some((x) => x.text === 'max 123.5 ms'), 'the long label is drawn');
    for (const x of m.texts) {
      assert.ok(x.width > 0, `"${x.text}" is laid out`);
      assert.ok(x.x >= 0 && x.x + x.width <= m.vb.width, `"${x.text}" spans x ${x.x.toFixed(1)}–${(x.x + x.width).toFixed(1)}, inside the viewBox width ${m.vb.width}`);
      assert.ok(x.y >= 0 && x.y + x.height <= m.vb.height, `"${x.text}" spans y ${x.y.toFixed(1)}–${(x.y + x.height).toFixed(1)}, inside the viewBox height ${m.vb.height}`);
    }
    const titles = m.texts.filter((x) => x.cls === 'panel-title');
    assert.equal(titles.length, 2, 'two panel titles');
    const [a, b] = titles as [Box, Box];
    const apart = a.x + a.width < b.x || b.x + b.width < a.x || a.y + a.height < b.y || b.y + b.height < a.y;
    assert.ok(apart, `title "${a.text}" (x ${a.x.toFixed(1)}–${(a.x + a.width).toFixed(1)}) and "${b.text}" (x ${b.x.toFixed(1)}–${(b.x + b.width).toFixed(1)}) do not intersect`);
  } finally {
    await browser.close();
  }
});
