// What the net workloads share: their parameters, the negotiated feature set both sides derive
// from them, the addresses of guest and host, and the two side loops built from small named
// steps (guest: poll rx, reap tx, emit tx, publish & maybe kick, sleep until interrupt; host:
// drain tx, fill rx, publish & maybe interrupt, sleep until kick). Queue 0 is rx, queue 1 tx
// (virtio 1.2 §5.1.2). The loops follow the spec's disable → process → enable → re-check → sleep
// pattern (§2.7.14) with event idx on by default; a notification policy can later replace the
// step order and the sleep decisions without touching NetDevice or NetDriver.

import { Arena } from '../../memory/index.js';
import { DeviceQueue, DriverQueue } from '../../virtqueue/index.js';
import { NetF, VirtioF, negotiate } from '../../net/features.js';
import { NetDevice } from '../../net/device.js';
import { NetDriver, type TxLayout, type RxBufferMode } from '../../net/driver.js';
import { NetEndpoint } from '../../net/endpoint.js';
import { emptyNetHdr, NetHdrFlags, type VirtioNetHdr } from '../../net/header.js';
import { macFromString, ipv4FromString, ipv6FromString } from '../../net/frames/index.js';
import { HostStack } from '../../backend/host-stack.js';
import { PcapTeeBackend } from '../../backend/pcap-tee.js';
import { openPcapFile, type PcapFile } from '../../backend/pcap-file.js';
import type { NetBackend } from '../../backend/types.js';
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
}

function boolParam(ctx: SideContext, name: string, fallback: boolean): boolean {
  const v = ctx.params[name];
  return typeof v === 'boolean' ? v : fallback;
}

export function netParams(ctx: SideContext, defaults: { gso: boolean }): NetParams {
  const direction = ctx.strParam('direction', 'g2h');
  if (direction !== 'g2h' && direction !== 'h2g') throw new RangeError(`net: direction must be 'g2h' or 'h2g' (got ${direction})`);
  const mtu = ctx.numParam('mtu', 1500);
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 9000) throw new RangeError(`net: mtu must be an integer in 576..9000 (got ${mtu})`);
  const txLayout = ctx.strParam('txLayout', 'inline');
  if (txLayout !== 'inline' && txLayout !== 'header-apart' && txLayout !== 'pages') throw new RangeError(`net: txLayout must be inline, header-apart or pages`);
  const rxMode = ctx.params.rxMode;
  if (rxMode !== undefined && rxMode !== 'mergeable' && rxMode !== 'big' && rxMode !== 'small') throw new RangeError('net: rxMode must be mergeable, big or small');
  const gso = boolParam(ctx, 'gso', defaults.gso);
  const plan = ctx.setup.queues;
  if (plan.length < 2) throw new RangeError('net: needs two queues (queues: [{size}, {size}]: 0 = rx, 1 = tx)');
  return {
    direction,
    gso,
    mergeable: boolParam(ctx, 'mergeable', true),
    csum: boolParam(ctx, 'csum', true) || gso,
    mtu,
    warmupMs: ctx.numParam('warmupMs', 0),
    verify: boolParam(ctx, 'verify', false),
    eventIdx: boolParam(ctx, 'eventIdx', true) || plan[0]!.eventIdx,
    budget: Math.max(1, ctx.numParam('budget', 64)),
    txLayout,
    rxMode: rxMode as RxBufferMode | undefined,
    backendGso: boolParam(ctx, 'backendGso', true),
    pcapPath: ctx.strParam('pcapPath', ''),
    pcapSegmentGso: boolParam(ctx, 'pcapSegmentGso', false),
    injectBadTxEvery: Math.max(0, ctx.numParam('injectBadTxEvery', 0)),
  };
}

/** The feature set both sides agree on: what the device offers ∩ what the driver accepts. */
export function netFeatures(p: NetParams, indirect: boolean): bigint {
  const offered =
    VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VirtioF.INDIRECT_DESC | NetF.MAC | NetF.MTU | NetF.STATUS | NetF.CSUM | NetF.GUEST_CSUM |
    NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.MRG_RXBUF;
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

/** Malformed tx frames for hostile-input runs: each must be dropped by the device. */
const BAD_TX: { hdr: Partial<VirtioNetHdr>; len: number }[] = [
  { hdr: { flags: NetHdrFlags.DATA_VALID }, len: 60 }, // rx-only-flags
  { hdr: { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 5000, csumOffset: 6 }, len: 60 }, // csum-start-past-frame
  { hdr: { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 40 }, len: 60 }, // csum-offset-past-frame
  { hdr: { gsoType: 2, gsoSize: 100, flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 16 }, len: 60 }, // gso-type-unknown
  { hdr: {}, len: 10 }, // frame-too-short
  { hdr: {}, len: 9000 }, // frame-too-long
];

export class GuestNet {
  readonly driver: NetDriver;
  readonly endpoint: NetEndpoint;
  private readonly hdr = emptyNetHdr();
  private readonly publishEvery: number;
  private framesSinceBad = 0;
  /** Malformed frames sent (injectBadTxEvery). */
  injectedBadTx = 0;

  constructor(
    readonly ctx: SideContext,
    readonly p: NetParams,
    readonly features: bigint,
  ) {
    const plans = ctx.setup.queues;
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
    const q = (i: number): DriverQueue<number> => {
      const plan = plans[i]!;
      return new DriverQueue<number>(ctx.mem, layoutOf(plan), { index: i, eventIdx, indirect, indirectArea: plan.indirectArea, indirectMaxSegments: plan.indirectMaxSegments });
    };
    const arena = new Arena(ctx.mem, ctx.setup.arenaBase, ctx.setup.arenaBytes);
    const budgetBytes = Math.floor(ctx.setup.arenaBytes * 0.45);
    this.endpoint = new NetEndpoint({
      mac: GUEST_MAC,
      ip: GUEST_IP,
      ip6: GUEST_IP6,
      peerMac: HOST_MAC,
      peerIp: HOST_IP,
      peerIp6: HOST_IP6,
      mtu: p.mtu,
      partialCsum: (features & NetF.CSUM) !== 0n,
      gso: (features & NetF.HOST_TSO4) !== 0n,
    });
    const ep = this.endpoint;
    this.driver = new NetDriver({
      mem: ctx.mem,
      arena,
      features,
      rxq: q(RX_QUEUE),
      txq: q(TX_QUEUE),
      mtu: p.mtu,
      txLayout: p.txLayout,
      ...(p.rxMode !== undefined ? { rxMode: p.rxMode } : {}),
      rxMemoryBytes: budgetBytes,
      txMemoryBytes: budgetBytes,
      onReceive: (bytes, off, len, hdr) => ep.input(bytes, off, len, hdr),
    });
    this.publishEvery = Math.min(32, plans[TX_QUEUE]!.size);
    this.driver.disableTxInterrupts();
  }

  /** Posts the initial rx buffers and kicks if the device asks. */
  start(): void {
    this.driver.fillRx();
    if (this.driver.flushRx()) this.ctx.kick.ring();
  }

  /** "Poll rx": NAPI poll (frames go to the endpoint), refilling as the driver's threshold says. */
  pollRx(): number {
    return this.driver.pollRx();
  }

  /** "Reap tx": take back completed tx buffers (on transmit, Linux's classic way). */
  reapTx(): number {
    return this.driver.reapTx();
  }

  /** "Emit tx": build what the endpoint wants to send straight into tx buffers, publishing in batches. */
  emitTx(): number {
    const d = this.driver;
    let n = 0;
    while (n < this.p.budget) {
      const slot = d.beginTx();
      if (slot === null) break;
      const len = this.endpoint.nextFrame(slot.bytes, slot.offset, slot.capacityBytes, this.hdr);
      if (len === 0) {
        d.cancelTx();
        break;
      }
      d.commitTx(len, this.hdr);
      if (++n % this.publishEvery === 0) this.publishAndKick();
      if (this.p.injectBadTxEvery > 0 && ++this.framesSinceBad >= this.p.injectBadTxEvery) {
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

  /** "Publish & maybe kick": make tx chains and rx buffers visible; kick when a queue asks. */
  publishAndKick(): void {
    const tx = this.driver.flushTx();
    const rx = this.driver.flushRx();
    if (tx || rx) this.ctx.kick.ring();
  }

  /** One pass of every step; returns the work done (0 = idle). */
  step(tick?: () => void): number {
    let work = this.pollRx();
    work += this.reapTx();
    tick?.();
    work += this.emitTx();
    this.publishAndKick();
    return work;
  }

  /**
   * "Sleep until interrupt": re-enable rx interrupts (and tx interrupts, delayed, when tx is
   * blocked on completions), re-check, and wait on the irq doorbell until it rings, the deadline
   * passes or the run stops. Returns false when the run stopped.
   */
  sleep(deadlineMs = Infinity): boolean {
    const d = this.driver;
    const irq = this.ctx.irq;
    const seen = irq.seq();
    const txBlocked = d.txOutstanding > 0 && this.endpoint.hasOutput;
    let ready = d.enableRxInterrupts();
    if (txBlocked) ready = d.enableTxInterrupts(true) || ready;
    if (!ready) {
      const r = irq.wait(seen, deadlineMs);
      if (r === 'stopped') return false;
    }
    d.disableRxInterrupts();
    d.disableTxInterrupts();
    return !this.ctx.stopped;
  }

  extra(): Record<string, number> {
    return { ...this.driver.flatStats('drv.'), ...endpointStats(this.endpoint, 'guest.'), injectedBadTx: this.injectedBadTx };
  }
}

// ---------------------------------------------------------------- host side

export class HostNet {
  readonly device: NetDevice;
  readonly stack: HostStack;
  readonly backend: NetBackend;
  readonly rxq: DeviceQueue;
  private readonly pcap: PcapFile | null;
  readonly txq: DeviceQueue;

  constructor(
    readonly ctx: SideContext,
    readonly p: NetParams,
    readonly features: bigint,
  ) {
    const plans = ctx.setup.queues;
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
    this.rxq = new DeviceQueue(ctx.mem, layoutOf(plans[RX_QUEUE]!), { index: RX_QUEUE, eventIdx, indirect });
    this.txq = new DeviceQueue(ctx.mem, layoutOf(plans[TX_QUEUE]!), { index: TX_QUEUE, eventIdx, indirect });
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
    this.backend = this.pcap ? new PcapTeeBackend(this.stack, this.pcap.writer, { segmentGso: p.pcapSegmentGso }) : this.stack;
    this.device = new NetDevice({ mem: ctx.mem, rxq: this.rxq, txq: this.txq, features, backend: this.backend, config: { mac: GUEST_MAC, mtu: p.mtu, linkUp: true } });
  }

  get endpoint(): NetEndpoint {
    return this.stack.endpoint;
  }

  /** "Drain tx": frames from the guest to the host stack. */
  drainTx(): number {
    return this.device.processTx(this.p.budget);
  }

  /** "Fill rx": frames from the host stack into the guest's rx buffers. */
  fillRx(): number {
    return this.device.fillRx(this.p.budget);
  }

  /** "Publish & maybe interrupt": make used elements visible; interrupt when a queue asks. */
  publishAndInterrupt(): void {
    const tx = this.device.flushTx();
    const rx = this.device.flushRx();
    if (tx || rx) this.ctx.irq.ring();
  }

  step(tick?: () => void): number {
    this.rxq.disableNotification();
    this.txq.disableNotification();
    let work = this.drainTx();
    tick?.();
    work += this.fillRx();
    this.publishAndInterrupt();
    return work;
  }

  /**
   * "Sleep until kick": re-enable tx kicks (and rx kicks when a frame waits for buffers),
   * re-check, and wait on the kick doorbell. Returns false when the run stopped.
   */
  sleep(deadlineMs = Infinity): boolean {
    const kick = this.ctx.kick;
    const seen = kick.seq();
    let ready = this.txq.enableNotification();
    if (this.stack.hasRx) ready = this.rxq.enableNotification() || ready;
    if (!ready && kick.wait(seen, deadlineMs) === 'stopped') return false;
    return !this.ctx.stopped;
  }

  /** The ring violation that broke a queue, as a sentence, or null. */
  get failure(): string | null {
    return this.device.error ? `device needs reset: ${this.device.error.message}` : null;
  }

  /** Closes the pcap file, if any (after the loop ends). */
  close(): void {
    this.pcap?.close();
  }

  extra(): Record<string, number> {
    const pcap: Record<string, number> = this.backend instanceof PcapTeeBackend ? { pcapRecorded: this.backend.recorded, pcapErrors: this.backend.recordErrors } : {};
    return { ...this.device.flatStats('dev.'), ...endpointStats(this.endpoint, 'host.'), ...pcap };
  }
}

function endpointStats(ep: NetEndpoint, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(ep.stats)) out[prefix + k] = v;
  return out;
}

/** Opens the measurement window once warm-up has passed. */
export function maybeOpenWindow(ctx: SideContext, t0: number, warmupMs: number): void {
  if (!ctx.windowIsOpen && performance.now() - t0 >= warmupMs) ctx.openWindow();
}

/** Either side's loop, as the workloads drive it. */
export interface NetSide {
  readonly endpoint: NetEndpoint;
  step(tick?: () => void): number;
  sleep(deadlineMs?: number): boolean;
  extra(): Record<string, number>;
  readonly failure?: string | null;
  close?(): void;
}

export interface LoopHooks {
  /** Runs inside each step, after input was processed and before output is built. */
  tick?: () => void;
  /** Called after each step; return true to end this side's loop. */
  done?: () => boolean;
  /** Sleep deadline (performance.now() ms), e.g. a ping timeout. */
  deadlineMs?: () => number;
}

/**
 * The side loop: step until idle, then sleep until the peer notifies (or a deadline), until the
 * run stops, `done` says so, or the device needs a reset (reported as a side error).
 */
export function runLoop(ctx: SideContext, side: NetSide, warmupMs: number, hooks: LoopHooks = {}): void {
  const t0 = performance.now();
  for (;;) {
    maybeOpenWindow(ctx, t0, warmupMs);
    const work = side.step(hooks.tick);
    const failure = side.failure ?? null;
    if (failure !== null) {
      ctx.error(failure);
      ctx.block.stop();
      return;
    }
    if (hooks.done?.() === true) return;
    if (ctx.stopped) return;
    if (work > 0) continue;
    if (!side.sleep(hooks.deadlineMs?.() ?? Infinity)) return;
  }
}
