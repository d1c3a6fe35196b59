// Device side of a packed virtqueue (virtio 1.2 §2.8). Owns the device's ring position and wrap
// counter, the used descriptors it writes back and the device event suppression structure;
// never writes an available descriptor's fields other than to mark it used. Same contract as
// the split ring's DeviceQueue (DeviceVirtqueue, ./queue.ts), so everything above the ring runs
// on either layout. Guest input is hostile: a violation marks the queue broken (the caller
// reports DEVICE_NEEDS_RESET) and throws a VirtqueueError; a broken queue does nothing until reset.
//
// `head` in this API is the chain's buffer id (§2.8.6: the id in the chain's last descriptor),
// the handle addUsed gives back. `nextAvail`/`nextUsed` count chains (u16, free-running), as
// the split ring's indices do; the ring positions and wrap counters are in the snapshot.

import type { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain, MAX_CHAIN_BYTES, bufferAddr, copyTable, regionOrNull } from './chain.js';
import type { DeviceQueueState } from './device-queue.js';
import { VirtqueueError } from './errors.js';
import { PACKED_START, WRAP_BIT, packedAdvance, packedNeedEvent, packedRetreat, type PackedLayout } from './packed-layout.js';
import {
  PackedRing,
  PACKED_DESC_F_INDIRECT,
  PACKED_DESC_F_NEXT,
  PACKED_DESC_F_WRITE,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  isAvailable,
  usedFlags,
} from './packed-ring.js';

export interface PackedDeviceQueueOptions {
  /** Queue index, for error messages. */
  index?: number;
  /** VIRTIO_F_EVENT_IDX negotiated: descriptor-specific event suppression (§2.8.10). */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated (§2.8.7). */
  indirect?: boolean;
  /**
   * VIRTIO_F_IN_ORDER negotiated (§2.8.8): chains are returned in the order they were popped
   * (addUsed refuses another order).
   */
  inOrder?: boolean;
  /** With inOrder: return runs of chains that wrote nothing as one used descriptor (§2.8.8). */
  batchUsed?: boolean;
}

export class PackedDeviceQueue {
  readonly kind = 'packed' as const;
  readonly index: number;
  readonly size: number;
  readonly ring: PackedRing;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  readonly batchUsed: boolean;
  readonly notifyOnEmpty = false;

  private availPw = PACKED_START; // next ring position to pop, with the device's avail wrap counter
  private usedPw = PACKED_START; // next ring position to write a used descriptor at
  private published = PACKED_START; // usedPw at the last publish
  private signalled = PACKED_START; // published at the last notification decision
  private signalledValid = false;
  private popped = 0; // chains popped (u16)
  private usedCount = 0; // chains added to the used ring (u16)
  private inFlightChains = 0;
  private inFlightDescs = 0; // ring descriptors of the chains in flight
  private notifyOn = true;
  private brokenError: VirtqueueError | null = null;
  private isBroken = false;
  // Per buffer id: ring descriptors of its chain while in flight, 0 when not in flight.
  private readonly descsOfId: Uint16Array;
  // Buffer ids in pop order (a ring of `size`): unpop and IN_ORDER read it.
  private readonly popOrder: Uint16Array;
  private popOrderHead = 0; // slot of the oldest chain in flight
  // The first used descriptor since the last publish: its flags word is stored last
  // (§2.8.21.3, as the driver does for the first head of a batch).
  private firstPendingPos = -1;
  private firstPendingWord = 0;
  // IN_ORDER: a used descriptor whose id may still be replaced by a later chain of its batch.
  private batchPos = -1;
  private batchWrap = 1; // wrap counter at batchPos
  private batchLen = 0; // len of the batch's current last chain (0 = the batch may grow)
  private publishedCount = 0; // usedCount at the last publish
  // pending(): chains already seen available ahead of availPw (available stays available).
  private scanPw = PACKED_START;
  private scanChains = 0;
  private readonly scratch = new DescriptorChain();

  /** Fresh acquires of an available head (see DeviceQueue.availFetches). */
  availFetches = 0;
  private availFetchAt = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly layout: PackedLayout,
    opts: PackedDeviceQueueOptions = {},
  ) {
    this.index = opts.index ?? 0;
    this.size = layout.size;
    this.eventIdx = opts.eventIdx ?? false;
    this.indirect = opts.indirect ?? false;
    this.inOrder = opts.inOrder ?? false;
    this.batchUsed = this.inOrder && (opts.batchUsed ?? false);
    this.ring = new PackedRing(mem, layout, this.index);
    this.descsOfId = new Uint16Array(this.size);
    this.popOrder = new Uint16Array(this.size);
  }

  /** Back to the reset state: positions 0, wrap counters 1, notifications enabled (§2.8.1). */
  resetState(): void {
    this.availPw = this.usedPw = this.published = this.signalled = this.scanPw = PACKED_START;
    this.signalledValid = false;
    this.popped = this.usedCount = this.publishedCount = this.inFlightChains = this.inFlightDescs = this.scanChains = 0;
    this.popOrderHead = 0;
    this.descsOfId.fill(0);
    this.firstPendingPos = this.batchPos = -1;
    this.notifyOn = true;
    this.isBroken = false;
    this.brokenError = null;
  }

  get broken(): boolean {
    return this.isBroken;
  }
  get error(): VirtqueueError | null {
    return this.brokenError;
  }
  /** Chains popped (u16, free-running). */
  get nextAvail(): number {
    return this.popped;
  }
  /** Chains returned to the used ring (u16, free-running). */
  get nextUsed(): number {
    return this.usedCount;
  }
  get inFlight(): number {
    return this.inFlightChains;
  }
  get popsSinceFetch(): number {
    return (this.popped - 1 - this.availFetchAt) & 0xffff;
  }
  /** Ring position and wrap counter of the next pop (`pos | wrap << 15`, vhost-user's vring base). */
  get availPosition(): number {
    return this.availPw;
  }
  /** Ring position and wrap counter of the next used descriptor. */
  get usedPosition(): number {
    return this.usedPw;
  }

  /**
   * Chains the driver has made available that the device has not popped yet, counted by
   * walking heads from the frontier of the previous count (available descriptors stay
   * available until popped, so the walk is amortised: each descriptor is read once).
   */
  pending(): number {
    this.checkUsable();
    this.ring.refresh();
    if (this.scanChains === 0) this.scanPw = this.availPw;
    const size = this.size;
    const ring = this.ring;
    let pw = this.scanPw;
    let seenDescs = this.inFlightDescs + this.descsAhead();
    while (seenDescs < size) {
      const pos = pw & 0x7fff;
      const wrap = pw >>> 15;
      // Acquire: pairs with the driver's release of this head (PackedDriverQueue.publish).
      if (!isAvailable(ring.loadHeadWord(pos) >>> 16, wrap)) break;
      // Skip the chain: NEXT flags of the following descriptors (plain, after the acquire).
      let n = 1;
      let word = ring.descWord(pos);
      let p = pw;
      while ((word >>> 16) & PACKED_DESC_F_NEXT && seenDescs + n < size) {
        p = packedAdvance(p, 1, size);
        word = ring.descWord(p & 0x7fff);
        n++;
      }
      if ((word >>> 16) & PACKED_DESC_F_NEXT) break; // longer than the ring can hold: pop reports it
      pw = packedAdvance(pw, n, size);
      seenDescs += n;
      this.scanChains++;
    }
    if (pw !== this.scanPw) {
      // New heads found: a fresh acquire, like a split ring's avail.idx read that found it
      // moved (the tracer's fetch counter); pops of chains counted here are not fresh again.
      this.availFetches++;
      this.availFetchAt = this.popped;
    }
    this.scanPw = pw;
    return this.scanChains;
  }

  private descsAhead(): number {
    const d = (this.scanPw & 0x7fff) - (this.availPw & 0x7fff);
    if (this.scanChains === 0) return 0;
    return (this.scanPw & WRAP_BIT) === (this.availPw & WRAP_BIT) ? d : d + this.size;
  }

  /**
   * Pops the next available chain into `out` (or a fresh DescriptorChain), or returns null when
   * the slot at the device's position is not available. Throws VirtqueueError (and marks the
   * queue broken) on a bad chain. Bounded: at most `size` ring descriptors and `size` buffers.
   */
  pop(out?: DescriptorChain): DescriptorChain | null {
    if (this.isBroken) this.checkUsable();
    const ring = this.ring;
    ring.refresh();
    const pw = this.availPw;
    const pos = pw & 0x7fff;
    // Acquire: pairs with the driver's release store of this head's flags (publish); every
    // other field of the chain is read after it.
    const word = ring.loadHeadWord(pos);
    if (!isAvailable(word >>> 16, pw >>> 15)) return null;
    if (this.scanChains > 0) this.scanChains--;
    else {
      this.availFetches++;
      this.availFetchAt = this.popped;
    }
    const chain = out ?? new DescriptorChain();
    let descs = 0;
    try {
      descs = this.parse(pw, word, chain);
    } catch (e) {
      this.fail(e);
    }
    const id = chain.head;
    if (id >= this.size) this.fail(new VirtqueueError('buffer-id-out-of-range', { queue: this.index, index: pos, head: id, size: this.size }));
    if (this.descsOfId[id] !== 0) this.fail(new VirtqueueError('buffer-id-in-use', { queue: this.index, index: pos, head: id }));
    this.descsOfId[id] = descs;
    let slot = this.popOrderHead + this.inFlightChains; // < 2·size: a compare, not a division
    if (slot >= this.size) slot -= this.size;
    this.popOrder[slot] = id;
    this.inFlightChains++;
    this.inFlightDescs += descs;
    this.availPw = packedAdvance(pw, descs, this.size);
    this.popped = (this.popped + 1) & 0xffff;
    return chain;
  }

  /** Like pop, but reuses one internal chain object (valid until the next popReused). */
  popReused(): DescriptorChain | null {
    return this.pop(this.scratch);
  }

  /** Walks the chain whose head word was loaded; returns the ring descriptors it occupies. */
  private parse(pw: number, headWord: number, out: DescriptorChain): number {
    const { mem, index: queue, size, ring } = this;
    out.reset(0);
    const headPos = pw & 0x7fff;
    let p = pw;
    let word = headWord;
    let descs = 0;
    let total = 0;
    for (;;) {
      descs++;
      // §2.8.6 / §2.7.5.3.1: no chain is longer than the Queue Size; counting the descriptors
      // still in flight also stops a chain running into ring slots the device has not returned.
      if (this.inFlightDescs + descs > size) {
        throw new VirtqueueError('chain-too-long', { queue, head: headPos, index: p & 0x7fff, seen: descs, size, detail: this.inFlightDescs > 0 ? `${this.inFlightDescs} descriptors in flight` : undefined });
      }
      const pos = p & 0x7fff;
      const flags = word >>> 16;
      const lo = ring.descAddrLo(pos);
      const hi = ring.descAddrHi(pos);
      const len = ring.descLen(pos);
      out.descriptors++;
      if (flags & PACKED_DESC_F_INDIRECT) {
        if (!this.indirect) throw new VirtqueueError('indirect-not-negotiated', { queue, head: headPos, index: pos });
        if (flags & PACKED_DESC_F_NEXT) throw new VirtqueueError('indirect-with-next', { queue, head: headPos, index: pos });
        total = this.parseIndirect(headPos, pos, lo, hi, len, out, total);
        out.head = word & 0xffff;
        return descs;
      }
      if (len === 0) throw new VirtqueueError('zero-length-descriptor', { queue, head: headPos, index: pos });
      const addr = bufferAddr(mem, queue, headPos, pos, lo, hi, len);
      const writable = (flags & PACKED_DESC_F_WRITE) !== 0;
      if (!writable && out.readableCount !== out.count) throw new VirtqueueError('readable-after-writable', { queue, head: headPos, index: pos });
      total += len;
      if (total > MAX_CHAIN_BYTES) throw new VirtqueueError('chain-too-large', { queue, head: headPos, index: pos });
      out.push(addr, len, writable);
      if ((flags & PACKED_DESC_F_NEXT) === 0) {
        out.head = word & 0xffff; // §2.8.6: the buffer id is in the chain's last descriptor
        return descs;
      }
      p = packedAdvance(p, 1, size);
      word = ring.descWord(p & 0x7fff); // plain: after the head's acquire
    }
  }

  /** §2.8.7: an indirect table's entries are consecutive; only WRITE is meaningful in them. */
  private parseIndirect(headPos: number, pos: number, lo: number, hi: number, len: number, out: DescriptorChain, total: number): number {
    const { mem, index: queue, size } = this;
    if (len === 0 || len % 16 !== 0) throw new VirtqueueError('indirect-bad-length', { queue, head: headPos, index: pos, len });
    // Refused by length before the table is touched: a huge table is a work bomb, not a chain.
    if (len / 16 > size - out.count) {
      throw new VirtqueueError('chain-too-long', { queue, head: headPos, index: pos, seen: out.count + len / 16, size, detail: 'indirect table' });
    }
    const tableAddr = bufferAddr(mem, queue, headPos, pos, lo, hi, len);
    let table: Uint32Array;
    let base: number;
    const r = regionOrNull(mem, tableAddr, len);
    if (r !== null && (tableAddr - r.guestAddr) % 4 === 0) {
      table = r.u32;
      base = (tableAddr - r.guestAddr) / 4;
    } else {
      table = copyTable(mem, tableAddr, len);
      base = 0;
    }
    out.indirect = true;
    const entries = len / 16;
    for (let i = 0; i < entries; i++) {
      const w = base + 4 * i;
      const elen = table[w + 2]!;
      const flags = table[w + 3]! >>> 16;
      out.descriptors++;
      if (flags & PACKED_DESC_F_INDIRECT) throw new VirtqueueError('nested-indirect', { queue, head: headPos, index: i });
      if (elen === 0) throw new VirtqueueError('zero-length-descriptor', { queue, head: headPos, index: i, detail: 'indirect table entry' });
      const addr = bufferAddr(mem, queue, headPos, i, table[w]!, table[w + 1]!, elen);
      const writable = (flags & PACKED_DESC_F_WRITE) !== 0;
      if (!writable && out.readableCount !== out.count) throw new VirtqueueError('readable-after-writable', { queue, head: headPos, index: i });
      total += elen;
      if (total > MAX_CHAIN_BYTES) throw new VirtqueueError('chain-too-large', { queue, head: headPos, index: i });
      out.push(addr, elen, writable);
    }
    return total;
  }

  /**
   * Gives back the last `count` popped chains that were not returned with addUsed, so the next
   * pop returns them again (QEMU's virtqueue_unpop). Nothing is written to shared memory.
   */
  unpop(count = 1): void {
    if (!Number.isInteger(count) || count < 0 || count > this.inFlightChains) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `unpop(${count}) with ${this.inFlightChains} chains in flight` });
    }
    for (let k = 0; k < count; k++) {
      const slot = (this.popOrderHead + this.inFlightChains - 1) % this.size;
      const id = this.popOrder[slot]!;
      const descs = this.descsOfId[id]!;
      this.descsOfId[id] = 0;
      this.inFlightChains--;
      this.inFlightDescs -= descs;
      this.availPw = packedRetreat(this.availPw, descs, this.size);
      this.popped = (this.popped - 1) & 0xffff;
    }
    this.scanChains = 0;
  }

  /** The driver's avail index has no packed equivalent: the count of chains popped plus pending. */
  availIdx(): number {
    return (this.popped + this.pending()) & 0xffff;
  }

  /**
   * Records that the chain with buffer id `head` is done and `len` bytes were written into it
   * (§2.8.4: a used descriptor's len). Written into the ring at once, but the first used
   * descriptor since the last publish keeps its flags back, so the driver sees none of them
   * until publishUsed().
   */
  addUsed(head: number, len: number): void {
    this.checkUsable();
    if (!Number.isInteger(head) || head < 0 || head >= this.size || this.descsOfId[head] === 0) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `addUsed: buffer id ${head} is not in flight` });
    }
    const oldest = this.popOrder[this.popOrderHead]!;
    if (this.inOrder && head !== oldest) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `addUsed: IN_ORDER returns buffer id ${oldest} next, not ${head}` });
    }
    const descs = this.descsOfId[head]!;
    this.descsOfId[head] = 0;
    len >>>= 0;
    const flags = usedFlags(this.usedPw >>> 15) | (len > 0 ? PACKED_DESC_F_WRITE : 0); // §2.8.3: WRITE = data written
    if (this.batchUsed && this.batchPos >= 0 && this.batchLen === 0) {
      // §2.8.8: one used descriptor with the last buffer id stands for the whole batch; the
      // chains before it wrote nothing, so no length is lost. The position still skips past
      // every chain's descriptors.
      this.writeUsed(this.batchPos, head, len, usedFlags(this.batchWrap) | (len > 0 ? PACKED_DESC_F_WRITE : 0));
      this.batchLen = len;
    } else {
      this.writeUsed(this.usedPw & 0x7fff, head, len, flags);
      if (this.batchUsed) {
        this.batchPos = this.usedPw & 0x7fff;
        this.batchWrap = this.usedPw >>> 15;
        this.batchLen = len;
      }
    }
    this.usedPw = packedAdvance(this.usedPw, descs, this.size);
    this.usedCount = (this.usedCount + 1) & 0xffff;
    this.inFlightChains--;
    this.inFlightDescs -= descs;
    if (head === oldest) this.popOrderHead = this.popOrderHead + 1 === this.size ? 0 : this.popOrderHead + 1;
    else this.removeFromPopOrder(head);
  }

  /** Writes a used descriptor; the first one since the last publish keeps its flags back. */
  private writeUsed(pos: number, id: number, len: number, flags: number): void {
    this.ring.setUsedLen(pos, len); // plain: published by the release in publishUsed
    if (this.firstPendingPos < 0 || this.firstPendingPos === pos) {
      this.firstPendingPos = pos;
      this.firstPendingWord = (id & 0xffff) | (flags << 16);
    } else {
      // Plain: the driver reads this slot only after it saw the batch's first one used, whose
      // release store (publishUsed) comes after this write.
      this.ring.setDescWord(pos, id, flags);
    }
  }

  /** Out-of-order completion: drops `id` from the pop-order ring (kept compact for unpop). */
  private removeFromPopOrder(id: number): void {
    const size = this.size;
    const n = this.inFlightChains + 1; // before the decrement above
    let k = 0;
    while (k < n && this.popOrder[(this.popOrderHead + k) % size] !== id) k++;
    for (; k + 1 < n; k++) this.popOrder[(this.popOrderHead + k) % size] = this.popOrder[(this.popOrderHead + k + 1) % size]!;
  }

  /** Makes every used descriptor added since the last publish visible; returns how many chains. */
  publishUsed(): number {
    if (this.firstPendingPos < 0) return 0;
    const w = this.firstPendingWord;
    // Release: the batch's other used descriptors, their lengths and the bytes written into the
    // buffers become visible before this flags word (pairs with the driver's acquire load of it
    // in PackedDriverQueue.reap; §2.8.21.3: the first used descriptor's flags are written last).
    this.ring.storeHeadWord(this.firstPendingPos, w & 0xffff, w >>> 16);
    this.firstPendingPos = -1;
    this.batchPos = -1;
    const n = (this.usedCount - this.publishedCount) & 0xffff;
    this.publishedCount = this.usedCount;
    this.published = this.usedPw;
    return n;
  }

  /**
   * Whether the driver wants a used-buffer notification for what was published since the last
   * decision (§2.8.10). Call after publishUsed: its SeqCst store and the load below are the full
   * barrier of §2.8.21.3.1 (pairs with the driver's storeDriverEvent + re-check).
   */
  needsNotification(): boolean {
    const ev = this.ring.loadDriverEvent();
    const flags = (ev >>> 16) & 3;
    const old = this.signalled;
    const valid = this.signalledValid;
    this.signalled = this.published;
    this.signalledValid = true;
    if (flags === RING_EVENT_FLAGS_ENABLE) return true;
    if (flags === RING_EVENT_FLAGS_DISABLE) return false;
    if (flags === RING_EVENT_FLAGS_DESC && this.eventIdx) {
      if (!valid) return true;
      return packedNeedEvent(ev & 0xffff, this.published, old, this.size);
    }
    return true; // reserved value 3, or DESC without EVENT_IDX: notifying is always safe
  }

  /** Whether the driver currently asks for no used-buffer notifications. */
  driverSuppressesInterrupts(): boolean {
    return ((this.ring.loadDriverEvent() >>> 16) & 3) === RING_EVENT_FLAGS_DISABLE;
  }

  /** Asks the driver not to notify (§2.8.10: flags = DISABLE). */
  disableNotification(): void {
    if (!this.notifyOn) return;
    this.notifyOn = false;
    this.ring.storeDeviceEvent(0, RING_EVENT_FLAGS_DISABLE);
  }

  /**
   * Asks the driver to notify again (with EVENT_IDX: at the device's next position), then
   * re-checks the next slot; true when a chain already waits. The store and the re-check load
   * are SeqCst: the full barrier that closes the race with a driver that made a chain available
   * just before reading our structure (pairs with PackedDriverQueue.kickNeeded).
   */
  enableNotification(): boolean {
    this.notifyOn = true;
    if (this.eventIdx) this.ring.storeDeviceEvent(this.availPw, RING_EVENT_FLAGS_DESC);
    else this.ring.storeDeviceEvent(0, RING_EVENT_FLAGS_ENABLE);
    if (this.isBroken) return false;
    return this.headAvailable();
  }

  /**
   * Asks for a notification only once the driver makes available more than `idx` chains
   * counted as nextAvail counts them; the packed ring has no chain index, so this asks at the
   * position past the chains already pending. True when they already moved past it.
   */
  enableNotificationAfter(idx: number): boolean {
    const pendingNow = this.pending();
    const wanted = (idx - this.popped) & 0xffff;
    if (pendingNow > wanted) {
      this.notifyOn = true;
      this.ring.storeDeviceEvent(0, RING_EVENT_FLAGS_ENABLE);
      return true;
    }
    this.notifyOn = true;
    if (this.eventIdx) this.ring.storeDeviceEvent(this.scanPw, RING_EVENT_FLAGS_DESC);
    else this.ring.storeDeviceEvent(0, RING_EVENT_FLAGS_ENABLE);
    // Re-check after the store (full barrier pair with the driver's kickNeeded).
    this.scanChains = 0;
    return this.pending() > wanted;
  }

  private headAvailable(): boolean {
    this.ring.refresh();
    // Acquire: pairs with the driver's release of the next head (PackedDriverQueue.publish).
    return isAvailable(this.ring.loadHeadWord(this.availPw & 0x7fff) >>> 16, this.availPw >>> 15);
  }

  get notificationsEnabled(): boolean {
    return this.notifyOn;
  }

  /** A plain-object snapshot: chain counts as nextAvail/nextUsed, positions with wrap counters. */
  snapshot(): DeviceQueueState {
    const ids: number[] = [];
    const descs: number[] = [];
    for (let k = 0; k < this.inFlightChains; k++) {
      const id = this.popOrder[(this.popOrderHead + k) % this.size]!;
      ids.push(id);
      descs.push(this.descsOfId[id]!);
    }
    return {
      size: this.size,
      descAddr: this.layout.descAddr,
      availAddr: this.layout.driverEventAddr,
      usedAddr: this.layout.deviceEventAddr,
      eventIdx: this.eventIdx,
      indirect: this.indirect,
      notifyOnEmpty: false,
      nextAvail: this.popped,
      nextUsed: this.usedCount,
      signalledUsed: this.signalled,
      signalledUsedValid: this.signalledValid,
      inFlight: this.inFlightChains,
      broken: this.isBroken,
      ring: 'packed',
      inOrder: this.inOrder,
      availPosition: this.availPw,
      usedPosition: this.usedPw,
      inFlightIds: ids,
      inFlightDescs: descs,
    };
  }

  /** Restores a snapshot onto this queue (same memory and layout). Unpublished used descriptors are not state. */
  restore(s: DeviceQueueState): void {
    if (s.ring !== 'packed' || s.size !== this.size || s.descAddr !== this.layout.descAddr || s.availAddr !== this.layout.driverEventAddr || s.usedAddr !== this.layout.deviceEventAddr) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'snapshot was taken from a queue with a different layout' });
    }
    this.resetState();
    this.availPw = (s.availPosition ?? PACKED_START) & 0xffff;
    this.usedPw = (s.usedPosition ?? PACKED_START) & 0xffff;
    this.published = this.usedPw;
    this.signalled = s.signalledUsed & 0xffff;
    this.signalledValid = s.signalledUsedValid;
    this.popped = s.nextAvail & 0xffff;
    this.usedCount = this.publishedCount = s.nextUsed & 0xffff;
    const ids = s.inFlightIds ?? [];
    const descs = s.inFlightDescs ?? [];
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      if (id >= this.size || (descs[k] ?? 0) < 1) throw new VirtqueueError('bad-argument', { queue: this.index, detail: `snapshot in-flight entry ${k} is invalid` });
      this.popOrder[k] = id;
      this.descsOfId[id] = descs[k]!;
      this.inFlightDescs += descs[k]!;
    }
    this.inFlightChains = ids.length;
    this.isBroken = s.broken;
  }

  /**
   * Positions from a vhost-user vring base (§ vhost-user SET_VRING_BASE with RING_PACKED: bits
   * 0–14 last avail index, bit 15 its wrap counter; the used position likewise). Nothing may be
   * in flight (the frontend stopped the ring, or it starts fresh).
   */
  setPositions(availPw: number, usedPw: number): void {
    if (this.inFlightChains !== 0) throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'positions set with chains in flight' });
    for (const pw of [availPw, usedPw]) {
      if (!Number.isInteger(pw) || pw < 0 || pw > 0xffff || (pw & 0x7fff) >= this.size) {
        throw new VirtqueueError('bad-argument', { queue: this.index, detail: `ring position ${pw & 0x7fff} (word ${pw}) outside queue size ${this.size}` });
      }
    }
    this.availPw = this.scanPw = availPw;
    this.usedPw = this.published = this.signalled = usedPw;
    this.scanChains = 0;
    this.signalledValid = false;
  }

  markBroken(e: VirtqueueError): void {
    this.isBroken = true;
    this.brokenError ??= e;
  }

  private checkUsable(): void {
    if (this.isBroken) {
      throw new VirtqueueError('queue-broken', { queue: this.index, detail: this.brokenError ? `after ${this.brokenError.code}` : undefined }, { cause: this.brokenError ?? undefined });
    }
  }

  private fail(e: unknown): never {
    const err = e instanceof VirtqueueError ? e : new VirtqueueError('bad-address', { queue: this.index, detail: String(e) }, { cause: e });
    this.isBroken = true;
    this.brokenError = err;
    throw err;
  }
}
