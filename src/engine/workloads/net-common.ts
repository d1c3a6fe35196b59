// What the net workloads share: their parameters, the notification policy they run under (a
// src/policy preset or config: `preset` / `policy` params, default 'vhost'), the negotiated
// feature set both sides derive from both, the addresses of guest and host, and the two side
// loops. The guest side is the one driver service (NetDriverService), the host side the one
// device service (NetDeviceService), here on Atomics doorbells. Each side's work is small named
// steps — guest: pollRx, reapTx, emitTx (fill), publish/kick; host: drainTx, fillRx,
// publish/interrupt — driven by the policy layer's DriverLoop (guest, both queues in one
// thread) and DeviceLoop (host), which own disable →
// drain → enable → fence → re-check → sleep (virtio 1.2 §2.7.14), the tx mitigation timers,
// interrupt rules, rx kick suppression, busy polling, the QEMU-2008 global lock and counters.
// Queue 0 is rx, queue 1 tx (§5.1.2). Kicks carry their queue index through two shared counters
// (the QueueNotify register, §4.2.2.2), so an rx refill kick never arms the tx timer.
//
// Tracing (ctx.tracer, docs/tracing.md "virtio-net"): every guest → host frame on the tx queue
// is a traced packet, its identity its avail position counted from 0 (NetDriver numbers the
// frames it adds, NetDevice the chains it pops: the same order). NetDriver records add and
// reap, NetDevice pop, done and drops; this file adds the loop-level points for the tx queue
// (publish, kick, used, interrupt, both wakes) and the policy events (notifications on/off per
// queue, tx timer armed/fired, ring full). Untraced, the callbacks are the plain ones.

import { Arena } from '../../memory/index.js';
import { openDeviceQueue, openDriverQueue, type DeviceVirtqueue, type DriverVirtqueue } from '../../virtqueue/index.js';
import { NetF, VirtioF, negotiate } from '../../net/features.js';
import { NET_DEVICE_FEATURES, NetDevice } from '../../net/device.js';
import { NetDeviceService, txDescsPerFrame } from '../../net/device-service.js';
import type { NetDriver, TxLayout, RxBufferMode } from '../../net/driver.js';
import { NetDriverService, endpointStats, txLayoutOf } from '../../net/driver-service.js';
import type { NetEndpoint } from '../../net/endpoint.js';
import { macFromString, ipv4FromString, ipv6FromString } from '../../net/frames/index.js';
import { HostStack } from '../../backend/host-stack.js';
import { PcapTeePort } from '../../backend/pcap-tee.js';
import { openPcapFile, type PcapFile } from '../../backend/pcap-file.js';
import type { NetPort } from '../../net/port.js';
import { BIG_LOCK_WORDS, bigLockFor, type BigLock, DeviceLoop, DriverLoop, performanceClock, resolvePolicy, type PolicyConfig } from '../../policy/index.js';
import { layoutOf } from '../setup.js';
import type { SideContext } from '../side.js';

export const GUEST_MAC = macFromString('52:54:00:12:34:56');
export const HOST_MAC = macFromString('52:54:00:ab:cd:ef');
export const GUEST_IP = ipv4FromString('10.0.2.15');
export const HOST_IP = ipv4FromString('10.0.2.2');
export const GUEST_IP6 = ipv6FromString('fd00::15');
export const HOST_IP6 = ipv6FromString('fd00::2');
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;

/**
 * Bytes at the arena's base shared by both sides for control words (one cache line): the global
 * lock (BIG_LOCK_WORDS Int32) and one kick counter per queue (the QueueNotify register's
 * payload). The guest's buffers start after it.
 */
const CTRL_BYTES = 64;
const KICK_WORD0 = BIG_LOCK_WORDS;
const GUEST_THREAD_ID = 1;
const HOST_THREAD_ID = 2;
const PAGE = 4096;

export interface NetParams {
  direction: 'g2h' | 'h2g';
  gso: boolean;
  mergeable: boolean;
  /** Offer/accept CSUM and GUEST_CSUM (default true; GSO needs it). */
  csum: boolean;
  mtu: number;
  warmupMs: number;
  verify: boolean;
  eventIdx: boolean;
  /** Frames (host) or chains (guest) handled per step before publishing. */
  budget: number;
  txLayout: TxLayout;
  rxMode: RxBufferMode | undefined;
  /** Host stack takes GSO frames (default true); false exercises the device's software GSO. */
  backendGso: boolean;
  /** Host side: record every frame through a pcap tee into this file (default: none). */
  pcapPath: string;
  /** With pcapPath: record GSO frames as their MSS segments (default false). */
  pcapSegmentGso: boolean;
  /** Guest side, for hostile-input tests: also send one malformed frame every N frames (0 = never). */
  injectBadTxEvery: number;
  /** The notification policy both loops run under, after the overrides below. */
  policy: PolicyConfig;
  /**
   * Policy settings that this run does not apply as the policy says, each with why (explicit
   * params or the engine's queue plan win; a setting the net path cannot express). Reported in
   * SideStats.extra as `policyNotApplied.<field>` = 1 and in docs/net.md.
   */
  notApplied: Record<string, string>;
}

function boolParam(ctx: SideContext, name: string, fallback: boolean): boolean {
  const v = ctx.params[name];
  return typeof v === 'boolean' ? v : fallback;
}

/** Resolves the `policy` (object or JSON) or `preset` (name, default 'vhost') param. */
export function netPolicy(ctx: SideContext): PolicyConfig {
  const raw = ctx.params.policy;
  if (raw !== undefined) {
    if (typeof raw !== 'string' && (typeof raw !== 'object' || raw === null)) throw new RangeError('net: policy must be a JSON string or an object');
    return resolvePolicy(raw as string | Record<string, unknown>);
  }
  return resolvePolicy(ctx.strParam('preset', 'vhost'));
}

export { txLayoutOf };

export function netParams(ctx: SideContext, defaults: { gso?: boolean } = {}): NetParams {
  const direction = ctx.strParam('direction', 'g2h');
  if (direction !== 'g2h' && direction !== 'h2g') throw new RangeError(`net: direction must be 'g2h' or 'h2g' (got ${direction})`);
  const mtu = ctx.numParam('mtu', 1500);
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 9000) throw new RangeError(`net: mtu must be an integer in 576..9000 (got ${mtu})`);
  let policy = netPolicy(ctx);
  const notApplied: Record<string, string> = {};
  const d = policy.dataPath;
  const txLayout = ctx.strParam('txLayout', txLayoutOf(policy));
  if (txLayout !== 'inline' && txLayout !== 'header-apart' && txLayout !== 'pages') throw new RangeError(`net: txLayout must be inline, header-apart or pages`);
  if (ctx.params.txLayout !== undefined && txLayout !== txLayoutOf(policy)) notApplied['dataPath.headerSeparate'] = `txLayout param '${txLayout}' overrides the policy's layout`;
  if (d.segmentBytes !== 0 && d.segmentBytes !== PAGE) notApplied['dataPath.segmentBytes'] = `NetDriver splits frames into ${PAGE}-byte pages, not ${d.segmentBytes}`;
  if (d.segmentBytes !== 0 && !d.headerSeparate) notApplied['dataPath.headerSeparate'] = 'the pages layout always puts the header in its own descriptor';
  const rxMode = ctx.params.rxMode;
  if (rxMode !== undefined && rxMode !== 'mergeable' && rxMode !== 'big' && rxMode !== 'small') throw new RangeError('net: rxMode must be mergeable, big or small');
  const gso = boolParam(ctx, 'gso', defaults.gso ?? d.gso);
  if (gso !== d.gso) notApplied['dataPath.gso'] = `gso param ${gso} overrides the policy's ${d.gso}`;
  const mergeable = boolParam(ctx, 'mergeable', d.mergeableRxBuffers);
  if (mergeable !== d.mergeableRxBuffers) notApplied['dataPath.mergeableRxBuffers'] = `mergeable param ${mergeable} overrides the policy's ${d.mergeableRxBuffers}`;
  const plan = ctx.setup.queues;
  if (plan.length < 2) throw new RangeError('net: needs two queues (queues: [{size}, {size}]: 0 = rx, 1 = tx)');
  if (plan[TX_QUEUE]!.size !== d.txRingSize) notApplied['dataPath.txRingSize'] = `the engine planned a ${plan[TX_QUEUE]!.size}-entry tx ring, the policy says ${d.txRingSize}`;
  if (plan[RX_QUEUE]!.size !== d.rxRingSize) notApplied['dataPath.rxRingSize'] = `the engine planned a ${plan[RX_QUEUE]!.size}-entry rx ring, the policy says ${d.rxRingSize}`;
  // Event idx follows the interrupt mode; an explicit eventIdx param wins (false turns the
  // eventIdx mode into the flags rule, as a driver that did not accept the feature gets).
  const policyEventIdx = policy.interrupts.mode === 'eventIdx';
  const eventIdx = boolParam(ctx, 'eventIdx', policyEventIdx);
  if (eventIdx !== policyEventIdx) {
    notApplied['interrupts.mode'] = eventIdx
      ? `eventIdx param true: VIRTIO_F_EVENT_IDX is negotiated under the policy's ${policy.interrupts.mode} rule, so used_event/avail_event suppression also applies`
      : `eventIdx param false: VIRTIO_F_EVENT_IDX not negotiated, the flags rule replaces eventIdx`;
    if (!eventIdx) policy = resolvePolicy({ ...policy, interrupts: { ...policy.interrupts, mode: 'flags', driverEnable: 'immediate' } } as unknown as Record<string, unknown>);
  }
  return {
    direction,
    gso,
    mergeable,
    csum: boolParam(ctx, 'csum', true) || gso,
    mtu,
    warmupMs: ctx.numParam('warmupMs', 0),
    verify: boolParam(ctx, 'verify', false),
    eventIdx,
    budget: Math.max(1, ctx.numParam('budget', 64)),
    txLayout,
    rxMode: rxMode as RxBufferMode | undefined,
    backendGso: boolParam(ctx, 'backendGso', true),
    pcapPath: ctx.strParam('pcapPath', ''),
    pcapSegmentGso: boolParam(ctx, 'pcapSegmentGso', false),
    injectBadTxEvery: Math.max(0, ctx.numParam('injectBadTxEvery', 0)),
    policy,
    notApplied,
  };
}

/** `policyNotApplied.<field>` = 1 for each setting the run did not apply (see NetParams.notApplied). */
export function notAppliedExtra(p: NetParams): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(p.notApplied)) out[`policyNotApplied.${k}`] = 1;
  return out;
}

/** The control words at the arena base: the global lock and the per-queue kick counters. */
function ctrlWords(ctx: SideContext): Int32Array<SharedArrayBuffer> {
  const r = ctx.mem.region(ctx.setup.arenaBase, CTRL_BYTES);
  if (!(r.buffer instanceof SharedArrayBuffer)) throw new RangeError('net: guest RAM must be shared');
  return new Int32Array(r.buffer, r.byteOffset + (ctx.setup.arenaBase - r.guestAddr), CTRL_BYTES / 4);
}

function bigLock(ctx: SideContext, p: NetParams, threadId: number, words: Int32Array<SharedArrayBuffer>): BigLock | null {
  return bigLockFor(p.policy.dataPath, words.subarray(0, BIG_LOCK_WORDS) as Int32Array<SharedArrayBuffer>, threadId);
}

/** The feature set both sides agree on: what the device offers ∩ what the driver accepts. */
export function netFeatures(p: NetParams, indirect: boolean): bigint {
  const offered = NET_DEVICE_FEATURES;
  let accepted = VirtioF.VERSION_1 | NetF.MAC | NetF.MTU | NetF.STATUS;
  if (p.eventIdx) accepted |= VirtioF.EVENT_IDX;
  if (indirect) accepted |= VirtioF.INDIRECT_DESC;
  if (p.csum) accepted |= NetF.CSUM | NetF.GUEST_CSUM;
  if (p.gso) accepted |= NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.GUEST_TSO4 | NetF.GUEST_TSO6;
  if (p.mergeable) accepted |= NetF.MRG_RXBUF;
  const r = negotiate(offered, accepted);
  if (!r.ok) throw r.error;
  return r.features;
}

// ---------------------------------------------------------------- guest side

/** The engine's guest side: the one driver (NetDriverService: NetDriver + the guest's NetEndpoint + DriverLoop) on the shared rings. */
export class GuestNet {
  readonly service: NetDriverService;
  readonly driver: NetDriver;
  readonly endpoint: NetEndpoint;
  readonly loop: DriverLoop;
  readonly lock: BigLock | null;

  constructor(
    readonly ctx: SideContext,
    readonly p: NetParams,
    readonly features: bigint,
    hooks: LoopHooks = {},
  ) {
    const plans = ctx.setup.queues;
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
    const q = (i: number): DriverVirtqueue<number> => {
      const plan = plans[i]!;
      return openDriverQueue<number>(ctx.mem, layoutOf(plan), { index: i, eventIdx, indirect, indirectArea: plan.indirectArea, indirectMaxSegments: plan.indirectMaxSegments, inOrder: plan.inOrder ?? false });
    };
    const words = ctrlWords(ctx);
    const arena = new Arena(ctx.mem, ctx.setup.arenaBase + CTRL_BYTES, ctx.setup.arenaBytes - CTRL_BYTES);
    const budgetBytes = Math.floor(ctx.setup.arenaBytes * 0.45);
    this.lock = bigLock(ctx, p, GUEST_THREAD_ID, words);
    const t0 = performance.now();
    this.service = new NetDriverService({
      mem: ctx.mem,
      arena,
      rxq: q(RX_QUEUE),
      txq: q(TX_QUEUE),
      features,
      endpoint: { mac: GUEST_MAC, ip: GUEST_IP, ip6: GUEST_IP6, peerMac: HOST_MAC, peerIp: HOST_IP, peerIp6: HOST_IP6, mtu: p.mtu },
      policy: p.policy,
      kick: ctx.kick,
      irq: ctx.irq,
      lock: this.lock,
      stopped: () => ctx.stopped,
      // Pairs with the device's Atomics.load of the same word before it looks at the rings.
      beforeKick: (queue) => void Atomics.add(words, KICK_WORD0 + queue, 1),
      mtu: p.mtu,
      txLayout: p.txLayout,
      ...(p.rxMode !== undefined ? { rxMode: p.rxMode } : {}),
      ...(p.policy.dataPath.mergeableBufBytes !== undefined ? { mergeableBufBytes: p.policy.dataPath.mergeableBufBytes } : {}),
      budget: p.budget,
      // dataPath.rxPoolKiB bounds the rx pool below the budget (a what-if of the ring-size rows).
      rxMemoryBytes: Math.min(budgetBytes, (p.policy.dataPath.rxPoolKiB ?? Infinity) * 1024),
      txMemoryBytes: budgetBytes,
      tracer: ctx.tracer,
      injectBadTxEvery: p.injectBadTxEvery,
      onIteration: () => {
        maybeOpenWindow(ctx, t0, p.warmupMs);
        hooks.tick?.();
        if (hooks.done?.() === true) ctx.block.stop();
      },
      ...(hooks.deadlineMs !== undefined ? { deadlineMs: hooks.deadlineMs } : {}),
      rxIndex: RX_QUEUE,
      txIndex: TX_QUEUE,
    });
    this.driver = this.service.driver;
    this.endpoint = this.service.endpoint;
    this.loop = this.service.loop;
  }

  /** Malformed frames sent (injectBadTxEvery). */
  get injectedBadTx(): number {
    return this.service.injectedBadTx;
  }

  /** "Poll rx": NAPI poll (frames go to the endpoint), refilling as the driver's threshold says. */
  pollRx(budget = this.p.budget): number {
    return this.service.pollRx(budget);
  }

  /** "Reap tx": take back completed tx buffers (on transmit, Linux's classic way). */
  reapTx(): number {
    return this.service.reapTx();
  }

  /** "Emit tx": build up to `max` frames the endpoint wants to send straight into tx buffers (not published). */
  emitTx(max = this.p.budget): number {
    return this.service.emitTx(max);
  }

  /** Runs the policy's driver loop over both queues until the run stops. */
  run(): void {
    this.service.run();
  }

  extra(): Record<string, number> {
    const out: Record<string, number> = {
      ...this.driver.flatStats('drv.'),
      ...endpointStats(this.endpoint.stats, 'guest.'),
      ...notAppliedExtra(this.p),
      injectedBadTx: this.injectedBadTx,
    };
    if (this.ctx.tracer.enabled) out.traceIdentityLost = this.driver.traceIdentityLost ? 1 : 0;
    this.loop.toExtra(out);
    return out;
  }
}

// ---------------------------------------------------------------- host side

/** The engine's host side: the one device data path (NetDeviceService) on the shared rings, the host stack behind it. */
export class HostNet {
  readonly service: NetDeviceService;
  readonly device: NetDevice;
  readonly stack: HostStack;
  readonly port: NetPort;
  readonly rxq: DeviceVirtqueue;
  readonly txq: DeviceVirtqueue;
  readonly loop: DeviceLoop;
  readonly lock: BigLock | null;
  private readonly pcap: PcapFile | null;

  constructor(
    readonly ctx: SideContext,
    readonly p: NetParams,
    readonly features: bigint,
    hooks: LoopHooks = {},
  ) {
    const plans = ctx.setup.queues;
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
    this.rxq = openDeviceQueue(ctx.mem, layoutOf(plans[RX_QUEUE]!), { index: RX_QUEUE, eventIdx, indirect, inOrder: plans[RX_QUEUE]!.inOrder ?? false });
    this.txq = openDeviceQueue(ctx.mem, layoutOf(plans[TX_QUEUE]!), { index: TX_QUEUE, eventIdx, indirect, inOrder: plans[TX_QUEUE]!.inOrder ?? false, batchUsed: true });
    this.stack = new HostStack({
      mac: HOST_MAC,
      ip: HOST_IP,
      ip6: HOST_IP6,
      peerMac: GUEST_MAC,
      peerIp: GUEST_IP,
      peerIp6: GUEST_IP6,
      mtu: p.mtu,
      partialCsum: (features & NetF.GUEST_CSUM) !== 0n,
      gso: (features & NetF.GUEST_TSO4) !== 0n,
      acceptsGso: p.backendGso,
    });
    this.pcap = p.pcapPath !== '' ? openPcapFile(p.pcapPath) : null;
    const words = ctrlWords(ctx);
    this.lock = bigLock(ctx, p, HOST_THREAD_ID, words);
    const t0 = performance.now();
    this.service = new NetDeviceService({
      mem: ctx.mem,
      rxq: this.rxq,
      txq: this.txq,
      features,
      port: this.pcap ? new PcapTeePort(this.stack, this.pcap.writer, { segmentGso: p.pcapSegmentGso }) : this.stack,
      policy: p.policy,
      kick: ctx.kick,
      irq: ctx.irq,
      lock: this.lock,
      stopped: () => ctx.stopped,
      // Pairs with the guest's Atomics.add before it rings the kick doorbell.
      kicks: (queue) => Atomics.load(words, KICK_WORD0 + queue),
      config: { mac: GUEST_MAC, mtu: p.mtu, linkUp: true },
      txDescsPerFrame: txDescsPerFrame(p.txLayout, features, p.mtu),
      tracer: ctx.tracer,
      onIteration: () => {
        maybeOpenWindow(ctx, t0, p.warmupMs);
        const failure = this.failure;
        if (failure !== null) {
          ctx.error(failure);
          ctx.block.stop();
          return;
        }
        hooks.tick?.();
        if (hooks.done?.() === true) ctx.block.stop();
      },
      ...(hooks.deadlineMs !== undefined ? { deadlineUs: () => hooks.deadlineMs!() * 1000 } : {}),
    });
    this.device = this.service.device;
    this.port = this.service.port;
    this.loop = this.service.loop;
  }

  get endpoint(): NetEndpoint {
    return this.stack.endpoint;
  }

  /** "Drain tx": frames from the guest to the host stack (used entries added, not published). */
  drainTx(budget = this.p.budget): number {
    return this.device.processTx(budget);
  }

  /** "Fill rx": frames from the host stack into the guest's rx buffers (not published). */
  fillRx(budget = this.p.budget): number {
    return this.device.fillRx(budget);
  }

  /** Runs the policy's device loop over both queues until the run stops. */
  run(): void {
    this.service.run();
  }

  /** The ring violation that broke a queue, as a sentence, or null. */
  get failure(): string | null {
    return this.service.failure;
  }

  /** Closes the pcap file, if any (after the loop ends). */
  close(): void {
    this.pcap?.close();
  }

  extra(): Record<string, number> {
    const tee = this.pcap !== null ? this.port : null;
    const pcap: Record<string, number> = tee instanceof PcapTeePort ? { pcapRecorded: tee.recorded, pcapErrors: tee.recordErrors } : {};
    const out: Record<string, number> = { ...this.device.flatStats('dev.'), ...endpointStats(this.endpoint.stats, 'host.'), ...notAppliedExtra(this.p), ...pcap };
    if (this.ctx.tracer.enabled) out.traceIdentityLost = this.device.traceIdentityLost ? 1 : 0;
    this.loop.toExtra(out);
    return out;
  }
}

/** Opens the measurement window once warm-up has passed. */
export function maybeOpenWindow(ctx: SideContext, t0: number, warmupMs: number): void {
  if (!ctx.windowIsOpen && performance.now() - t0 >= warmupMs) ctx.openWindow();
}

/** Either side, as the workloads drive it. */
export interface NetSide {
  readonly endpoint: NetEndpoint;
  run(): void;
  extra(): Record<string, number>;
  close?(): void;
}

export interface LoopHooks {
  /** Runs at the top of each loop iteration (after the previous pass's input, before output). */
  tick?: () => void;
  /** Checked each iteration; true stops the run for both sides. */
  done?: () => boolean;
  /** The side's own wake-up time (performance.now() ms), e.g. a ping timeout. */
  deadlineMs?: () => number;
}

/** Builds the side for `role` with the loop hooks. */
export function netSide(ctx: SideContext, role: 'guest' | 'host', p: NetParams, features: bigint, hooks: LoopHooks): GuestNet | HostNet {
  return role === 'guest' ? new GuestNet(ctx, p, features, hooks) : new HostNet(ctx, p, features, hooks);
}
