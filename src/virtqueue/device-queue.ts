// Device side of a split virtqueue (virtio 1.2 §2.7). Owns the device's indices and the used
// ring; never writes descriptors or the avail ring. Knows nothing of threads or timers: it says
// whether to notify, and the caller decides how (rust-vmm's split). Guest input is hostile: any
// violation marks the queue broken (the caller reports DEVICE_NEEDS_RESET) and throws a
// VirtqueueError; a broken queue does nothing until reset.
//
// Mutable state lives in a small Int32Array: private by default, or a 64-byte block of shared
// memory so another thread that holds the global lock can run device code on this queue
// (DESIGN "Two threading models"). The lock's own Atomics order those plain accesses.

import type { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain, parseChain, type ChainParseContext } from './chain.js';
import { VirtqueueError } from './errors.js';
import type { SplitLayout } from './layout.js';
import { SplitRing, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from './split-ring.js';
import { needEvent, u16Distance } from './u16.js';

// Indices into the state words.
const S_NEXT_AVAIL = 0; // next avail index the device will pop
const S_SHADOW_AVAIL = 1; // last avail.idx read (saves an atomic load per pop)
const S_NEXT_USED = 2; // next used index the device will fill (shadow of used.idx)
const S_PUBLISHED_USED = 3; // value last stored to used.idx
const S_SIGNALLED_USED = 4; // used.idx at the last notification decision (event idx)
const S_SIGNALLED_VALID = 5; // 0 after restore/reset: the next decision must notify
const S_IN_FLIGHT = 6; // chains popped but not yet returned (notify-on-empty's `inuse`)
const S_BROKEN = 7;
const S_NOTIFY_ENABLED = 8;
/** Int32 words a shared state block must provide (one 64-byte line). */
export const DEVICE_QUEUE_STATE_WORDS = 16;

export interface DeviceQueueOptions {
  /** Queue index, for error messages. */
  index?: number;
  /** VIRTIO_F_EVENT_IDX negotiated (§2.7.10): avail_event / used_event instead of flags. */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3). */
  indirect?: boolean;
  /** VIRTIO_F_NOTIFY_ON_EMPTY (legacy bit 24): notify when no buffers are available or in flight. */
  notifyOnEmpty?: boolean;
  /** A 16-word Int32Array in shared memory to hold the state (see file comment). */
  stateBlock?: Int32Array;
  /**
   * VIRTIO_F_IN_ORDER negotiated (§2.7.9): chains are returned in the order they were popped
   * (addUsed refuses another order). Not with a shared stateBlock (the order is private).
   */
  inOrder?: boolean;
  /**
   * With inOrder: a run of chains that wrote nothing, ended by any chain, is returned as one
   * used element carrying the last head, and used.idx still moves by the run's length (§2.7.9).
   * Only for queues whose driver ignores the lengths of such chains (transmit).
   */
  batchUsed?: boolean;
}

/** The plain-object snapshot of a device queue (save/restore, migration). */
export interface DeviceQueueState {
  size: number;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
  eventIdx: boolean;
  indirect: boolean;
  notifyOnEmpty: boolean;
  nextAvail: number;
  nextUsed: number;
  signalledUsed: number;
  signalledUsedValid: boolean;
  inFlight: number;
  broken: boolean;
  /** Absent or 'split' for a split ring. */
  ring?: 'split' | 'packed';
  /** VIRTIO_F_IN_ORDER was negotiated. */
  inOrder?: boolean;
  /** Packed: next pop position and its wrap counter (`pos | wrap << 15`, §2.8.1). */
  availPosition?: number;
  /** Packed: next used descriptor position and its wrap counter. */
  usedPosition?: number;
  /** Packed: buffer ids in flight, in pop order, and the ring descriptors of each. */
  inFlightIds?: number[];
  inFlightDescs?: number[];
}

export class DeviceQueue {
  readonly kind = 'split' as const;
  readonly index: number;
  readonly size: number;
  readonly ring: SplitRing;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly notifyOnEmpty: boolean;
  readonly inOrder: boolean;
  readonly batchUsed: boolean;
  private readonly popOrder: Uint16Array | null; // IN_ORDER: head of each popped chain, by avail index
  private batchSlot = -1; // batchUsed: used index of the current batch's element, −1 when none
  private batchLen = 0;
  private readonly st: Int32Array;
  private lastError: VirtqueueError | null = null;
  private readonly scratch = new DescriptorChain();
  // What parseChain needs, refreshed on every pop (no object per chain).
  private readonly parseCtx: ChainParseContext;

  constructor(
    readonly mem: GuestMemory,
    readonly layout: SplitLayout,
    opts: DeviceQueueOptions = {},
  ) {
    this.index = opts.index ?? 0;
    this.size = layout.size;
    this.eventIdx = opts.eventIdx ?? false;
    this.indirect = opts.indirect ?? false;
    this.notifyOnEmpty = opts.notifyOnEmpty ?? false;
    if (opts.stateBlock && opts.stateBlock.length < DEVICE_QUEUE_STATE_WORDS) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `state block needs ${DEVICE_QUEUE_STATE_WORDS} words` });
    }
    this.inOrder = opts.inOrder ?? false;
    this.batchUsed = this.inOrder && (opts.batchUsed ?? false);
    if (this.inOrder && opts.stateBlock) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'IN_ORDER keeps the pop order privately: no shared state block' });
    }
    this.popOrder = this.inOrder ? new Uint16Array(layout.size) : null;
    this.st = opts.stateBlock ?? new Int32Array(DEVICE_QUEUE_STATE_WORDS);
    this.ring = new SplitRing(mem, layout, this.index);
    this.parseCtx = { mem, queue: this.index, size: this.size, desc: this.ring.desc, indirectAllowed: this.indirect };
    if (!opts.stateBlock) this.resetState();
  }

  /** Back to the reset state: indices 0, notifications enabled, not broken (§2.7 after reset). */
  resetState(): void {
    this.st.fill(0);
    this.st[S_NOTIFY_ENABLED] = 1;
    this.lastError = null;
    this.batchSlot = -1;
  }

  get broken(): boolean {
    return this.st[S_BROKEN] !== 0;
  }
  /** The violation that broke the queue (null if not broken or broken in another thread). */
  get error(): VirtqueueError | null {
    return this.lastError;
  }
  get nextAvail(): number {
    return this.st[S_NEXT_AVAIL]!;
  }
  get nextUsed(): number {
    return this.st[S_NEXT_USED]!;
  }
  /**
   * Reads of avail.idx that found it moved (this instance's count). A tracer compares it
   * across pops to tell the first pop after a fresh acquire (src/trace/tracer.ts).
   */
  availFetches = 0;
  private availFetchAt = 0; // nextAvail when availFetches last moved

  /**
   * Chains popped after the latest read of avail.idx that found it moved, not counting the last
   * pop: a tracer places a pop among the points since that acquire (src/trace/tracer.ts).
   */
  get popsSinceFetch(): number {
    return (this.st[S_NEXT_AVAIL]! - 1 - this.availFetchAt) & 0xffff; // u16 ring positions
  }

  /** Chains popped and not yet returned with addUsed. */
  get inFlight(): number {
    return this.st[S_IN_FLIGHT]!;
  }

  /**
   * Chains the driver has made available that the device has not popped yet. Reads avail.idx
   * (acquire). Throws if the driver moved avail.idx more than the queue size ahead.
   */
  pending(): number {
    this.checkUsable();
    this.ring.refresh();
    const availIdx = this.ring.loadAvailIdx(); // acquire: pairs with DriverQueue.publish's release
    const n = u16Distance(availIdx, this.st[S_NEXT_AVAIL]!);
    if (n > this.size) this.fail(new VirtqueueError('avail-idx-jump', { queue: this.index, index: availIdx, seen: n, size: this.size }));
    if (availIdx !== this.st[S_SHADOW_AVAIL]) {
      this.availFetches++;
      this.availFetchAt = this.st[S_NEXT_AVAIL]!;
    }
    this.st[S_SHADOW_AVAIL] = availIdx;
    return n;
  }

  /**
   * Pops the next available chain into `out` (or a fresh DescriptorChain), or returns null when
   * the ring is empty. Throws VirtqueueError (and marks the queue broken) on a bad chain.
   */
  pop(out?: DescriptorChain): DescriptorChain | null {
    const st = this.st;
    const nextAvail = st[S_NEXT_AVAIL]!;
    if (nextAvail === st[S_SHADOW_AVAIL]! || st[S_BROKEN] !== 0) {
      // Only touch avail.idx when the cached value is used up (vhost's avail_idx cache).
      if (this.pending() === 0) return null;
    }
    const ring = this.ring;
    const head = ring.availEntry(nextAvail); // plain: after the acquire load in pending()
    if (head >= this.size) {
      this.fail(new VirtqueueError('head-out-of-range', { queue: this.index, index: nextAvail, head, size: this.size }));
    }
    const chain = out ?? new DescriptorChain();
    try {
      const ctx = this.parseCtx;
      ctx.mem = this.mem;
      ctx.queue = this.index;
      ctx.size = this.size;
      ctx.desc = ring.desc;
      ctx.indirectAllowed = this.indirect;
      parseChain(ctx, head, chain);
    } catch (e) {
      this.fail(e);
    }
    if (this.popOrder !== null) this.popOrder[nextAvail & (this.size - 1)] = head;
    st[S_NEXT_AVAIL] = (nextAvail + 1) & 0xffff;
    st[S_IN_FLIGHT]!++;
    return chain;
  }

  /**
   * Gives back the last `count` popped chains that were not added to the used ring, so the next
   * pop returns them again (QEMU's virtqueue_unpop / virtqueue_rewind): a device that ran out of
   * room half-way through a mergeable rx frame puts its chains back untouched. Nothing is
   * written to shared memory; the driver cannot tell.
   */
  unpop(count = 1): void {
    const st = this.st;
    if (!Number.isInteger(count) || count < 0 || count > st[S_IN_FLIGHT]!) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `unpop(${count}) with ${st[S_IN_FLIGHT]} chains in flight` });
    }
    st[S_NEXT_AVAIL] = (st[S_NEXT_AVAIL]! - count) & 0xffff;
    st[S_IN_FLIGHT] = st[S_IN_FLIGHT]! - count;
  }

  /** The driver's avail.idx now (acquire load; pairs with DriverQueue.publish). */
  availIdx(): number {
    return this.ring.loadAvailIdx();
  }

  /**
   * Asks for a kick only once the driver adds buffers beyond avail index `idx` — QEMU's
   * virtio_queue_set_notification with avail_event = idx, used when the buffers already
   * there are too few for the next frame (a plain enableNotification would ask for a kick that
   * already happened). Returns true when avail.idx already moved past `idx` (process rather
   * than sleep). The store and the re-load are SeqCst: pairs with DriverQueue.kickNeeded.
   */
  enableNotificationAfter(idx: number): boolean {
    this.st[S_NOTIFY_ENABLED] = 1;
    if (this.eventIdx) this.ring.storeAvailEvent(idx & 0xffff);
    else this.ring.storeUsedFlags(0);
    if (this.broken) return false;
    return this.ring.loadAvailIdx() !== (idx & 0xffff);
  }

  /** Like pop, but reuses one internal chain object (valid until the next popReused). */
  popReused(): DescriptorChain | null {
    return this.pop(this.scratch);
  }

  /**
   * Records that the chain at `head` is done and `len` bytes were written into it (§2.7.8.2).
   * Written to the used ring at once but invisible to the driver until publishUsed().
   */
  addUsed(head: number, len: number): void {
    this.checkUsable();
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: `addUsed head ${head} outside queue size ${this.size}` });
    }
    const st = this.st;
    const nextUsed = st[S_NEXT_USED]!;
    if (this.popOrder !== null) {
      const oldest = this.popOrder[(st[S_NEXT_AVAIL]! - st[S_IN_FLIGHT]!) & (this.size - 1)]!;
      if (st[S_IN_FLIGHT]! > 0 && head !== oldest) {
        throw new VirtqueueError('bad-argument', { queue: this.index, detail: `addUsed: IN_ORDER returns head ${oldest} next, not ${head}` });
      }
    }
    len >>>= 0;
    if (this.batchSlot >= 0 && this.batchLen === 0) {
      // §2.7.9: one used element with the last head stands for the batch (the chains before it
      // wrote nothing); used.idx still counts every chain.
      this.ring.setUsedElem(this.batchSlot, head, len); // plain: published by publishUsed's release
    } else {
      this.ring.setUsedElem(nextUsed, head, len); // plain: published by publishUsed's release
      if (this.batchUsed) this.batchSlot = nextUsed;
    }
    this.batchLen = len;
    st[S_NEXT_USED] = (nextUsed + 1) & 0xffff;
    if (st[S_IN_FLIGHT]! > 0) st[S_IN_FLIGHT]!--;
  }

  /** Makes every used element added since the last publish visible; returns how many. */
  publishUsed(): number {
    const st = this.st;
    const n = u16Distance(st[S_NEXT_USED]!, st[S_PUBLISHED_USED]!);
    if (n === 0) return 0;
    // Release: used elements and the bytes written into buffers become visible before the
    // index (pairs with the acquire load of used.idx in DriverQueue.reap).
    this.ring.storeUsedIdx(st[S_NEXT_USED]!);
    st[S_PUBLISHED_USED] = st[S_NEXT_USED]!;
    this.batchSlot = -1;
    return n;
  }

  /**
   * Whether the driver wants a used-buffer notification for what was published since the last
   * decision (§2.7.7.2, §2.7.10). Call after publishUsed. The publish's Atomics.store and the
   * loads below are SeqCst: the full barrier QEMU places before reading used_event.
   */
  needsNotification(): boolean {
    const st = this.st;
    const ring = this.ring;
    if (this.notifyOnEmpty && st[S_IN_FLIGHT] === 0 && ring.loadAvailIdx() === st[S_NEXT_AVAIL]) {
      // Legacy VIRTIO_F_NOTIFY_ON_EMPTY: notify when the ring has run dry, even if suppressed.
      return true;
    }
    if (this.eventIdx) {
      const published = st[S_PUBLISHED_USED]!;
      const old = st[S_SIGNALLED_USED]!;
      const valid = st[S_SIGNALLED_VALID] !== 0;
      st[S_SIGNALLED_USED] = published;
      st[S_SIGNALLED_VALID] = 1;
      if (!valid) return true;
      // used_event: pairs with DriverQueue's storeUsedEvent followed by its used.idx re-check.
      return needEvent(ring.loadUsedEvent(), published, old);
    }
    // avail.flags: pairs with DriverQueue.disable/enableInterrupts.
    return (ring.loadAvailFlags() & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Whether the driver currently asks for no interrupts (flags mode; false with event idx). */
  driverSuppressesInterrupts(): boolean {
    return !this.eventIdx && (this.ring.loadAvailFlags() & VIRTQ_AVAIL_F_NO_INTERRUPT) !== 0;
  }

  /** Asks the driver not to kick (§2.7.10). With event idx the stale avail_event does it. */
  disableNotification(): void {
    if (this.st[S_NOTIFY_ENABLED] === 0) return;
    this.st[S_NOTIFY_ENABLED] = 0;
    if (!this.eventIdx) this.ring.storeUsedFlags(VIRTQ_USED_F_NO_NOTIFY);
  }

  /**
   * Asks the driver to kick again, then re-checks the avail ring; returns true when buffers are
   * already waiting (the caller must process them rather than sleep). The store and the re-check
   * load are SeqCst: the full barrier that closes the race with a driver that published just
   * before reading our flag (pairs with DriverQueue.kickNeeded).
   */
  enableNotification(): boolean {
    this.st[S_NOTIFY_ENABLED] = 1;
    if (this.eventIdx) this.ring.storeAvailEvent(this.st[S_NEXT_AVAIL]!);
    else this.ring.storeUsedFlags(0);
    if (this.broken) return false;
    return this.pending() > 0;
  }

  get notificationsEnabled(): boolean {
    return this.st[S_NOTIFY_ENABLED] !== 0;
  }

  /** A plain-object snapshot of the whole queue state. */
  snapshot(): DeviceQueueState {
    const st = this.st;
    return {
      size: this.size,
      descAddr: this.layout.descAddr,
      availAddr: this.layout.availAddr,
      usedAddr: this.layout.usedAddr,
      eventIdx: this.eventIdx,
      indirect: this.indirect,
      notifyOnEmpty: this.notifyOnEmpty,
      nextAvail: st[S_NEXT_AVAIL]!,
      nextUsed: st[S_NEXT_USED]!,
      signalledUsed: st[S_SIGNALLED_USED]!,
      signalledUsedValid: st[S_SIGNALLED_VALID] !== 0,
      inFlight: st[S_IN_FLIGHT]!,
      broken: st[S_BROKEN] !== 0,
      ring: 'split',
      inOrder: this.inOrder,
    };
  }

  /**
   * Restores a snapshot onto this queue (same memory and layout). Chains that were in flight
   * when the snapshot was taken are the caller's to complete or re-pop; the used index must
   * equal what was published, since unpublished used elements are not part of the state.
   */
  restore(s: DeviceQueueState): void {
    if ((s.ring ?? 'split') !== 'split' || s.size !== this.size || s.descAddr !== this.layout.descAddr || s.availAddr !== this.layout.availAddr || s.usedAddr !== this.layout.usedAddr) {
      throw new VirtqueueError('bad-argument', { queue: this.index, detail: 'snapshot was taken from a queue with a different layout' });
    }
    const st = this.st;
    st[S_NEXT_AVAIL] = s.nextAvail & 0xffff;
    st[S_SHADOW_AVAIL] = s.nextAvail & 0xffff;
    st[S_NEXT_USED] = s.nextUsed & 0xffff;
    st[S_PUBLISHED_USED] = s.nextUsed & 0xffff;
    st[S_SIGNALLED_USED] = s.signalledUsed & 0xffff;
    st[S_SIGNALLED_VALID] = s.signalledUsedValid ? 1 : 0;
    st[S_IN_FLIGHT] = s.inFlight;
    st[S_BROKEN] = s.broken ? 1 : 0;
    st[S_NOTIFY_ENABLED] = 1;
    this.batchSlot = -1;
    if (this.popOrder !== null) {
      // The heads in flight are where the avail ring named them (the driver may not reuse those
      // entries before they are used: §2.7.13).
      for (let k = s.inFlight; k > 0; k--) {
        const idx = (s.nextAvail - k) & 0xffff;
        this.popOrder[idx & (this.size - 1)] = this.ring.availEntry(idx);
      }
    }
  }

  /** Builds a queue from a snapshot. */
  static fromSnapshot(mem: GuestMemory, layout: SplitLayout, s: DeviceQueueState, opts: Omit<DeviceQueueOptions, 'eventIdx' | 'indirect' | 'notifyOnEmpty'> = {}): DeviceQueue {
    const q = new DeviceQueue(mem, layout, { ...opts, eventIdx: s.eventIdx, indirect: s.indirect, notifyOnEmpty: s.notifyOnEmpty, inOrder: s.inOrder ?? false });
    q.restore(s);
    return q;
  }

  private checkUsable(): void {
    if (this.st[S_BROKEN] !== 0) {
      throw new VirtqueueError('queue-broken', { queue: this.index, detail: this.lastError ? `after ${this.lastError.code}` : undefined }, { cause: this.lastError ?? undefined });
    }
  }

  /**
   * Marks the queue broken for a violation found above the ring (a held chain whose buffers left
   * guest memory when the region table was replaced): DEVICE_NEEDS_RESET, as for the ring's own.
   */
  markBroken(e: VirtqueueError): void {
    this.st[S_BROKEN] = 1;
    this.lastError ??= e;
  }

  /** Marks the queue broken and rethrows the violation as a VirtqueueError. */
  private fail(e: unknown): never {
    const err = e instanceof VirtqueueError ? e : new VirtqueueError('bad-address', { queue: this.index, detail: String(e) }, { cause: e });
    this.st[S_BROKEN] = 1;
    this.lastError = err;
    throw err;
  }
}
