// The plain-data shape of a notification policy (what a preset is, what a user writes as JSON)
// and its validator. A config composes one setting per module family: tx mitigation, interrupt
// rule (+ coalescing, + the driver's re-enable style), rx kicks, busy polling, data-path
// settings, and an optional adaptive (DIM) walk. Validation names the bad field; nothing here
// touches a ring or a clock. Browser-safe.

import { PolicyError } from './errors.js';

/** Device-side tx mitigation (reference §1.1–1.3, §2.2). */
export type TxMitigationConfig =
  | {
      /** QEMU tx=bh: flush at once (deferred to the device loop) up to `burst`, re-enable, re-check. */
      kind: 'bh';
      burst: number;
    }
  | {
      /**
       * QEMU tx=timer: a kick arms a timer (kicks off, NO_NOTIFY); expiry flushes. `intervalUs`
       * 0 flushes at once. `minRearmUs` > 0 with `fireOnAnyWakeup` is the kvm-71 alarm: the
       * host never sleeps less than that, and runs expired timers on any wake-up.
       */
      kind: 'timer';
      intervalUs: number;
      /** Every kick while armed pushes the deadline out (kvm-71's qemu_mod_timer). */
      rearmOnKick: boolean;
      /** A kick while armed: flush when `pending >= ringFullPending` (kvm-71) or flush at once. */
      kickWhileArmed: 'ringFullHeuristic' | 'flushNow';
      /** Pending packets that mean "ring full"; 0 = the ring's capacity in packets. */
      ringFullPending: number;
      /** Most packets one expiry flushes before re-arming (Infinity = all, as kvm-71). */
      burst: number;
      minRearmUs: number;
      fireOnAnyWakeup: boolean;
      /**
       * Kicks stay on while a flush runs (optional, default false = off during the flush, as
       * modern QEMU). kvm-71's virtio_net_tx_timer cleared VRING_USED_F_NO_NOTIFY *before* it
       * flushed, under the global lock, so a guest that sent during the flush exited and waited
       * for that lock: its kick was handled (and the timer re-armed) only after the flush. What
       * makes the 2008 guest stall for each flush (docs/study.md "How kvm-71 flushed").
       */
      kicksDuringFlush?: boolean;
    };

/** Coalescing as VIRTIO_NET_F_NOTF_COAL defines it (virtio 1.4 §5.1.9.5.10). */
export interface CoalesceConfig {
  maxPackets: number;
  maxUsecs: number;
}

export type InterruptMode =
  /** kvm-71 virtio_notify: suppressed only if NO_INTERRUPT and the avail ring is not empty. */
  | 'legacyPerBuffer'
  /** VIRTIO_F_NOTIFY_ON_EMPTY (legacy bit 24): always notify when nothing is available or in flight. */
  | 'notifyOnEmpty'
  /** virtio 1.x flags rule (§2.7.7): notify unless NO_INTERRUPT. */
  | 'flags'
  /** VIRTIO_F_EVENT_IDX (§2.7.10): notify when used_event lies in the published window. */
  | 'eventIdx';

export interface InterruptConfig {
  mode: InterruptMode;
  /** null = no coalescing. */
  coalesce: CoalesceConfig | null;
  /** Used entries per publish (and per notification decision). 1 = per buffer, as kvm-71. */
  publishBatch: number;
  /** How the driver re-enables interrupts when it runs out of buffers: at once, or after 3/4 (event idx). */
  driverEnable: 'immediate' | 'delayed';
}

/** rx refill kicks (reference §1.5): always, or only when the device ran out of rx buffers. */
export type RxKickMode = 'always' | 'onlyWhenStarved';

export interface BusyPollConfig {
  /** Spin this long with kicks off before sleeping (vhost busyloop_timeout); 0 = off. */
  busyUs: number;
}

export interface DataPathConfig {
  /** Ring size of the tx (guest→host) queue and of the rx (host→guest) queue. Powers of 2. */
  txRingSize: number;
  rxRingSize: number;
  /** 2 = staging copy then copy into guest buffers; 1 = the backend writes guest buffers directly. */
  copies: 1 | 2;
  /** 'vhost': no lock. 'held'/'dropped': QEMU-2008 global lock, held or dropped during backend reads. */
  lock: 'none' | 'held' | 'dropped';
  /** GSO/TSO: 64 KiB frames instead of MTU-sized ones. */
  gso: boolean;
  /** virtio_net_hdr in its own descriptor (2008 guests) rather than inline with the frame. */
  headerSeparate: boolean;
  /** Frame data split into page-sized descriptors (2008 skb frags): 4096, or 0 = one descriptor. */
  segmentBytes: number;
  /** VIRTIO_NET_F_MRG_RXBUF for the net workloads (policy-stream ignores it). */
  mergeableRxBuffers: boolean;
  /**
   * Frames the guest driver adds before it publishes them and decides on a kick (optional,
   * default 32). 1 = a kick decision per frame, as Linux's start_xmit before xmit_more (3.18):
   * the 2008 guest's first frame after a flush kicked (and armed the tx timer) at once.
   */
  driverTxBatch?: number;
  /**
   * The net workloads' TCP receivers send every ACK that falls due (one per 2 × MSS, or per GSO
   * frame) as they take the frame in, as 2008's stacks did without receive offloads (Linux
   * 2.6.26 tcp_rcv_established: more than one full frame unacknowledged → ACK now). Optional,
   * default false: the ACKs due by the receiver's next transmit go out as one.
   */
  ackEach?: boolean;
  /**
   * A thread that finds the global lock held retries it for this long before it sleeps (µs;
   * optional, default 0 = sleeps at once). A 2008 host woke a mutex waiter in a few µs; a futex
   * wake on a virtual machine takes tens, and a waiter that sleeps misses the short windows in
   * which 'dropped' releases the lock around each backend read (docs/study.md).
   */
  lockSpinUs?: number;
  /**
   * The net workloads' guest rx buffer pool, KiB (optional; default: the workload's budget).
   * The driver posts as many buffers as the ring and this pool hold (a 64 KiB "big packet"
   * buffer takes 17 descriptors), so it bounds the receive working set — a what-if for the
   * ring-size rows, whose bigger rings also mean more buffer memory in flight.
   */
  rxPoolKiB?: number;
  /**
   * Size of each mergeable rx buffer the net workloads' guest driver posts, bytes (optional,
   * default 4096: Linux's virtio_net caps its mergeable buffers at a page, so a 64 KiB GSO frame
   * takes 17 of them). Larger buffers are a what-if: fewer buffers per frame for the device to
   * pop, fill and return. Ignored without mergeable rx buffers.
   */
  mergeableBufBytes?: number;
}

/** One step of the adaptive walk: the tx timer and the coalescing it applies. */
export interface AdaptiveProfile {
  txTimerUs: number;
  coalesceUsecs: number;
  coalescePackets: number;
}

export interface AdaptiveConfig {
  /** Events (notifications + flushes) per sample (net_dim's DIM_NEVENTS). */
  nevents: number;
  /** Significance threshold in percent (net_dim: 10). */
  thresholdPct: number;
  /**
   * A sample also lasts at least this long, µs (ours; 0 = net_dim's events-only samples). On a
   * shared machine a few-ms sample holds a scheduler gap often enough that rates differ by more
   * than the threshold from noise alone, and the walk never stops moving.
   */
  minSampleUs: number;
  /**
   * Consecutive samples that must differ from the parked reference, the same way, before the
   * walk leaves its parking spot (ours; net_dim: 1).
   */
  parkExitSamples: number;
  /**
   * Ties go to less delay (ours; net_dim turns on a tie and keeps walking): a step to more
   * delay that is not better, or to less delay that is worse, is taken back and the walk parks.
   */
  tieToLower: boolean;
  profiles: AdaptiveProfile[];
  startIx: number;
  /**
   * Batching guard (ours, not net_dim's): when a sample shows fewer packets per flush than
   * this, a delay batches nothing and only adds latency, so the walk parks on profile 0.
   * 0 = off (plain DIM).
   */
  minPacketsPerFlush: number;
}

/**
 * Costs the 2008 host paid that two threads sharing memory do not (docs/study.md "The model's
 * costs" derives the defaults from the RFC's own figures). Each is paid by spinning on the
 * thread that paid it then, so it takes that thread's time as the real cost did; 0 = not paid
 * (the machine's own costs only). Optional in a policy: absent = all 0.
 */
export interface CostConfig {
  /** A guest kick or ISR read: a VM exit to QEMU userspace, handled under the global lock when the preset holds it (guest thread), µs. */
  exitUs: number;
  /** Injecting one interrupt into the guest (the device thread's KVM_IRQ_LINE path), µs. */
  irqInjectUs: number;
  /** One system call per frame the device moves to or from the backend (kvm-71: a writev/read on the tap fd per frame; device thread), µs. */
  syscallUs: number;
  /** The guest's own stack per frame it sends, and per frame it receives unless `guestRxPacketUs` is set (2008 TCP/IP + skb work; guest thread), µs. */
  guestPacketUs: number;
  /**
   * The guest's own stack per frame it receives (2008: the NAPI poll's skb work, the refill's new
   * buffer, the TCP receive path; guest thread), µs. Optional: absent = `guestPacketUs`; 0 = free.
   */
  guestRxPacketUs?: number;
  /** The guest's stack per KiB of frame it sends (copy from the sender's user buffer; guest thread), µs. Optional: absent = 0. */
  guestTxKiBUs?: number;
  /** The guest's stack per KiB of frame it receives (copy to the receiver's user buffer; guest thread), µs. Optional: absent = 0. */
  guestRxKiBUs?: number;
  /**
   * Reading a frame from the backend, per KiB (kvm-71: the tap read's copy into QEMU's buffer;
   * device thread, inside the read, so under the global lock unless the preset drops it), µs.
   * Optional: absent = 0.
   */
  backendReadKiBUs?: number;
  /**
   * The host's work for each tx mitigation timer fire, paid by the device thread after it has
   * re-enabled kicks for the flush and under the global lock when the preset holds it (kvm-71:
   * SIGALRM to the I/O thread, select's EINTR, running the timer list, re-arming the alarm), µs.
   * Optional: absent = 0.
   */
  timerFireUs?: number;
  /**
   * true: the guest stack's costs (guestPacketUs, guestRxPacketUs, guestTxKiBUs, guestRxKiBUs)
   * and syscallUs are totals, and the paying thread's own work on the same frames counts toward
   * them (only the rest is spun; lock waits and other modelled costs do not count). Absent or
   * false: they are paid on top of the machine's own work.
   */
  absorbOwnWork?: boolean;
}

/** Frames the guest driver adds per publish and kick decision (dataPath.driverTxBatch, default 32). */
export function driverTxBatch(p: Pick<PolicyConfig, 'dataPath'>): number {
  return p.dataPath.driverTxBatch ?? 32;
}

export const NO_COSTS: Readonly<CostConfig> = Object.freeze({ exitUs: 0, irqInjectUs: 0, syscallUs: 0, guestPacketUs: 0 });
// Optional costs kept only when set (0 = absent).
const OPTIONAL_COSTS = ['guestTxKiBUs', 'guestRxKiBUs', 'backendReadKiBUs', 'timerFireUs'] as const;

export interface PolicyConfig {
  name: string;
  description: string;
  tx: TxMitigationConfig;
  interrupts: InterruptConfig;
  rxKicks: RxKickMode;
  busyPoll: BusyPollConfig;
  dataPath: DataPathConfig;
  /** null = fixed settings. */
  adaptive: AdaptiveConfig | null;
  /** Modelled per-event costs (absent = none). */
  costs?: CostConfig;
}

// ---------------------------------------------------------------------------------------------
// Validation

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown, field: string, opts: { min?: number; int?: boolean; allowInfinity?: boolean } = {}): number {
  // JSON cannot say Infinity: accept the string "Infinity" where Infinity is allowed.
  if (opts.allowInfinity && (v === 'Infinity' || v === Infinity)) return Infinity;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PolicyError('bad-field', field, `expected a finite number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(v)) throw new PolicyError('bad-field', field, `expected an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new PolicyError('bad-field', field, `must be ≥ ${opts.min}, got ${v}`);
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new PolicyError('bad-field', field, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string | number>(v: unknown, field: string, options: readonly T[]): T {
  if (!options.includes(v as T)) throw new PolicyError('bad-field', field, `expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function ringSize(v: unknown, field: string): number {
  const n = num(v, field, { int: true, min: 2 });
  if ((n & (n - 1)) !== 0 || n > 32768) throw new PolicyError('bad-field', field, `must be a power of 2 in 2..32768 (split ring), got ${n}`);
  return n;
}

function noExtra(o: Obj, field: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new PolicyError('unknown-field', field === '' ? k : `${field}.${k}`, `unknown field (known: ${known.join(', ')})`);
  }
}

function obj(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new PolicyError('bad-field', field, `expected an object, got ${JSON.stringify(v)}`);
  return v;
}

function validateTx(v: unknown): TxMitigationConfig {
  const o = obj(v, 'tx');
  const kind = oneOf(o.kind, 'tx.kind', ['bh', 'timer'] as const);
  if (kind === 'bh') {
    noExtra(o, 'tx', ['kind', 'burst']);
    return { kind, burst: num(o.burst, 'tx.burst', { int: true, min: 1, allowInfinity: true }) };
  }
  noExtra(o, 'tx', ['kind', 'intervalUs', 'rearmOnKick', 'kickWhileArmed', 'ringFullPending', 'burst', 'minRearmUs', 'fireOnAnyWakeup', 'kicksDuringFlush']);
  return {
    kind,
    intervalUs: num(o.intervalUs, 'tx.intervalUs', { min: 0 }),
    rearmOnKick: bool(o.rearmOnKick, 'tx.rearmOnKick'),
    kickWhileArmed: oneOf(o.kickWhileArmed, 'tx.kickWhileArmed', ['ringFullHeuristic', 'flushNow'] as const),
    ringFullPending: num(o.ringFullPending, 'tx.ringFullPending', { int: true, min: 0 }),
    burst: num(o.burst, 'tx.burst', { int: true, min: 1, allowInfinity: true }),
    minRearmUs: num(o.minRearmUs, 'tx.minRearmUs', { min: 0 }),
    fireOnAnyWakeup: bool(o.fireOnAnyWakeup, 'tx.fireOnAnyWakeup'),
    ...(o.kicksDuringFlush === undefined ? {} : { kicksDuringFlush: bool(o.kicksDuringFlush, 'tx.kicksDuringFlush') }),
  };
}

function validateCoalesce(v: unknown, field: string): CoalesceConfig | null {
  if (v === null) return null;
  const o = obj(v, field);
  noExtra(o, field, ['maxPackets', 'maxUsecs']);
  // le32 fields in struct virtio_net_ctrl_coal.
  return {
    maxPackets: num(o.maxPackets, `${field}.maxPackets`, { int: true, min: 0 }),
    maxUsecs: num(o.maxUsecs, `${field}.maxUsecs`, { min: 0 }),
  };
}

function validateInterrupts(v: unknown): InterruptConfig {
  const o = obj(v, 'interrupts');
  noExtra(o, 'interrupts', ['mode', 'coalesce', 'publishBatch', 'driverEnable']);
  return {
    mode: oneOf(o.mode, 'interrupts.mode', ['legacyPerBuffer', 'notifyOnEmpty', 'flags', 'eventIdx'] as const),
    coalesce: validateCoalesce(o.coalesce, 'interrupts.coalesce'),
    publishBatch: num(o.publishBatch, 'interrupts.publishBatch', { int: true, min: 1 }),
    driverEnable: oneOf(o.driverEnable, 'interrupts.driverEnable', ['immediate', 'delayed'] as const),
  };
}

/** A mergeable rx buffer: room for the 12-byte header and some frame, at most 1 MiB. */
function mergeableBuf(v: unknown): number {
  const n = num(v, 'dataPath.mergeableBufBytes', { int: true, min: 64 });
  if (n > 1 << 20) throw new PolicyError('bad-field', 'dataPath.mergeableBufBytes', `must be at most 1048576 (1 MiB), got ${n}`);
  return n;
}

function validateDataPath(v: unknown): DataPathConfig {
  const o = obj(v, 'dataPath');
  noExtra(o, 'dataPath', ['txRingSize', 'rxRingSize', 'copies', 'lock', 'gso', 'headerSeparate', 'segmentBytes', 'mergeableRxBuffers', 'driverTxBatch', 'ackEach', 'lockSpinUs', 'rxPoolKiB', 'mergeableBufBytes']);
  const segmentBytes = num(o.segmentBytes, 'dataPath.segmentBytes', { int: true, min: 0 });
  if (segmentBytes !== 0 && (segmentBytes < 64 || segmentBytes % 4 !== 0)) {
    throw new PolicyError('bad-field', 'dataPath.segmentBytes', `must be 0 or a multiple of 4 that is ≥ 64, got ${segmentBytes}`);
  }
  return {
    txRingSize: ringSize(o.txRingSize, 'dataPath.txRingSize'),
    rxRingSize: ringSize(o.rxRingSize, 'dataPath.rxRingSize'),
    copies: oneOf(o.copies, 'dataPath.copies', [1, 2] as const),
    lock: oneOf(o.lock, 'dataPath.lock', ['none', 'held', 'dropped'] as const),
    gso: bool(o.gso, 'dataPath.gso'),
    headerSeparate: bool(o.headerSeparate, 'dataPath.headerSeparate'),
    segmentBytes,
    mergeableRxBuffers: bool(o.mergeableRxBuffers, 'dataPath.mergeableRxBuffers'),
    ...(o.driverTxBatch === undefined ? {} : { driverTxBatch: num(o.driverTxBatch, 'dataPath.driverTxBatch', { int: true, min: 1 }) }),
    ...(o.ackEach === undefined ? {} : { ackEach: bool(o.ackEach, 'dataPath.ackEach') }),
    ...(o.lockSpinUs === undefined ? {} : { lockSpinUs: lockSpin(o.lockSpinUs) }),
    ...(o.rxPoolKiB === undefined ? {} : { rxPoolKiB: num(o.rxPoolKiB, 'dataPath.rxPoolKiB', { int: true, min: 1 }) }),
    ...(o.mergeableBufBytes === undefined ? {} : { mergeableBufBytes: mergeableBuf(o.mergeableBufBytes) }),
  };
}

/** dataPath.lockSpinUs: 0…100000 µs (a longer spin is a busy wait, not a model of a wake-up). */
function lockSpin(v: unknown): number {
  const us = num(v, 'dataPath.lockSpinUs', { min: 0 });
  if (us > 100_000) throw new PolicyError('bad-field', 'dataPath.lockSpinUs', `at most 100000 µs, got ${us}`);
  return us;
}

function validateAdaptive(v: unknown): AdaptiveConfig | null {
  if (v === null) return null;
  const o = obj(v, 'adaptive');
  noExtra(o, 'adaptive', ['nevents', 'thresholdPct', 'minSampleUs', 'parkExitSamples', 'tieToLower', 'profiles', 'startIx', 'minPacketsPerFlush']);
  if (!Array.isArray(o.profiles) || o.profiles.length < 2) throw new PolicyError('bad-field', 'adaptive.profiles', 'expected an array of at least 2 profiles');
  const profiles = o.profiles.map((p: unknown, i: number) => {
    const f = `adaptive.profiles[${i}]`;
    const po = obj(p, f);
    noExtra(po, f, ['txTimerUs', 'coalesceUsecs', 'coalescePackets']);
    return {
      txTimerUs: num(po.txTimerUs, `${f}.txTimerUs`, { min: 0 }),
      coalesceUsecs: num(po.coalesceUsecs, `${f}.coalesceUsecs`, { min: 0 }),
      coalescePackets: num(po.coalescePackets, `${f}.coalescePackets`, { int: true, min: 0 }),
    };
  });
  const startIx = num(o.startIx, 'adaptive.startIx', { int: true, min: 0 });
  if (startIx >= profiles.length) throw new PolicyError('bad-field', 'adaptive.startIx', `must index a profile (0..${profiles.length - 1}), got ${startIx}`);
  return {
    nevents: num(o.nevents, 'adaptive.nevents', { int: true, min: 1 }),
    thresholdPct: num(o.thresholdPct, 'adaptive.thresholdPct', { min: 0 }),
    minSampleUs: o.minSampleUs === undefined ? 0 : num(o.minSampleUs, 'adaptive.minSampleUs', { min: 0 }),
    parkExitSamples: o.parkExitSamples === undefined ? 1 : num(o.parkExitSamples, 'adaptive.parkExitSamples', { int: true, min: 1 }),
    tieToLower: o.tieToLower === undefined ? false : bool(o.tieToLower, 'adaptive.tieToLower'),
    profiles,
    startIx,
    minPacketsPerFlush: o.minPacketsPerFlush === undefined ? 0 : num(o.minPacketsPerFlush, 'adaptive.minPacketsPerFlush', { min: 0 }),
  };
}

function validateCosts(v: unknown): CostConfig {
  const o = obj(v, 'costs');
  noExtra(o, 'costs', ['exitUs', 'irqInjectUs', 'syscallUs', 'guestPacketUs', 'guestRxPacketUs', ...OPTIONAL_COSTS, 'absorbOwnWork']);
  const us = (k: Exclude<keyof CostConfig, 'absorbOwnWork'>): number => (o[k] === undefined ? 0 : num(o[k], `costs.${k}`, { min: 0 }));
  const c: CostConfig = { exitUs: us('exitUs'), irqInjectUs: us('irqInjectUs'), syscallUs: us('syscallUs'), guestPacketUs: us('guestPacketUs') };
  // Kept whenever given, 0 included: 0 makes received frames free, absent makes them cost guestPacketUs.
  if (o.guestRxPacketUs !== undefined) c.guestRxPacketUs = us('guestRxPacketUs');
  // Per-KiB costs are kept only when set (0 = absent, so a what-if can switch one off).
  for (const k of OPTIONAL_COSTS) {
    const v = us(k);
    if (v > 0) c[k] = v;
  }
  for (const [k, x] of Object.entries(c)) if (typeof x === 'number' && x > 10_000) throw new PolicyError('bad-field', `costs.${k}`, `at most 10000 µs, got ${x}`);
  if (o.absorbOwnWork !== undefined) {
    if (typeof o.absorbOwnWork !== 'boolean') throw new PolicyError('bad-field', 'costs.absorbOwnWork', `expected true or false, got ${JSON.stringify(o.absorbOwnWork)}`);
    // Kept only when true (false is the same as absent).
    if (o.absorbOwnWork) c.absorbOwnWork = true;
  }
  return c;
}

/**
 * Checks a complete config object field by field; returns a clean copy or throws a PolicyError
 * naming the first bad field.
 */
export function validatePolicy(v: unknown): PolicyConfig {
  const o = obj(v, '');
  noExtra(o, '', ['name', 'description', 'tx', 'interrupts', 'rxKicks', 'busyPoll', 'dataPath', 'adaptive', 'costs']);
  if (typeof o.name !== 'string' || o.name === '') throw new PolicyError('bad-field', 'name', 'expected a non-empty string');
  const bp = obj(o.busyPoll, 'busyPoll');
  noExtra(bp, 'busyPoll', ['busyUs']);
  const cfg: PolicyConfig = {
    name: o.name,
    description: typeof o.description === 'string' ? o.description : '',
    tx: validateTx(o.tx),
    interrupts: validateInterrupts(o.interrupts),
    rxKicks: oneOf(o.rxKicks, 'rxKicks', ['always', 'onlyWhenStarved'] as const),
    busyPoll: { busyUs: num(bp.busyUs, 'busyPoll.busyUs', { min: 0, allowInfinity: true }) },
    dataPath: validateDataPath(o.dataPath),
    adaptive: validateAdaptive(o.adaptive),
  };
  if (o.costs !== undefined) cfg.costs = validateCosts(o.costs);
  if (cfg.interrupts.driverEnable === 'delayed' && cfg.interrupts.mode !== 'eventIdx') {
    throw new PolicyError('bad-field', 'interrupts.driverEnable', `'delayed' (3/4 of outstanding) needs interrupts.mode 'eventIdx', got '${cfg.interrupts.mode}'`);
  }
  return cfg;
}

/** Deep merge of plain objects (arrays and null replace). Used to apply overrides to a base. */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  // A different `kind` (tx: 'timer' → 'bh') is a different module: replace, do not merge.
  if ('kind' in over && over.kind !== base.kind) return { ...over };
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeConfig(base[k], v) : v;
  return out;
}

/** A deep copy (configs are plain data). */
export function cloneConfig(c: PolicyConfig): PolicyConfig {
  return structuredClone(c);
}
