// Driver side of a packed virtqueue (virtio 1.2 §2.8): owns the driver's ring position and wrap
// counter, the buffer ids and their free list, and the driver event suppression structure.
// Adds chains (direct, or through an indirect table), publishes them (the first added head's
// flags stored last), decides whether to notify, and reaps used descriptors, validating each
// against what it handed out: the device is not trusted either. Same contract as the split
// ring's DriverQueue (DriverVirtqueue, ./queue.ts). Knows nothing of threads.
//
// `head` in this API is the chain's buffer id.

import type { GuestMemory } from '../memory/guest-memory.js';
import type { DriverQueueOptions, Segment, UsedElem } from './driver-queue.js';
import { VirtqueueError } from './errors.js';
import { PACKED_START, packedAdvance, packedDistance, packedNeedEvent, type PackedLayout } from './packed-layout.js';
import {
  PackedRing,
  PACKED_DESC_F_INDIRECT,
  PACKED_DESC_F_NEXT,
  PACKED_DESC_F_WRITE,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  availFlags,
  isUsed,
  writePackedDesc,
} from './packed-ring.js';

export interface PackedDriverQueueOptions extends DriverQueueOptions {
  /**
   * VIRTIO_F_IN_ORDER negotiated (§2.8.8): a used descriptor may stand for every chain added
   * up to the one whose buffer id it carries (the device's batch); those before it wrote nothing.
   */
  inOrder?: boolean;
}

export class PackedDriverQueue<T = unknown> {
  readonly kind = 'packed' as const;
  readonly index: number;
  readonly size: number;
  readonly ring: PackedRing;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  private readonly indirectArea: number;
  private readonly indirectMax: number;
  private indirectViews: Uint32Array | null = null;
  private indirectViewGen = -1;

  // Private shadows: the device may scribble on shared memory, these it cannot touch.
  private availPw = PACKED_START; // next ring position to fill, with the driver's wrap counter
  private usedPw = PACKED_START; // next ring position to reap
  private kickOldPw = PACKED_START; // availPw at the last kick decision
  private publishedPw = PACKED_START;
  private firstPendingPos = -1; // head of the first chain added since the last publish
  private firstPendingWord = 0;
  private readonly freeNext: Uint16Array; // free buffer ids
  private freeHead = 0;
  private numFreeDescs: number;
  private readonly descsOfId: Uint16Array; // ring descriptors of the chain with that id (0 = not outstanding)
  private readonly writableOfId: Float64Array;
  private readonly addSeqOfId: Float64Array; // IN_ORDER: add ordinal of the chain with that id
  private readonly addOrder: Uint16Array; // IN_ORDER: ids in add order (ring of size)
  private addOrderHead = 0;
  private added = 0; // chains added (free-running)
  private reapedCount = 0; // chains reaped (free-running)
  private batchEndSeq = -1; // IN_ORDER: add ordinal of the batch's last chain, −1 when none
  private batchLen = 0;
  private readonly tokens: (T | undefined)[];
  private numAdded = 0; // adds since the last kick decision
  private addedUnpublished = 0; // adds since the last publish
  private forceKick = false;
  private interruptsOn = true;
  private brokenError: VirtqueueError | null = null;
  private readonly result: UsedElem<T | undefined> = { head: 0, len: 0, token: undefined };

  readonly stats = { added: 0, reaped: 0, addFailures: 0, indirectChains: 0 };
  /** Reaps that loaded a used head (each packed reap reads its own). */
  usedFetches = 0;
  readonly reapsSinceFetch = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly layout: PackedLayout,
    opts: PackedDriverQueueOptions = {},
  ) {
    this.index = opts.index ?? 0;
    this.size = layout.size;
    this.eventIdx = opts.eventIdx ?? false;
    this.inOrder = opts.inOrder ?? false;
    this.indirect = (opts.indirect ?? false) && opts.indirectArea !== undefined;
    this.indirectArea = opts.indirectArea ?? 0;
    this.indirectMax = opts.indirectMaxSegments ?? 32;
    if (this.indirect && this.indirectArea % 16 !== 0) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'indirect area must be 16-byte aligned' });
    }
    this.ring = new PackedRing(mem, layout, this.index);
    this.freeNext = new Uint16Array(this.size);
    for (let i = 0; i < this.size; i++) this.freeNext[i] = i + 1;
    this.numFreeDescs = this.size;
    this.descsOfId = new Uint16Array(this.size);
    this.writableOfId = new Float64Array(this.size);
    this.addSeqOfId = new Float64Array(this.size);
    this.addOrder = new Uint16Array(this.size);
    this.tokens = new Array<T | undefined>(this.size);
    if (opts.initRing ?? true) {
      // §2.8.13 / §2.8.10.1: the ring starts zeroed (no descriptor available or used) and
      // notifications enabled. The device reads none of it before the driver publishes.
      this.ring.desc.fill(0);
      this.ring.storeDriverEvent(0, RING_EVENT_FLAGS_ENABLE); // SeqCst: the zeroed ring is visible first
    }
  }

  get numFree(): number {
    return this.numFreeDescs;
  }
  get broken(): boolean {
    return this.brokenError !== null;
  }
  get error(): VirtqueueError | null {
    return this.brokenError;
  }
  /** Chains added and not yet reaped. */
  get outstanding(): number {
    return this.added - this.reapedCount;
  }
  /** Ring position and wrap counter of the next add (`pos | wrap << 15`). */
  get availPosition(): number {
    return this.availPw;
  }
  /** Ring position and wrap counter of the next used descriptor to reap. */
  get usedPosition(): number {
    return this.usedPw;
  }

  /**
   * Adds a chain of `readable` then `writable` buffers carrying `token`; returns its buffer id,
   * or -1 when there are not enough free descriptors (the next kickNeeded() then returns true).
   * Not visible to the device until publish().
   */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): number {
    this.checkUsable();
    const total = readable.length + writable.length;
    if (total === 0) throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'a chain needs at least one buffer' });
    if (total > this.size) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `a chain of ${total} buffers is longer than queue size ${this.size}` });
    }
    const useIndirect = this.indirect && total > 1 && total <= this.indirectMax;
    const need = useIndirect ? 1 : total;
    if (need > this.numFreeDescs) {
      this.stats.addFailures++;
      this.forceKick = readable.length > 0;
      return -1;
    }
    const id = this.freeHead;
    this.freeHead = this.freeNext[id]!;
    let writableBytes = 0;
    for (const s of writable) writableBytes += s.len;
    const ring = this.ring;
    const size = this.size;
    const headPw = this.availPw;
    if (useIndirect) {
      const table = this.indirectTables();
      const baseWord = id * this.indirectMax * 4;
      let i = 0;
      for (const s of readable) writePackedDesc(table, i++, s.addr, s.len, 0, 0, baseWord);
      for (const s of writable) writePackedDesc(table, i++, s.addr, s.len, 0, PACKED_DESC_F_WRITE, baseWord);
      ring.setDescBody(headPw & 0x7fff, this.indirectArea + id * this.indirectMax * 16, total * 16);
      this.setHead(headPw, id, PACKED_DESC_F_INDIRECT | availFlags(headPw >>> 15));
      this.stats.indirectChains++;
    } else {
      let pw = headPw;
      let k = 0;
      for (let s = 0; s < total; s++) {
        const seg = s < readable.length ? readable[s]! : writable[s - readable.length]!;
        const flags = (s >= readable.length ? PACKED_DESC_F_WRITE : 0) | (++k < total ? PACKED_DESC_F_NEXT : 0) | availFlags(pw >>> 15);
        ring.setDescBody(pw & 0x7fff, seg.addr, seg.len);
        // §2.8.6: every descriptor carries the buffer id (the device reads the last one's).
        if (s === 0) this.setHead(pw, id, flags);
        else ring.setDescWord(pw & 0x7fff, id, flags); // plain: published by the head's release
        pw = packedAdvance(pw, 1, size);
      }
    }
    this.finishAdd(id, need, writableBytes, token);
    return id;
  }

  /** Fast path for a one-buffer chain. */
  add1(addr: number, len: number, writable: boolean, token: T): number {
    this.checkUsable();
    if (this.numFreeDescs === 0) {
      this.stats.addFailures++;
      this.forceKick = !writable;
      return -1;
    }
    const id = this.freeHead;
    this.freeHead = this.freeNext[id]!;
    const pw = this.availPw;
    this.ring.setDescBody(pw & 0x7fff, addr, len);
    this.setHead(pw, id, (writable ? PACKED_DESC_F_WRITE : 0) | availFlags(pw >>> 15));
    this.finishAdd(id, 1, writable ? len : 0, token);
    return id;
  }

  /** A chain's head flags: held back for publish() when it is the first since the last publish. */
  private setHead(pw: number, id: number, flags: number): void {
    if (this.firstPendingPos < 0) {
      this.firstPendingPos = pw & 0x7fff;
      this.firstPendingWord = id | (flags << 16);
    } else {
      // Plain: the device stops at the first unpublished head, so it reads this one only after
      // the acquire that pairs with publish()'s release of that head.
      this.ring.setDescWord(pw & 0x7fff, id, flags);
    }
  }

  private finishAdd(id: number, descs: number, writableBytes: number, token: T): void {
    this.descsOfId[id] = descs;
    this.writableOfId[id] = writableBytes;
    this.tokens[id] = token;
    if (this.inOrder) {
      this.addSeqOfId[id] = this.added;
      let slot = this.addOrderHead + this.outstanding; // < 2·size: a compare, not a division
      if (slot >= this.size) slot -= this.size;
      this.addOrder[slot] = id;
    }
    this.numFreeDescs -= descs;
    this.availPw = packedAdvance(this.availPw, descs, this.size);
    this.added++;
    this.numAdded++;
    this.addedUnpublished++;
    this.stats.added++;
  }

  private indirectTables(): Uint32Array {
    if (this.indirectViews === null || this.indirectViewGen !== this.mem.generation) {
      this.indirectViews = this.mem.u32Array(this.indirectArea, this.size * this.indirectMax * 4);
      this.indirectViewGen = this.mem.generation;
    }
    return this.indirectViews;
  }

  /** Makes every chain added since the last publish visible to the device; returns how many. */
  publish(): number {
    if (this.firstPendingPos < 0) return 0;
    const w = this.firstPendingWord;
    // Release: every descriptor of the chains added since the last publish (and the later
    // heads) becomes visible before the first head's flags (pairs with the device's acquire
    // load of this word in PackedDeviceQueue.pop/pending; §2.8.21.1).
    this.ring.storeHeadWord(this.firstPendingPos, w & 0xffff, w >>> 16);
    this.firstPendingPos = -1;
    const n = this.addedUnpublished;
    this.addedUnpublished = 0;
    this.publishedPw = this.availPw;
    return n;
  }

  /**
   * Whether to notify the device about what was published since the last decision (§2.8.10,
   * §2.8.21.1). publish()'s SeqCst store and the load below are the full barrier (pairs with
   * PackedDeviceQueue.enableNotification's store + re-check).
   */
  kickNeeded(): boolean {
    this.numAdded = 0;
    const old = this.kickOldPw;
    this.kickOldPw = this.publishedPw;
    if (this.forceKick) {
      this.forceKick = false;
      return true;
    }
    const ev = this.ring.loadDeviceEvent();
    const flags = (ev >>> 16) & 3;
    if (flags === RING_EVENT_FLAGS_DISABLE) return false;
    if (flags === RING_EVENT_FLAGS_DESC && this.eventIdx) return packedNeedEvent(ev & 0xffff, this.publishedPw, old, this.size);
    return true;
  }

  /** Whether a used descriptor waits at the driver's position (acquire). */
  hasUsed(): boolean {
    if (this.batchEndSeq >= 0) return true;
    this.ring.refresh();
    // Acquire: pairs with the device's release of the used head (PackedDeviceQueue.publishUsed).
    return isUsed(this.ring.loadHeadWord(this.usedPw & 0x7fff) >>> 16, this.usedPw >>> 15);
  }

  /**
   * Takes the next used chain, or null. The returned object is reused by the next call. A used
   * descriptor naming no outstanding buffer id, or reporting more bytes than its chain could
   * hold, breaks the queue (VirtqueueError).
   */
  reap(): UsedElem<T> | null {
    this.checkUsable();
    if (this.batchEndSeq >= 0) return this.reapBatched();
    const ring = this.ring;
    ring.refresh();
    const pos = this.usedPw & 0x7fff;
    // Acquire: pairs with the device's release store of this flags word in publishUsed; len is
    // read after it.
    const word = ring.loadHeadWord(pos);
    const flags = word >>> 16;
    if (!isUsed(flags, this.usedPw >>> 15)) return null;
    this.usedFetches++;
    const id = word & 0xffff;
    // §2.8.4: the length counts only when the device set WRITE (it wrote something).
    const len = (flags & PACKED_DESC_F_WRITE) !== 0 ? ring.descLen(pos) : 0;
    if (id >= this.size) this.fail(new VirtqueueError('used-id-out-of-range', { queue: this.index, index: pos, head: id, size: this.size }));
    if (this.descsOfId[id] === 0) this.fail(new VirtqueueError('used-id-not-head', { queue: this.index, index: pos, head: id }));
    if (len > this.writableOfId[id]!) {
      this.fail(new VirtqueueError('used-len-too-large', { queue: this.index, index: pos, head: id, len, seen: this.writableOfId[id]! }));
    }
    if (this.inOrder) {
      const oldest = this.addOrder[this.addOrderHead]!;
      if (id !== oldest) {
        // §2.8.8: one used descriptor for a batch, carrying its last buffer id.
        this.batchEndSeq = this.addSeqOfId[id]!;
        this.batchLen = len;
        return this.reapBatched();
      }
    }
    return this.complete(id, len);
  }

  private reapBatched(): UsedElem<T> {
    const id = this.addOrder[this.addOrderHead]!;
    const last = this.addSeqOfId[id] === this.batchEndSeq;
    const len = last ? this.batchLen : 0;
    if (last) this.batchEndSeq = -1;
    return this.complete(id, len);
  }

  private complete(id: number, len: number): UsedElem<T> {
    const descs = this.descsOfId[id]!;
    this.descsOfId[id] = 0;
    this.freeNext[id] = this.freeHead;
    this.freeHead = id;
    this.numFreeDescs += descs;
    this.usedPw = packedAdvance(this.usedPw, descs, this.size);
    if (this.inOrder) this.addOrderHead = this.addOrderHead + 1 === this.size ? 0 : this.addOrderHead + 1;
    this.reapedCount++;
    this.stats.reaped++;
    const r = this.result;
    r.head = id;
    r.len = len;
    r.token = this.tokens[id];
    this.tokens[id] = undefined;
    if (this.eventIdx && this.interruptsOn) {
      // Keep asking for a notification at the next used position (Linux virtqueue_get_buf_ctx_packed).
      this.ring.storeDriverEvent(this.usedPw, RING_EVENT_FLAGS_DESC);
    }
    return r as UsedElem<T>;
  }

  /** Asks the device for no used-buffer notifications (§2.8.10: flags = DISABLE). */
  disableInterrupts(): void {
    if (!this.interruptsOn) return;
    this.interruptsOn = false;
    this.ring.storeDriverEvent(0, RING_EVENT_FLAGS_DISABLE);
  }

  /**
   * Asks for a notification at the next used descriptor, then re-checks; true when one already
   * waits (poll again instead of sleeping). Store then load, both SeqCst: pairs with
   * PackedDeviceQueue.publishUsed + needsNotification.
   */
  enableInterrupts(): boolean {
    this.interruptsOn = true;
    if (this.eventIdx) this.ring.storeDriverEvent(this.usedPw, RING_EVENT_FLAGS_DESC);
    else this.ring.storeDriverEvent(0, RING_EVENT_FLAGS_ENABLE);
    return this.hasUsed();
  }

  /**
   * Asks for a notification only after 3/4 of the outstanding descriptors are used (Linux
   * virtqueue_enable_cb_delayed_packed); without event idx it is enableInterrupts. Returns true
   * when the device already went past that point (poll again).
   */
  enableInterruptsDelayed(): boolean {
    if (!this.eventIdx) return this.enableInterrupts();
    this.interruptsOn = true;
    const bufs = Math.floor(((this.size - this.numFreeDescs) * 3) / 4);
    const event = packedAdvance(this.usedPw, bufs, this.size);
    this.ring.storeDriverEvent(event, RING_EVENT_FLAGS_DESC);
    // Re-check (the store above and these loads are SeqCst: pairs with the device's publish +
    // needsNotification): walk the used heads already there; the device notifies only when it
    // passes the event, so if it already did, poll now rather than sleep.
    if (this.batchEndSeq >= 0) return true;
    let pw = this.usedPw;
    let walked = 0;
    while (walked <= bufs) {
      const word = this.ring.loadHeadWord(pw & 0x7fff);
      if (!isUsed(word >>> 16, pw >>> 15)) return false;
      const id = word & 0xffff;
      const descs = id < this.size ? this.descsOfId[id]! : 0;
      if (descs === 0 || this.inOrder) return true; // let reap() judge it (or count the batch)
      walked += descs;
      pw = packedAdvance(pw, descs, this.size);
      if (packedDistance(pw, this.usedPw, this.size) !== walked) return true;
    }
    return true;
  }

  get interruptsEnabled(): boolean {
    return this.interruptsOn;
  }

  private checkUsable(): void {
    if (this.brokenError) throw new VirtqueueError('queue-broken', { queue: this.index, detail: `after ${this.brokenError.code}` }, { cause: this.brokenError });
  }

  private fail(e: VirtqueueError): never {
    this.brokenError = e;
    throw e;
  }
}
