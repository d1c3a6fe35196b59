// The RFC's five conclusions as verdicts: the rules judge the RFC's own figures "reproduced"
// (a rule that rejects its source is wrong), contradicting figures "not reproduced", the bands
// between "partly", and a study that did not run a row, or ran isolated rows, "not measured".
// The verdicts travel in the report's JSON and in the text and Markdown renderings.

import test from 'node:test';
import assert from 'node:assert/strict';
import { RFC_FIGURES, formatStudy, judgeConclusions, renderMarkdown, studyPresets, summarize, type Mechanism, type RowResult, type StudyReport } from '../src/study/index.js';
import { syntheticReport } from './workers/fake-net-report.js';

type Gbps = Record<string, [g2h: number, h2g: number]>;

/** A cumulative report whose rows have exactly these average Gb/s. */
function reportWith(gbps: Gbps, mode: 'cumulative' | 'isolated' = 'cumulative'): StudyReport {
  const base = syntheticReport(studyPresets());
  const rows: RowResult[] = base.rows
    .filter((r) => gbps[r.name] !== undefined)
    .map((r) => {
      const [g, h] = gbps[r.name]!;
      return { ...r, stream: { g2h: { ...r.stream.g2h!, gbps: summarize([g]) }, h2g: { ...r.stream.h2g!, gbps: summarize([h]) } } };
    });
  return { ...base, rows, plan: { ...base.plan, mode } };
}

const rfcAverages = (): Gbps => Object.fromEntries(RFC_FIGURES.map((f) => [f.row, [f.throughputGbps.g2h[1], f.throughputGbps.h2g[1]]]));

test("the rules judge the RFC's own figures reproduced, all five", () => {
  const v = judgeConclusions(reportWith(rfcAverages()));
  assert.deepEqual(v.map((x) => x.verdict), ['reproduced', 'reproduced', 'reproduced', 'reproduced', 'reproduced']);
  // Ours equal the RFC's here, so each pair's ratios match.
  for (const c of v) for (const p of c.pairs) assert.ok(Math.abs(p.ours.g2h - p.rfc.g2h) < 1e-9 && Math.abs(p.ours.h2g - p.rfc.h2g) < 1e-9, p.label);
  assert.ok(v.every((x) => x.rule.length > 0 && x.why.length > 0));
});

test("figures like the issue's quiet quick study give the verdicts it reports: 1, 3 and 4 not reproduced, 2 partly, 5 reproduced", () => {
  const g = rfcAverages();
  // Timer rows within 8 % / 2 %; GSO ×1.8 / ×1.9; ring 512 ×1.39 / ×0.79; mutex h→g ×0.81; copy ×1.02 / ×0.99.
  g['50us tx timer + rearm'] = [10, 10];
  g['150us tx timer + rearm'] = [10.4, 10.1];
  g['250us tx timer + rearm'] = [10.8, 10.2];
  g['recv NO_NOTIFY'] = [10, 10];
  g['GSO'] = [18, 19];
  g['ring size == 256'] = [19.98, 23.94];
  g['ring size == 512'] = [25.02, 15.01];
  g['drop mutex during tapfd read'] = [25.5, 12.16];
  g['aligouri zero-copy'] = [26.01, 12.04];
  const v = judgeConclusions(reportWith(g));
  assert.deepEqual(v.map((x) => x.verdict), ['not reproduced', 'partly', 'not reproduced', 'not reproduced', 'reproduced']);
  assert.match(v[0]!.why, /g→h 1\.08×/);
  assert.match(v[3]!.why, /h→g 0\.81×/);
});

test('each rule has a partly band between reproduced and not', () => {
  const g = rfcAverages();
  g['250us tx timer + rearm'] = [1.086 * 1.15, 1.832]; // a 15 % gain g→h: partly
  g['150us tx timer + rearm'] = [1.086, 1.832];
  g['GSO'] = [1.604 * 2.5, 1.944 * 2.2]; // ≥ 2 both ways but g→h leads: partly
  const v = judgeConclusions(reportWith(g));
  assert.equal(v[0]!.verdict, 'partly');
  assert.equal(v[1]!.verdict, 'partly');
});

test('a timer change of the opposite sign to the RFC\'s is not conclusion 1 reproduced', () => {
  const g = rfcAverages();
  g['250us tx timer + rearm'] = [1.086 * 0.66, 1.832]; // longer timer, slower g→h
  g['150us tx timer + rearm'] = [1.086 * 0.8, 1.832];
  assert.equal(judgeConclusions(reportWith(g))[0]!.verdict, 'not reproduced');
});

test('a row that did not run, or an isolated study, gives "not measured" with the reason', () => {
  const g = rfcAverages();
  delete g['ring size == 512'];
  const v = judgeConclusions(reportWith(g));
  assert.equal(v[2]!.verdict, 'not measured');
  assert.match(v[2]!.why, /ring 512/);
  // Conclusion 4 compares with ring 512 too.
  assert.equal(v[3]!.verdict, 'not measured');
  assert.equal(v[0]!.verdict, 'reproduced');
  const iso = judgeConclusions(reportWith(rfcAverages(), 'isolated'));
  assert.ok(iso.every((x) => x.verdict === 'not measured' && /isolated/.test(x.why)));
});

test('the verdicts are printed in the text and Markdown reports', () => {
  const r = reportWith(rfcAverages());
  const withVerdicts = { ...r, conclusions: judgeConclusions(r) };
  const text = formatStudy(withVerdicts);
  assert.match(text, /1\. The length of the tx mitigation timer makes quite a difference to throughput: REPRODUCED/);
  assert.match(text, /rule: /);
  // A conclusion whose first clause ends in a full stop prints without it before the colon.
  assert.match(text, /much more so on the host->guest side: /);
  assert.doesNotMatch(text, /\.: /);
  const md = renderMarkdown(withVerdicts);
  assert.match(md, /## The RFC's conclusions: verdicts/);
  assert.match(md, /\| 5\. Eliminating an extra copy on the host->guest path makes a barely measurable difference\. \| \*\*reproduced\*\* \|/);
  // A report saved before verdicts existed is judged when rendered.
  assert.match(renderMarkdown(r), /\*\*reproduced\*\*/);
});

test('each judged conclusion names the mechanism counters that decide it', () => {
  const r = reportWith(rfcAverages());
  // The 250 µs row's flushes are all forced by a full ring, the 50 µs row's none; the lock waits 2 µs per packet, then 0.5.
  const withMech = (row: string, over: Record<string, number>): void => {
    const x = r.rows.find((y) => y.name === row)!;
    for (const d of ['g2h', 'h2g'] as const) x.stream[d] = { ...x.stream[d]!, mechanism: { ...x.stream[d]!.mechanism, ...over } as Mechanism };
  };
  withMech('50us tx timer + rearm', { avgBatch: 8, kickFlushShare: 0 });
  withMech('250us tx timer + rearm', { avgBatch: 32, kickFlushShare: 1 });
  withMech('ring size == 512', { lockWaitUsPerPacket: 2, lockContendedPerPacket: 0.5 });
  withMech('drop mutex during tapfd read', { lockWaitUsPerPacket: 0.5, lockContendedPerPacket: 0.1 });
  const v = judgeConclusions(r);
  assert.match(v[0]!.mechanism!, /g→h batch 50 µs 8\.0 \/ 150 µs [\d.]+ \/ 250 µs 32\.0, flushes forced by a kick \(ring full\) 0 % \/ — \/ 100 %/);
  assert.match(v[3]!.mechanism!, /h→g 2\.00 → 0\.50/);
  assert.ok(v.every((x) => typeof x.mechanism === 'string'));
  const text = formatStudy({ ...r, conclusions: v });
  assert.match(text, /mechanism: g→h batch 50 µs/);
  assert.match(renderMarkdown({ ...r, conclusions: v }), /\| mechanism \|/);
  // Not measured: no mechanism line.
  assert.equal(judgeConclusions(reportWith(rfcAverages(), 'isolated'))[0]!.mechanism, undefined);
});
