// The study's Markdown report: how it was run, the RFC's two tables with our figures beside the
// RFC's own (2008 hardware under KVM), the mechanism table, side-by-side ratios for the RFC's
// five conclusions, and how to read it all. Pure string building.

import { msFromUs } from './iputils.js';
import type { Direction } from './measure.js';
import { CONCLUSION_PAIRS, judgeConclusions } from './conclusions.js';
import { RFC_CONCLUSIONS, rfcFiguresFor, type RfcFigure } from './rfc-figures.js';
import type { RowResult, StudyReport } from './report.js';
import { MECHANISM_HEADER, MECHANISM_LEGEND, mechanismRows, notAppliedLines } from './format-text.js';
import { GUEST_HEADER, GUEST_MECHANISM_HEADER, guestMechanismRows, guestProblems, guestRows, guestSummary } from './format-guest.js';

const DIRS: Direction[] = ['g2h', 'h2g'];
const ARROW: Record<Direction, string> = { g2h: 'guest→host', h2g: 'host→guest' };

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function quad(q: readonly number[], digits = 3): string {
  return q.every((x) => Number.isFinite(x)) ? q.map((x) => x.toFixed(digits)).join(' / ') : '—';
}

function rfcQuad(q: RfcFigure | null | undefined): string {
  return q ? quad(q) : 'not measured';
}

function mdTable(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(mdEscape).join(' | ')} |`)].join('\n');
}

function streamText(r: RowResult, d: Direction): string {
  const s = r.stream[d];
  if (!s) return 'not run';
  if (s.runs.length === 0) return 'error (see Problems)';
  return quad([s.gbps.min, s.gbps.avg, s.gbps.max, s.gbps.stddevPop]) + (s.error !== undefined || s.errors > 0 ? ' (!)' : '');
}

function pingText(r: RowResult, d: Direction): string {
  const p = r.ping[d];
  if (!p) return 'not run';
  if (!p.result) return 'error (see Problems)';
  const t = p.result.rtt;
  if (t.count === 0) return 'no replies';
  return [t.minUs, t.avgUs, t.maxUs, t.mdevUs].map(msFromUs).join(' / ');
}

/** Our average and the RFC's for a row (the RFC's even when the row was not run here). */
function avgOf(report: StudyReport, row: string, d: Direction, kind: 'tp' | 'ping'): { ours: number; rfc: number } {
  const r = report.rows.find((x) => x.name === row);
  const f = rfcFiguresFor(row);
  if (kind === 'tp') return { ours: r?.stream[d]?.gbps.avg ?? NaN, rfc: f?.throughputGbps[d][1] ?? NaN };
  return { ours: (r?.ping[d]?.result?.rtt.avgUs ?? NaN) / 1000, rfc: f?.pingMs[d]?.[1] ?? NaN };
}

const r2 = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');

export function renderMarkdown(report: StudyReport, opts: { svgHref?: string } = {}): string {
  const p = report.plan;
  const out: string[] = [];
  out.push('# virtq study report', '');
  out.push(`Generated ${report.generatedAt} on ${report.machine.cpus} CPUs (${report.machine.cpuModel}), Node ${report.machine.node}, ${report.machine.platform}.`, '');
  out.push(`Command: \`${report.command}\``, '');
  out.push(
    `Plan: ${p.quick ? '**quick**' : 'faithful'}, presets applied **${p.mode}**, waits: ${p.waitStrategy}. Stream (netperf TCP_STREAM semantics): ${p.runs} run(s) of ${p.seconds} s per cell after ${p.warmupMs} ms warm-up, ${p.msgBytes}-byte sends, MTU ${p.mtu}; ` +
      `ping (\`ping -f\` semantics): ${p.count} echo requests, 56-byte payload, next request on reply or after 10 ms${p.pingCapMs !== null ? `, each cell stopped after ${p.pingCapMs} ms` : ''}. Total ${report.totalSeconds.toFixed(1)} s.`,
    '',
  );
  out.push(`The RFC's figures (${report.rfcSource}) sit beside ours for shape only: different hardware, a different era, a real kernel and QEMU instead of two threads sharing memory.`, '');
  if (opts.svgHref) out.push(`![throughput and latency per row](${opts.svgHref})`, '');

  out.push('## Throughput, Gb/s (min / avg / max / stddev)', '');
  out.push('stddev is the population standard deviation over runs; the JSON also has the sample one.', '');
  out.push(mdTable(['row', `ours ${ARROW.g2h}`, `RFC 2008 ${ARROW.g2h}`, `ours ${ARROW.h2g}`, `RFC 2008 ${ARROW.h2g}`], report.rows.map((r) => [r.name, streamText(r, 'g2h'), rfcQuad(r.rfc?.throughputGbps.g2h), streamText(r, 'h2g'), rfcQuad(r.rfc?.throughputGbps.h2g)])));
  out.push('');
  out.push('## Flood-ping latency, ms (min / avg / max / mdev, as iputils computes them)', '');
  out.push(mdTable(['row', `ours ${ARROW.g2h}`, `RFC 2008 ${ARROW.g2h}`, `ours ${ARROW.h2g}`, `RFC 2008 ${ARROW.h2g}`, 'ours p50 / p99 µs g→h', 'h→g'], report.rows.map((r) => [
    r.name,
    pingText(r, 'g2h'),
    rfcQuad(r.rfc?.pingMs.g2h),
    pingText(r, 'h2g'),
    rfcQuad(r.rfc?.pingMs.h2g),
    ...DIRS.map((d) => {
      const x = r.ping[d]?.result;
      return x && x.rtt.count > 0 ? `${x.p50Us} / ${x.p99Us}` : '—';
    }),
  ])));
  out.push('');
  out.push('## Mechanisms: why the rows differ', '');
  out.push(mdTable(MECHANISM_HEADER, report.rows.flatMap(mechanismRows)));
  out.push('', MECHANISM_LEGEND, '');

  if (p.mode === 'cumulative') {
    out.push("## The RFC's conclusions: verdicts", '');
    out.push('Each conclusion is judged on the ratio of two neighbouring rows\' average throughput (later ÷ earlier) by the stated rule; the RFC\'s own ratios are beside ours.', '');
    const verdicts = report.conclusions ?? judgeConclusions(report);
    out.push(mdTable(['conclusion', 'verdict', 'why', 'mechanism', 'rule'], verdicts.map((v) => [`${v.number}. ${v.text.split(/[;(]/)[0]!.trim()}`, `**${v.verdict}**`, v.why, v.mechanism ?? '—', v.rule])));
    out.push('');
    out.push('### As ratios of averages', '');
    const rows: string[][] = [];
    for (const c of CONCLUSION_PAIRS) {
      const cells = (['tp', 'ping'] as const).flatMap((k) =>
        DIRS.map((d) => {
          const a = avgOf(report, c.num, d, k);
          const b = avgOf(report, c.den, d, k);
          return `${r2(a.ours / b.ours)} (RFC ${r2(a.rfc / b.rfc)})`;
        }),
      );
      rows.push([`${c.conclusion + 1}. ${RFC_CONCLUSIONS[c.conclusion]!.split(/[;(]/)[0]!.trim()}`, c.label, ...cells]);
    }
    out.push(mdTable(['conclusion', 'comparison', 'throughput g→h', 'throughput h→g', 'ping avg g→h', 'ping avg h→g'], rows));
    out.push('');
  }

  if (report.guest !== undefined) {
    out.push('## Against a real Linux guest', '', guestSummary(report.guest), '');
    out.push(mdTable(GUEST_HEADER, guestRows(report)), '');
    out.push("The device's counters per guest cell (packets: frames both ways; batch: packets per device flush):", '');
    out.push(mdTable(GUEST_MECHANISM_HEADER, guestMechanismRows(report)), '');
  }

  const problems = report.rows.flatMap((r) =>
    DIRS.flatMap((d) => [
      ...(r.stream[d]?.error !== undefined ? [`${r.name} stream ${d}: ${r.stream[d]!.error}`] : []),
      ...((r.stream[d]?.errors ?? 0) > 0 ? [`${r.name} stream ${d}: ${r.stream[d]!.errors} verification errors`] : []),
      ...(r.ping[d]?.error !== undefined ? [`${r.name} ping ${d}: ${r.ping[d]!.error}`] : []),
    ]),
  );
  problems.push(...guestProblems(report));
  if (problems.length > 0) out.push('## Problems', '', ...problems.map((x) => `- ${x}`), '');
  const na = notAppliedLines(report);
  if (na.length > 0) out.push('## Policy settings not applied', '', 'As the workloads reported them (`policyNotApplied.<field>`; docs/net.md).', '', ...na.map((x) => `- ${x}`), '');

  out.push('## Rows', '');
  for (const r of report.rows) {
    const dp = r.dataPath;
    out.push(`- **${r.name}** (${r.kind}): ${r.description || '—'} — queues ${dp.ringSize}, GSO ${dp.gso ? 'on' : 'off'}, mergeable rx ${dp.mergeable ? 'on' : 'off'}, event idx ${dp.eventIdx ? 'on' : 'off'}.`);
  }
  out.push('');
  return out.join('\n');
}
