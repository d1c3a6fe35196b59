// Driver side of a split virtqueue (virtio 1.2 §2.7.13): owns the descriptor table, the avail
// ring and the driver's free list; never writes the used ring. Adds chains (direct, or through an
// indirect table), publishes avail.idx once for several adds, decides whether to kick, and reaps
// used elements, validating each against what it handed out: the device is not trusted either
// (Linux's BAD_RING). Knows nothing of threads: the caller rings the doorbell.

import type { GuestMemory } from '../memory/guest-memory.js';
import { VirtqueueError } from './errors.js';
import type { SplitLayout } from './layout.js';
import {
  SplitRing,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  writeDesc,
} from './split-ring.js';
import { needEvent, u16Distance } from './u16.js';

/** A buffer in guest memory. */
export interface Segment {
  addr: number;
  len: number;
}

export interface DriverQueueOptions {
  index?: number;
  eventIdx?: boolean;
  /** Use indirect tables for multi-buffer chains (needs VIRTIO_F_INDIRECT_DESC and `indirectArea`). */
  indirect?: boolean;
  /** Guest address of size × indirectMaxSegments × 16 bytes (16-aligned) for the tables. */
  indirectArea?: number;
  /** Buffers per indirect table (default 32); longer chains fall back to direct descriptors. */
  indirectMaxSegments?: number;
  /** Write the driver-owned ring words to their reset values (default true). */
  initRing?: boolean;
  /**
   * VIRTIO_F_IN_ORDER negotiated (§2.7.9 split, §2.8.8 packed): a used element may stand for
   * every chain added up to the one it names (the device's batch); those before it wrote nothing.
   */
  inOrder?: boolean;
}

/** What reap() returns; one object reused per queue: copy what you need before the next reap. */
export interface UsedElem<T> {
  head: number;
  len: number;
  token: T;
}

export class DriverQueue<T = unknown> {
  readonly kind = 'split' as const;
  readonly index: number;
  readonly size: number;
  readonly ring: SplitRing;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  private readonly addOrder: Uint16Array | null; // IN_ORDER: head of each added chain, by avail index
  private batchEnd = -1; // IN_ORDER: avail index of the last chain of the batch being reaped, −1 when none
  private batchLen = 0;
  private readonly indirectArea: number;
  private readonly indirectMax: number;
  private indirectViews: Uint32Array | null = null;
  private indirectViewGen = -1;

  // Private shadows: the device may scribble on shared memory, these it cannot touch.
  private readonly freeNext: Uint16Array; // free-list links
  private freeHead = 0;
  private numFreeDescs: number;
  private readonly chainDescs: Uint16Array; // ring descriptors used by the chain at head (0 = not outstanding)
  private readonly chainWritable: Float64Array; // writable bytes of the chain at head
  private readonly tokens: (T | undefined)[];
  private availShadow = 0; // next avail index to fill
  private published = 0; // value last stored to avail.idx
  private numAdded = 0; // adds since the last kick decision
  private lastUsed = 0; // next used index to reap
  private cachedUsedIdx = 0;
  private forceKick = false;
  private interruptsOn = true;
  private brokenError: VirtqueueError | null = null;
  private readonly result: UsedElem<T | undefined> = { head: 0, len: 0, token: undefined };

  /** Counters for the policies and benchmarks. */
  readonly stats = { added: 0, reaped: 0, addFailures: 0, indirectChains: 0 };

  constructor(
    readonly mem: GuestMemory,
    readonly layout: SplitLayout,
    opts: DriverQueueOptions = {},
  ) {
    this.index = opts.index ?? 0;
    this.size = layout.size;
    this.eventIdx = opts.eventIdx ?? false;
    this.indirect = (opts.indirect ?? false) && opts.indirectArea !== undefined;
    this.indirectArea = opts.indirectArea ?? 0;
    this.indirectMax = opts.indirectMaxSegments ?? 32;
    this.inOrder = opts.inOrder ?? false;
    this.addOrder = this.inOrder ? new Uint16Array(layout.size) : null;
    if (this.indirect && this.indirectArea % 16 !== 0) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'indirect area must be 16-byte aligned' });
    }
    this.ring = new SplitRing(mem, layout, this.index);
    this.freeNext = new Uint16Array(this.size);
    this.chainDescs = new Uint16Array(this.size);
    this.chainWritable = new Float64Array(this.size);
    this.tokens = new Array<T | undefined>(this.size);
    for (let i = 0; i < this.size; i++) this.freeNext[i] = i + 1; // last link is unused
    this.numFreeDescs = this.size;
    if (opts.initRing ?? true) {
      this.ring.storeAvailFlags(0);
      this.ring.storeUsedEvent(0);
      this.ring.storeAvailIdx(0); // release: the reset ring words are visible before use
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
    return u16Distance(this.availShadow, this.lastUsed);
  }

  /**
   * Adds a chain of `readable` then `writable` buffers carrying `token`; returns its head, or -1
   * when there are not enough free descriptors (the next kickNeeded() then returns true, as
   * Linux kicks after a failed add so the device frees space, §0 of the reference notes).
   * Not visible to the device until publish().
   */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): number {
    this.checkUsable();
    const total = readable.length + writable.length;
    if (total === 0) throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'a chain needs at least one buffer' });
    if (total > this.size) {
      // §2.7.5.3.1: the driver MUST NOT create a chain longer than the Queue Size, indirect or not.
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `a chain of ${total} buffers is longer than queue size ${this.size}` });
    }
    const useIndirect = this.indirect && total > 1 && total <= this.indirectMax;
    const need = useIndirect ? 1 : total;
    if (need > this.numFreeDescs) {
      this.stats.addFailures++;
      this.forceKick = readable.length > 0;
      return -1;
    }
    let writableBytes = 0;
    for (const s of writable) writableBytes += s.len;
    const head = this.freeHead;
    if (useIndirect) {
      const table = this.indirectTables();
      const baseWord = head * this.indirectMax * 4;
      let i = 0;
      for (const s of readable) {
        writeDesc(table, i, s.addr, s.len, i + 1 < total ? VIRTQ_DESC_F_NEXT : 0, i + 1, baseWord);
        i++;
      }
      for (const s of writable) {
        writeDesc(table, i, s.addr, s.len, VIRTQ_DESC_F_WRITE | (i + 1 < total ? VIRTQ_DESC_F_NEXT : 0), i + 1, baseWord);
        i++;
      }
      const base = this.indirectArea + head * this.indirectMax * 16;
      this.ring.setDesc(head, base, total * 16, VIRTQ_DESC_F_INDIRECT, 0);
      this.freeHead = this.freeNext[head]!;
      this.stats.indirectChains++;
    } else {
      let d = head;
      let k = 0;
      for (const s of readable) {
        const next = this.freeNext[d]!;
        this.ring.setDesc(d, s.addr, s.len, ++k < total ? VIRTQ_DESC_F_NEXT : 0, next);
        if (k < total) d = next;
        else this.freeHead = next;
      }
      for (const s of writable) {
        const next = this.freeNext[d]!;
        this.ring.setDesc(d, s.addr, s.len, VIRTQ_DESC_F_WRITE | (++k < total ? VIRTQ_DESC_F_NEXT : 0), next);
        if (k < total) d = next;
        else this.freeHead = next;
      }
    }
    this.numFreeDescs -= need;
    this.chainDescs[head] = need;
    this.chainWritable[head] = writableBytes;
    this.tokens[head] = token;
    this.ring.setAvailEntry(this.availShadow, head); // plain: published by publish()'s release
    if (this.addOrder !== null) this.addOrder[this.availShadow & (this.size - 1)] = head;
    this.availShadow = (this.availShadow + 1) & 0xffff;
    this.numAdded++;
    this.stats.added++;
    return head;
  }

  /** Fast path for a one-buffer chain. */
  add1(addr: number, len: number, writable: boolean, token: T): number {
    this.checkUsable();
    if (this.numFreeDescs === 0) {
      this.stats.addFailures++;
      this.forceKick = !writable;
      return -1;
    }
    const head = this.freeHead;
    this.ring.setDesc(head, addr, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0);
    this.freeHead = this.freeNext[head]!;
    this.numFreeDescs--;
    this.chainDescs[head] = 1;
    this.chainWritable[head] = writable ? len : 0;
    this.tokens[head] = token;
    this.ring.setAvailEntry(this.availShadow, head);
    if (this.addOrder !== null) this.addOrder[this.availShadow & (this.size - 1)] = head;
    this.availShadow = (this.availShadow + 1) & 0xffff;
    this.numAdded++;
    this.stats.added++;
    return head;
  }

  /** One cached view over every head's indirect table (head h's table starts at word h·max·4). */
  private indirectTables(): Uint32Array {
    if (this.indirectViews === null || this.indirectViewGen !== this.mem.generation) {
      this.indirectViews = this.mem.u32Array(this.indirectArea, this.size * this.indirectMax * 4);
      this.indirectViewGen = this.mem.generation;
    }
    return this.indirectViews;
  }

  /** Makes every chain added since the last publish visible to the device; returns how many. */
  publish(): number {
    const n = u16Distance(this.availShadow, this.published);
    if (n === 0) return 0;
    // Release: descriptors and avail ring entries written in add() become visible before the
    // index (pairs with the acquire load of avail.idx in DeviceQueue.pending/pop).
    this.ring.storeAvailIdx(this.availShadow);
    this.published = this.availShadow;
    return n;
  }

  /**
   * Whether to notify the device about what was published since the last decision (§2.7.13.4).
   * The publish's Atomics.store and the loads below are SeqCst, the full barrier of step 4
   * (pairs with DeviceQueue.enableNotification's store + re-check).
   */
  kickNeeded(): boolean {
    const added = this.numAdded;
    this.numAdded = 0;
    if (this.forceKick) {
      this.forceKick = false;
      return true;
    }
    if (this.eventIdx) {
      const newIdx = this.published;
      return needEvent(this.ring.loadAvailEvent(), newIdx, (newIdx - added) & 0xffff);
    }
    return (this.ring.loadUsedFlags() & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** Whether used elements are waiting to be reaped (acquire load of used.idx). */
  hasUsed(): boolean {
    if (this.lastUsed !== this.cachedUsedIdx) return true;
    this.cacheUsedIdx(this.ring.loadUsedIdx()); // acquire: pairs with DeviceQueue.publishUsed
    return this.lastUsed !== this.cachedUsedIdx;
  }

  /**
   * Reads of used.idx that found new entries (this instance's count). A tracer compares it
   * across reaps to tell the first reap after a fresh acquire (src/trace/tracer.ts).
   */
  usedFetches = 0;
  private usedFetchAt = 0; // lastUsed when usedFetches last moved

  /**
   * Used elements reaped after the latest read of used.idx that found new entries, not counting
   * the last reap: a tracer places a reap among the points since that acquire.
   */
  get reapsSinceFetch(): number {
    return (this.lastUsed - 1 - this.usedFetchAt) & 0xffff; // u16 ring positions
  }

  private cacheUsedIdx(idx: number): void {
    if (idx !== this.cachedUsedIdx) {
      this.usedFetches++;
      this.usedFetchAt = this.lastUsed;
    }
    this.cachedUsedIdx = idx;
  }

  /**
   * Takes the next used element, or null. The returned object is reused by the next call.
   * A used element that names no outstanding chain, or reports more bytes than the chain could
   * hold, breaks the queue (VirtqueueError).
   */
  reap(): UsedElem<T> | null {
    this.checkUsable();
    if (this.lastUsed === this.cachedUsedIdx) {
      const usedIdx = this.ring.loadUsedIdx(); // acquire: pairs with DeviceQueue.publishUsed's release
      const n = u16Distance(usedIdx, this.lastUsed);
      if (n === 0) return null;
      if (n > this.size) this.fail(new VirtqueueError('used-idx-jump', { queue: this.index, index: usedIdx, seen: n, size: this.size }));
      this.cacheUsedIdx(usedIdx);
    }
    const slot = this.lastUsed;
    if (this.batchEnd >= 0 || this.addOrder !== null) return this.reapInOrder(slot);
    const head = this.ring.usedElemId(slot); // plain: after the acquire above
    const len = this.ring.usedElemLen(slot);
    return this.complete(slot, head, len);
  }

  /**
   * IN_ORDER (§2.7.9): the element at the batch's first slot names the batch's last head; every
   * chain added before it, oldest first, is complete with length 0, and the last with the
   * element's length. used.idx has moved past the whole batch.
   */
  private reapInOrder(slot: number): UsedElem<T> | null {
    const order = this.addOrder!;
    const mask = this.size - 1;
    if (this.batchEnd < 0) {
      const head = this.ring.usedElemId(slot); // plain: after the acquire in reap
      const len = this.ring.usedElemLen(slot);
      if (head >= this.size) this.fail(new VirtqueueError('used-id-out-of-range', { queue: this.index, index: slot, head, size: this.size }));
      // Find the chain it names among the outstanding ones, oldest first (bounded by the queue size).
      const outstanding = u16Distance(this.availShadow, this.lastUsed);
      let k = 0;
      while (k < outstanding && order[(slot + k) & mask] !== head) k++;
      if (k === outstanding || this.chainDescs[head] === 0) this.fail(new VirtqueueError('used-id-not-head', { queue: this.index, index: slot, head }));
      if (k + 1 > u16Distance(this.cachedUsedIdx, slot)) {
        this.fail(new VirtqueueError('used-id-not-head', { queue: this.index, index: slot, head, detail: `batch of ${k + 1} chains beyond used.idx` }));
      }
      this.batchEnd = (slot + k) & 0xffff;
      this.batchLen = len;
    }
    const head = order[slot & mask]!;
    const last = slot === this.batchEnd;
    if (last) this.batchEnd = -1;
    return this.complete(slot, head, last ? this.batchLen : 0);
  }

  private complete(slot: number, head: number, len: number): UsedElem<T> {
    if (head >= this.size) this.fail(new VirtqueueError('used-id-out-of-range', { queue: this.index, index: slot, head, size: this.size }));
    const descs = this.chainDescs[head]!;
    if (descs === 0) this.fail(new VirtqueueError('used-id-not-head', { queue: this.index, index: slot, head }));
    if (len > this.chainWritable[head]!) {
      this.fail(new VirtqueueError('used-len-too-large', { queue: this.index, index: slot, head, len, seen: this.chainWritable[head]! }));
    }
    // Return the chain's descriptors to the free list, walking our private links.
    let last = head;
    for (let k = 1; k < descs; k++) last = this.freeNext[last]!;
    this.freeNext[last] = this.freeHead;
    this.freeHead = head;
    this.numFreeDescs += descs;
    this.chainDescs[head] = 0;
    const r = this.result;
    r.head = head;
    r.len = len;
    r.token = this.tokens[head];
    this.tokens[head] = undefined;
    this.lastUsed = (slot + 1) & 0xffff;
    this.stats.reaped++;
    if (this.eventIdx && this.interruptsOn) {
      // Keep asking for an interrupt at the next used element (Linux virtqueue_get_buf_ctx_split).
      this.ring.storeUsedEvent(this.lastUsed);
    }
    return r as UsedElem<T>;
  }

  /** Asks the device for no interrupts. With event idx, used_event is parked one wrap away. */
  disableInterrupts(): void {
    if (!this.interruptsOn) return;
    this.interruptsOn = false;
    if (this.eventIdx) this.ring.storeUsedEvent((this.lastUsed - 1) & 0xffff);
    else this.ring.storeAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  /**
   * Asks for an interrupt at the next used element, then re-checks; returns true when used
   * elements are already waiting (poll again instead of sleeping). Store then load, both
   * SeqCst: pairs with DeviceQueue.publishUsed + needsNotification.
   */
  enableInterrupts(): boolean {
    this.interruptsOn = true;
    if (this.eventIdx) this.ring.storeUsedEvent(this.lastUsed);
    else this.ring.storeAvailFlags(0);
    this.cacheUsedIdx(this.ring.loadUsedIdx());
    return this.cachedUsedIdx !== this.lastUsed;
  }

  /**
   * Asks for an interrupt only after 3/4 of the outstanding buffers are used (Linux
   * virtqueue_enable_cb_delayed); without event idx it is enableInterrupts. Returns true when
   * more than that many are already used (poll again).
   */
  enableInterruptsDelayed(): boolean {
    if (!this.eventIdx) return this.enableInterrupts();
    this.interruptsOn = true;
    const bufs = Math.floor((u16Distance(this.availShadow, this.lastUsed) * 3) / 4);
    this.ring.storeUsedEvent(this.lastUsed + bufs);
    this.cacheUsedIdx(this.ring.loadUsedIdx()); // full barrier pair with the store above
    return u16Distance(this.cachedUsedIdx, this.lastUsed) > bufs;
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
