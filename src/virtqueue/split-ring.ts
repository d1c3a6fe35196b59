// Typed views over one split virtqueue's three areas in guest memory, and every access to them.
// This file is the only one that knows field offsets inside the rings (virtio 1.2 §2.7.5,
// §2.7.6, §2.7.8) and the only one that issues Atomics on ring memory. Both DeviceQueue and
// DriverQueue go through it. Views are cached and re-resolved when the memory's region table is
// replaced (vhost-user SET_MEM_TABLE), so the hot path does no translation.
//
// Atomics here are SeqCst (ECMA-262 §29): a plain write followed by an Atomics.store is a
// release, an Atomics.load followed by plain reads an acquire, and an Atomics.store followed by
// an Atomics.load (of another word) is ordered like a full barrier (smp_mb).

import type { GuestMemory } from '../memory/guest-memory.js';
import { GuestMemoryError } from '../memory/errors.js';
import { VirtqueueError } from './errors.js';
import { SplitLayout, availRingBytes, usedRingBytes } from './layout.js';

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail.flags: the driver asks for no used-buffer notifications (§2.7.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device asks for no available-buffer notifications (§2.7.10). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

export class SplitRing {
  readonly size: number;
  readonly mask: number;
  // desc[4i..4i+3] = addr lo, addr hi, len, flags | next << 16 (little-endian platform).
  desc!: Uint32Array;
  // avail[0] = flags, avail[1] = idx, avail[2 + i] = ring[i], avail[2 + size] = used_event.
  avail!: Uint16Array;
  // used16[0] = flags, used16[1] = idx, used16[2 + 4·size] = avail_event.
  used16!: Uint16Array;
  // used32[1 + 2i] = ring[i].id, used32[2 + 2i] = ring[i].len.
  used32!: Uint32Array;
  private viewGen = -1;
  private readonly usedEventIx: number;
  private readonly availEventIx: number;

  constructor(
    readonly mem: GuestMemory,
    readonly layout: SplitLayout,
    readonly queue = 0,
  ) {
    this.size = layout.size;
    this.mask = layout.size - 1;
    this.usedEventIx = 2 + layout.size;
    this.availEventIx = 2 + 4 * layout.size;
    this.resolve();
  }

  /** Re-resolves the views if the region table changed; cheap when it did not. */
  refresh(): void {
    if (this.viewGen !== this.mem.generation) this.resolve();
  }

  private resolve(): void {
    const { size, descAddr, availAddr, usedAddr } = this.layout;
    try {
      this.desc = this.mem.u32Array(descAddr, 4 * size);
      this.avail = this.mem.u16Array(availAddr, availRingBytes(size) / 2);
      this.used16 = this.mem.u16Array(usedAddr, usedRingBytes(size) / 2);
      // The used area is 6 + 8·size bytes; its u32 view covers the id/len pairs.
      this.used32 = this.mem.u32Array(usedAddr, 1 + 2 * size);
    } catch (e) {
      if (e instanceof GuestMemoryError) {
        throw new VirtqueueError('bad-layout', { queue: this.queue, addr: e.addr, detail: `ring area not in guest memory (${e.message})` }, { cause: e });
      }
      throw e;
    }
    this.viewGen = this.mem.generation;
  }

  // ---- driver area (avail ring) ----

  /** Acquire: pairs with the driver's release store in storeAvailIdx; ring entries read after it are current. */
  loadAvailIdx(): number {
    return Atomics.load(this.avail, 1);
  }
  /** Release: descriptors and ring entries written before become visible first (pairs with loadAvailIdx). */
  storeAvailIdx(idx: number): void {
    Atomics.store(this.avail, 1, idx);
  }
  /** Read after the device's used.idx store, so the device's check is ordered (pairs with storeAvailFlags). */
  loadAvailFlags(): number {
    return Atomics.load(this.avail, 0);
  }
  /** Driver's interrupt suppression flag; the following loadUsedIdx re-check pairs with the device's storeUsedIdx. */
  storeAvailFlags(flags: number): void {
    Atomics.store(this.avail, 0, flags);
  }
  /** Plain: only read after loadAvailIdx (acquire) showed the entry published. */
  availEntry(slotIdx: number): number {
    return this.avail[2 + (slotIdx & this.mask)]!;
  }
  /**
   * Plain: published by the following storeAvailIdx (release). Written only when it differs:
   * when heads come back to the same slots lap after lap the line the device reads stays
   * shared instead of moving to the driver's cache and back (DPDK's virtio driver does the
   * same for its avail ring). The value in memory is the one we publish either way.
   */
  setAvailEntry(slotIdx: number, head: number): void {
    const i = 2 + (slotIdx & this.mask);
    if (this.avail[i] !== head) this.avail[i] = head;
  }
  /** Device reads used_event after its used.idx store: the pair forms the full barrier of §2.7.10. */
  loadUsedEvent(): number {
    return Atomics.load(this.avail, this.usedEventIx);
  }
  /** Driver writes used_event, then re-checks used.idx with loadUsedIdx (pairs with the device's store + loadUsedEvent). */
  storeUsedEvent(idx: number): void {
    Atomics.store(this.avail, this.usedEventIx, idx & 0xffff);
  }

  // ---- device area (used ring) ----

  /** Acquire: pairs with storeUsedIdx; used elements read after it are current. */
  loadUsedIdx(): number {
    return Atomics.load(this.used16, 1);
  }
  /** Release: used elements (and payload bytes) written before become visible first. */
  storeUsedIdx(idx: number): void {
    Atomics.store(this.used16, 1, idx);
  }
  /** Driver reads the device's kick suppression after its avail.idx store (full barrier pair). */
  loadUsedFlags(): number {
    return Atomics.load(this.used16, 0);
  }
  /** Device kick suppression; the following loadAvailIdx re-check pairs with the driver's storeAvailIdx. */
  storeUsedFlags(flags: number): void {
    Atomics.store(this.used16, 0, flags);
  }
  /** Driver reads avail_event after its avail.idx store: the full barrier pair of §2.7.10. */
  loadAvailEvent(): number {
    return Atomics.load(this.used16, this.availEventIx);
  }
  /** Device writes avail_event, then re-checks avail.idx (pairs with the driver's store + loadAvailEvent). */
  storeAvailEvent(idx: number): void {
    Atomics.store(this.used16, this.availEventIx, idx & 0xffff);
  }
  /**
   * Plain: published by the following storeUsedIdx (release). Each word written only when it
   * differs, like setAvailEntry: an unchanged element leaves the driver's copy of its line
   * valid. A driver scribbling on the used ring only misleads itself: the device never reads
   * used elements to decide anything.
   */
  setUsedElem(slotIdx: number, id: number, len: number): void {
    const used = this.used32;
    const i = 1 + 2 * (slotIdx & this.mask);
    if (used[i] !== id) used[i] = id;
    if (used[i + 1] !== len) used[i + 1] = len;
  }
  /** Plain: read only after loadUsedIdx (acquire) showed the element published. */
  usedElemId(slotIdx: number): number {
    return this.used32[1 + 2 * (slotIdx & this.mask)]!;
  }
  usedElemLen(slotIdx: number): number {
    return this.used32[2 + 2 * (slotIdx & this.mask)]!;
  }

  // ---- descriptor table (plain: the avail.idx release/acquire pair orders it) ----

  /** Writes descriptor `i` (driver only; a device never writes descriptors, §2.7.5.1). */
  setDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    writeDesc(this.desc, i, addr, len, flags, next);
  }
}

/**
 * Writes one 16-byte descriptor into a u32 view of a descriptor table (ring or indirect). Each
 * word is written only when it differs (as setAvailEntry): a buffer re-posted unchanged into
 * the same descriptor — a ping-pong, a refilled rx ring — leaves the device's copy of the line
 * valid.
 */
export function writeDesc(table: Uint32Array, i: number, addr: number, len: number, flags: number, next: number, baseWord = 0): void {
  const w = baseWord + 4 * i;
  const lo = addr >>> 0;
  const hi = Math.floor(addr / 0x1_0000_0000);
  const fn = ((flags & 0xffff) | ((next & 0xffff) << 16)) >>> 0;
  if (table[w] !== lo) table[w] = lo;
  if (table[w + 1] !== hi) table[w + 1] = hi;
  if (table[w + 2] !== len) table[w + 2] = len;
  if (table[w + 3] !== fn) table[w + 3] = fn;
}
