// Text rendering of study results: the RFC's two tables in its own layout ("min/ avg/ max/
// stddev" per direction), the mechanism table that explains each row, and the outputs of
// `virtq bench stream` / `virtq bench ping`. Pure string building.

import { judgeConclusions, type ConclusionVerdict } from './conclusions.js';
import { msFromUs } from './iputils.js';
import { notAppliedOf, type Direction, type Mechanism, type StreamRun } from './measure.js';
import type { RfcFigure } from './rfc-figures.js';
import type { PingCell, RowResult, StreamCell, StudyReport } from './report.js';
import { GUEST_HEADER, GUEST_MECHANISM_HEADER, guestMechanismRows, guestProblems, guestRows, guestSummary } from './format-guest.js';

const DIRS: Direction[] = ['g2h', 'h2g'];
export const DIR_LABEL: Record<Direction, string> = { g2h: 'guest->host', h2g: 'host->guest' };

/** A number as the RFC prints it: %6.3f. '—' when not finite. */
export function f3(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3).padStart(6) : '     —';
}

/** "min/ avg/ max/ sd" in the RFC's layout (each %6.3f, joined by '/'). */
export function rfcQuad(q: readonly [number, number, number, number]): string {
  return q.map(f3).join('/');
}

/** Integer µs as ms with 3 decimals, exact (iputils' %ld.%03ld), padded to the RFC's width. */
export function usAsMs(us: number): string {
  return Number.isFinite(us) ? msFromUs(us).padStart(6) : '     —';
}

const QUAD_WIDTH = 27;

function streamQuad(c: StreamCell | null): string {
  if (c === null) return 'not run';
  if (c.runs.length === 0) return 'error (see problems)';
  const g = c.gbps;
  return rfcQuad([g.min, g.avg, g.max, g.stddevPop]) + (c.error !== undefined || c.errors > 0 ? ' !' : '');
}

function pingQuad(c: PingCell | null): string {
  if (c === null) return 'not run';
  if (c.result === null) return 'error (see problems)';
  const r = c.result.rtt;
  if (r.count === 0) return '(no replies)';
  return [r.minUs, r.avgUs, r.maxUs, r.mdevUs].map(usAsMs).join('/');
}

function rfcAvg(q: RfcFigure | null | undefined): string {
  return q ? q[1].toFixed(3) : '—';
}

function table(note: string, first: string, rows: { label: string; cells: string[] }[], extraHeader: string[]): string {
  const labelW = Math.max(first.length, ...rows.map((r) => r.label.length)) + 1;
  const widths = extraHeader.map((h, i) => Math.max(h.length + 1, QUAD_WIDTH, ...rows.map((r) => r.cells[i]!.length + 1)));
  const line = (label: string, cells: string[]): string => (label.padEnd(labelW) + cells.map((c, i) => `| ${c}`.padEnd(widths[i]! + 2)).join('')).trimEnd();
  const out = [line(first, extraHeader), '-'.repeat(labelW) + widths.map((w) => '+' + '-'.repeat(w + 1)).join('')];
  for (const r of rows) out.push(line(r.label, r.cells));
  out.push(note);
  return out.join('\n');
}

function planText(report: StudyReport): { stream: string; ping: string } {
  const p = report.plan;
  return {
    stream: `netperf, ${p.runs}x${p.seconds}s runs${p.queuePairs !== undefined && p.queuePairs > 1 ? `, ${p.queuePairs} queue pairs` : ''} (Gb/s)`,
    ping: `ping -f -c ${p.count}${p.pingCapMs !== null ? ` (≤${(p.pingCapMs / 1000).toFixed(1)}s)` : ''} (ms)`,
  };
}

/** The RFC's throughput table for our rows, with the RFC's averages beside them. */
export function throughputTable(report: StudyReport): string {
  const rows = report.rows.map((r) => ({
    label: r.name,
    cells: [streamQuad(r.stream.g2h), streamQuad(r.stream.h2g), r.rfc ? `${rfcAvg(r.rfc.throughputGbps.g2h)} / ${rfcAvg(r.rfc.throughputGbps.h2g)}` : '—'],
  }));
  return table('each cell: min/ avg/ max/ stddev (population) over runs; ! = a run failed or a verification error (see problems)', planText(report).stream, rows, [DIR_LABEL.g2h, DIR_LABEL.h2g, 'RFC 2008 avg g->h / h->g']);
}

/** The RFC's flood-ping table for our rows (iputils min/avg/max/mdev, ms), RFC averages beside. */
export function latencyTable(report: StudyReport): string {
  const rows = report.rows.map((r) => ({
    label: r.name,
    cells: [pingQuad(r.ping.g2h), pingQuad(r.ping.h2g), r.rfc ? `${rfcAvg(r.rfc.pingMs.g2h)} / ${rfcAvg(r.rfc.pingMs.h2g)}` : '—'],
  }));
  return table('each cell: min/ avg/ max/ mdev as iputils computes them (integer µs, printed in ms)', planText(report).ping, rows, [DIR_LABEL.g2h, DIR_LABEL.h2g, 'RFC 2008 avg g->h / h->g']);
}

function n(x: number | undefined, digits: number): string {
  return x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : '—';
}

/** Plain column table (left-aligned first column, right-aligned numbers). */
export function columns(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export const MECHANISM_HEADER = [
  'row',
  'dir',
  'kicks/pkt',
  'irqs/pkt',
  'batch',
  'timer/pkt',
  'late µs',
  'sleeps/pkt',
  'guest s/GB',
  'host s/GB',
  'ping kicks/echo',
  'ping irqs/echo',
  'ping timer/echo',
];

function mechCells(m: Mechanism | null | undefined): string[] {
  return [n(m?.kicksPerPacket, 3), n(m?.interruptsPerPacket, 3), n(m?.avgBatch, 1), n(m?.timerFiresPerPacket, 3), n(m?.timerLatenessUsMean, 1), n(m?.sleepsPerPacket, 3)];
}

export function mechanismRows(r: RowResult): string[][] {
  return DIRS.map((d) => {
    const s = r.stream[d];
    const pm = r.ping[d]?.result?.mechanism;
    return [r.name, d === 'g2h' ? 'g->h' : 'h->g', ...mechCells(s?.mechanism), n(s?.guestCpuSPerGB.avg, 3), n(s?.hostCpuSPerGB.avg, 3), n(pm?.kicksPerPacket, 2), n(pm?.interruptsPerPacket, 2), n(pm?.timerFiresPerPacket, 2)];
  });
}

/** Why the rows differ: per row and direction, the stream's mechanism counters and the ping's. */
export function mechanismTable(report: StudyReport): string {
  return columns(MECHANISM_HEADER, report.rows.flatMap(mechanismRows));
}

export const MECHANISM_LEGEND =
  'kicks/pkt, irqs/pkt: guest→host notifications and host→guest interrupts per data packet (as the receiver counts packets); ' +
  'batch: packets per device flush; timer/pkt: mitigation-timer fires per packet; late µs: mean timer lateness; ' +
  'sleeps/pkt: real Atomics.wait blocks, both sides; s/GB: thread CPU seconds per 10^9 payload bytes on each side (stream, mean of runs); ' +
  'ping …/echo: the same counters per echo request. — = not reported by this policy/workload.';

/** A conclusion's first clause, without its closing full stop (no "side.:" before the colon). */
export function conclusionHead(text: string): string {
  return text.split(/[;(]/)[0]!.trim().replace(/[.,:]+$/, '');
}

/** The RFC's five conclusions with our verdict, what decided it, and the rule. */
export function conclusionLines(verdicts: readonly ConclusionVerdict[]): string[] {
  const out = ["the RFC's conclusions (ratios of neighbouring rows' average throughput, ours vs the RFC's)"];
  for (const v of verdicts) {
    out.push(`  ${v.number}. ${conclusionHead(v.text)}: ${v.verdict.toUpperCase()} — ${v.why}`);
    for (const p of v.pairs) out.push(`       ${p.label}: g->h ${p.ours.g2h.toFixed(2)}x (RFC ${p.rfc.g2h.toFixed(2)}x), h->g ${p.ours.h2g.toFixed(2)}x (RFC ${p.rfc.h2g.toFixed(2)}x)`);
    if (v.mechanism !== undefined) out.push(`       mechanism: ${v.mechanism}`);
    out.push(`       rule: ${v.rule}`);
  }
  return out;
}

/** The whole study as text: both RFC tables, the mechanism table, and notes. */
export function formatStudy(report: StudyReport): string {
  const p = report.plan;
  const out = [
    `virtq study — ${report.generatedAt}, node ${report.machine.node}, ${report.machine.cpus} CPUs (${report.machine.cpuModel})`,
    `command: ${report.command}`,
    `${p.quick ? 'quick' : 'faithful'} plan, ${p.mode} presets, waits: ${p.waitStrategy}; stream: ${p.runs} × ${p.seconds} s after ${p.warmupMs} ms warm-up, ${p.msgBytes} B sends, MTU ${p.mtu}; ping: ${p.count} requests, 56 B payload${p.pingCapMs !== null ? `, at most ${p.pingCapMs} ms per cell` : ''}; total ${report.totalSeconds.toFixed(1)} s`,
    `RFC figures: ${report.rfcSource}.`,
    '',
    throughputTable(report),
    '',
    latencyTable(report),
    '',
    'mechanisms (stream: mean of runs; ping: per echo)',
    mechanismTable(report),
    MECHANISM_LEGEND,
  ];
  if (p.mode === 'cumulative') out.push('', ...conclusionLines(report.conclusions ?? judgeConclusions(report)));
  if (report.guest !== undefined) {
    out.push('', 'against a real Linux guest', guestSummary(report.guest), columns(GUEST_HEADER, guestRows(report)), '', 'the device\'s counters per guest cell (packets: frames both ways)', columns(GUEST_MECHANISM_HEADER, guestMechanismRows(report)));
  }
  const problems = report.rows.flatMap((r) => [
    ...DIRS.flatMap((d) => {
      const s = r.stream[d];
      const e: string[] = [];
      if (s?.error !== undefined) e.push(`${r.name} stream ${d}: ${s.error}`);
      if (s && s.errors > 0) e.push(`${r.name} stream ${d}: ${s.errors} verification errors (${s.runs.find((x) => x.firstError)?.firstError ?? ''})`);
      return e;
    }),
    ...DIRS.flatMap((d) => (r.ping[d]?.error !== undefined ? [`${r.name} ping ${d}: ${r.ping[d]!.error}`] : [])),
  ]);
  problems.push(...guestProblems(report));
  if (problems.length > 0) out.push('', 'problems (marked ! or error above):', ...problems.map((x) => `  ${x}`));
  const na = notAppliedLines(report);
  if (na.length > 0) out.push('', 'policy settings not applied as the preset says (docs/net.md):', ...na.map((x) => `  ${x}`));
  return out.join('\n') + '\n';
}

/** `virtq bench stream` text: per-run Gb/s, the summary, mechanisms and CPU per GB. */
export function formatStreamCell(c: StreamCell, seconds: number): string {
  const pairs = c.queuePairs ?? 1;
  const out = [`virtq bench stream ${DIR_LABEL[c.direction]} — preset "${c.preset}", queue ${c.queueSize}, ${c.msgBytes} B sends${c.gso ? ', GSO' : ''}${pairs > 1 ? `, ${pairs} queue pairs (each its own guest and host worker; Gb/s summed)` : ''}`];
  const perPair = (r: StreamRun): string => (pairs > 1 ? ` [${Array.from({ length: pairs }, (_, i) => (r.extra[`pair${i}.gbps`] ?? NaN).toFixed(3)).join(' + ')}]` : '');
  c.runs.forEach((r, i) => out.push(`  run ${String(i + 1).padStart(2)}: ${r.gbps.toFixed(3)} Gb/s${perPair(r)} over ${(r.windowMs / 1000).toFixed(2)} s${r.errors > 0 ? ` (${r.errors} errors: ${r.firstError})` : ''}`));
  const g = c.gbps;
  out.push(`Gb/s over ${g.n} run(s) of ${seconds} s: min ${f3(g.min).trim()}  avg ${f3(g.avg).trim()}  max ${f3(g.max).trim()}  stddev ${f3(g.stddevPop).trim()} (population) / ${f3(g.stddevSample).trim()} (sample)`);
  const m = c.mechanism;
  out.push(
    `per packet: ${n(m?.kicksPerPacket, 3)} kicks, ${n(m?.interruptsPerPacket, 3)} interrupts, ${n(m?.sleepsPerPacket, 3)} sleeps; batch ${n(m?.avgBatch, 1)}; timer fires ${n(m?.timerFiresPerPacket, 3)}/pkt, lateness ${n(m?.timerLatenessUsMean, 1)} µs mean`,
  );
  out.push(`CPU per GB: guest ${n(c.guestCpuSPerGB.avg, 3)} s, host ${n(c.hostCpuSPerGB.avg, 3)} s`);
  const na = notAppliedOf(c.runs.map((x) => x.extra));
  if (na.length > 0) out.push(`policy settings not applied as the preset says (docs/net.md): ${na.join(', ')}`);
  if (c.error !== undefined) out.push(`error: ${c.error}`);
  return out.join('\n') + '\n';
}

/** `virtq bench ping` text: iputils' summary lines plus HDR percentiles and mechanisms. */
export function formatPingCell(c: PingCell): string {
  const out = [`virtq bench ping ${DIR_LABEL[c.direction]} — preset "${c.preset}", queue ${c.queueSize}, ${c.count} requests, 56 B payload, ping -f schedule`];
  if (c.result === null) {
    out.push(`error: ${c.error ?? 'no result'}`);
    return out.join('\n') + '\n';
  }
  const r = c.result;
  const loss = r.sent > 0 ? ((r.sent - r.received) * 100) / r.sent : 0;
  out.push(`${r.sent} packets transmitted, ${r.received} received, ${Number(loss.toPrecision(6))}% packet loss`);
  if (r.rtt.count > 0) out.push(`${r.rtt.line}${Number.isFinite(r.ipgUs) ? `, ipg/ewma ${msFromUs(r.ipgUs)}/${msFromUs(r.ewmaUs)} ms` : ''}`);
  out.push(`p50 ${n(r.p50Us, 0)} µs, p99 ${n(r.p99Us, 0)} µs (HDR histogram)`);
  const m = r.mechanism;
  out.push(`per echo: ${n(m.kicksPerPacket, 2)} kicks, ${n(m.interruptsPerPacket, 2)} interrupts, ${n(m.sleepsPerPacket, 2)} sleeps, ${n(m.timerFiresPerPacket, 2)} timer fires`);
  const na = notAppliedOf([r.extra]);
  if (na.length > 0) out.push(`policy settings not applied as the preset says (docs/net.md): ${na.join(', ')}`);
  if (r.errors > 0) out.push(`errors: ${r.errors} (${r.firstError})`);
  return out.join('\n') + '\n';
}

/** One line per row whose workloads reported policy settings they did not apply as the preset says. */
export function notAppliedLines(report: StudyReport): string[] {
  const out: string[] = [];
  for (const r of report.rows) {
    const extras = DIRS.flatMap((d) => [...(r.stream[d]?.runs ?? []).map((x) => x.extra), r.ping[d]?.result?.extra]);
    const fields = notAppliedOf(extras);
    if (fields.length > 0) out.push(`${r.name}: ${fields.join(', ')}`);
  }
  return out;
}
