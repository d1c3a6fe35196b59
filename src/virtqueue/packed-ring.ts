// Typed views over one packed virtqueue's three areas in guest memory, and every access to them
// (virtio 1.2 §2.8). The only file that knows field offsets inside a packed descriptor and an
// event suppression structure, and the only one that issues Atomics on packed ring memory. Both
// PackedDeviceQueue and PackedDriverQueue go through it. Views are cached and re-resolved when
// the memory's region table is replaced (vhost-user SET_MEM_TABLE).
//
// Ordering (ECMA-262 §29, Atomics are SeqCst): the flags of a chain's first descriptor are the
// publication point in both directions. The driver writes every other field of the chain with
// plain stores, then the head's id+flags word with Atomics.store (release); the device reads
// that word with Atomics.load (acquire) before any other field (§2.8.21.1: a memory barrier
// before the first descriptor's flags are written). The device writes a used
// descriptor's id and len, then its flags word with Atomics.store (release); the driver loads
// it with Atomics.load (acquire) before reading len. An event suppression structure is one u32
// (off_wrap | flags << 16) written and read with Atomics, so its two fields change together.

import type { GuestMemory } from '../memory/guest-memory.js';
import { GuestMemoryError } from '../memory/errors.js';
import { VirtqueueError } from './errors.js';
import type { PackedLayout } from './packed-layout.js';

/** Descriptor flags (§2.8.3, §2.8.6, §2.8.7, §2.8.1). */
export const PACKED_DESC_F_NEXT = 1;
export const PACKED_DESC_F_WRITE = 2;
export const PACKED_DESC_F_INDIRECT = 4;
export const PACKED_DESC_F_AVAIL = 1 << 7;
export const PACKED_DESC_F_USED = 1 << 15;
/** Event suppression flags (§2.8.14). */
export const RING_EVENT_FLAGS_ENABLE = 0;
export const RING_EVENT_FLAGS_DISABLE = 1;
/** Notify at a specific descriptor (only with VIRTIO_F_EVENT_IDX). */
export const RING_EVENT_FLAGS_DESC = 2;

/** AVAIL/USED bits of a descriptor the driver makes available with wrap counter `wrap` (0/1). */
export function availFlags(wrap: number): number {
  return wrap !== 0 ? PACKED_DESC_F_AVAIL : PACKED_DESC_F_USED;
}
/** AVAIL/USED bits of a descriptor the device marks used with wrap counter `wrap` (0/1). */
export function usedFlags(wrap: number): number {
  return wrap !== 0 ? PACKED_DESC_F_AVAIL | PACKED_DESC_F_USED : 0;
}
/** §2.8.1: available when AVAIL matches the wrap counter and USED does not. */
export function isAvailable(flags: number, wrap: number): boolean {
  const a = (flags >>> 7) & 1;
  const u = (flags >>> 15) & 1;
  return a === wrap && u !== wrap;
}
/** §2.8.1: used when AVAIL and USED both match the wrap counter. */
export function isUsed(flags: number, wrap: number): boolean {
  const a = (flags >>> 7) & 1;
  const u = (flags >>> 15) & 1;
  return a === wrap && u === wrap;
}

export class PackedRing {
  readonly size: number;
  // desc[4i..4i+3] = addr lo, addr hi, len, id | flags << 16 (little-endian platform).
  desc!: Uint32Array;
  // [0] = desc (off | wrap << 15) | flags << 16, for each area.
  private driverEvent!: Uint32Array;
  private deviceEvent!: Uint32Array;
  private viewGen = -1;

  constructor(
    readonly mem: GuestMemory,
    readonly layout: PackedLayout,
    readonly queue = 0,
  ) {
    this.size = layout.size;
    this.resolve();
  }

  /** Re-resolves the views if the region table changed; cheap when it did not. */
  refresh(): void {
    if (this.viewGen !== this.mem.generation) this.resolve();
  }

  private resolve(): void {
    const { size, descAddr, driverEventAddr, deviceEventAddr } = this.layout;
    try {
      this.desc = this.mem.u32Array(descAddr, 4 * size);
      this.driverEvent = this.mem.u32Array(driverEventAddr, 1);
      this.deviceEvent = this.mem.u32Array(deviceEventAddr, 1);
    } catch (e) {
      if (e instanceof GuestMemoryError) {
        throw new VirtqueueError('bad-layout', { queue: this.queue, addr: e.addr, detail: `ring area not in guest memory (${e.message})` }, { cause: e });
      }
      throw e;
    }
    this.viewGen = this.mem.generation;
  }

  // ---- descriptor ring ----

  /**
   * Acquire: the id+flags word of the descriptor at `pos`. Device: pairs with the driver's
   * storeHeadWord (the chain's other fields are current after it). Driver: pairs with the
   * device's storeHeadWord of a used descriptor (its len is current after it).
   */
  loadHeadWord(pos: number): number {
    return Atomics.load(this.desc, 4 * pos + 3);
  }
  /**
   * How many descriptors carry the USED flag (acquire loads of each id+flags word). A ring no
   * device has used yet has none (§2.8.1: only a device sets USED, and a driver's fresh ring is
   * zeroed), so a count above 0 says a device worked on this ring before.
   */
  countUsedFlags(): number {
    let n = 0;
    for (let pos = 0; pos < this.size; pos++) if (((this.loadHeadWord(pos) >>> 16) & PACKED_DESC_F_USED) !== 0) n++;
    return n;
  }
  /**
   * Release: the id+flags word of the descriptor at `pos`, written after every other field of
   * the chain or batch (pairs with loadHeadWord on the other side).
   */
  storeHeadWord(pos: number, id: number, flags: number): void {
    Atomics.store(this.desc, 4 * pos + 3, (id & 0xffff) | ((flags & 0xffff) << 16));
  }
  /** Plain: a non-head descriptor's id+flags word, read only after the head's acquire. */
  descWord(pos: number): number {
    return this.desc[4 * pos + 3]!;
  }
  descAddrLo(pos: number): number {
    return this.desc[4 * pos]!;
  }
  descAddrHi(pos: number): number {
    return this.desc[4 * pos + 1]!;
  }
  descLen(pos: number): number {
    return this.desc[4 * pos + 2]!;
  }
  /** Plain: a driver's descriptor fields; the head's flags are published later by storeHeadWord. */
  setDescBody(pos: number, addr: number, len: number): void {
    const w = 4 * pos;
    this.desc[w] = addr >>> 0;
    this.desc[w + 1] = Math.floor(addr / 0x1_0000_0000);
    this.desc[w + 2] = len;
  }
  /** Plain: the id+flags word of a descriptor that is not the one published last. */
  setDescWord(pos: number, id: number, flags: number): void {
    this.desc[4 * pos + 3] = (id & 0xffff) | ((flags & 0xffff) << 16);
  }
  /** Plain: a used descriptor's len (published by the following storeHeadWord). */
  setUsedLen(pos: number, len: number): void {
    this.desc[4 * pos + 2] = len;
  }

  // ---- event suppression (§2.8.10, §2.8.14) ----

  /**
   * Driver event suppression, read by the device after it published used descriptors: the
   * SeqCst store of the head word followed by this load is the full barrier of §2.8.21.3.1
   * (pairs with the driver's storeDriverEvent followed by its re-check of the next used slot).
   */
  loadDriverEvent(): number {
    return Atomics.load(this.driverEvent, 0);
  }
  /** Driver writes its suppression, then re-checks the next used slot (pairs with loadDriverEvent). */
  storeDriverEvent(offWrap: number, flags: number): void {
    Atomics.store(this.driverEvent, 0, (offWrap & 0xffff) | ((flags & 0xffff) << 16));
  }
  /**
   * Device event suppression, read by the driver after it made chains available: the SeqCst
   * store of the head word followed by this load is the full barrier of §2.8.21.1 (pairs with
   * the device's storeDeviceEvent followed by its re-check of the next available slot).
   */
  loadDeviceEvent(): number {
    return Atomics.load(this.deviceEvent, 0);
  }
  /** Device writes its suppression, then re-checks the next available slot (pairs with loadDeviceEvent). */
  storeDeviceEvent(offWrap: number, flags: number): void {
    Atomics.store(this.deviceEvent, 0, (offWrap & 0xffff) | ((flags & 0xffff) << 16));
  }
}

/** Writes one 16-byte packed descriptor into a u32 view (an indirect table). */
export function writePackedDesc(table: Uint32Array, i: number, addr: number, len: number, id: number, flags: number, baseWord = 0): void {
  const w = baseWord + 4 * i;
  table[w] = addr >>> 0;
  table[w + 1] = Math.floor(addr / 0x1_0000_0000);
  table[w + 2] = len;
  table[w + 3] = (id & 0xffff) | ((flags & 0xffff) << 16);
}
