// `virtq bench guest` as plain data: what one boot of the Linux guest measured on one backend
// (virtq's vhost-user device with a TAP port, or QEMU's own virtio-net with its TAP, vhost=off),
// the parser of the guest's per-reply ping output, the summary over runs (min/median/max of each
// measure per backend and the ratio virtq / QEMU) and its text table. Pure: guest-bench.ts boots
// the guest and runs the measures.

import { percentile, median, ratio } from './stats.js';
import { parsePingSummary, type GuestIperfUdp, type GuestPing } from './guest-plan.js';

export const GUEST_BENCH_SCHEMA = 'virtq-bench-guest/1';

/** The two NIC backends the same guest runs on. */
export type GuestBackend = 'virtq' | 'qemu';
export const GUEST_BACKENDS: readonly GuestBackend[] = ['virtq', 'qemu'];

/** The measures of one boot, and whether more is better. */
export const GUEST_MEASURES = [
  { key: 'g2hGbps', label: 'TCP guest→host', unit: 'Gb/s', higherIsBetter: true },
  { key: 'h2gGbps', label: 'TCP host→guest', unit: 'Gb/s', higherIsBetter: true },
  { key: 'pingAvgMs', label: 'ping avg RTT', unit: 'ms', higherIsBetter: false },
  { key: 'pingP99Ms', label: 'ping p99 RTT', unit: 'ms', higherIsBetter: false },
  { key: 'pingMaxMs', label: 'ping max RTT', unit: 'ms', higherIsBetter: false },
  { key: 'udpH2gLossPct', label: 'UDP host→guest lost', unit: '%', higherIsBetter: false },
] as const;
export type GuestMeasure = (typeof GUEST_MEASURES)[number]['key'];

/** The flood ping of one boot: iputils' summary plus the percentile from each reply's time. */
export interface GuestBenchPing extends GuestPing {
  /** Replies whose time= was read (the p99 is over these). */
  rtts: number;
  p50Ms: number;
  p99Ms: number;
}

/** One boot of the guest on one backend: every measure, or why it is missing. */
export interface GuestBackendRun {
  backend: GuestBackend;
  bootSeconds: number;
  /** The driver's negotiated virtio feature bits as the guest's sysfs prints them (bit 0 first). */
  features: string | null;
  g2hGbps: number | null;
  h2gGbps: number | null;
  /** TCP retransmits iperf3 counted on the sender, per direction. */
  retransmits: { g2h: number | null; h2g: number | null };
  ping: GuestBenchPing | null;
  /**
   * UDP host → guest at a fixed offered rate (iperf3 -u -R -b RATE): datagrams lost on the way,
   * counted by the guest's iperf3 — the same load on both backends, so what each loses (in the
   * TAP's queue, the device, the guest) compares directly. Absent in reports made before it.
   */
  udpH2g?: GuestIperfUdp | null;
  /** What failed in this boot (a cell's error), each prefixed with the cell. */
  errors: string[];
}

/** One A/B run: both backends booted one after the other, in `order`. */
export interface GuestBenchRun {
  run: number;
  order: GuestBackend[];
  virtq: GuestBackendRun;
  qemu: GuestBackendRun;
}

export interface MinMedMax {
  n: number;
  min: number;
  median: number;
  max: number;
}

export interface GuestMeasureSummary {
  measure: GuestMeasure;
  virtq: MinMedMax;
  qemu: MinMedMax;
  /** virtq's median / QEMU's median. */
  ratioOfMedians: number;
  /** virtq / QEMU within each run (both boots of one run measured it), over the runs. */
  ratioPerRun: MinMedMax;
}

export interface GuestBenchReport {
  schema: typeof GUEST_BENCH_SCHEMA;
  accel: 'kvm' | 'tcg';
  /** QEMU's words when /dev/kvm opened but KVM refused the guest (TCG was used). */
  kvmRefused?: string;
  qemuVersion: string;
  kernel: string;
  initramfsVersion: string;
  /** virtq's notification policy (a preset name or policy JSON). */
  preset: string;
  /** The -device both boots use (only netdev differs). */
  qemuDevice: string;
  /** The two -netdev values (with the TAP and socket names of this run). */
  netdev: Record<GuestBackend, string>;
  runs: number;
  /** iperf3 -t per direction. */
  seconds: number;
  /** Echo requests per flood ping. */
  count: number;
  /** Offered rate of the UDP host→guest loss run (iperf3 -b). */
  udpRate?: string;
  host: { cpus: number; loadavg: number[] };
  results: GuestBenchRun[];
  summary: GuestMeasureSummary[];
  /** Negotiated feature bits one backend's driver had and the other's lacked (first run). */
  featureDiff: { onlyVirtq: number[]; onlyQemu: number[] } | null;
  totalSeconds: number;
  /** Why the benchmark stopped early, if it did. */
  error?: string;
}

/** The marker between ping's summary and the list of reply times in the guest's output. */
export const RTT_MARKER = 'VQ-RTTS';

/**
 * The guest's ping line: `ping -i 0` (interval 0, the send rule `-f` uses, but each reply printed
 * with its time=) into a file, then its summary and, after RTT_MARKER, every reply's time in ms
 * on one line. Duplicates are printed as replies too; iputils counts them in its summary as well.
 */
export function guestPingCommand(host: string, count: number): string {
  const waitS = Math.ceil(count / 50) + 30;
  return `/usr/bin/ping -i 0 -c ${count} -w ${waitS} ${host} > /tmp/vqping 2>&1; tail -n 4 /tmp/vqping; echo ${RTT_MARKER}; sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' /tmp/vqping | tr '\\n' ' '; echo`;
}

/** Parses what guestPingCommand printed; throws (SyntaxError) naming what is missing. */
export function parseGuestPing(text: string): GuestBenchPing {
  const at = text.indexOf(RTT_MARKER);
  if (at < 0) throw new SyntaxError(`ping output without ${RTT_MARKER}: ${text.trim().slice(-300)}`);
  const summary = parsePingSummary(text.slice(0, at));
  const times = text
    .slice(at + RTT_MARKER.length)
    .split(/\s+/)
    .filter((w) => w !== '')
    .map(Number);
  const bad = times.find((x) => !Number.isFinite(x) || x < 0);
  if (bad !== undefined) throw new SyntaxError(`ping reply times hold a non-time: ${text.slice(at).trim().slice(0, 200)}`);
  if (times.length === 0) throw new SyntaxError('ping printed no reply times');
  return { ...summary, rtts: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

/** The value of `m` in one boot, null when that cell failed. */
export function measureOf(r: GuestBackendRun, m: GuestMeasure): number | null {
  switch (m) {
    case 'g2hGbps':
      return r.g2hGbps;
    case 'h2gGbps':
      return r.h2gGbps;
    case 'pingAvgMs':
      return r.ping?.avgMs ?? null;
    case 'pingP99Ms':
      return r.ping?.p99Ms ?? null;
    case 'pingMaxMs':
      return r.ping?.maxMs ?? null;
    case 'udpH2gLossPct':
      return r.udpH2g?.lostPercent ?? null;
  }
}

export function minMedMax(values: readonly number[]): MinMedMax {
  const xs = values.filter((v) => Number.isFinite(v));
  if (xs.length === 0) return { n: 0, min: NaN, median: NaN, max: NaN };
  return { n: xs.length, min: Math.min(...xs), median: median(xs), max: Math.max(...xs) };
}

/** min/median/max per backend and the ratios virtq / QEMU, per measure. */
export function summariseGuestBench(runs: readonly GuestBenchRun[]): GuestMeasureSummary[] {
  return GUEST_MEASURES.map(({ key }) => {
    const of = (b: GuestBackend): number[] => runs.map((r) => measureOf(r[b], key)).filter((v): v is number => v !== null);
    const virtq = minMedMax(of('virtq'));
    const qemu = minMedMax(of('qemu'));
    const perRun = runs
      .map((r) => {
        const a = measureOf(r.virtq, key);
        const b = measureOf(r.qemu, key);
        return a !== null && b !== null ? ratio(a, b) : NaN;
      })
      .filter((v) => Number.isFinite(v));
    return { measure: key, virtq, qemu, ratioOfMedians: ratio(virtq.median, qemu.median), ratioPerRun: minMedMax(perRun) };
  });
}

/** Bits set in one feature string (sysfs: '0'/'1' per bit, bit 0 first) and not the other. */
export function featureDiff(virtq: string | null, qemu: string | null): { onlyVirtq: number[]; onlyQemu: number[] } | null {
  if (virtq === null || qemu === null || !/^[01]+$/.test(virtq) || !/^[01]+$/.test(qemu)) return null;
  const bits = (s: string): Set<number> => new Set([...s].flatMap((c, i) => (c === '1' ? [i] : [])));
  const a = bits(virtq);
  const b = bits(qemu);
  return { onlyVirtq: [...a].filter((i) => !b.has(i)), onlyQemu: [...b].filter((i) => !a.has(i)) };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : '—';
}

function triple(s: MinMedMax): string {
  return s.n === 0 ? '—' : `${fmt(s.min)} / ${fmt(s.median)} / ${fmt(s.max)}`;
}

function ratioText(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '—';
}

/** The report as text: the setting, one line per measure, the errors. */
export function formatGuestBench(r: GuestBenchReport): string {
  const lines: string[] = [];
  const accel = r.accel === 'tcg' ? `TCG (no KVM${r.kvmRefused !== undefined ? `: ${r.kvmRefused}` : ''}; a guest far slower than under KVM)` : 'KVM';
  lines.push(`virtq bench guest: the same Linux guest on virtq (vhost-user, TAP port, preset ${r.preset}) vs QEMU's own virtio-net + TAP (vhost=off)`);
  lines.push(`QEMU ${r.qemuVersion}, ${accel}; ${r.runs} alternating run(s); iperf3 -t ${r.seconds} each way, ping -i 0 -c ${r.count}; host ${r.host.cpus} CPUs, load ${r.host.loadavg.map((l) => l.toFixed(2)).join(' ')}`);
  lines.push(`device: ${r.qemuDevice}`);
  lines.push('');
  const head = ['measure', 'virtq min / median / max', 'QEMU min / median / max', 'virtq/QEMU (medians)', 'per run min / median / max'];
  const rows = r.summary.map((s) => {
    const m = GUEST_MEASURES.find((g) => g.key === s.measure)!;
    const per = s.ratioPerRun.n === 0 ? '—' : `${ratioText(s.ratioPerRun.min)} / ${ratioText(s.ratioPerRun.median)} / ${ratioText(s.ratioPerRun.max)}`;
    return [`${m.label} (${m.unit}, ${m.higherIsBetter ? 'higher' : 'lower'} is better)`, triple(s.virtq), triple(s.qemu), ratioText(s.ratioOfMedians), per];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  lines.push(line(head));
  for (const row of rows) lines.push(line(row));
  if (r.featureDiff !== null && (r.featureDiff.onlyVirtq.length > 0 || r.featureDiff.onlyQemu.length > 0)) {
    lines.push('');
    lines.push(`negotiated feature bits differ: only on virtq [${r.featureDiff.onlyVirtq.join(', ')}], only on QEMU [${r.featureDiff.onlyQemu.join(', ')}]`);
  }
  const errors = r.results.flatMap((run) => GUEST_BACKENDS.flatMap((b) => run[b].errors.map((e) => `run ${run.run} ${b}: ${e}`)));
  if (errors.length > 0 || r.error !== undefined) {
    lines.push('');
    for (const e of errors) lines.push(`error: ${e.split('\n')[0]}`);
    if (r.error !== undefined) lines.push(`stopped: ${r.error}`);
  }
  lines.push('');
  lines.push(`${r.totalSeconds.toFixed(1)} s in all`);
  return `${lines.join('\n')}\n`;
}

/** Whether anything failed (the command exits 1 then). */
export function guestBenchHasProblems(r: GuestBenchReport): boolean {
  return r.error !== undefined || r.results.some((run) => GUEST_BACKENDS.some((b) => run[b].errors.length > 0));
}
