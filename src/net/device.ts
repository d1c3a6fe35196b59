// The virtio-net device (host side, virtio 1.2 §5.1) over two DeviceQueues: tx chains become
// port frames, port frames become rx chains. Owns header validation on tx, software GSO
// and checksum completion for a port that cannot take them, the rx buffer rules (mergeable
// buffers with num_buffers, or one buffer per frame of at least the spec's minimum), the device
// config bytes, and counters with a reason for every dropped frame. Does not wait, sleep or ring
// doorbells: the step methods return whether the driver wants a notification and the caller's
// loop (a workload, later a notification policy) decides when to run them and how to notify.
// Guest input is hostile: a bad header or frame is a counted drop; a ring violation breaks only
// that queue (`needsReset`, DEVICE_NEEDS_RESET) and never throws out of a step method.
//
// Tracing (optional `tracer`: a NetObserver, src/net/observer.ts, such as the Tracer;
// docs/tracing.md "virtio-net"): a tx frame's identity is the number of tx chains popped before
// it, i.e. its avail ring position counted from 0, which is how the driver numbers the frames it
// adds (the device pops in avail order, §2.7.13). The device records `pop` right after each tx pop
// and `done` once the port took the frame (or it was dropped), and every drop with its reason;
// used and interrupt are the caller's loop's.

import type { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain, readChainInto, writeChainFrom, writeChainsFrom } from '../virtqueue/chain.js';
import { SubarrayCache, copyBytes } from '../memory/copy.js';
import type { DeviceVirtqueue } from '../virtqueue/queue.js';
import { VirtqueueError } from '../virtqueue/errors.js';
import { GuestMemoryError } from '../memory/errors.js';
import type { NetPort, PortRxTail } from './port.js';
import { NET_OBSERVER_OFF, NO_ID, type DropReason, type NetObserver } from './observer.js';
import { encodeNetConfig, type NetConfig } from './config.js';
import { NetError } from './errors.js';
import type { NetControl } from './control-queue.js';
import { rssInput, toeplitz } from './rss.js';
import { NetF, VirtioF } from './features.js';
import { applyNeedsCsum, gsoSegmentTcp } from './gso.js';
import {
  GsoType,
  clearNetHdr,
  copyNetHdrOffload,
  MAX_GSO_FRAME_BYTES,
  NetHdrFlags,
  decodeNetHdr,
  emptyNetHdr,
  encodeNetHdr,
  headerLayout,
  validateTxHeader,
  type NetHdrLayout,
  type TxDropReason,
  type VirtioNetHdr,
} from './header.js';

/**
 * Every feature NetDevice honours, whatever the transport (virtio 1.2 §5.1.3, §6): the ring
 * features, header validation with checksum and TCP segmentation offload both ways (software
 * GSO and checksum completion when the port cannot take them), ECN, mergeable rx buffers, and
 * the config fields MAC, STATUS and MTU. Transports offer this (minus what they withhold) and
 * add their own bits. Not here: UFO/USO (software GSO is TCP only: NET_DEVICE_UFO_FEATURES,
 * offered only when the port takes UDP GSO frames), the control queue, MQ, RSS, hash report.
 */
export const NET_DEVICE_FEATURES: bigint =
  VirtioF.VERSION_1 |
  VirtioF.EVENT_IDX |
  VirtioF.INDIRECT_DESC |
  NetF.MAC |
  NetF.STATUS |
  NetF.MTU |
  NetF.MRG_RXBUF |
  NetF.CSUM |
  NetF.GUEST_CSUM |
  NetF.HOST_TSO4 |
  NetF.HOST_TSO6 |
  NetF.HOST_ECN |
  NetF.GUEST_TSO4 |
  NetF.GUEST_TSO6 |
  NetF.GUEST_ECN;

/** UDP fragmentation offload both ways: only when the port takes UDP GSO frames (a TAP). */
export const NET_DEVICE_UFO_FEATURES: bigint = NetF.HOST_UFO | NetF.GUEST_UFO;

/**
 * Smallest gso_size the device segments in software: Linux's TCP_MIN_SND_MSS (48), the floor the
 * kernel puts under every sender's MSS since CVE-2019-11479. It bounds software GSO to about
 * 1400 segments per 64 KiB frame.
 */
export const MIN_SW_GSO_SIZE = 48;

/** Why the device dropped a frame from the guest. */
export type NetTxDrop =
  | TxDropReason
  | 'header-truncated' // the chain's readable bytes do not hold a whole virtio_net_hdr
  | 'gso-unsupported' // a negotiated GSO type the device cannot segment in software (UFO/USO)
  | 'gso-malformed' // software segmentation failed: the frame is not the TCP frame its header says
  | 'gso-size-too-small'; // software GSO with gso_size below MIN_SW_GSO_SIZE: a work bomb, not an MSS

/** Why the device dropped a frame for the guest. */
export type NetRxDrop =
  | 'rx-frame-too-short' // shorter than an Ethernet header
  | 'rx-frame-too-long' // over the limit for its kind (MTU, or 65589 with GSO)
  | 'rx-gso-not-negotiated' // a GSO frame whose GUEST_TSO4/TSO6/UFO/USO/ECN the driver did not take
  | 'rx-bad-csum-offsets' // NEEDS_CSUM with offsets outside the frame (cannot be completed)
  | 'rx-filtered-address' // the rx filter (CTRL_RX modes, MAC table) does not take its destination
  | 'rx-filtered-vlan' // the VLAN filter (CTRL_VLAN) does not take its VLAN id
  | 'rx-buffer-too-small' // without MRG_RXBUF: the next buffer cannot hold header + frame
  | 'rx-no-room'; // with MRG_RXBUF: even every descriptor of the ring would not hold it

export interface NetDeviceStats {
  txChains: number;
  txFrames: number;
  /** Frame bytes (header excluded) handed to the port, after segmentation. */
  txBytes: number;
  txGsoFrames: number;
  /** Frames software segmentation produced (for a port without GSO). */
  txSwSegments: number;
  txCsumCompleted: number;
  txDrops: Partial<Record<NetTxDrop, number>>;
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Rx chains used (more than rxFrames with mergeable buffers). */
  rxBuffers: number;
  rxCsumCompleted: number;
  /** Frames copied through the device's staging buffer first (rxStaging: the 2008 second copy). */
  rxStagedFrames: number;
  /** Times a frame waited because the driver had posted too few buffers. */
  rxStarved: number;
  /** Rx chains below the spec minimum without MRG_RXBUF, or below the header size with it. */
  rxSmallBuffers: number;
  /** Rx chains too small to hold any frame, returned with used length 0. */
  rxBuffersReturnedEmpty: number;
  rxDrops: Partial<Record<NetRxDrop, number>>;
  rxDropped: number;
  /** Ring violations (each breaks its queue). */
  queueErrors: number;
}

export type RxResult = 'delivered' | 'no-buffers' | 'dropped';

export interface NetDeviceOptions {
  mem: GuestMemory;
  /** Receive queue (device writes frames into it): virtio-net queue 0. */
  rxq: DeviceVirtqueue;
  /** Transmit queue (driver's frames): virtio-net queue 1. */
  txq: DeviceVirtqueue;
  /** The negotiated feature set (after FEATURES_OK). */
  features: bigint;
  port: NetPort;
  config?: Partial<NetConfig>;
  /** Largest non-GSO frame either way; default mtu + 14 + 4 (one VLAN tag). */
  maxFrameBytes?: number;
  /** Rx: copy each frame into device memory before the guest (the 2008 "two copies" path). */
  rxStaging?: boolean;
  /** Records tx frames' pop and done points and every drop (default NET_OBSERVER_OFF: nothing; a Tracer is one). */
  tracer?: NetObserver;
  /**
   * The device's control state (CTRL_VQ, control-queue.ts), shared by every queue pair: its rx
   * filter is applied to frames for the guest, its guest offloads limit what they may carry, and
   * its config (MAC, announce bit) is this device's config. Absent: no filter, offloads as negotiated.
   */
  control?: NetControl;
}

const DEFAULT_MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const ETH_HEADER_BYTES = 14;
const SCRATCH_BYTES = MAX_GSO_FRAME_BYTES + 64;

/** The device config with defaults filled in (MAC 52:54:00:12:34:56, link up, MTU 1500). */
export function deviceConfig(c?: Partial<NetConfig>): NetConfig {
  return {
    mac: c?.mac ?? DEFAULT_MAC.slice(),
    linkUp: c?.linkUp ?? true,
    mtu: c?.mtu ?? 1500,
    ...(c?.maxVirtqueuePairs !== undefined ? { maxVirtqueuePairs: c.maxVirtqueuePairs } : {}),
    ...(c?.speedMbps !== undefined ? { speedMbps: c.speedMbps } : {}),
    ...(c?.duplex !== undefined ? { duplex: c.duplex } : {}),
  };
}

export class NetDevice {
  readonly features: bigint;
  readonly layout: NetHdrLayout;
  readonly hdrBytes: number;
  readonly mergeable: boolean;
  readonly maxFrameBytes: number;
  readonly config: NetConfig;
  readonly stats: NetDeviceStats = {
    txChains: 0,
    txFrames: 0,
    txBytes: 0,
    txGsoFrames: 0,
    txSwSegments: 0,
    txCsumCompleted: 0,
    txDrops: {},
    txDropped: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxBuffers: 0,
    rxCsumCompleted: 0,
    rxStagedFrames: 0,
    rxStarved: 0,
    rxSmallBuffers: 0,
    rxBuffersReturnedEmpty: 0,
    rxDrops: {},
    rxDropped: 0,
    queueErrors: 0,
  };
  /** The first ring violation seen on either queue (null while healthy). */
  error: VirtqueueError | null = null;

  private readonly mem: GuestMemory;
  private readonly rxq: DeviceVirtqueue;
  private readonly txq: DeviceVirtqueue;
  private readonly port: NetPort;
  private readonly rxStaging: boolean;
  private readonly control: NetControl | null;
  /** VIRTIO_NET_F_HASH_REPORT: frames for the guest carry hash_value and hash_report (§5.1.6.4.3). */
  private readonly hashReport: boolean;
  private readonly hashScratch = new Uint8Array(40);
  private readonly rxMinBufferBytes: number;
  private readonly txChain = new DescriptorChain();
  private readonly hdrScratch = new Uint8Array(32);
  private readonly hdr: VirtioNetHdr = emptyNetHdr();
  private readonly outHdr: VirtioNetHdr = emptyNetHdr();
  private readonly frameScratch = new Uint8Array(SCRATCH_BYTES);
  private readonly segScratch = new Uint8Array(SCRATCH_BYTES);
  private readonly rxScratch = new Uint8Array(SCRATCH_BYTES);
  // Views of the frames the port hands in, copied into rx buffers in recurring runs (a host
  // stack's staging buffer, a TAP's read buffer): 64 slots, so at most 64 of a port's arrays
  // are kept alive by it.
  private readonly rxSourceViews = new SubarrayCache(6);
  // Rx chains popped but not yet filled: a mergeable frame may need more buffers than are there.
  // Both lists are arrays with their own counts, never shortened: an array whose length drops
  // to 0 loses its backing store, and the next push allocates one (a frame's worth per echo).
  private readonly held: DescriptorChain[] = [];
  private heldCount = 0;
  private readonly spare: DescriptorChain[] = [];
  private spareCount = 0;
  private heldBytes = 0;
  private readonly segmentSink: (buf: Uint8Array, len: number) => void;
  private readonly tracer: NetObserver;
  private readonly tracing: boolean;
  /** Tracing: identity of the tx frame being handled (NO_ID when identities are lost). */
  private txSeq = NO_ID;
  /** Tracing: the pop count disagreed with the tx avail position; tx packet tracing stopped. */
  traceIdentityLost = false;

  constructor(opts: NetDeviceOptions) {
    this.mem = opts.mem;
    this.rxq = opts.rxq;
    this.txq = opts.txq;
    this.features = opts.features;
    this.port = opts.port;
    this.layout = headerLayout(opts.features);
    this.hdrBytes = this.layout === 'legacy' ? 10 : this.layout === 'hash' ? 20 : 12;
    this.mergeable = (opts.features & NetF.MRG_RXBUF) !== 0n;
    const mtu = opts.config?.mtu ?? 1500;
    this.control = opts.control ?? null;
    this.hashReport = this.layout === 'hash';
    this.config = opts.control?.config ?? deviceConfig(opts.config);
    this.maxFrameBytes = opts.maxFrameBytes ?? mtu + ETH_HEADER_BYTES + 4;
    this.rxStaging = opts.rxStaging ?? false;
    // virtio 1.2 §5.1.6.3.1: without MRG_RXBUF, buffers of at least 1526 bytes (65562 with
    // GUEST_TSO4/TSO6/UFO); with it, each buffer at least the header.
    const bigRx = (opts.features & (NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO)) !== 0n;
    this.rxMinBufferBytes = this.mergeable ? this.hdrBytes : bigRx ? 65562 : 1526;
    this.tracer = opts.tracer ?? NET_OBSERVER_OFF;
    this.tracing = this.tracer.enabled;
    this.segmentSink = (buf, len) => {
      this.stats.txSwSegments++;
      this.toBackend(buf, 0, len, this.outHdr);
    };
  }

  /** struct virtio_net_config bytes (virtio 1.2 §5.1.4). */
  configBytes(): Uint8Array {
    return encodeNetConfig(this.config);
  }

  /** The receive queue (for the service's readiness checks). */
  get rxQueue(): DeviceVirtqueue {
    return this.rxq;
  }

  /** True once a ring violation broke a queue (the transport sets DEVICE_NEEDS_RESET). */
  get needsReset(): boolean {
    return this.error !== null;
  }

  // ---- tx: guest → port ----

  /**
   * "Drain tx": pops up to `budget` tx chains, hands each frame to the port (or drops it with a
   * reason) and adds the used element (len 0: the device writes nothing into tx buffers). Used
   * elements become visible at flushTx(). Returns the chains processed.
   */
  processTx(budget: number): number {
    if (this.txq.broken) return 0;
    let n = 0;
    try {
      while (n < budget) {
        const c = this.txq.pop(this.txChain);
        if (c === null) break;
        n++;
        if (this.tracing) this.tracePop();
        this.stats.txChains++;
        this.handleTxChain(c);
        if (this.tracing && this.txSeq !== NO_ID) this.tracer.done(this.txSeq, Math.max(0, c.readableBytes - this.hdrBytes), this.txq.index);
        this.txq.addUsed(c.head, 0);
      }
    } catch (e) {
      this.queueFailed(e, this.txq);
    }
    return n;
  }

  /** Tracing: the identity of the chain just popped (tx chains popped before it) and its pop point. */
  private tracePop(): void {
    const seq = this.stats.txChains >>> 0;
    // nextAvail has moved past the chain: its avail position is one less. A mismatch (a ring
    // restored mid-stream, a pop around this device) would pair the wrong frames: stop instead.
    if (!this.traceIdentityLost && ((this.txq.nextAvail - 1) & 0xffff) !== (seq & 0xffff)) {
      this.traceIdentityLost = true;
      this.tracer.error('identity', seq, this.txq.index);
    }
    if (this.traceIdentityLost) {
      this.txSeq = NO_ID;
      return;
    }
    this.txSeq = seq;
    this.tracer.pop(seq, this.txq.index, this.txq.availFetches);
  }

  /** "Publish tx": publishes used tx elements; true when the driver wants an interrupt. */
  flushTx(): boolean {
    if (this.txq.publishUsed() === 0) return false;
    return this.txq.needsNotification();
  }

  private handleTxChain(c: DescriptorChain): void {
    const hs = this.hdrBytes;
    if (c.readableBytes < hs) return this.dropTx('header-truncated');
    // The header may be split across descriptors (VERSION_1 implies any layout, §2.7.4.1):
    // copy it out, then the guest can no longer change what was validated.
    readChainInto(this.mem, c, this.hdrScratch, 0, hs);
    const hdr = decodeNetHdr(this.hdrScratch, 0, this.layout, this.hdr);
    if (hdr instanceof NetError) return this.dropTx('header-truncated');
    const frameLen = c.readableBytes - hs;
    const reason = validateTxHeader(hdr, frameLen, this.features, this.maxFrameBytes);
    if (reason !== null) return this.dropTx(reason);

    const gsoBase = hdr.gsoType & ~GsoType.ECN;
    const needsCsum = (hdr.flags & NetHdrFlags.NEEDS_CSUM) !== 0;
    const isGso = gsoBase !== GsoType.NONE;
    if (isGso) this.stats.txGsoFrames++;
    if (isGso && !this.port.acceptsGso) {
      if (gsoBase !== GsoType.TCPV4 && gsoBase !== GsoType.TCPV6) return this.dropTx('gso-unsupported');
      // Bounded work per chain: a 64 KiB frame with gso_size 1 would be 65 k segments (64 such
      // chains in one notify blocked the thread for seconds). No TCP sender uses an MSS this small.
      if (hdr.gsoSize < MIN_SW_GSO_SIZE) return this.dropTx('gso-size-too-small');
      const frame = this.frameView(c, hs, frameLen);
      const out = this.outHdr;
      clearNetHdr(out);
      const r = gsoSegmentTcp(frame.bytes, frame.offset, frameLen, hdr, this.segScratch, this.segmentSink);
      if (r instanceof NetError) this.dropTx('gso-malformed');
      return;
    }
    if (needsCsum && !this.port.acceptsPartialCsum) {
      // Completing the checksum writes into the frame: never into a device-readable buffer.
      const buf = this.frameScratch;
      readChainInto(this.mem, c, buf, 0, frameLen, hs);
      if (applyNeedsCsum(buf, hdr.csumStart, hdr.csumOffset, frameLen) !== null) return this.dropTx('csum-offset-past-frame');
      this.stats.txCsumCompleted++;
      const out = this.outHdr;
      copyNetHdrOffload(out, hdr);
      out.flags &= ~NetHdrFlags.NEEDS_CSUM;
      out.csumStart = 0;
      out.csumOffset = 0;
      this.toBackend(buf, 0, frameLen, out);
      return;
    }
    const frame = this.frameView(c, hs, frameLen);
    this.toBackend(frame.bytes, frame.offset, frameLen, hdr);
  }

  private toBackend(bytes: Uint8Array, offset: number, len: number, hdr: VirtioNetHdr): void {
    this.stats.txFrames++;
    this.stats.txBytes += len;
    this.port.send(bytes, offset, len, hdr);
  }

  private readonly view: { bytes: Uint8Array; offset: number } = { bytes: new Uint8Array(0), offset: 0 };

  /**
   * The frame after the header: a zero-copy view when it lies in one descriptor of one memory
   * region (the common `[hdr][frame]` or `[hdr+frame]` layouts), else a copy into scratch.
   */
  private frameView(c: DescriptorChain, hs: number, frameLen: number): { bytes: Uint8Array; offset: number } {
    const v = this.view;
    let skip = hs;
    for (let k = 0; k < c.readableCount; k++) {
      const len = c.lens[k]!;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      if (len - skip >= frameLen) {
        const addr = c.addrs[k]! + skip;
        let r = null;
        try {
          r = this.mem.region(addr, frameLen);
        } catch {
          // The buffer straddles two adjacent regions: copy it below.
        }
        if (r !== null) {
          v.bytes = r.u8;
          v.offset = addr - r.guestAddr;
          return v;
        }
      }
      break;
    }
    readChainInto(this.mem, c, this.frameScratch, 0, frameLen, hs);
    v.bytes = this.frameScratch;
    v.offset = 0;
    return v;
  }

  private dropTx(reason: NetTxDrop): void {
    this.stats.txDropped++;
    this.stats.txDrops[reason] = (this.stats.txDrops[reason] ?? 0) + 1;
    if (this.tracing) this.tracer.drop(TX_DROP_TRACE[reason], this.txSeq, this.txq.index);
  }

  // ---- rx: port → guest ----

  /**
   * "Fill rx": moves up to `budget` frames from the port into rx buffers. Stops early when the
   * port has nothing or the driver has posted too few buffers (the frame then stays in the
   * port; `rxWaitingForBuffers` is true). Used elements become visible at flushRx().
   */
  fillRx(budget: number, bufferBudget = Infinity): number {
    this.rxWaiting = false;
    let n = 0;
    // A frame over mergeable buffers takes many (a 64 KiB GSO frame, 17): `bufferBudget` also
    // ends the batch after the frame that reaches that many buffers, as vhost-net's rx counts
    // used heads (VHOST_NET_BATCH) — so the driver gets buffers back while the ring still holds some.
    const buffersEnd = this.stats.rxBuffers + bufferBudget;
    while (n < budget && this.stats.rxBuffers < buffersEnd && !this.rxq.broken) {
      // Two-part frames welcome: a port's payload goes from its own buffer into the guest's.
      const f = this.port.peekRx(true);
      if (f === null) break;
      const r = this.deliverRx(f.bytes, f.offset, f.lenBytes, f.hdr, f.tail);
      if (r === 'no-buffers') break;
      this.port.consumeRx();
      if (r === 'delivered') n++;
    }
    return n;
  }

  private rxWaiting = false;
  /** True when the last fillRx/deliverRx stopped because the driver had too few rx buffers. */
  get rxWaitingForBuffers(): boolean {
    return this.rxWaiting;
  }

  /**
   * Gives the rx chains held for a frame that did not fit yet back to the ring, untouched
   * (nothing is written into a held chain before its frame is delivered; DeviceQueue.unpop), so
   * a device state can be saved with no chain in flight. Returns how many went back.
   */
  giveBackHeldRx(): number {
    const n = this.heldCount;
    if (n === 0) return 0;
    this.rxq.unpop(n);
    this.release(n);
    return n;
  }

  /** "Publish rx": publishes used rx elements; true when the driver wants an interrupt. */
  flushRx(): boolean {
    if (this.rxq.publishUsed() === 0) return false;
    return this.rxq.needsNotification();
  }

  /**
   * Writes one frame with its offload header into rx buffers. 'no-buffers' leaves the frame with
   * the caller (retry after the driver posts more); 'dropped' means counted in rxDrops. A frame
   * in two parts (PortRxFrame.tail) is `bytes[offset…offset+len−tail.lenBytes)` then the tail;
   * `len` is the whole frame's.
   */
  deliverRx(bytes: Uint8Array, offset: number, len: number, inHdr: Readonly<VirtioNetHdr>, tail?: PortRxTail | null): RxResult {
    if (this.rxq.broken) return 'no-buffers';
    const hdr = this.outHdr;
    copyNetHdrOffload(hdr, inHdr);
    if (len < ETH_HEADER_BYTES) return this.dropRx('rx-frame-too-short');
    const ctl = this.control;
    if (tail != null) {
      if (!(tail.lenBytes > 0 && tail.lenBytes <= len - ETH_HEADER_BYTES && tail.offset >= 0 && tail.offset + tail.lenBytes <= tail.bytes.length)) {
        throw new RangeError(`deliverRx: a tail of ${tail.lenBytes} bytes at ${tail.offset} does not fit its buffer (${tail.bytes.length}) or a ${len}-byte frame`);
      }
      // What reads the frame as a whole (the rx filter, the hash, a checksum to finish, the
      // modelled staging copy) reads it joined in the scratch buffer; else head and tail are
      // written to the guest's buffers one after the other.
      const joined =
        (ctl !== null && ctl.filter.active) || this.hashReport || this.rxStaging ||
        ((hdr.flags & NetHdrFlags.NEEDS_CSUM) !== 0 && (this.rxOffloads() & NetF.GUEST_CSUM) === 0n);
      if (joined) {
        const head = len - tail.lenBytes;
        if (len > this.rxScratch.length) return this.dropRx('rx-frame-too-long');
        copyBytes(this.rxScratch, 0, bytes, offset, head);
        copyBytes(this.rxScratch, head, tail.bytes, tail.offset, tail.lenBytes);
        bytes = this.rxScratch;
        offset = 0;
        tail = null;
      }
    }
    if (ctl !== null && ctl.filter.active) {
      const v = ctl.filter.check(bytes, offset, len);
      if (v !== 'pass') return this.dropRx(v);
    }
    if (this.hashReport && ctl !== null && ctl.hashing !== null) this.reportHash(bytes, offset, len, hdr);
    const gsoBase = hdr.gsoType & ~GsoType.ECN;
    if (gsoBase !== GsoType.NONE) {
      if (!this.guestTakesGso(hdr.gsoType)) return this.dropRx('rx-gso-not-negotiated');
      if (len > MAX_GSO_FRAME_BYTES) return this.dropRx('rx-frame-too-long');
    } else if (len > this.maxFrameBytes) {
      return this.dropRx('rx-frame-too-long');
    }
    const guestCsum = (this.rxOffloads() & NetF.GUEST_CSUM) !== 0n;
    let src = bytes;
    let srcOff = offset;
    if (hdr.flags & NetHdrFlags.NEEDS_CSUM) {
      if (hdr.csumStart + hdr.csumOffset + 2 > len) return this.dropRx('rx-bad-csum-offsets');
      if (!guestCsum) {
        // The driver cannot take a partial checksum: finish it here (virtio 1.2 §5.1.6.4.1).
        const buf = this.rxScratch;
        copyBytes(buf, 0, bytes, offset, len);
        applyNeedsCsum(buf, hdr.csumStart, hdr.csumOffset, len);
        this.stats.rxCsumCompleted++;
        hdr.flags &= ~NetHdrFlags.NEEDS_CSUM;
        hdr.csumStart = 0;
        hdr.csumOffset = 0;
        src = buf;
        srcOff = 0;
      }
    }
    if (!guestCsum) hdr.flags &= ~NetHdrFlags.DATA_VALID; // DATA_VALID only with GUEST_CSUM
    hdr.flags &= NetHdrFlags.NEEDS_CSUM | NetHdrFlags.DATA_VALID;
    if (this.rxStaging && src === bytes) {
      this.stats.rxStagedFrames++;
      copyBytes(this.rxScratch, 0, bytes, offset, len);
      src = this.rxScratch;
      srcOff = 0;
    }
    try {
      return this.mergeable ? this.writeMergeable(src, srcOff, len, hdr, tail ?? null) : this.writeOne(src, srcOff, len, hdr, tail ?? null);
    } catch (e) {
      this.queueFailed(e, this.rxq);
      return 'no-buffers';
    }
  }

  /**
   * hash_value and hash_report for a frame to the guest under HASH_CONFIG / RSS_CONFIG's types
   * and key (§5.1.6.4.3); a frame no enabled type applies to keeps VIRTIO_NET_HASH_REPORT_NONE.
   */
  private reportHash(bytes: Uint8Array, offset: number, len: number, hdr: VirtioNetHdr): void {
    const h = this.control!.hashing!;
    const input = rssInput(bytes, offset, len, h.hashTypes, this.hashScratch);
    if (input === null) return;
    hdr.hashValue = toeplitz(h.key, this.hashScratch, input.lenBytes);
    hdr.hashReport = input.report;
  }

  /** Receive offloads in effect: as negotiated, or as CTRL_GUEST_OFFLOADS_SET last set them (§5.1.6.5.6). */
  private rxOffloads(): bigint {
    return this.control !== null ? this.control.guestOffloads : this.features;
  }

  private guestTakesGso(gsoType: number): boolean {
    const f = this.rxOffloads();
    if (gsoType & GsoType.ECN && !(f & NetF.GUEST_ECN)) return false;
    switch (gsoType & ~GsoType.ECN) {
      case GsoType.TCPV4:
        return (f & NetF.GUEST_TSO4) !== 0n;
      case GsoType.TCPV6:
        return (f & NetF.GUEST_TSO6) !== 0n;
      case GsoType.UDP:
        return (f & NetF.GUEST_UFO) !== 0n;
      case GsoType.UDP_L4:
        return (f & (NetF.GUEST_USO4 | NetF.GUEST_USO6)) !== 0n;
      default:
        return false;
    }
  }

  /** Pops one more rx chain into the held list; false when the ring is empty. */
  private holdOne(): boolean {
    // A spare chain stays in the spare list until the pop succeeds (a starved ring must not
    // cost an object per attempt).
    const out = this.spareCount > 0 ? this.spare[this.spareCount - 1]! : new DescriptorChain();
    const c = this.rxq.pop(out);
    if (c === null) {
      if (this.spareCount === 0) this.spare[this.spareCount++] = out;
      return false;
    }
    if (this.spareCount > 0) this.spareCount--;
    if (c.writableBytes < this.rxMinBufferBytes) this.stats.rxSmallBuffers++;
    this.held[this.heldCount++] = c;
    this.heldBytes += c.writableBytes;
    return true;
  }

  private release(count: number): void {
    for (let k = 0; k < count; k++) {
      const c = this.held[k]!;
      this.heldBytes -= c.writableBytes;
      this.spare[this.spareCount++] = c;
    }
    // Shift the rest down in place (splice would allocate the removed elements' array).
    const held = this.held;
    const n = this.heldCount;
    for (let k = count; k < n; k++) held[k - count] = held[k]!;
    this.heldCount = n - count;
  }

  /** Without MRG_RXBUF: the whole frame in the next buffer, num_buffers = 1 (§5.1.6.4). */
  private writeOne(src: Uint8Array, off: number, len: number, hdr: VirtioNetHdr, tail: PortRxTail | null): RxResult {
    if (this.heldCount === 0 && !this.holdOne()) return this.starved();
    // A buffer that cannot hold even a header and an Ethernet header would block the queue
    // forever: return it empty (the driver sees a used length below the header) and go on.
    while (this.held[0]!.writableBytes < this.hdrBytes + ETH_HEADER_BYTES) {
      this.returnEmpty();
      if (!this.holdOne()) return this.starved();
    }
    const c = this.held[0]!;
    const total = this.hdrBytes + len;
    // Keep the buffer for a later, smaller frame: the frame is what does not fit.
    if (c.writableBytes < total) return this.dropRx('rx-buffer-too-small');
    hdr.numBuffers = 1;
    this.writeHeader(c, hdr);
    this.writeFrame(1, src, off, len, tail); // c is held[0]
    this.rxq.addUsed(c.head, total);
    this.release(1);
    this.countRx(len, 1);
    return 'delivered';
  }

  /** With MRG_RXBUF: spread over as many buffers as needed, num_buffers in the first (§5.1.6.4). */
  private writeMergeable(src: Uint8Array, off: number, len: number, hdr: VirtioNetHdr, tail: PortRxTail | null): RxResult {
    const total = this.hdrBytes + len;
    while (this.heldBytes < total) {
      if (this.heldCount >= this.rxq.size) return this.dropRx('rx-no-room');
      if (!this.holdOne()) return this.starved();
    }
    // A first buffer smaller than the header breaks §5.1.6.3.1; return it empty and move on.
    while (this.held[0]!.writableBytes < this.hdrBytes) {
      this.returnEmpty();
      if (this.heldBytes < total) return this.writeMergeable(src, off, len, hdr, tail);
    }
    let count = 0;
    let need = total;
    while (need > 0) need -= this.held[count++]!.writableBytes;
    hdr.numBuffers = count;
    this.writeHeader(this.held[0]!, hdr);
    // The frame in one pass over the buffers (adjacent ones written as one range), then each
    // buffer's used length: full ones, the last holding what is left (§5.1.6.4).
    this.writeFrame(count, src, off, len, tail);
    let left = total;
    for (let k = 0; k < count; k++) {
      const c = this.held[k]!;
      const n = Math.min(c.writableBytes, left);
      left -= n;
      this.rxq.addUsed(c.head, n);
    }
    this.release(count);
    this.countRx(len, count);
    return 'delivered';
  }

  private returnEmpty(): void {
    this.rxq.addUsed(this.held[0]!.head, 0);
    this.release(1);
    this.stats.rxBuffersReturnedEmpty++;
  }

  /**
   * The frame after the virtio_net_hdr in the first `count` held chains: in one piece, or its
   * head and then its tail (each in one pass, adjacent buffers as one range).
   */
  private writeFrame(count: number, src: Uint8Array, off: number, len: number, tail: PortRxTail | null): void {
    if (tail === null) {
      writeChainsFrom(this.mem, this.held, count, src, off, len, this.hdrBytes, this.rxSourceViews);
      return;
    }
    const head = len - tail.lenBytes;
    writeChainsFrom(this.mem, this.held, count, src, off, head, this.hdrBytes, this.rxSourceViews);
    writeChainsFrom(this.mem, this.held, count, tail.bytes, tail.offset, tail.lenBytes, this.hdrBytes + head);
  }

  private writeHeader(c: DescriptorChain, hdr: VirtioNetHdr): void {
    encodeNetHdr(hdr, this.layout, this.hdrScratch, 0);
    writeChainFrom(this.mem, c, this.hdrScratch, 0, this.hdrBytes, 0);
  }

  private countRx(len: number, buffers: number): void {
    this.stats.rxFrames++;
    this.stats.rxBytes += len;
    this.stats.rxBuffers += buffers;
  }

  private starved(): RxResult {
    this.stats.rxStarved++;
    this.rxWaiting = true;
    return 'no-buffers';
  }

  private dropRx(reason: NetRxDrop): RxResult {
    this.stats.rxDropped++;
    this.stats.rxDrops[reason] = (this.stats.rxDrops[reason] ?? 0) + 1;
    // Host → guest frames have no identity in the trace (docs/tracing.md): the drop only.
    if (this.tracing) this.tracer.drop(RX_DROP_TRACE[reason], NO_ID, this.rxq.index);
    return 'dropped';
  }

  /**
   * Records a ring violation (a VirtqueueError: the queue is broken, DEVICE_NEEDS_RESET) seen by
   * this device or by the loop around it. A GuestMemoryError is one too: a chain popped (and
   * checked) under one region table whose buffers the next table no longer maps (vhost-user
   * SET_MEM_TABLE while an rx chain is held for a mergeable frame). It breaks `queue` (when
   * known) as a 'bad-address' violation. Anything else is a bug of ours and is rethrown.
   */
  queueFailed(e: unknown, queue?: DeviceVirtqueue): void {
    let err = e;
    if (e instanceof GuestMemoryError) {
      const v = new VirtqueueError('bad-address', { queue: queue?.index, addr: e.addr, len: e.len, detail: `a buffer no longer in guest memory (${e.code})` }, { cause: e });
      queue?.markBroken(v);
      err = v;
    }
    if (!(err instanceof VirtqueueError)) throw err;
    this.stats.queueErrors++;
    this.error ??= err;
  }

  /** A flat copy of the counters for SideStats.extra (`dev.` prefix, drops by reason). */
  flatStats(prefix = 'dev.'): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.stats)) {
      if (typeof v === 'number') out[prefix + k] = v;
      else for (const [r, n] of Object.entries(v as Record<string, number>)) out[`${prefix}${k}.${r}`] = n;
    }
    return out;
  }
}

/** Each tx drop reason as the trace's coarser vocabulary (the exact reason is in txDrops). */
const TX_DROP_TRACE: Readonly<Record<NetTxDrop, DropReason>> = {
  'frame-too-short': 'too-short',
  'frame-too-long': 'too-long',
  'rx-only-flags': 'bad-header',
  'needs-csum-not-negotiated': 'checksum',
  'csum-start-past-frame': 'checksum',
  'csum-offset-past-frame': 'checksum',
  'gso-type-unknown': 'bad-header',
  'gso-type-not-negotiated': 'bad-header',
  'gso-ecn-not-negotiated': 'bad-header',
  'gso-without-needs-csum': 'bad-header',
  'gso-size-zero': 'bad-header',
  'hdr-len-past-frame': 'bad-header',
  'header-truncated': 'bad-header',
  'gso-unsupported': 'bad-header',
  'gso-malformed': 'bad-header',
  'gso-size-too-small': 'bad-header',
};

/** Each rx drop reason as the trace's coarser vocabulary (the exact reason is in rxDrops). */
const RX_DROP_TRACE: Readonly<Record<NetRxDrop, DropReason>> = {
  'rx-frame-too-short': 'too-short',
  'rx-frame-too-long': 'too-long',
  'rx-gso-not-negotiated': 'bad-header',
  'rx-bad-csum-offsets': 'checksum',
  'rx-filtered-address': 'filtered',
  'rx-filtered-vlan': 'filtered',
  'rx-buffer-too-small': 'no-buffer',
  'rx-no-room': 'no-buffer',
};
