// The study's renderers and plumbing without threads: the RFC-format tables, the mechanism
// table, Markdown, the SVG (well-formed XML, one bar group per row, escaped names), the JSON
// shape, the preset adapter (cumulative and isolated), and the quick plan's time budget.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  RFC_FIGURES,
  QUICK_BUDGET_MS,
  estimateRowMs,
  findPreset,
  formatStudy,
  formatProgress,
  ProgressLine,
  latencyTable,
  mechanismTable,
  quickPlan,
  renderMarkdown,
  reportHasProblems,
  renderSvg,
  rfcQuad,
  studyPresets,
  summarize,
  throughputTable,
  type StudyPreset,
} from '../src/study/index.js';
import { syntheticReport as report } from './workers/fake-net-report.js';

/**
 * A strict little well-formedness check for the SVG we generate (no DTDs, no CDATA, no
 * processing instructions): one root element, balanced tags, quoted attributes without raw
 * '<' or bare '&', and only the five predefined entities or numeric references in text.
 */
function checkXml(xml: string): void {
  const entity = /&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  const checkText = (t: string, where: number): void => {
    for (let i = t.indexOf('&'); i !== -1; i = t.indexOf('&', i + 1)) {
      entity.lastIndex = i;
      if (!entity.test(t)) throw new Error(`bare '&' at ${where + i}`);
    }
    if (t.includes('<')) throw new Error(`raw '<' at ${where}`);
  };
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root at ${i}`);
    checkText(text, i);
    if (lt === -1) break;
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt);
      if (end === -1) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    const gt = xml.indexOf('>', lt);
    if (gt === -1) throw new Error(`unterminated tag at ${lt}`);
    const tag = xml.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element at ${lt}`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*$/.exec(body);
      if (!m) throw new Error(`malformed tag <${tag}> at ${lt}`);
      for (const a of m[2]!.matchAll(/="([^"]*)"/g)) checkText(a[1]!, lt);
      const names = [...m[2]!.matchAll(/([A-Za-z_][\w:.-]*)=/g)].map((x) => x[1]);
      if (new Set(names).size !== names.length) throw new Error(`duplicate attribute in <${m[1]}> at ${lt}`);
      if (stack.length === 0 && ++roots > 1) throw new Error('more than one root element');
      if (!selfClosing) stack.push(m[1]!);
    }
    i = gt + 1;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.at(-1)}>`);
  if (roots !== 1) throw new Error('no root element');
}

test("the RFC's own figures print back exactly in its layout", () => {
  const base = RFC_FIGURES[0]!;
  assert.equal(rfcQuad(base.throughputGbps.g2h), ' 1.520/ 1.573/ 1.610/ 0.034');
  assert.equal(rfcQuad(base.throughputGbps.h2g), ' 1.160/ 1.357/ 1.630/ 0.165');
  assert.equal(RFC_FIGURES.length, 12);
  assert.equal(RFC_FIGURES.find((r) => r.row === 'ring size == 512')!.pingMs.g2h, null);
});

test('the throughput table has one aligned line per row, our figures and the RFC average', () => {
  const rows = studyPresets();
  const t = throughputTable(report(rows));
  const lines = t.split('\n');
  assert.match(lines[0]!, /^netperf, 3x[\d.]+s runs \(Gb\/s\)\s+\| guest->host\s+\| host->guest\s+\| RFC 2008 avg/);
  const body = lines.slice(2, 2 + rows.length);
  rows.forEach((p, i) => assert.ok(body[i]!.startsWith(p.name + ' '), `line ${i} is row ${p.name}`));
  // Every '|' of the body sits where the header's does.
  const bars = (s: string): number[] => [...s].flatMap((c, i) => (c === '|' ? [i] : []));
  for (const l of body) assert.deepEqual(bars(l), bars(lines[0]!));
  assert.match(body[0]!, /\| 10\.000\/11\.000\/12\.000\/ 0\.816 +\|  5\.000\/ 5\.500\/ 6\.000\/ 0\.500 +\| 1\.573 \/ 1\.357/);
  assert.ok(body.at(-1)!.includes('| —'), 'a modern preset has no RFC figure');
});

test('the latency table prints iputils min/avg/max/mdev in ms from integer µs', () => {
  const p = studyPresets().slice(0, 1);
  const t = latencyTable(report(p));
  // [20, 30, 40] µs: avg 30, mdev llsqrt(trunc((2900 − 90²/3)/3)) = llsqrt(66) = 8;
  // [25, 35, 7602]: population sd 3569.5… → 3569.
  assert.match(t, /baseline\s+\|  0\.020\/ 0\.030\/ 0\.040\/ 0\.008 +\|  0\.025\/ 2\.554\/ 7\.602\/ 3\.569/);
  assert.match(t.split('\n')[0]!, /^ping -f -c 20000 \(≤[\d.]+s\) \(ms\)/);
});

test('a failed cell shows its error instead of figures, and the study lists it under problems', () => {
  const p = studyPresets().slice(0, 2);
  const r = report(p);
  r.rows[1]!.stream.g2h = { ...r.rows[1]!.stream.g2h!, runs: [], gbps: summarize([]), error: 'run 1: side failed: boom' };
  r.rows[1]!.ping.h2g = { ...r.rows[1]!.ping.h2g!, result: null, error: 'timeout' };
  const text = formatStudy(r);
  assert.match(text, /50us tx timer \+ rearm\s+\| error \(see problems\)/);
  assert.match(text, /problems[^\n]*\n  50us tx timer \+ rearm stream g2h: run 1: side failed: boom/);
  assert.match(text, /50us tx timer \+ rearm ping h2g: timeout/);
  assert.match(renderMarkdown(r), /## Problems\n\n- 50us tx timer \+ rearm stream g2h: run 1: side failed: boom/);
  assert.equal(reportHasProblems(r), true);
  assert.equal(reportHasProblems(report(p)), false);
});

test('the mechanism table has two lines per row and shows unreported counters as —', () => {
  const p = studyPresets().slice(0, 3);
  const lines = mechanismTable(report(p)).split('\n');
  assert.equal(lines.length, 2 + 2 * p.length);
  assert.match(lines[2]!, /^baseline\s+g->h\s+0\.020\s+0\.010\s+50\.0\s+—\s+—\s+0\.005\s+0\.100\s+0\.200\s+1\.00\s+1\.00\s+—$/);
  assert.match(lines[3]!, /^baseline\s+h->g/);
});

test('the Markdown report has both tables with the RFC figures beside ours, the mechanisms and the conclusions', () => {
  const rows = studyPresets();
  const md = renderMarkdown(report(rows), { svgHref: 'study.svg' });
  assert.match(md, /^# virtq study report/);
  assert.match(md, /!\[throughput and latency per row\]\(study\.svg\)/);
  assert.match(md, /## Throughput, Gb\/s/);
  assert.match(md, /## Flood-ping latency, ms/);
  assert.match(md, /## Mechanisms/);
  assert.match(md, /## The RFC's conclusions/);
  assert.match(md, /\| baseline \| 10\.000 \/ 11\.000 \/ 12\.000 \/ 0\.816 \| 1\.520 \/ 1\.573 \/ 1\.610 \/ 0\.034 \|/);
  assert.match(md, /\| ring size == 512 \| [^|]+ \| not measured \|/);
  for (const p of rows) assert.ok(md.includes(`| ${p.name} |`), `row ${p.name} in the tables`);
  // GSO ÷ recv NO_NOTIFY throughput g→h: ours (17+11)/... computed from the synthetic rows.
  assert.match(md, /GSO ÷ recv NO_NOTIFY \| 1\.06× \(RFC 2\.70×\)/);
  // Every table line has the same number of cells as its header.
  for (const block of md.split('\n\n').filter((b) => b.startsWith('| '))) {
    const cells = (l: string): number => l.split(/(?<!\\)\|/).length;
    const ls = block.split('\n');
    for (const l of ls) assert.equal(cells(l), cells(ls[0]!), `table line: ${l}`);
  }
});

test('the SVG is well-formed XML with one bar group per row, names escaped', () => {
  const rows: StudyPreset[] = [...studyPresets(), { ...studyPresets()[0]!, name: 'a<b & "c"', slug: 'x', kind: 'modern', rfcIndex: null }];
  const svg = renderSvg(report(rows));
  checkXml(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const groups = [...svg.matchAll(/<g class="row-group" data-row="([^"]*)">/g)].map((m) => m[1]);
  assert.equal(groups.length, rows.length);
  assert.equal(groups.at(-1), 'a&lt;b &amp; &quot;c&quot;');
  assert.ok(!/<script|href=|@import|url\(/.test(svg), 'self-contained: no scripts or external references');
  // Two throughput bars and two latency bars per row.
  assert.equal((svg.match(/class="bar tp /g) ?? []).length, 2 * rows.length);
  assert.equal((svg.match(/class="bar lat /g) ?? []).length, 2 * rows.length);
  // RFC diamonds: 12 rows × 2 throughput + 11 measured rows × 2 ping, plus the legend's.
  assert.equal((svg.match(/class="rfc-mark"/g) ?? []).length, 12 * 2 + 11 * 2 + 1);
});

test('the SVG checker itself rejects broken XML', () => {
  assert.throws(() => checkXml('<svg><g></svg>'));
  assert.throws(() => checkXml('<svg a="1 & 2"></svg>'));
  assert.throws(() => checkXml('<svg a=1></svg>'));
  assert.throws(() => checkXml('<svg></svg><svg></svg>'));
  checkXml('<svg a="&lt;"><g/><text>x &amp; y</text></svg>');
});

test('the JSON report round-trips with its documented fields (NaN becomes null)', () => {
  const r = report(studyPresets().slice(0, 2));
  r.rows[0]!.stream.g2h!.mechanism!.timerFires = NaN;
  const j = JSON.parse(JSON.stringify(r)) as Record<string, unknown> & { rows: Record<string, any>[] };
  assert.equal(j.schema, 'virtq-study/1');
  for (const k of ['generatedAt', 'command', 'machine', 'plan', 'rfcSource', 'rows', 'totalSeconds']) assert.ok(k in j, k);
  const row0 = j.rows[0]!;
  for (const k of ['name', 'slug', 'kind', 'description', 'dataPath', 'rfc', 'stream', 'ping']) assert.ok(k in row0, `row.${k}`);
  const s = row0.stream.g2h;
  for (const k of ['min', 'avg', 'max', 'stddevPop', 'stddevSample', 'n']) assert.equal(typeof s.gbps[k], 'number', `gbps.${k}`);
  assert.equal(s.mechanism.timerFires, null);
  const p = row0.ping.g2h.result;
  for (const k of ['minUs', 'avgUs', 'maxUs', 'mdevUs', 'line']) assert.ok(k in p.rtt, `rtt.${k}`);
  assert.deepEqual(row0.rfc.throughputGbps.g2h, [1.52, 1.573, 1.61, 0.034]);
});

test('every RFC row name matches the RFC figures, slugs are unique, and lookups take either spelling', () => {
  const rows = studyPresets();
  const rfc = rows.filter((r) => r.kind === 'rfc');
  assert.deepEqual(rfc.map((r) => r.name), RFC_FIGURES.map((r) => r.row));
  assert.equal(new Set(rows.map((r) => r.slug)).size, rows.length);
  assert.equal(findPreset('ring-size-256').name, 'ring size == 256');
  assert.equal(findPreset('GSO').name, 'GSO');
  assert.equal(findPreset('rfc-gso').name, 'GSO', 'the policy preset name `virtq presets` lists works too');
  assert.equal(findPreset('vhost').policy, 'vhost');
  assert.equal(findPreset('50us tx timer + rearm').slug, '50us-tx-timer-rearm');
  assert.throws(() => findPreset('nope'), /unknown preset "nope" \(choose from: baseline, /);
});

test('cumulative rows carry every earlier change; isolated rows only their own', () => {
  const cum = studyPresets('cumulative');
  const iso = studyPresets('isolated');
  const by = (rs: StudyPreset[], n: string): StudyPreset => rs.find((r) => r.name === n)!;
  assert.deepEqual([by(cum, 'ring size == 256').gso, by(cum, 'ring size == 256').ringSize], [true, 256]);
  assert.deepEqual([by(iso, 'ring size == 256').gso, by(iso, 'ring size == 256').ringSize], [false, 256]);
  assert.deepEqual([by(iso, 'GSO').gso, by(iso, 'GSO').ringSize], [true, 128]);
  // A row that changes no data-path fact is the baseline's data path in isolation.
  assert.deepEqual([by(iso, 'aligouri zero-copy').gso, by(iso, 'aligouri zero-copy').ringSize], [false, 128]);
  assert.deepEqual([by(cum, 'aligouri zero-copy').gso, by(cum, 'aligouri zero-copy').ringSize], [true, 512]);
});

test('the adapter reads a policy-shaped source: RFC rows in order, modern presets after', () => {
  const rows = studyPresets('cumulative', {
    rfcRows: ['baseline', 'GSO'],
    presets: { baseline: { description: 'b' }, GSO: { gso: true, description: 'g' }, 'my-adaptive': { eventIdx: true, ringSize: 1024 }, 'my-napi': {} },
  });
  assert.deepEqual(rows.map((r) => [r.name, r.kind, r.ringSize, r.gso, r.eventIdx]), [
    ['baseline', 'rfc', 128, false, false],
    ['GSO', 'rfc', 128, true, false],
    ['my-adaptive', 'modern', 1024, true, true],
    ['my-napi', 'modern', 128, true, false], // unspecified: the last RFC row's data path
  ]);
});

test('the quick plan fits every default row in the 3-minute budget', () => {
  const rows = studyPresets().length;
  const plan = quickPlan(rows);
  assert.equal(plan.quick, true);
  assert.ok(plan.seconds >= 0.25 && plan.seconds <= 2);
  assert.ok(plan.pingCapMs !== null && plan.pingCapMs >= 300);
  const total = rows * estimateRowMs(plan);
  assert.ok(total <= QUICK_BUDGET_MS * 1.02, `estimated ${total} ms for ${rows} rows`);
  assert.ok(QUICK_BUDGET_MS <= 170_000, 'leaves room for the build and Node start-up inside 3 minutes');
  // Fewer rows: longer runs, still capped.
  assert.ok(quickPlan(2).seconds === 2 && quickPlan(2).pingCapMs === 3000);
});

test('progress shows row, cell, run and ETA on a terminal and nothing when piped', () => {
  const e = { rowIndex: 2, rowCount: 16, row: 'GSO', cell: 'stream g2h', run: 2, runs: 3, elapsedMs: 65_000, etaMs: 100_400 };
  assert.equal(formatProgress(e), 'row 3/16 GSO · stream g2h run 2/3 · 1m05s elapsed · ETA 1m40s');
  assert.equal(formatProgress({ ...e, cell: 'ping h2g', run: 1, runs: 1, etaMs: 9_600 }), 'row 3/16 GSO · ping h2g · 1m05s elapsed · ETA 10s');
  const tty: string[] = [];
  const line = new ProgressLine({ isTTY: true, columns: 30, write: (s: string) => tty.push(s) });
  line.update(formatProgress(e));
  line.clear();
  assert.equal(tty[0], '\r\x1b[2K' + formatProgress(e).slice(0, 28) + '…');
  assert.equal(tty[1], '\r\x1b[2K');
  const piped: string[] = [];
  const quiet = new ProgressLine({ isTTY: false, write: (s: string) => piped.push(s) });
  quiet.update('x');
  quiet.clear();
  assert.deepEqual(piped, []);
});
