// The one virtio-net driver (guest side) as a running service: NetDriver (virtio 1.2 §5.1.6:
// tx chains, rx buffers kept posted, NAPI-style receive) on a receive and a transmit
// DriverQueue, the guest's network stack (NetEndpoint: ARP, ICMP echo, the stream source and
// sink) on top of it, and the policy layer's DriverLoop, which alone runs the notify cycle
// (disable → poll → re-enable → fence → re-check → sleep, §2.7.14), the kick decisions, the
// forced kick on a full ring, the delayed interrupt enable and the QEMU-2008 global lock. Every
// place virtq plays the guest hosts this same service: the engine's guest worker (Atomics
// doorbells) and the TAP demo's guest worker (eventfd doorbells). Only the doorbells differ,
// and how a kick says which queue it is for (beforeKick: a shared counter, a register).
// Queue 0 is rx, queue 1 tx (§5.1.2), unless the caller says otherwise.
//
// Tracing (opts.tracer, docs/tracing.md "virtio-net"): every guest → host frame on the tx queue
// is a traced packet, its identity its avail position counted from 0. NetDriver records add and
// reap; this service the loop-level points of the tx queue (publish, kick, driver wake) and the
// policy events (interrupts on/off per queue, ring full). Untraced, the callbacks are the plain
// ones. Runs in Web Workers too: no `node:` imports.

import type { Arena } from '../memory/arena.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DriverVirtqueue } from '../virtqueue/queue.js';
import { DriverLoop } from '../policy/driver-loop.js';
import type { LoopDoorbell } from '../policy/device-loop.js';
import { driverTxBatch, type PolicyConfig } from '../policy/config.js';
import type { BigLock } from '../policy/lock.js';
import type { NetObserver } from './observer.js';
import { NetDriver, type RxBufferMode, type TxLayout } from './driver.js';
import { NetEndpoint, type EndpointOptions, type EndpointStats } from './endpoint.js';
import { NetF } from './features.js';
import { emptyNetHdr, NetHdrFlags, type VirtioNetHdr } from './header.js';

export interface NetDriverServiceOptions {
  mem: GuestMemory;
  /** Driver-owned guest RAM for the rx and tx buffers. */
  arena: Arena;
  rxq: DriverVirtqueue<number>;
  txq: DriverVirtqueue<number>;
  /** The negotiated feature set (what the device offered ∩ what this driver accepts). */
  features: bigint;
  /** The guest's stack; partialCsum and gso follow the negotiated CSUM and HOST_TSO4. */
  endpoint: Omit<EndpointOptions, 'partialCsum' | 'gso'>;
  policy: PolicyConfig;
  /** Driver → device doorbell (the loop rings it). */
  kick: LoopDoorbell;
  /** Device → driver doorbell (the loop sleeps on it). */
  irq: LoopDoorbell;
  stopped(): boolean;
  /**
   * Called just before a kick for virtio queue `queue` rings the kick doorbell: tells the device
   * which queue it is for (the QueueNotify register's payload, virtio 1.2 §4.2.2.2).
   */
  beforeKick?(queue: number): void;
  /** The global lock, when policy.dataPath.lock is not 'none'. */
  lock?: BigLock | null;
  mtu?: number;
  txLayout?: TxLayout;
  rxMode?: RxBufferMode;
  /** Mergeable rx buffer size (NetDriver's default: 4096, a page). */
  mergeableBufBytes?: number;
  /** Frames per NAPI poll and per tx fill (default 64). */
  budget?: number;
  /** Guest RAM for rx and for tx buffers (NetDriver's defaults: 4 MiB each). */
  rxMemoryBytes?: number;
  txMemoryBytes?: number;
  tracer?: NetObserver;
  /** Runs at the top of every loop iteration (a workload's tick, a stop check). */
  onIteration?(): void;
  /** The guest's own wake-up time (performance.now() ms, Infinity = none), e.g. a ping timeout. */
  deadlineMs?(): number;
  /** Hostile-input runs: after every N good frames also send one malformed frame (0 = never). */
  injectBadTxEvery?: number;
  /** Virtio queue indices (default rx 0, tx 1). */
  rxIndex?: number;
  txIndex?: number;
}

/** The tx layout a policy's data path describes (header in its own descriptor, 4 KiB frags). */
export function txLayoutOf(p: PolicyConfig): TxLayout {
  const d = p.dataPath;
  if (d.segmentBytes > 0) return 'pages';
  return d.headerSeparate ? 'header-apart' : 'inline';
}

/** Malformed tx frames for hostile-input runs: each must be dropped by the device. */
const BAD_TX: { hdr: Partial<VirtioNetHdr>; len: number }[] = [
  { hdr: { flags: NetHdrFlags.DATA_VALID }, len: 60 }, // rx-only-flags
  { hdr: { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 5000, csumOffset: 6 }, len: 60 }, // csum-start-past-frame
  { hdr: { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 40 }, len: 60 }, // csum-offset-past-frame
  { hdr: { gsoType: 2, gsoSize: 100, flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 16 }, len: 60 }, // gso-type-unknown
  { hdr: {}, len: 10 }, // frame-too-short
  { hdr: {}, len: 9000 }, // frame-too-long
];

export class NetDriverService {
  readonly driver: NetDriver;
  readonly endpoint: NetEndpoint;
  readonly loop: DriverLoop;
  readonly rxIndex: number;
  readonly txIndex: number;
  private readonly hdr = emptyNetHdr();
  private readonly budget: number;
  private readonly injectBadTxEvery: number;
  private framesSinceBad = 0;
  /** The last emitTx stopped for lack of tx buffers or descriptors while the endpoint had output. */
  private txBlocked = false;
  /** rx bytes polled whose per-KiB stack cost is not yet paid (costs.guestRxKiBUs). */
  private rxBytesOwed = 0;
  /** Malformed frames sent (injectBadTxEvery). */
  injectedBadTx = 0;

  constructor(o: NetDriverServiceOptions) {
    const features = o.features;
    const rxIndex = (this.rxIndex = o.rxIndex ?? 0);
    const txIndex = (this.txIndex = o.txIndex ?? 1);
    this.budget = Math.max(1, o.budget ?? 64);
    this.injectBadTxEvery = Math.max(0, o.injectBadTxEvery ?? 0);
    this.endpoint = new NetEndpoint({
      ...o.endpoint,
      // What the device accepts from us (virtio 1.2 §5.1.6.2): partial checksums with CSUM, TSO frames with HOST_TSO4.
      partialCsum: (features & NetF.CSUM) !== 0n,
      gso: (features & NetF.HOST_TSO4) !== 0n,
    });
    const ep = this.endpoint;
    const tr = o.tracer;
    const tracing = tr !== undefined && tr.enabled;
    this.driver = new NetDriver({
      mem: o.mem,
      arena: o.arena,
      features,
      rxq: o.rxq,
      txq: o.txq,
      ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
      ...(o.txLayout !== undefined ? { txLayout: o.txLayout } : {}),
      ...(o.rxMode !== undefined ? { rxMode: o.rxMode } : {}),
      ...(o.mergeableBufBytes !== undefined ? { mergeableBufBytes: o.mergeableBufBytes } : {}),
      ...(o.rxMemoryBytes !== undefined ? { rxMemoryBytes: o.rxMemoryBytes } : {}),
      ...(o.txMemoryBytes !== undefined ? { txMemoryBytes: o.txMemoryBytes } : {}),
      napiBudget: this.budget,
      onReceive: (bytes, off, len, hdr) => ep.input(bytes, off, len, hdr),
      ...(tr !== undefined ? { tracer: tr } : {}),
    });
    const d = this.driver;
    const beforeKick = o.beforeKick;
    // tx publish: NetDriver records the batch's publish point when traced.
    const txPublish = (): number => d.publishTx();
    const txKick =
      tracing || beforeKick !== undefined
        ? (): void => {
            if (tracing) tr.kick(txIndex);
            beforeKick?.(txIndex);
          }
        : undefined;
    const rxKick = beforeKick !== undefined ? (): void => beforeKick(rxIndex) : undefined;
    // The 2008 guest's per-byte stack work (costs.guestTxKiBUs / guestRxKiBUs), paid per poll and per fill.
    const guestKiB = (o.policy.costs?.guestTxKiBUs ?? 0) > 0 || (o.policy.costs?.guestRxKiBUs ?? 0) > 0;
    this.loop = new DriverLoop({
      policy: o.policy,
      kick: o.kick,
      irq: o.irq,
      lock: o.lock ?? null,
      stopped: o.stopped,
      // Frames per publish and kick decision: the policy's (1 for the 2008 guest, which kicked per frame).
      kickBatch: Math.min(driverTxBatch(o.policy), d.txq.size),
      napiBudget: this.budget,
      ...(o.onIteration !== undefined ? { onIteration: o.onIteration } : {}),
      ...(o.deadlineMs !== undefined ? { deadlineMs: o.deadlineMs } : {}),
      ...(tracing
        ? {
            afterWake: () => tr.driverWake(),
            onRingFull: (q: { role: 'tx' | 'rx' }) => {
              if (q.role === 'tx') tr.ringFull(d.txOutstanding, txIndex);
            },
          }
        : {}),
      queues: [
        {
          role: 'rx',
          reap: guestKiB ? (budget) => this.countedPollRx(budget) : (budget) => this.pollRx(budget),
          ...(guestKiB ? { afterRefill: () => this.payRxBytes() } : {}),
          // Refill only past the driver's threshold (pollRx does the same), as Linux's virtnet_poll.
          fill: () => (d.rxq.numFree >= d.refillThreshold ? d.fillRx() : 0),
          publish: () => d.rxq.publish(),
          kickNeeded: () => d.rxq.kickNeeded(),
          enableInterrupts: tracing ? () => (irqOn(tr, d.rxq, rxIndex, true), d.enableRxInterrupts()) : () => d.enableRxInterrupts(),
          enableInterruptsDelayed: tracing ? () => (irqOn(tr, d.rxq, rxIndex, true), d.enableRxInterrupts()) : () => d.enableRxInterrupts(),
          disableInterrupts: tracing ? () => (irqOn(tr, d.rxq, rxIndex, false), d.disableRxInterrupts()) : () => d.disableRxInterrupts(),
          outstanding: () => d.rxq.outstanding,
          ringFull: () => false,
          done: () => false,
          ...(rxKick !== undefined ? { beforeKick: rxKick } : {}),
        },
        {
          role: 'tx',
          reap: () => this.reapTx(),
          fill: guestKiB ? (max) => this.paidEmitTx(max) : (max) => this.emitTx(max),
          publish: txPublish,
          kickNeeded: () => d.txq.kickNeeded(),
          enableInterrupts: tracing ? () => (irqOn(tr, d.txq, txIndex, true), d.enableTxInterrupts(false)) : () => d.enableTxInterrupts(false),
          enableInterruptsDelayed: tracing ? () => (irqOn(tr, d.txq, txIndex, true), d.enableTxInterrupts(true)) : () => d.enableTxInterrupts(true),
          disableInterrupts: tracing ? () => (irqOn(tr, d.txq, txIndex, false), d.disableTxInterrupts()) : () => d.disableTxInterrupts(),
          outstanding: () => d.txOutstanding,
          ringFull: () => this.txBlocked,
          done: () => false,
          ...(txKick !== undefined ? { beforeKick: txKick } : {}),
        },
      ],
    });
  }

  /** "Poll rx": NAPI poll (frames go to the endpoint), refilling as the driver's threshold says. */
  pollRx(budget = this.budget): number {
    return this.driver.pollRx(budget);
  }

  /** pollRx, counting the bytes it took in (their per-KiB cost is paid after the refill: payRxBytes). */
  private countedPollRx(budget: number): number {
    const st = this.driver.stats;
    const before = st.rxBytes;
    const n = this.driver.pollRx(budget);
    this.rxBytesOwed += st.rxBytes - before;
    return n;
  }

  /**
   * The guest stack's per-KiB cost for what the last poll took in, once its refill is published:
   * the 2008 receiver copied to user space in netserver's recvmsg, after NAPI re-posted buffers.
   */
  private payRxBytes(): void {
    if (this.rxBytesOwed === 0) return;
    this.loop.cost.guestBytes('rx', this.rxBytesOwed);
    this.rxBytesOwed = 0;
  }

  /** emitTx, then the guest stack's per-KiB cost for the bytes it built. */
  private paidEmitTx(max: number): number {
    const st = this.driver.stats;
    const before = st.txBytes;
    const n = this.emitTx(max);
    this.loop.cost.guestBytes('tx', st.txBytes - before);
    return n;
  }

  /** "Reap tx": take back completed tx buffers (on transmit, Linux's classic way). */
  reapTx(): number {
    return this.driver.reapTx();
  }

  /** "Emit tx": build up to `max` frames the endpoint wants to send straight into tx buffers (not published). */
  emitTx(max = this.budget): number {
    const d = this.driver;
    let n = 0;
    this.txBlocked = false;
    while (n < max) {
      const slot = d.beginTx();
      if (slot === null) {
        this.txBlocked = this.endpoint.hasOutput;
        break;
      }
      const len = this.endpoint.nextFrame(slot.bytes, slot.offset, slot.capacityBytes, this.hdr);
      if (len === 0) {
        d.cancelTx();
        break;
      }
      d.commitTx(len, this.hdr);
      n++;
      if (this.injectBadTxEvery > 0 && ++this.framesSinceBad >= this.injectBadTxEvery) {
        this.framesSinceBad = 0;
        this.injectBadTx();
      }
    }
    return n;
  }

  /** Sends one frame whose header or length breaks a rule of virtio 1.2 §5.1.6.2 (cycling). */
  private injectBadTx(): void {
    const d = this.driver;
    const slot = d.beginTx();
    if (slot === null) return;
    const h = this.hdr;
    let kind = this.injectedBadTx % BAD_TX.length;
    // Without GSO the tx buffers cannot hold an over-long frame: send another kind instead.
    if (BAD_TX[kind]!.len > slot.capacityBytes) kind = 0;
    Object.assign(h, emptyNetHdr(), BAD_TX[kind]!.hdr);
    for (let i = 0; i < 60; i++) slot.bytes[slot.offset + i] = (i * 37 + kind) & 0xff;
    d.commitTx(BAD_TX[kind]!.len, h);
    this.injectedBadTx++;
  }

  /** Runs the policy's driver loop over both queues until stopped() (or every queue is done). */
  run(): void {
    this.loop.run();
  }

  /** Driver, endpoint and loop counters as plain numbers (`drv.` and `endpointPrefix` prefixes). */
  extra(endpointPrefix = 'guest.', out: Record<string, number> = {}): Record<string, number> {
    Object.assign(out, this.driver.flatStats('drv.'), endpointStats(this.endpoint.stats, endpointPrefix));
    out.injectedBadTx = this.injectedBadTx;
    this.loop.toExtra(out);
    return out;
  }
}

/**
 * Tracing: records a driver queue's interrupts switching on or off (transitions only; the
 * record before the driver sleeps also stamps its queued reap points).
 */
function irqOn(tr: NetObserver, q: DriverVirtqueue<number>, queue: number, on: boolean): void {
  if (q.interruptsEnabled !== on) tr.notifications(on, queue);
}

/** An endpoint's counters with a prefix (`guest.framesIn`, ...). */
export function endpointStats(stats: EndpointStats, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) out[prefix + k] = v;
  return out;
}
