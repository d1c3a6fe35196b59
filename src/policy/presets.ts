// Named policy configs: one per row of the 2008 virtio_net RFC (cumulative, each row = the
// previous row + one change, as the merged patch series suggests), the same changes applied alone
// on top of the baseline, and modern presets (vhost-style, busy polling, coalescing, adaptive).
// Also the user-facing resolver: a preset name, a JSON string or an object (optionally
// `{ base: name, ...overrides }`) becomes a validated PolicyConfig. Browser-safe.

import { cloneConfig, mergeConfig, validatePolicy, type PolicyConfig } from './config.js';
import { PolicyError } from './errors.js';

/**
 * What a 2008 host and guest paid per event, derived from the RFC's own figures (docs/study.md
 * "The model's costs"). The 50 and 250 µs timer rows' guest→host throughput, with the guest
 * queueing frames for one timer period and then blocked on the global lock while the flush it
 * kicked into runs (t = g + s + F·g/T), give a guest frame g = 4.55 µs, a syscall s = 1 µs and a
 * flush F = 56 µs: the kick exit, the ISR exit and the injection (7 µs each) and the syscall leave
 * ≈ 30 µs for the timer's own fire. The guest's per-frame stack work splits by direction: g less
 * 1.41 KiB × 1.8 µs sent leaves 2.0 µs = a sent frame + ½ a received ACK; host→guest's per-frame
 * time (4.4 µs from the recv NO_NOTIFY and GSO rows, less ≈ 0.4 µs of exits) = a received frame +
 * ½ a sent ACK; so sending costs ≈ 0 beyond its per-KiB copy and receiving ≈ 4.0 µs. Per KiB from
 * the same pair of rows: 1.8 sent, 1.1 received; the tap read's copy 0.18 µs/KiB from the
 * drop-mutex row. The guest stack's costs and the syscall are totals that this machine's own work
 * on the same frames counts toward (absorbOwnWork).
 */
const RFC_COSTS = {
  exitUs: 7,
  irqInjectUs: 7,
  syscallUs: 1,
  guestPacketUs: 0,
  guestRxPacketUs: 4,
  guestTxKiBUs: 1.8,
  guestRxKiBUs: 1.1,
  backendReadKiBUs: 0.18,
  timerFireUs: 30,
  absorbOwnWork: true,
} as const;

/** kvm-71 as measured by the RFC (reference §0, §1.1). */
const BASELINE: PolicyConfig = {
  name: 'rfc-baseline',
  description: 'kvm-71: 2 ns tx timer that fires at the next host wake-up or within 250 µs, rearm on kick, ring-full heuristic at 64, kicks re-enabled before each flush (under the lock); the guest kicks per frame; receivers ACK as data arrives; per-buffer irqs; rx always kicks; 128-entry rings; 2 copies; global lock held, waiters spin 500 µs before sleeping; no GSO; 2008 costs: exit 7 µs, irq injection 7 µs, syscall per frame 1 µs, tx timer fire 30 µs, guest stack 4 µs per frame received + 1.8 µs per KiB sent / 1.1 µs per KiB received (after the poll refills the ring), tap read 0.18 µs per KiB; stack and syscall costs absorb the thread\'s own work',
  tx: {
    kind: 'timer',
    intervalUs: 0.002,
    rearmOnKick: true,
    kickWhileArmed: 'ringFullHeuristic',
    ringFullPending: 64,
    burst: Infinity,
    minRearmUs: 250,
    fireOnAnyWakeup: true,
    // virtio_net_tx_timer cleared NO_NOTIFY, then flushed under the global lock.
    kicksDuringFlush: true,
  },
  interrupts: { mode: 'legacyPerBuffer', coalesce: null, publishBatch: 1, driverEnable: 'immediate' },
  rxKicks: 'always',
  busyPoll: { busyUs: 0 },
  dataPath: {
    txRingSize: 128,
    rxRingSize: 128,
    copies: 2,
    lock: 'held',
    gso: false,
    headerSeparate: true,
    segmentBytes: 4096,
    mergeableRxBuffers: false,
    // Linux 2.6.26's start_xmit added one skb and kicked (unless NO_NOTIFY) per frame.
    driverTxBatch: 1,
    // 2.6.26's TCP (no GRO, no LRO on tap or virtio) ACKed from its receive path, every 2 × MSS
    // or big frame: the receiver's transmits follow its receives, not its polls.
    ackEach: true,
    // A 2008 host woke a mutex waiter in a few µs: a waiter here retries for 500 µs before it
    // sleeps, so it takes the lock in the windows a 'dropped' lock opens around each tap read
    // as a 2008 vcpu thread did (docs/study.md "The global lock").
    lockSpinUs: 500,
  },
  adaptive: null,
  // What a 2008 host and guest paid per event: RFC_COSTS above.
  costs: RFC_COSTS,
};

type Delta = { name: string; row: string; description: string; change: unknown };

const preciseTimer = (us: number): unknown => ({ tx: { intervalUs: us, minRearmUs: 0, fireOnAnyWakeup: false } });

/** The RFC's rows after the baseline, in the RFC's order, each as one change. */
const RFC_DELTAS: Delta[] = [
  { name: 'rfc-timer-50us', row: '50us tx timer + rearm', description: 'tx timer of 50 µs, honoured precisely, rearmed on kick', change: preciseTimer(50) },
  { name: 'rfc-timer-250us', row: '250us tx timer + rearm', description: 'tx timer of 250 µs, precise, rearmed on kick', change: preciseTimer(250) },
  { name: 'rfc-timer-150us', row: '150us tx timer + rearm', description: 'tx timer of 150 µs, precise, rearmed on kick', change: preciseTimer(150) },
  {
    name: 'rfc-no-ring-full',
    row: 'no ring-full heuristic',
    description: 'a kick while the timer is armed flushes at once; kicks no longer rearm (QEMU tx=timer)',
    change: { tx: { rearmOnKick: false, kickWhileArmed: 'flushNow' } },
  },
  { name: 'rfc-notify-on-empty', row: 'VIRTIO_F_NOTIFY_ON_EMPTY', description: 'one irq per drain (nothing available, nothing in flight) instead of per buffer while empty', change: { interrupts: { mode: 'notifyOnEmpty' } } },
  { name: 'rfc-recv-no-notify', row: 'recv NO_NOTIFY', description: 'rx refill kicks suppressed while the device still has rx buffers', change: { rxKicks: 'onlyWhenStarved' } },
  { name: 'rfc-gso', row: 'GSO', description: 'GSO/TSO: 64 KiB frames (header + page-sized fragments)', change: { dataPath: { gso: true } } },
  { name: 'rfc-ring-256', row: 'ring size == 256', description: 'both rings 256 entries', change: { dataPath: { txRingSize: 256, rxRingSize: 256 } } },
  { name: 'rfc-ring-512', row: 'ring size == 512', description: 'both rings 512 entries', change: { dataPath: { txRingSize: 512, rxRingSize: 512 } } },
  { name: 'rfc-drop-mutex', row: 'drop mutex during tapfd read', description: 'the global lock is dropped while reading from the backend', change: { dataPath: { lock: 'dropped' } } },
  { name: 'rfc-zero-copy', row: 'aligouri zero-copy', description: 'the backend writes straight into guest rx buffers (1 copy)', change: { dataPath: { copies: 1 } } },
];

function build(base: PolicyConfig, change: unknown, name: string, description: string): PolicyConfig {
  const merged = mergeConfig(cloneConfig(base), change) as PolicyConfig;
  return validatePolicy({ ...merged, name, description });
}

// Cumulative: the timer rows each replace the interval on top of the baseline (they are
// alternatives, not stacked); from "no ring-full heuristic" on, each row stacks on the 150 µs row.
function rfcCumulative(): PolicyConfig[] {
  const out: PolicyConfig[] = [cloneConfig(BASELINE)];
  let prev = BASELINE;
  for (const d of RFC_DELTAS) {
    const base = d.name.startsWith('rfc-timer-') ? BASELINE : prev;
    const cfg = build(base, d.change, d.name, d.description);
    out.push(cfg);
    prev = cfg;
  }
  return out;
}

const RFC_CUMULATIVE = rfcCumulative();

/** vhost-net style: tx=bh (burst 256), event idx both ways, GSO, inline header, 256 rings, no lock. */
const VHOST: PolicyConfig = validatePolicy({
  name: 'vhost',
  description: 'vhost-style: bh flush (burst 256), event idx, driver re-enables after 3/4, GSO, inline header, mergeable rx buffers, 256 rings, 1 copy, no global lock',
  tx: { kind: 'bh', burst: 256 },
  interrupts: { mode: 'eventIdx', coalesce: null, publishBatch: 64, driverEnable: 'delayed' },
  rxKicks: 'onlyWhenStarved',
  busyPoll: { busyUs: 0 },
  dataPath: { txRingSize: 256, rxRingSize: 256, copies: 1, lock: 'none', gso: true, headerSeparate: false, segmentBytes: 0, mergeableRxBuffers: true },
  adaptive: null,
});

const MODERN: PolicyConfig[] = [
  VHOST,
  build(VHOST, { tx: { kind: 'bh', burst: 256 }, busyPoll: { busyUs: 50 } }, 'vhost-busypoll', 'vhost + the device spins up to 50 µs with kicks off before sleeping (busyloop_timeout)'),
  build(VHOST, { interrupts: { coalesce: { maxPackets: 32, maxUsecs: 64 } } }, 'vhost-coalesce', 'vhost + NOTF_COAL coalescing: an irq after 32 packets or 64 µs'),
  build(
    VHOST,
    {
      tx: { kind: 'timer', intervalUs: 150, rearmOnKick: false, kickWhileArmed: 'flushNow', ringFullPending: 0, burst: 256, minRearmUs: 0, fireOnAnyWakeup: false },
    },
    'qemu-timer',
    'modern QEMU tx=timer (150 µs, kick while armed flushes) with event idx',
  ),
  build(
    VHOST,
    {
      tx: { kind: 'timer', intervalUs: 0, rearmOnKick: false, kickWhileArmed: 'flushNow', ringFullPending: 0, burst: 256, minRearmUs: 0, fireOnAnyWakeup: false },
      adaptive: {
        nevents: 64,
        thresholdPct: 10,
        minSampleUs: 20_000,
        parkExitSamples: 2,
        tieToLower: true,
        profiles: [
          { txTimerUs: 0, coalesceUsecs: 0, coalescePackets: 0 },
          { txTimerUs: 8, coalesceUsecs: 8, coalescePackets: 16 },
          { txTimerUs: 32, coalesceUsecs: 32, coalescePackets: 64 },
          { txTimerUs: 64, coalesceUsecs: 64, coalescePackets: 128 },
          { txTimerUs: 128, coalesceUsecs: 128, coalescePackets: 256 },
        ],
        startIx: 0,
        minPacketsPerFlush: 2,
      },
    },
    'adaptive',
    'vhost + a DIM walk (sample every 64 events and ≥ 20 ms, 10 % threshold, leaving a parking spot after 2 samples that differ) over tx timer / coalescing profiles, starting with no delay, parking at no delay while flushes batch < 2 packets',
  ),
];

/** Every preset by name: the RFC's rows (cumulative) and the modern ones. */
export const PRESETS: Readonly<Record<string, PolicyConfig>> = Object.freeze(
  Object.fromEntries([...RFC_CUMULATIVE, ...MODERN].map((c) => [c.name, c])),
);

/** Preset names in the order of rfc-tables.json's rows (cumulative reading). */
export const RFC_ROWS: readonly string[] = Object.freeze(RFC_CUMULATIVE.map((c) => c.name));

/** Preset name → the row label used in rfc-tables.json. */
export const RFC_ROW_LABELS: Readonly<Record<string, string>> = Object.freeze({
  'rfc-baseline': 'baseline',
  ...Object.fromEntries(RFC_DELTAS.map((d) => [d.name, d.row])),
});

/**
 * One RFC row's change applied alone on top of the baseline (the study's "one at a time"
 * reading), named `<preset>-alone`. The baseline itself is returned unchanged.
 */
export function rfcRowAlone(presetName: string): PolicyConfig {
  if (presetName === 'rfc-baseline') return cloneConfig(BASELINE);
  const d = RFC_DELTAS.find((x) => x.name === presetName);
  if (d === undefined) throw new PolicyError('unknown-preset', '', `"${presetName}" is not an RFC row (rows: ${RFC_ROWS.join(', ')})`);
  return build(BASELINE, d.change, `${d.name}-alone`, `${d.description} (alone on top of the baseline)`);
}

/** Preset names with their one-line descriptions (for `virtq presets`). */
export function listPresets(): { name: string; description: string; rfcRow: string | null }[] {
  return Object.values(PRESETS).map((c) => ({ name: c.name, description: c.description, rfcRow: RFC_ROW_LABELS[c.name] ?? null }));
}

/**
 * Resolves what a user passed: a preset name, `<rfc preset>-alone`, a JSON string, or an object.
 * An object may name `base` (a preset, default `vhost`) and override any fields of it; the result
 * is validated as a whole. Throws PolicyError naming the bad field.
 */
export function resolvePolicy(spec: string | Record<string, unknown> | PolicyConfig): PolicyConfig {
  if (typeof spec === 'string') {
    const s = spec.trim();
    if (s.startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(s);
      } catch (e) {
        throw new PolicyError('bad-json', '', `policy JSON does not parse: ${(e as Error).message}`);
      }
      return resolvePolicy(parsed as Record<string, unknown>);
    }
    const p = PRESETS[s];
    if (p !== undefined) return cloneConfig(p);
    if (s.endsWith('-alone')) return rfcRowAlone(s.slice(0, -'-alone'.length));
    throw new PolicyError('unknown-preset', '', `unknown policy preset "${s}" (presets: ${Object.keys(PRESETS).join(', ')}; or <rfc preset>-alone, or a JSON object)`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new PolicyError('bad-field', '', 'a policy is a preset name, a JSON string or an object');
  const { base, ...rest } = spec as Record<string, unknown>;
  if (base !== undefined && typeof base !== 'string') throw new PolicyError('bad-field', 'base', 'expected a preset name');
  // A complete config (has every family) stands alone; a partial one extends its base.
  const complete = ['tx', 'interrupts', 'rxKicks', 'busyPoll', 'dataPath'].every((k) => k in rest) && 'name' in rest;
  if (complete && base === undefined) return validatePolicy({ adaptive: null, ...rest });
  const baseCfg = resolvePolicy(base ?? 'vhost');
  const merged = mergeConfig(baseCfg, rest) as Record<string, unknown>;
  if (!('name' in rest)) merged.name = `${baseCfg.name}+custom`;
  return validatePolicy(merged);
}
