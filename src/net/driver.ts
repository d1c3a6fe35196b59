// The virtio-net driver (guest side, virtio 1.2 §5.1.6) over two DriverQueues: transmits
// [virtio_net_hdr][frame] from guest buffers (one descriptor, header apart, or page-sized pieces;
// an indirect table when the queue has them), reaps tx completions, keeps the rx ring filled with
// mergeable page-sized, small or big buffers, and receives with a NAPI-style budget and a refill
// threshold. Does not wait or ring doorbells: flushTx/flushRx return whether to kick and the
// caller's loop decides (so notification policies can drive it). The device is untrusted too:
// a bad header or num_buffers is a counted error and the buffers are recycled.
//
// Tracing (optional `tracer`: a NetObserver, src/net/observer.ts, such as the Tracer;
// docs/tracing.md "virtio-net"): each tx frame's identity is its position in the tx queue's avail
// ring counted from 0 (the frames committed so far), which the device counts the same way as it
// pops chains in avail order. The driver records `add` when beginTx hands out the buffer the frame
// is built in and `reap` when the used entry comes back; publish and kick are the caller's loop's.
// With tracing off each point costs one boolean test.

import type { Arena } from '../memory/arena.js';
import { BufferPool } from '../memory/arena.js';
import type { GuestMemory, MemoryRegion } from '../memory/guest-memory.js';
import { copyBytes } from '../memory/copy.js';
import type { Segment } from '../virtqueue/driver-queue.js';
import type { DriverVirtqueue } from '../virtqueue/queue.js';
import { NetError } from './errors.js';
import { NET_OBSERVER_OFF, type NetObserver } from './observer.js';
import { NetF } from './features.js';
import { MAX_GSO_FRAME_BYTES, copyNetHdrOffload, decodeNetHdr, emptyNetHdr, encodeNetHdr, headerLayout, NET_HDR_BYTES, NetHdrFlags, type NetHdrLayout, type VirtioNetHdr } from './header.js';

export type RxBufferMode = 'mergeable' | 'big' | 'small';
/** How a transmitted frame is laid out in descriptors. */
export type TxLayout = 'inline' | 'header-apart' | 'pages';

/** Receives one frame: `bytes[offset…offset+lenBytes)` is valid only during the call. */
export type ReceiveCallback = (bytes: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>) => void;

export type NetRxError =
  | 'rx-len-below-header' // used length smaller than the virtio_net_hdr
  | 'rx-bad-num-buffers' // num_buffers 0, or more than mergeable buffers can be outstanding
  | 'rx-missing-buffers' // num_buffers promised more used buffers than were published
  | 'rx-frame-too-long'; // reassembled frame larger than any legal frame

export interface NetDriverStats {
  txFrames: number;
  txBytes: number;
  /** beginTx/transmit refused: no free tx buffer or descriptors (the queue is "stopped"). */
  txBusy: number;
  txReaped: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames received with NEEDS_CSUM (a partial checksum, GUEST_CSUM) and with DATA_VALID (§5.1.6.4). */
  rxNeedsCsum: number;
  rxDataValid: number;
  rxBuffersReaped: number;
  /** Mergeable frames over several buffers handed on in place (adjacent buffers), not copied together. */
  rxInPlace: number;
  rxPosted: number;
  rxRefills: number;
  rxPolls: number;
  /** Polls that used the whole budget (more work was left). */
  rxBudgetExhausted: number;
  rxErrors: Partial<Record<NetRxError, number>>;
}

export interface NetDriverOptions {
  mem: GuestMemory;
  /** Driver-owned guest RAM for rx and tx buffers. */
  arena: Arena;
  features: bigint;
  rxq: DriverVirtqueue<number>;
  txq: DriverVirtqueue<number>;
  /** Default: mergeable with MRG_RXBUF, big with GUEST_TSO4/TSO6/UFO, else small. */
  rxMode?: RxBufferMode;
  /** Mergeable buffer size (default 4096, a page). */
  mergeableBufBytes?: number;
  /** Rx buffers to own (default: enough to fill the ring, within rxMemoryBytes). */
  rxBuffers?: number;
  /** Memory budget for rx buffers when rxBuffers is not given (default 4 MiB). */
  rxMemoryBytes?: number;
  /** Tx buffers (default: the tx ring size, within txMemoryBytes). */
  txBuffers?: number;
  txMemoryBytes?: number;
  txLayout?: TxLayout;
  mtu?: number;
  /** Frames per pollRx (NAPI weight, default 64). */
  napiBudget?: number;
  /** Refill the rx ring once this many descriptors are free (default min(budget, size) / 2). */
  refillThreshold?: number;
  /**
   * Mergeable rx: most buffers one pollRx takes back before it returns (default refillThreshold),
   * so the refill and publish that follow a poll reach the device while it still has frames to
   * place; frames beyond wait for the next poll (a frame is never split between polls).
   */
  rxPollBuffers?: number;
  onReceive?: ReceiveCallback;
  /** Records tx frames' add and reap points (default NET_OBSERVER_OFF: nothing; a Tracer is one). */
  tracer?: NetObserver;
}

const PAGE = 4096;
const ETH_OVERHEAD = 18; // Ethernet header + one VLAN tag

/** Where beginTx lets the caller build a frame: `bytes[offset…offset+capacityBytes)`. */
export interface TxSlot {
  bytes: Uint8Array;
  offset: number;
  capacityBytes: number;
}

export class NetDriver {
  readonly features: bigint;
  readonly layout: NetHdrLayout;
  readonly hdrBytes: number;
  readonly rxMode: RxBufferMode;
  readonly txLayout: TxLayout;
  readonly rxBufBytes: number;
  readonly txBufBytes: number;
  readonly maxTxFrameBytes: number;
  readonly napiBudget: number;
  readonly refillThreshold: number;
  readonly rxPollBuffers: number;
  readonly rxq: DriverVirtqueue<number>;
  readonly txq: DriverVirtqueue<number>;
  readonly stats: NetDriverStats = {
    txFrames: 0,
    txBytes: 0,
    txBusy: 0,
    txReaped: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxNeedsCsum: 0,
    rxDataValid: 0,
    rxBuffersReaped: 0,
    rxInPlace: 0,
    rxPosted: 0,
    rxRefills: 0,
    rxPolls: 0,
    rxBudgetExhausted: 0,
    rxErrors: {},
  };
  onReceive: ReceiveCallback | null;

  private readonly mem: GuestMemory;
  private readonly rxPool: BufferPool;
  private readonly txPool: BufferPool;
  private readonly region: MemoryRegion;
  private readonly rxSegsPerBuf: number;
  private readonly txMaxDescs: number;
  private readonly hdr: VirtioNetHdr = emptyNetHdr();
  private readonly slot: TxSlot = { bytes: new Uint8Array(0), offset: 0, capacityBytes: 0 };
  private slotAddr = -1;
  private readonly segs: Segment[][] = [];
  private readonly noSegs: Segment[] = [];
  private readonly reasm: Uint8Array;
  // The buffers of the mergeable frame being received (addresses, used lengths).
  private readonly mrgAddrs: Float64Array;
  private readonly mrgLens: Uint32Array;
  // Tracing: the tracer, its cached switch, the add time taken at beginTx, and per head the
  // traced frame's identity and length (read back at reap).
  private readonly tracer: NetObserver;
  private readonly tracing: boolean;
  private addNs = -1;
  private readonly txSeqOfHead: Uint32Array;
  private readonly txLenOfHead: Uint32Array;
  /** Tracing: the frame count disagreed with the tx avail position; tx tracing stopped. */
  traceIdentityLost = false;

  constructor(opts: NetDriverOptions) {
    this.mem = opts.mem;
    this.features = opts.features;
    this.rxq = opts.rxq;
    this.txq = opts.txq;
    this.layout = headerLayout(opts.features);
    this.hdrBytes = NET_HDR_BYTES[this.layout];
    const f = opts.features;
    const mtu = opts.mtu ?? 1500;
    const guestGso = (f & (NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_UFO)) !== 0n;
    this.rxMode = opts.rxMode ?? (f & NetF.MRG_RXBUF ? 'mergeable' : guestGso ? 'big' : 'small');
    if (this.rxMode === 'mergeable' && !(f & NetF.MRG_RXBUF)) {
      throw new NetError('bad-argument', 'net-driver', 'mergeable rx buffers need VIRTIO_NET_F_MRG_RXBUF');
    }
    // Buffer sizes from virtio 1.2 §5.1.6.3.1: at least 1526 bytes without GSO, 65562 with.
    const maxRxFrame = guestGso ? MAX_GSO_FRAME_BYTES : mtu + ETH_OVERHEAD;
    this.rxBufBytes =
      this.rxMode === 'mergeable'
        ? opts.mergeableBufBytes ?? PAGE
        : Math.max(this.hdrBytes + maxRxFrame, guestGso && this.rxMode === 'big' ? 65562 : 1526);
    this.rxSegsPerBuf = this.rxMode === 'big' ? Math.ceil(this.rxBufBytes / PAGE) : 1;
    const rxDescsPerBuf = this.rxSegsPerBuf > 1 && this.rxq.indirect ? 1 : this.rxSegsPerBuf;
    const rxCap = Math.floor(this.rxq.size / rxDescsPerBuf);
    const rxCount = opts.rxBuffers ?? Math.max(1, Math.min(rxCap, Math.floor((opts.rxMemoryBytes ?? 4 << 20) / this.rxBufBytes)));
    this.rxPool = new BufferPool(opts.arena, this.rxBufBytes, rxCount, 64, this.rxMode === 'mergeable' ? 'fifo' : 'lifo');

    const hostGso = (f & (NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_UFO | NetF.HOST_USO)) !== 0n;
    this.maxTxFrameBytes = hostGso ? MAX_GSO_FRAME_BYTES : mtu + ETH_OVERHEAD;
    this.txBufBytes = this.hdrBytes + this.maxTxFrameBytes;
    this.txLayout = opts.txLayout ?? 'inline';
    const txDescs = this.txLayout === 'inline' ? 1 : this.txLayout === 'header-apart' ? 2 : 1 + Math.ceil(this.maxTxFrameBytes / PAGE);
    this.txMaxDescs = txDescs > 1 && this.txq.indirect ? 1 : txDescs;
    // §2.7.5.3.1: no chain longer than the Queue Size, even through an indirect table.
    if (this.rxSegsPerBuf > this.rxq.size || txDescs > this.txq.size) {
      throw new NetError('bad-argument', 'net-driver', `chains of ${Math.max(this.rxSegsPerBuf, txDescs)} descriptors (big rx buffers or paged tx) do not fit queue size ${Math.min(this.rxq.size, this.txq.size)}`);
    }
    const txCount = opts.txBuffers ?? Math.max(1, Math.min(this.txq.size, Math.floor((opts.txMemoryBytes ?? 4 << 20) / this.txBufBytes)));
    this.txPool = new BufferPool(opts.arena, this.txBufBytes, txCount, 64);
    this.region = this.mem.region(opts.arena.base, opts.arena.size);
    this.napiBudget = opts.napiBudget ?? 64;
    this.refillThreshold = opts.refillThreshold ?? Math.max(1, Math.floor(Math.min(this.napiBudget, this.rxq.size) / 2));
    this.rxPollBuffers = opts.rxPollBuffers ?? this.refillThreshold;
    if (!Number.isInteger(this.rxPollBuffers) || this.rxPollBuffers < 1) throw new NetError('bad-argument', 'net-driver', `rxPollBuffers ${String(opts.rxPollBuffers)}: need an integer ≥ 1`);
    this.onReceive = opts.onReceive ?? null;
    this.reasm = new Uint8Array(this.rxMode === 'mergeable' ? this.hdrBytes + MAX_GSO_FRAME_BYTES : 0);
    this.mrgAddrs = new Float64Array(this.rxMode === 'mergeable' ? this.rxq.size : 0);
    this.mrgLens = new Uint32Array(this.rxMode === 'mergeable' ? this.rxq.size : 0);
    this.tracer = opts.tracer ?? NET_OBSERVER_OFF;
    this.tracing = this.tracer.enabled;
    this.txSeqOfHead = new Uint32Array(this.tracing ? this.txq.size : 0);
    this.txLenOfHead = new Uint32Array(this.tracing ? this.txq.size : 0);
    for (let n = 0; n <= 1 + Math.ceil(Math.max(this.rxBufBytes, this.txBufBytes) / PAGE); n++) {
      this.segs.push(Array.from({ length: n }, () => ({ addr: 0, len: 0 })));
    }
  }

  get rxBuffersOwned(): number {
    return this.rxPool.count;
  }
  get txBuffersOwned(): number {
    return this.txPool.count;
  }

  // ---- tx ----

  /**
   * A tx buffer to build the next frame in (after the header room), or null when no buffer or
   * too few descriptors are free (reap, or wait for a tx interrupt). Commit or cancel it.
   */
  beginTx(): TxSlot | null {
    if (this.slotAddr !== -1) throw new NetError('bad-argument', 'net-driver', 'beginTx called twice without commitTx/cancelTx');
    if (this.txPool.available === 0 || this.txq.numFree < this.txMaxDescs) {
      this.stats.txBusy++;
      return null;
    }
    const addr = this.txPool.get();
    this.slotAddr = addr;
    const s = this.slot;
    s.bytes = this.region.u8;
    s.offset = addr - this.region.guestAddr + this.hdrBytes;
    s.capacityBytes = this.maxTxFrameBytes;
    // The frame that may be built here is the next one committed (a cancel takes no identity).
    if (this.tracing) this.addNs = this.traceIdentityLost ? -1 : this.tracer.addTime(this.stats.txFrames >>> 0);
    return s;
  }

  cancelTx(): void {
    if (this.slotAddr === -1) return;
    this.txPool.put(this.slotAddr);
    this.slotAddr = -1;
  }

  /**
   * Writes the header (`offload`: flags, gso_type, gso_size, hdr_len, csum_start/offset; num_buffers
   * is sent as 0) and adds the chain. Visible to the device at flushTx().
   */
  commitTx(frameBytes: number, offload: Readonly<VirtioNetHdr>): void {
    const addr = this.slotAddr;
    if (addr === -1) throw new NetError('bad-argument', 'net-driver', 'commitTx without beginTx');
    if (!Number.isInteger(frameBytes) || frameBytes <= 0 || frameBytes > this.maxTxFrameBytes) {
      this.cancelTx();
      throw new NetError('bad-argument', 'net-driver', `frame of ${frameBytes} bytes (limit ${this.maxTxFrameBytes})`);
    }
    this.slotAddr = -1;
    const h = copyNetHdrOffload(this.hdr, offload); // §5.1.6.2: the driver sets num_buffers to 0 on tx
    encodeNetHdr(h, this.layout, this.region.u8, addr - this.region.guestAddr);
    const hs = this.hdrBytes;
    let head: number;
    if (this.txLayout === 'inline') {
      head = this.txq.add1(addr, hs + frameBytes, false, addr);
    } else {
      const pieces = this.txLayout === 'header-apart' ? 1 : Math.ceil(frameBytes / PAGE);
      const segs = this.segs[1 + pieces]!;
      segs[0]!.addr = addr;
      segs[0]!.len = hs;
      for (let k = 0; k < pieces; k++) {
        const s = segs[1 + k]!;
        s.addr = addr + hs + k * PAGE;
        s.len = pieces === 1 ? frameBytes : Math.min(PAGE, frameBytes - k * PAGE);
      }
      head = this.txq.add(segs, this.noSegs, addr);
    }
    if (head < 0) {
      // beginTx checked the descriptors; only a concurrent misuse gets here.
      this.txPool.put(addr);
      this.stats.txBusy++;
      return;
    }
    if (this.tracing) this.traceAdd(head, frameBytes);
    this.stats.txFrames++;
    this.stats.txBytes += frameBytes;
  }

  /** Tracing: records the add of the frame just added at `head` (its identity: frames committed before it). */
  private traceAdd(head: number, frameBytes: number): void {
    const seq = this.stats.txFrames >>> 0;
    // The identity must be the chain's avail position (what the device counts); a chain added to
    // the tx queue around this driver would break that: stop tracing tx rather than mix frames.
    if (!this.traceIdentityLost && ((this.txq.stats.added - 1) & 0xffff) !== (seq & 0xffff)) {
      this.traceIdentityLost = true;
      this.tracer.error('identity', seq, this.txq.index);
    }
    if (this.traceIdentityLost) return;
    this.txSeqOfHead[head] = seq;
    this.txLenOfHead[head] = frameBytes;
    this.tracer.addAt(seq, this.addNs, this.txq.index);
    this.addNs = -1;
  }

  /** Copies `frame[offset…offset+lenBytes)` into a tx buffer and queues it; false when busy. */
  transmit(frame: Uint8Array, offset: number, lenBytes: number, offload: Readonly<VirtioNetHdr>): boolean {
    const s = this.beginTx();
    if (s === null) return false;
    if (lenBytes > s.capacityBytes) {
      this.cancelTx();
      throw new NetError('bad-argument', 'net-driver', `frame of ${lenBytes} bytes exceeds the ${s.capacityBytes}-byte limit`);
    }
    copyBytes(s.bytes, s.offset, frame, offset, lenBytes);
    this.commitTx(lenBytes, offload);
    return true;
  }

  /** Publishes queued tx chains; true when the device wants a kick (event idx / NO_NOTIFY). */
  flushTx(): boolean {
    if (this.txq.publish() === 0) return false;
    return this.txq.kickNeeded();
  }

  /**
   * Publishes queued tx chains (avail.idx); returns how many. Traced: the batch's publish point
   * first (taken before the avail.idx store), covering the adds since the last publish — for a
   * caller that records the batch's kick too (NetDriverService, MmioNetGuest); flushTx does not.
   */
  publishTx(): number {
    if (this.tracing) {
      const added = this.txq.stats.added;
      if (added !== this.txAddsPublished) this.tracer.publish(added - this.txAddsPublished, this.txq.index);
      this.txAddsPublished = added;
    }
    return this.txq.publish();
  }
  /** tx adds already covered by a traced publish point. */
  private txAddsPublished = 0;

  /** Takes back completed tx buffers; returns how many. */
  reapTx(): number {
    let n = 0;
    let u;
    const tracing = this.tracing && !this.traceIdentityLost;
    while ((u = this.txq.reap()) !== null) {
      if (tracing) this.tracer.reap(this.txSeqOfHead[u.head]!, this.txLenOfHead[u.head]!, this.txq.index, this.txq.usedFetches);
      this.txPool.put(u.token);
      n++;
    }
    this.stats.txReaped += n;
    return n;
  }

  /** Tx chains the device has not completed. */
  get txOutstanding(): number {
    return this.txq.outstanding;
  }

  disableTxInterrupts(): void {
    this.txq.disableInterrupts();
  }
  /** Asks for a tx interrupt (after 3/4 of the outstanding when `delayed`); true = poll again. */
  enableTxInterrupts(delayed = false): boolean {
    return delayed ? this.txq.enableInterruptsDelayed() : this.txq.enableInterrupts();
  }

  // ---- rx ----


  /** Posts free rx buffers until the ring or the pool runs out; returns how many (publish with flushRx). */
  fillRx(): number {
    let n = 0;
    const segsNeeded = this.rxSegsPerBuf > 1 && this.rxq.indirect ? 1 : this.rxSegsPerBuf;
    while (this.rxPool.available > 0 && this.rxq.numFree >= segsNeeded) {
      const addr = this.rxPool.get();
      let head: number;
      if (this.rxSegsPerBuf === 1) {
        head = this.rxq.add1(addr, this.rxBufBytes, true, addr);
      } else {
        // Big buffers: one contiguous buffer described page by page, as Linux chains pages.
        const segs = this.segs[this.rxSegsPerBuf]!;
        for (let k = 0; k < this.rxSegsPerBuf; k++) {
          segs[k]!.addr = addr + k * PAGE;
          segs[k]!.len = Math.min(PAGE, this.rxBufBytes - k * PAGE);
        }
        head = this.rxq.add(this.noSegs, segs, addr);
      }
      if (head < 0) {
        this.rxPool.put(addr);
        break;
      }
      n++;
    }
    if (n > 0) {
      this.stats.rxPosted += n;
      this.stats.rxRefills++;
    }
    return n;
  }

  /** Publishes posted rx buffers; true when the device wants a kick. */
  flushRx(): boolean {
    if (this.rxq.publish() === 0) return false;
    return this.rxq.kickNeeded();
  }

  /**
   * NAPI poll: receives up to `budget` frames (handing each to onReceive), then refills the ring
   * when at least refillThreshold descriptors are free. Returns the frames received; a result
   * equal to the budget means more may be waiting (poll again before re-enabling interrupts).
   */
  pollRx(budget: number = this.napiBudget): number {
    this.stats.rxPolls++;
    let frames = 0;
    // Mergeable buffers: one frame may take many buffers (a 64 KiB GSO frame, 17 pages), so a
    // budget in frames does not bound the buffers a poll takes back. Past rxPollBuffers the poll
    // returns, and its caller's refill and publish give the device room while this side is still
    // copying — without it the two sides alternate (the device waits for buffers while the
    // driver empties the whole ring, then the driver waits while the device fills it).
    const bufCap = this.rxMode === 'mergeable' ? this.stats.rxBuffersReaped + this.rxPollBuffers : Infinity;
    while (frames < budget) {
      const u = this.rxq.reap();
      if (u === null) break;
      const ok = this.rxMode === 'mergeable' ? this.receiveMergeable(u.token, u.len) : this.receiveOne(u.token, u.len);
      if (ok) frames++;
      if (this.stats.rxBuffersReaped >= bufCap) break;
    }
    if (frames === budget) this.stats.rxBudgetExhausted++;
    if (this.rxq.numFree >= this.refillThreshold) this.fillRx();
    return frames;
  }

  disableRxInterrupts(): void {
    this.rxq.disableInterrupts();
  }
  /** Asks for an rx interrupt; true when frames already wait (poll again instead of sleeping). */
  enableRxInterrupts(): boolean {
    return this.rxq.enableInterrupts();
  }

  private receiveOne(addr: number, len: number): boolean {
    this.stats.rxBuffersReaped++;
    const off = addr - this.region.guestAddr;
    const hs = this.hdrBytes;
    if (len < hs) {
      this.rxPool.put(addr);
      return this.rxError('rx-len-below-header');
    }
    decodeNetHdr(this.region.u8, off, this.layout, this.hdr);
    this.deliver(this.region.u8, off + hs, len - hs);
    this.rxPool.put(addr);
    return true;
  }

  private receiveMergeable(addr: number, len: number): boolean {
    this.stats.rxBuffersReaped++;
    const u8 = this.region.u8;
    const off = addr - this.region.guestAddr;
    const hs = this.hdrBytes;
    if (len < hs) {
      this.rxPool.put(addr);
      return this.rxError('rx-len-below-header');
    }
    const hdr = decodeNetHdr(u8, off, this.layout, this.hdr) as VirtioNetHdr;
    const nb = hdr.numBuffers;
    if (nb === 0 || nb > this.rxq.size) {
      this.rxPool.put(addr);
      return this.rxError('rx-bad-num-buffers');
    }
    if (nb === 1) {
      this.deliver(u8, off + hs, len - hs);
      this.rxPool.put(addr);
      return true;
    }
    // Spread over several buffers. Take them all back first (§5.1.6.4: num_buffers used
    // buffers, in used-ring order), then hand the frame on in place when they are adjacent in
    // guest memory — the rx pool posts buffers in address order (FIFO), and the device fills
    // each buffer before the next, so a frame usually is — as Linux coalesces adjacent page
    // frags instead of copying. Otherwise reassemble it into one contiguous frame (one copy,
    // through GuestMemory.copyOutTo, whose view cache serves the recycled rx buffers).
    const addrs = this.mrgAddrs;
    const lens = this.mrgLens;
    const B = this.rxBufBytes;
    addrs[0] = addr;
    lens[0] = len;
    let total = len - hs;
    let adjacent = len === B;
    let got = 1;
    for (; got < nb; got++) {
      const u = this.rxq.reap();
      if (u === null) break;
      this.stats.rxBuffersReaped++;
      addrs[got] = u.token;
      lens[got] = u.len;
      total += u.len;
      // Adjacent: starts where the previous (full) buffer ends; full unless it is the last. (A
      // used length above the buffer's never gets here: DriverQueue.reap refuses it.)
      if (adjacent && (u.token !== addrs[got - 1]! + B || (u.len !== B && got !== nb - 1))) adjacent = false;
    }
    const bad: NetRxError | null =
      got < nb ? 'rx-missing-buffers' : total > this.reasm.length ? 'rx-frame-too-long' : null;
    if (bad === null && adjacent) {
      this.stats.rxInPlace++;
      this.deliver(u8, off + hs, total);
    } else if (bad === null) {
      const out = this.reasm;
      this.mem.copyOutTo(addr + hs, out, 0, len - hs);
      let n = len - hs;
      for (let k = 1; k < nb; k++) {
        this.mem.copyOutTo(addrs[k]!, out, n, lens[k]!);
        n += lens[k]!;
      }
      this.deliver(out, 0, n);
    }
    // Back to the pool after delivery: none is posted again before the next fillRx.
    for (let k = 0; k < got; k++) this.rxPool.put(addrs[k]!);
    return bad === null ? true : this.rxError(bad);
  }

  private deliver(bytes: Uint8Array, offset: number, len: number): void {
    this.stats.rxFrames++;
    this.stats.rxBytes += len;
    const flags = this.hdr.flags;
    if (flags !== 0) {
      if (flags & NetHdrFlags.NEEDS_CSUM) this.stats.rxNeedsCsum++;
      if (flags & NetHdrFlags.DATA_VALID) this.stats.rxDataValid++;
    }
    this.onReceive?.(bytes, offset, len, this.hdr);
  }

  private rxError(reason: NetRxError): false {
    this.stats.rxErrors[reason] = (this.stats.rxErrors[reason] ?? 0) + 1;
    return false;
  }

  /** A flat copy of the counters for SideStats.extra (`drv.` prefix, errors by reason). */
  flatStats(prefix = 'drv.'): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.stats)) {
      if (typeof v === 'number') out[prefix + k] = v;
      else for (const [r, n] of Object.entries(v as Record<string, number>)) out[`${prefix}${k}.${r}`] = n;
    }
    return out;
  }
}
