// LoopbackNet: a small but real virtio-net device (virtio 1.2 §5.1) that sends every frame the
// driver transmits back to the driver's receive queue — a cable from the NIC to itself. It
// exists to prove the transport and the device lifecycle before the full NetDevice lands, and
// as the device of the embedding example. Config space: mac, status (LINK_UP), one queue pair,
// mtu (§5.1.4). Negotiated features configure it: EVENT_IDX and INDIRECT_DESC (through the
// queues), MRG_RXBUF (a frame may span several rx chains, num_buffers counts them), CSUM /
// GUEST_CSUM (a NEEDS_CSUM frame is passed through as NEEDS_CSUM when the driver accepted
// GUEST_CSUM, else its checksum is completed in software). Queues: 0 = receiveq, 1 = transmitq.
//
// Transmitted frames wait in a fixed backlog of slots until rx buffers exist; when the backlog is
// full the device stops taking tx chains (back-pressure, no loss). The backlog is device state:
// save() carries it, so a snapshot taken mid-stream resumes without losing or duplicating a frame.
// Runs in browser Web Workers: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import { DescriptorChain, readFromChain, writeToChain, type DeviceQueue } from '../virtqueue/index.js';
import { NetF, VirtioF } from '../net/features.js';
import { NetHdrFlags, decodeNetHdr, emptyNetHdr, encodeNetHdr, validateTxHeader, type TxDropReason } from '../net/header.js';
import { applyNeedsCsum } from '../net/gso.js';
import type { DeviceContext, VirtioDeviceBackend, VirtioDeviceKind } from './device.js';
import { NetConfigFrontend } from './net-frontend.js';

export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
const NET_HDR_BYTES = 12; // VERSION_1 is required, so always the 12-byte header (§5.1.6)
const CONFIG_BYTES = 12; // mac[6], status, max_virtqueue_pairs, mtu

export interface LoopbackNetOptions {
  /** 6 bytes; default 52:54:00:12:34:56. */
  mac?: number[];
  /** MTU advertised in config space and the largest frame payload accepted (default 1500). */
  mtu?: number;
  /** QueueNumMax of both queues (default 256). */
  queueSize?: number;
  /** Frames that may wait for rx buffers (default 64). */
  backlogFrames?: number;
  /** Frames per tx or rx pass before process() yields (default 64). */
  budget?: number;
}

/** Every feature LoopbackNet offers. */
export const LOOPBACK_NET_FEATURES =
  VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VirtioF.INDIRECT_DESC | NetF.MAC | NetF.STATUS | NetF.MTU | NetF.MRG_RXBUF | NetF.CSUM | NetF.GUEST_CSUM;

/** Emulator-thread half: identity, offered features, config space (mac, status, pairs, mtu). */
export class LoopbackNetFrontend extends NetConfigFrontend {
  constructor(opts: LoopbackNetOptions = {}) {
    const mac = opts.mac ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    if (mac.length !== 6) throw new RangeError('LoopbackNet: mac must have 6 bytes');
    // max_virtqueue_pairs is meaningful with MQ only; 1 is honest.
    super(LOOPBACK_NET_FEATURES, { mac: Uint8Array.from(mac), linkUp: true, mtu: opts.mtu ?? 1500, maxVirtqueuePairs: 1 }, opts.queueSize ?? 256, CONFIG_BYTES);
  }
}

export interface LoopbackNetStats {
  txFrames: number;
  rxFrames: number;
  rxBytes: number;
  /** Chains used per received frame beyond the first (MRG_RXBUF). */
  rxExtraBuffers: number;
  txDrops: Partial<Record<TxDropReason | 'short-header' | 'too-long-for-slot', number>>;
  rxDrops: { bufferTooSmall: number };
  checksumsCompleted: number;
}

/** Saved form of the backlog: frames as hex strings (plain data, JSON-safe). */
interface LoopbackNetState {
  backlog: { frameHex: string; flags: number; csumStart: number; csumOffset: number }[];
  stats: LoopbackNetStats;
}

function emptyStats(): LoopbackNetStats {
  return { txFrames: 0, rxFrames: 0, rxBytes: 0, rxExtraBuffers: 0, txDrops: {}, rxDrops: { bufferTooSmall: 0 }, checksumsCompleted: 0 };
}

/** Data-path half: tx chains into the backlog, backlog into rx chains. */
export class LoopbackNetBackend implements VirtioDeviceBackend {
  stats: LoopbackNetStats = emptyStats();
  private ctx: DeviceContext | null = null;
  private rx: DeviceQueue | null = null;
  private tx: DeviceQueue | null = null;
  private features = 0n;
  private mrg = false;
  private guestCsum = false;
  private readonly maxFrameBytes: number;
  private readonly slotBytes: number;
  private readonly cap: number;
  private readonly budget: number;
  // Backlog ring: `count` frames from `head`, each in its own fixed slot of `slots`.
  private readonly slots: Uint8Array;
  private readonly lens: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly csumStarts: Uint16Array;
  private readonly csumOffsets: Uint16Array;
  private head = 0;
  private count = 0;
  // avail.idx when a mergeable delivery last ran out of rx buffers half-way (-1: not starved).
  private rxStarvedAt = -1;
  private readonly chain = new DescriptorChain();
  private readonly extra: DescriptorChain[] = [];
  private readonly hdrBytes = new Uint8Array(NET_HDR_BYTES);
  private readonly hdr = emptyNetHdr();

  constructor(opts: LoopbackNetOptions = {}) {
    this.maxFrameBytes = (opts.mtu ?? 1500) + 18; // Ethernet header + one VLAN tag
    this.slotBytes = Math.ceil(this.maxFrameBytes / 8) * 8;
    this.cap = opts.backlogFrames ?? 64;
    this.budget = opts.budget ?? 64;
    this.slots = new Uint8Array(this.cap * this.slotBytes);
    this.lens = new Uint32Array(this.cap);
    this.flags = new Uint8Array(this.cap);
    this.csumStarts = new Uint16Array(this.cap);
    this.csumOffsets = new Uint16Array(this.cap);
  }

  /** Frames waiting for rx buffers. */
  get backlog(): number {
    return this.count;
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.rx = ctx.queues[RX_QUEUE] ?? null;
    this.tx = ctx.queues[TX_QUEUE] ?? null;
    this.features = ctx.features;
    this.mrg = (ctx.features & NetF.MRG_RXBUF) !== 0n;
    this.guestCsum = (ctx.features & NetF.GUEST_CSUM) !== 0n;
  }

  deactivate(): void {
    this.ctx = null;
    this.rx = null;
    this.tx = null;
    this.head = 0;
    this.count = 0; // a reset drops what was in flight (§2.4)
  }

  process(): boolean {
    const { ctx, rx, tx } = this;
    if (ctx === null || rx === null || tx === null) return false;
    const mem = ctx.mem;
    let more = false;

    // Transmit: take chains while the backlog has room.
    tx.disableNotification();
    let n = 0;
    while (this.count < this.cap && n < this.budget) {
      const c = tx.pop(this.chain);
      if (c === null) break;
      this.takeTx(mem, c);
      tx.addUsed(c.head, 0); // tx buffers are read-only: nothing written (§5.1.6.2)
      n++;
    }
    if (tx.publishUsed() > 0 && tx.needsNotification()) ctx.notifyUsed(TX_QUEUE);
    if (n === this.budget) more = true;

    // Receive: hand backlog frames to rx chains.
    this.rxStarvedAt = -1;
    let delivered = 0;
    while (this.count > 0 && delivered < this.budget) {
      if (!this.deliver(mem, rx)) break;
      delivered++;
    }
    if (rx.publishUsed() > 0 && rx.needsNotification()) ctx.notifyUsed(RX_QUEUE);
    if (delivered === this.budget && this.count > 0) more = true;

    // Re-enable and re-check (DESIGN: the device loop). tx stays quiet while the backlog is
    // full: the rx refill kick that drains it brings us back here.
    if (this.count < this.cap && tx.enableNotification()) more = true;
    if (this.count > 0) {
      const pending = rx.enableNotification();
      if (this.rxStarvedAt < 0) {
        if (pending) more = true;
      } else {
        // The buffers that are there do not hold the next frame: ask to be notified only when
        // the driver adds more (QEMU sets avail_event to the current avail.idx here).
        if (rx.enableNotificationAfter(this.rxStarvedAt)) more = true;
      }
    }
    return more;
  }

  private takeTx(mem: GuestMemory, c: DescriptorChain): void {
    const frameLen = c.readableBytes - NET_HDR_BYTES;
    if (readFromChain(mem, c, this.hdrBytes) < NET_HDR_BYTES) return this.dropTx('short-header');
    const hdr = decodeNetHdr(this.hdrBytes, 0, 'v1', this.hdr);
    if (hdr instanceof Error) return this.dropTx('short-header');
    const why = validateTxHeader(hdr, frameLen, this.features, this.maxFrameBytes, this.maxFrameBytes);
    if (why !== null) return this.dropTx(why);
    if (frameLen > this.slotBytes) return this.dropTx('too-long-for-slot');
    const slot = (this.head + this.count) % this.cap;
    const frame = this.slots.subarray(slot * this.slotBytes, slot * this.slotBytes + frameLen);
    readFromChain(mem, c, frame, NET_HDR_BYTES);
    let flags = 0;
    if (hdr.flags & NetHdrFlags.NEEDS_CSUM) {
      if (this.guestCsum) {
        flags = NetHdrFlags.NEEDS_CSUM; // the receiving driver finishes it (§5.1.6.4)
      } else if (applyNeedsCsum(frame, hdr.csumStart, hdr.csumOffset) === null) {
        this.stats.checksumsCompleted++;
      }
    }
    this.lens[slot] = frameLen;
    this.flags[slot] = flags;
    this.csumStarts[slot] = hdr.csumStart;
    this.csumOffsets[slot] = hdr.csumOffset;
    this.count++;
    this.stats.txFrames++;
  }

  private dropTx(reason: keyof LoopbackNetStats['txDrops']): void {
    this.stats.txDrops[reason] = (this.stats.txDrops[reason] ?? 0) + 1;
  }

  /** Writes the oldest backlog frame into rx chains; false when rx buffers ran out (nothing consumed). */
  private deliver(mem: GuestMemory, rx: DeviceQueue): boolean {
    const slot = this.head;
    const len = this.lens[slot]!;
    const frame = this.slots.subarray(slot * this.slotBytes, slot * this.slotBytes + len);
    const total = NET_HDR_BYTES + len;
    // A mergeable delivery that runs out of buffers half-way gives its chains back untouched
    // (DeviceQueue.unpop, QEMU's virtqueue_rewind): nothing was added to the used ring yet.
    const first = rx.pop(this.chain);
    if (first === null) return false;
    const hdr = this.hdr;
    hdr.flags = this.flags[slot]!;
    hdr.gsoType = 0;
    hdr.hdrLen = 0;
    hdr.gsoSize = 0;
    hdr.csumStart = hdr.flags ? this.csumStarts[slot]! : 0;
    hdr.csumOffset = hdr.flags ? this.csumOffsets[slot]! : 0;
    hdr.numBuffers = 1;
    if (first.writableBytes >= total) {
      encodeNetHdr(hdr, 'v1', this.hdrBytes);
      writeToChain(mem, first, this.hdrBytes);
      writeToChain(mem, first, frame, NET_HDR_BYTES);
      rx.addUsed(first.head, total);
    } else if (!this.mrg || first.writableBytes < NET_HDR_BYTES) {
      // Without MRG_RXBUF each buffer must hold a whole frame (§5.1.6.3.1): count and drop it.
      this.stats.rxDrops.bufferTooSmall++;
      rx.addUsed(first.head, 0);
    } else {
      // Mergeable: header + start in the first chain, the rest in as many more as needed.
      const firstRoom = first.writableBytes - NET_HDR_BYTES;
      let written = writeToChain(mem, first, frame.subarray(0, firstRoom), NET_HDR_BYTES);
      const firstHead = first.head;
      let chains = 0;
      while (written < len) {
        const c = this.extraChain(chains);
        if (rx.pop(c) === null) {
          rx.unpop(chains + 1); // out of rx buffers: put every chain back, retry on the next kick
          this.rxStarvedAt = rx.availIdx();
          return false;
        }
        written += writeToChain(mem, c, frame.subarray(written));
        chains++;
      }
      hdr.numBuffers = chains + 1;
      encodeNetHdr(hdr, 'v1', this.hdrBytes);
      writeToChain(mem, this.chain, this.hdrBytes);
      rx.addUsed(firstHead, NET_HDR_BYTES + firstRoom);
      let left = len - firstRoom;
      for (let i = 0; i < chains; i++) {
        const c = this.extra[i]!;
        const used = Math.min(left, c.writableBytes);
        rx.addUsed(c.head, used);
        left -= used;
      }
      this.stats.rxExtraBuffers += chains;
    }
    this.head = (this.head + 1) % this.cap;
    this.count--;
    this.stats.rxFrames++;
    this.stats.rxBytes += len;
    return true;
  }

  private extraChain(i: number): DescriptorChain {
    let c = this.extra[i];
    if (c === undefined) {
      c = new DescriptorChain();
      this.extra[i] = c;
    }
    return c;
  }

  save(): LoopbackNetState {
    const backlog: LoopbackNetState['backlog'] = [];
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.cap;
      const bytes = this.slots.subarray(slot * this.slotBytes, slot * this.slotBytes + this.lens[slot]!);
      let hex = '';
      for (let k = 0; k < bytes.length; k++) hex += (bytes[k]! < 16 ? '0' : '') + bytes[k]!.toString(16);
      backlog.push({ frameHex: hex, flags: this.flags[slot]!, csumStart: this.csumStarts[slot]!, csumOffset: this.csumOffsets[slot]! });
    }
    return { backlog, stats: JSON.parse(JSON.stringify(this.stats)) as LoopbackNetStats };
  }

  restore(state: unknown): void {
    const s = state as LoopbackNetState | null;
    if (!s || !Array.isArray(s.backlog)) return;
    this.head = 0;
    this.count = 0;
    for (const f of s.backlog.slice(0, this.cap)) {
      const len = Math.min(f.frameHex.length >> 1, this.slotBytes);
      const base = this.count * this.slotBytes;
      for (let k = 0; k < len; k++) this.slots[base + k] = parseInt(f.frameHex.substr(2 * k, 2), 16);
      this.lens[this.count] = len;
      this.flags[this.count] = f.flags;
      this.csumStarts[this.count] = f.csumStart;
      this.csumOffsets[this.count] = f.csumOffset;
      this.count++;
    }
    if (s.stats) this.stats = s.stats;
  }
}

/** The registry entry: `net-loopback`. */
export const loopbackNetKind: VirtioDeviceKind<LoopbackNetOptions> = {
  kind: 'net-loopback',
  frontend: (o) => new LoopbackNetFrontend(o),
  backend: (o) => new LoopbackNetBackend(o),
};
