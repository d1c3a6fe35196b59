// Turns one engine run's two SideStats into the study's figures: throughput as netperf reports
// it (receiver's payload bytes over the measured window), the mechanism counters per packet, CPU
// seconds per GB on each side, and for ping the iputils summary plus HDR percentiles. Pure: no
// engine import, so it runs (and is tested) anywhere.
//
// Policy counters are read from SideStats.extra under the names in EXTRA below — the names
// src/policy's DeviceLoop.toExtra emits (docs/policy.md "Counters"); a counter that no side
// reports shows as NaN ("—" in tables), never as 0.

import hdr from 'hdr-histogram-js';
import type { SideStats } from '../engine/types.js';
import { iputilsEwmaUs, iputilsRtt, type IputilsRtt, type IputilsVariant } from './iputils.js';
import { ratio } from './stats.js';

export type Direction = 'g2h' | 'h2g';

/** Names of the policy counters looked up in `extra` (summed over both sides). */
export const EXTRA = {
  /** Mitigation-timer expiries. */
  timerFires: 'timerFires',
  /** Mean (achieved − requested) over those expiries, µs (weighted by timerFires across sides). */
  timerLatenessMeanUs: 'timerLatenessMeanUs',
  /** Largest single lateness, µs (max over sides). */
  timerLatenessMaxUs: 'timerLatenessMaxUs',
  /** Device flushes (drain passes that moved ≥ 1 packet) and the packets they moved. */
  flushes: 'devFlushes',
  flushedPackets: 'devFlushPackets',
  /** Timer-mitigation flushes a kick caused (the ring-full heuristic, or flushNow) rather than the timer. */
  ringFullFlushes: 'ringFullFlushes',
  /** The global lock (policy.dataPath.lock held/dropped): contended acquisitions and µs waited, per side. */
  devLockContended: 'devLockContended',
  drvLockContended: 'drvLockContended',
  devLockWaitUs: 'devLockWaitUs',
  drvLockWaitUs: 'drvLockWaitUs',
  /** Ping: requests sent and distinct replies received (pinging side). */
  sent: 'sent',
  received: 'received',
} as const;

/** Mechanism counters of one run, normalised per data packet (or per echo for ping). */
export interface Mechanism {
  /** Data packets as the receiver counts them (ping: requests sent). */
  packets: number;
  kicks: number;
  interrupts: number;
  kicksPerPacket: number;
  interruptsPerPacket: number;
  /** Packets per device flush (NaN when the policy does not report flushes). */
  avgBatch: number;
  timerFires: number;
  timerFiresPerPacket: number;
  /** Mean timer lateness, µs (NaN without timer fires). */
  timerLatenessUsMean: number;
  timerLatenessUsMax: number;
  /** Sleeps (real Atomics.wait blocks) per packet, both sides. */
  sleepsPerPacket: number;
  spuriousWakeups: number;
  /**
   * Share of the tx timer's flushes that a kick forced (ring-full heuristic / flushNow) rather
   * than the timer's expiry: ringFullFlushes ÷ (ringFullFlushes + timerFires). Near 1, the timer
   * never decides the batch (the ring does); NaN without a tx timer.
   */
  kickFlushShare: number;
  /** Contended global-lock acquisitions per packet, both sides (NaN without the lock). */
  lockContendedPerPacket: number;
  /** µs waited for the global lock per packet, both sides (NaN without the lock). */
  lockWaitUsPerPacket: number;
}

export interface StreamRun {
  gbps: number;
  windowMs: number;
  windowBytes: number;
  /** Thread CPU seconds per 10^9 payload bytes received, each side. */
  guestCpuSPerGB: number;
  hostCpuSPerGB: number;
  errors: number;
  firstError?: string;
  mechanism: Mechanism;
  /** Every `extra` counter of both sides, prefixed `guest.` / `host.`. */
  extra: Record<string, number>;
}

function extraSum(g: SideStats, h: SideStats, key: string): number {
  const a = g.extra[key];
  const b = h.extra[key];
  if (a === undefined && b === undefined) return NaN;
  return (a ?? 0) + (b ?? 0);
}

function extraMax(g: SideStats, h: SideStats, key: string): number {
  const a = g.extra[key];
  const b = h.extra[key];
  if (a === undefined && b === undefined) return NaN;
  return Math.max(a ?? -Infinity, b ?? -Infinity);
}

function prefixed(g: SideStats, h: SideStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(g.extra)) out[`guest.${k}`] = v;
  for (const [k, v] of Object.entries(h.extra)) out[`host.${k}`] = v;
  return out;
}

/** Σ over sides of mean lateness × fires (µs): the total lateness, for a fire-weighted mean. */
function latenessSumUs(g: SideStats, h: SideStats): number {
  let sum = NaN;
  for (const s of [g, h]) {
    const mean = s.extra[EXTRA.timerLatenessMeanUs];
    const fires = s.extra[EXTRA.timerFires];
    if (mean === undefined || fires === undefined) continue;
    sum = (Number.isNaN(sum) ? 0 : sum) + mean * fires;
  }
  return sum;
}

export function mechanismOf(guest: SideStats, host: SideStats, packets: number): Mechanism {
  const fires = extraSum(guest, host, EXTRA.timerFires);
  const latSum = latenessSumUs(guest, host);
  return {
    packets,
    kicks: guest.rings,
    interrupts: host.rings,
    kicksPerPacket: ratio(guest.rings, packets),
    interruptsPerPacket: ratio(host.rings, packets),
    avgBatch: ratio(extraSum(guest, host, EXTRA.flushedPackets), extraSum(guest, host, EXTRA.flushes)),
    timerFires: fires,
    timerFiresPerPacket: ratio(fires, packets),
    timerLatenessUsMean: ratio(latSum, fires),
    timerLatenessUsMax: extraMax(guest, host, EXTRA.timerLatenessMaxUs),
    sleepsPerPacket: ratio(guest.sleeps + host.sleeps, packets),
    spuriousWakeups: guest.spuriousWakeups + host.spuriousWakeups,
    kickFlushShare: ratio(extraSum(guest, host, EXTRA.ringFullFlushes), extraSum(guest, host, EXTRA.ringFullFlushes) + fires),
    lockContendedPerPacket: ratio(extraSum(guest, host, EXTRA.devLockContended) + extraSumOr0(guest, host, EXTRA.drvLockContended), packets),
    lockWaitUsPerPacket: ratio(extraSum(guest, host, EXTRA.devLockWaitUs) + extraSumOr0(guest, host, EXTRA.drvLockWaitUs), packets),
  };
}

/** Like extraSum but 0 when neither side reports the key (the driver's half of a lock figure). */
function extraSumOr0(g: SideStats, h: SideStats, key: string): number {
  const v = extraSum(g, h, key);
  return Number.isNaN(v) ? 0 : v;
}

/** The side that receives the stream's payload: the host for guest→host, the guest for host→guest. */
export function receiverOf(direction: Direction): 'guest' | 'host' {
  return direction === 'g2h' ? 'host' : 'guest';
}

/** The side that runs ping: the guest pings the host for guest→host (as `ping` in the guest did). */
export function pingerOf(direction: Direction): 'guest' | 'host' {
  return direction === 'g2h' ? 'guest' : 'host';
}

/** netperf's figure for one run: receiver payload bits over the receiver's window, in Gb/s. */
export function streamRunOf(direction: Direction, guest: SideStats, host: SideStats): StreamRun {
  const rx = receiverOf(direction) === 'host' ? host : guest;
  const bytes = rx.windowBytes;
  const run: StreamRun = {
    gbps: rx.windowMs > 0 ? (bytes * 8) / (rx.windowMs * 1e6) : NaN,
    windowMs: rx.windowMs,
    windowBytes: bytes,
    // ns per byte = s per 10^9 bytes.
    guestCpuSPerGB: ratio(guest.windowCpuNs, bytes),
    hostCpuSPerGB: ratio(host.windowCpuNs, bytes),
    errors: guest.errors + host.errors,
    mechanism: mechanismOf(guest, host, rx.packets),
    extra: prefixed(guest, host),
  };
  const firstError = guest.firstError ?? host.firstError;
  if (firstError !== undefined) run.firstError = firstError;
  return run;
}

/**
 * N queue pairs' runs of the same window as one run: Gb/s and bytes summed, CPU seconds per GB
 * over the summed CPU and bytes, mechanism figures averaged, errors summed; each pair's Gb/s in
 * `extra` as `pair<i>.gbps` (with its window bytes as `pair<i>.windowBytes`).
 */
export function aggregatePairs(runs: readonly StreamRun[]): StreamRun {
  if (runs.length === 1) return runs[0]!;
  const bytes = runs.reduce((a, r) => a + r.windowBytes, 0);
  const cpu = (k: 'guestCpuSPerGB' | 'hostCpuSPerGB'): number => runs.reduce((a, r) => a + (Number.isFinite(r[k]) ? r[k] * r.windowBytes : 0), 0);
  const mechanism: Record<string, number> = {};
  for (const k of Object.keys(runs[0]!.mechanism)) mechanism[k] = runs.reduce((a, r) => a + (r.mechanism as unknown as Record<string, number>)[k]!, 0) / runs.length;
  const extra: Record<string, number> = {};
  runs.forEach((r, i) => {
    extra[`pair${i}.gbps`] = r.gbps;
    extra[`pair${i}.windowBytes`] = r.windowBytes;
    for (const [k, v] of Object.entries(r.extra)) extra[k] = (extra[k] ?? 0) + v;
  });
  const out: StreamRun = {
    gbps: runs.reduce((a, r) => a + r.gbps, 0),
    windowMs: Math.max(...runs.map((r) => r.windowMs)),
    windowBytes: bytes,
    guestCpuSPerGB: bytes > 0 ? cpu('guestCpuSPerGB') / bytes : NaN,
    hostCpuSPerGB: bytes > 0 ? cpu('hostCpuSPerGB') / bytes : NaN,
    errors: runs.reduce((a, r) => a + r.errors, 0),
    mechanism: mechanism as unknown as Mechanism,
    extra,
  };
  const firstError = runs.find((r) => r.firstError !== undefined)?.firstError;
  if (firstError !== undefined) out.firstError = firstError;
  return out;
}

export interface PingResult {
  sent: number;
  received: number;
  /** iputils' min/avg/max/mdev over integer µs, and its summary line. */
  rtt: IputilsRtt;
  p50Us: number;
  p99Us: number;
  /** iputils' flood-mode RTT EWMA (weight 1/8), integer µs. */
  ewmaUs: number;
  /**
   * Mean gap between requests, µs: the pinging side's window over (sent − 1). iputils measures
   * up to its last send; the window runs to the end, so this reads slightly high.
   */
  ipgUs: number;
  errors: number;
  firstError?: string;
  mechanism: Mechanism;
  extra: Record<string, number>;
}

/** p50 and p99 of integer-µs RTTs through an HDR histogram (3 significant digits). */
export function hdrPercentiles(rttsUs: readonly number[]): { p50Us: number; p99Us: number } {
  if (rttsUs.length === 0) return { p50Us: NaN, p99Us: NaN };
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });
  try {
    for (const r of rttsUs) h.recordValue(Math.max(1, Math.trunc(r)));
    // A percentile is its bucket's highest equivalent value: never reported above the largest sample.
    return { p50Us: Math.min(h.maxValue, h.getValueAtPercentile(50)), p99Us: Math.min(h.maxValue, h.getValueAtPercentile(99)) };
  } finally {
    h.destroy();
  }
}

export function pingResultOf(direction: Direction, guest: SideStats, host: SideStats, variant: IputilsVariant = 'current'): PingResult {
  const pinger = pingerOf(direction) === 'guest' ? guest : host;
  const rtts = pinger.series?.rttUs ?? [];
  const sent = pinger.extra[EXTRA.sent] ?? rtts.length;
  const received = pinger.extra[EXTRA.received] ?? rtts.length;
  const out: PingResult = {
    sent,
    received,
    rtt: iputilsRtt(rtts, variant),
    ...hdrPercentiles(rtts),
    ewmaUs: iputilsEwmaUs(rtts),
    ipgUs: sent > 1 ? Math.trunc((pinger.windowMs * 1000) / (sent - 1)) : NaN,
    errors: guest.errors + host.errors,
    mechanism: mechanismOf(guest, host, sent),
    extra: prefixed(guest, host),
  };
  const firstError = guest.firstError ?? host.firstError;
  if (firstError !== undefined) out.firstError = firstError;
  return out;
}

/**
 * Policy settings a row's workloads reported as not applied (`policyNotApplied.<field>` in either
 * side's extra, docs/net.md), over every stream run and ping cell of the row; sorted, unique.
 */
export function notAppliedOf(extras: readonly (Record<string, number> | undefined)[]): string[] {
  const out = new Set<string>();
  for (const e of extras) {
    if (e === undefined) continue;
    for (const k of Object.keys(e)) {
      const i = k.indexOf('policyNotApplied.');
      if (i >= 0 && e[k] === 1) out.add(k.slice(i + 'policyNotApplied.'.length));
    }
  }
  return [...out].sort();
}
