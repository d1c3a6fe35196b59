// Text rendering of a PeersReport: one throughput table (min / median / max over runs, with the
// pps ratio to the bare ring of the same run) and one latency table. Pure string building; the
// JSON form of the report is the report object itself.

import type { PeersReport, Spread } from './types.js';

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

function table(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i]!, rightAligned[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function num(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function mpps(pps: number): string {
  return num(pps / 1e6, pps >= 1e5 || pps === 0 ? 3 : 4);
}

function spreadText(s: Spread, fmt: (x: number) => string): string {
  return `${fmt(s.min)} / ${fmt(s.median)} / ${fmt(s.max)}`;
}

function sizeText(bytes: number): string {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

/** Renders the report as text tables (throughput, then latency) with a header naming the run. */
export function formatPeersTable(report: PeersReport): string {
  const o = report.options;
  const out: string[] = [];
  out.push(`virtq bench peers — ${report.generatedAt}, node ${report.node}, ${report.cpus} CPUs (${report.cpuModel})`);
  out.push(`command: ${report.command}`);
  out.push(`${o.runs} run(s) per case, ${o.durationMs} ms measured after ${o.warmupMs} ms warm-up, cases one at a time, `
    + `round-robin per run; figures are min / median / max over runs; total ${report.totalSeconds.toFixed(1)} s`);
  out.push('');

  if (report.throughput.length > 0) {
    const rows = report.throughput.map((s) => [
      s.name,
      sizeText(s.payloadBytes),
      spreadText(s.pps, mpps),
      num(s.gbps.median, 2),
      num(s.cpuSecondsPerGB.median, 3),
      num(s.notifiesPer1000.median, 1),
      num(s.consumerSleepsPer1000.median, 1),
      s.ppsRatioVsBareRing === null ? '—' : `${s.ppsRatioVsBareRing.toFixed(2)}×`,
      s.allVerified ? 'ok' : 'FAIL',
    ]);
    out.push(table(
      ['case', 'payload', 'Mpps min / med / max', 'Gb/s med', 'cpu s/GB', 'notifies/kpkt', 'cons sleeps/kpkt', 'ratio vs bare-ring', 'verified'],
      rows,
      [false, true, true, true, true, true, true, true, false],
    ));
    out.push(`ratio vs bare-ring = median pps ÷ median pps of ${report.reference}.`);
    out.push('cpu s/GB = producer + consumer thread CPU seconds per 10^9 payload bytes; per-kpkt columns count both sides\' notifies and the consumer\'s sleeps.');
    const failures = report.throughput.flatMap((s) => s.results.filter((r) => r.error !== undefined).map((r) => `  ${s.name} ${sizeText(s.payloadBytes)}: ${r.error}`));
    if (failures.length > 0) out.push('errors:', ...failures);
    if (report.throughput.some((s) => s.results.some((r) => r.cpuProcessWide))) {
      out.push('note: per-thread CPU time unavailable; cpu figures are process-wide.');
    }
    out.push('');
  }

  if (report.latency.length > 0) {
    const us = (x: number): string => num(x, x < 10 ? 2 : 1);
    const rows = report.latency.map((s) => [
      s.name,
      s.strategy,
      String(s.rtts),
      spreadText(s.p50Us, us),
      spreadText(s.p99Us, us),
      us(s.maxUs.median),
      us(s.meanUs.median),
    ]);
    out.push(table(
      ['case', 'strategy', 'RTTs', 'p50 µs min / med / max', 'p99 µs min / med / max', 'max µs med', 'mean µs med'],
      rows,
      [false, false, true, true, true, true, true],
    ));
    const failures = report.latency.flatMap((s) => s.results.filter((r) => r.error !== undefined).map((r) => `  ${s.name}/${s.strategy}: ${r.error}`));
    if (failures.length > 0) out.push('errors:', ...failures);
  }
  return out.join('\n');
}
