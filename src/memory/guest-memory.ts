// Guest physical address space: one or more regions, each a window of a SharedArrayBuffer (or a
// plain ArrayBuffer for single-thread use) placed at a guest address. Owns every translation from
// guest address to buffer offset and every bounds check; nothing above this file and the
// virtqueue layer computes a buffer offset. The region table may be replaced while queues run
// (vhost-user SET_MEM_TABLE): users that cache views compare `generation` and re-resolve.
//
// Values are little-endian (virtio 1.2 §2.4: 1.x structures are LE). Typed-array views use the
// platform's byte order, so the module refuses to load on a big-endian platform.

import { GuestMemoryError } from './errors.js';
import { SubarrayCache, copyBytes } from './copy.js';

const TWO_POW_32 = 0x1_0000_0000;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('virtq requires a little-endian platform: typed-array views must match virtio LE');
}

/** How a caller describes a region: `length` bytes of `buffer` from `byteOffset`, at `guestAddr`. */
export interface RegionSpec {
  guestAddr: number;
  buffer: SharedArrayBuffer | ArrayBuffer;
  byteOffset?: number;
  length?: number;
}

/** A validated region with its cached views. Read-only for users. */
export interface MemoryRegion {
  readonly guestAddr: number;
  readonly length: number;
  readonly end: number; // guestAddr + length (exclusive)
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  readonly byteOffset: number;
  readonly shared: boolean;
  readonly u8: Uint8Array;
  /** The whole window as u32 (regions are 8-aligned, so aligned guest addresses map exactly). */
  readonly u32: Uint32Array;
  readonly view: DataView;
}

/**
 * Builds a 64-bit guest address from its two 32-bit halves (a descriptor's `addr`), checking
 * that `[addr, addr+len)` neither wraps 2^64 nor lies beyond 2^53, where a JS number loses
 * precision and no region can exist.
 */
export function addrFromParts(lo: number, hi: number, len: number): number {
  if (hi < 0x20_0000) return hi * TWO_POW_32 + lo; // < 2^53: exact
  const big = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  if (big + BigInt(len) > 0xffff_ffff_ffff_ffffn + 1n) {
    throw new GuestMemoryError('overflow', big, len);
  }
  throw new GuestMemoryError('unsafe-address', big, len);
}

export class GuestMemory {
  private regions: MemoryRegion[] = [];
  private gen = 0;
  // One-entry translation cache: most accesses hit the region of the previous one.
  private last: MemoryRegion | null = null;
  // Views of guest memory that copyOutTo copies from: buffers recur at fixed addresses. (Only
  // views of the regions, which this object keeps alive anyway: never of a caller's array.)
  private readonly views = new SubarrayCache();

  constructor(regions: readonly RegionSpec[] = []) {
    if (regions.length > 0) this.setRegions(regions);
  }

  /** One region of fresh zeroed memory at `guestAddr` (shared by default). */
  static allocate(sizeBytes: number, opts: { guestAddr?: number; shared?: boolean } = {}): GuestMemory {
    const shared = opts.shared ?? true;
    const buffer = shared ? new SharedArrayBuffer(sizeBytes) : new ArrayBuffer(sizeBytes);
    return new GuestMemory([{ guestAddr: opts.guestAddr ?? 0, buffer }]);
  }

  /** Incremented on every region-table replacement; cached views are stale when it changes. */
  get generation(): number {
    return this.gen;
  }

  /** The regions, sorted by guest address (to hand the table to another thread). */
  get regionTable(): readonly MemoryRegion[] {
    return this.regions;
  }

  /** Specs that rebuild this memory in another worker (SharedArrayBuffers are shared, not copied). */
  toSpecs(): RegionSpec[] {
    return this.regions.map((r) => ({
      guestAddr: r.guestAddr,
      buffer: r.buffer,
      byteOffset: r.byteOffset,
      length: r.length,
    }));
  }

  /**
   * Replaces the whole region table. Regions must be 8-byte aligned in both guest address and
   * buffer offset (so naturally aligned guest fields map to aligned typed-array indices) and
   * must not overlap.
   */
  setRegions(specs: readonly RegionSpec[]): void {
    const next: MemoryRegion[] = specs.map((s) => GuestMemory.validateRegion(s));
    next.sort((a, b) => a.guestAddr - b.guestAddr);
    for (let i = 1; i < next.length; i++) {
      const prev = next[i - 1]!;
      const cur = next[i]!;
      if (cur.guestAddr < prev.end) throw new GuestMemoryError('overlap', cur.guestAddr, cur.length);
    }
    this.regions = next;
    this.last = null;
    this.views.clear(); // no view of a retired region's buffer survives
    this.gen++;
  }

  private static validateRegion(s: RegionSpec): MemoryRegion {
    const byteOffset = s.byteOffset ?? 0;
    const length = s.length ?? s.buffer.byteLength - byteOffset;
    const bad = (why: string): never => {
      throw new GuestMemoryError('bad-region', s.guestAddr, length, why);
    };
    if (!Number.isSafeInteger(s.guestAddr) || s.guestAddr < 0) bad('guest address must be a non-negative safe integer');
    if (!Number.isSafeInteger(length) || length <= 0) bad('length must be a positive integer');
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0) bad('byteOffset must be a non-negative integer');
    if (byteOffset + length > s.buffer.byteLength) bad(`window [${byteOffset}, +${length}) exceeds buffer of ${s.buffer.byteLength} bytes`);
    if (s.guestAddr % 8 !== 0 || byteOffset % 8 !== 0) bad('guest address and buffer offset must be 8-byte aligned');
    if (s.guestAddr + length > MAX_SAFE) bad('region ends beyond 2^53');
    return {
      guestAddr: s.guestAddr,
      length,
      end: s.guestAddr + length,
      buffer: s.buffer,
      byteOffset,
      shared: typeof SharedArrayBuffer !== 'undefined' && s.buffer instanceof SharedArrayBuffer,
      u8: new Uint8Array(s.buffer, byteOffset, length),
      u32: new Uint32Array(s.buffer, byteOffset, Math.floor(length / 4)),
      view: new DataView(s.buffer, byteOffset, length),
    };
  }

  /** The region holding all of `[addr, addr+len)`, or a GuestMemoryError. */
  region(addr: number, len: number): MemoryRegion {
    const last = this.last;
    if (last !== null && addr >= last.guestAddr && addr + len <= last.end && len >= 0) return last;
    return this.findRegion(addr, len);
  }

  private findRegion(addr: number, len: number): MemoryRegion {
    this.checkArgs(addr, len);
    const rs = this.regions;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rs[mid]!;
      if (addr < r.guestAddr) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else {
        if (addr + len > r.end) {
          throw new GuestMemoryError('out-of-range', addr, len, `crosses the end of the region at ${'0x' + r.guestAddr.toString(16)}`);
        }
        this.last = r;
        return r;
      }
    }
    throw new GuestMemoryError('out-of-range', addr, len);
  }

  private checkArgs(addr: number, len: number): void {
    if (!Number.isInteger(len) || len < 0 || len > MAX_SAFE) {
      throw new GuestMemoryError('out-of-range', addr, len, 'length must be a non-negative integer');
    }
    if (!Number.isInteger(addr) || addr < 0) throw new GuestMemoryError('out-of-range', addr, len);
    if (addr > MAX_SAFE || addr + len > MAX_SAFE) throw new GuestMemoryError('unsafe-address', addr, len);
  }

  /**
   * Checks that `[addr, addr+len)` is covered, possibly by several adjacent regions (a buffer
   * may straddle two regions that are contiguous in guest-physical space).
   */
  check(addr: number, len: number): void {
    // Fast path: inside the region of the last lookup (a ring's buffers usually are), with the
    // same argument rules checkArgs applies (integers, len ≥ 0; the region bounds keep addr safe).
    const last = this.last;
    if (last !== null && len >= 0 && addr >= last.guestAddr && addr + len <= last.end && Number.isInteger(addr) && Number.isInteger(len)) return;
    this.checkArgs(addr, len);
    let a = addr;
    let left = len;
    do {
      const r = this.findRegion(a, 0);
      const n = Math.min(left, r.end - a);
      a += n;
      left -= n;
    } while (left > 0);
  }

  /** Translates `addr` to its region and offset inside that region's window. */
  translate(addr: number, len: number): { region: MemoryRegion; offset: number } {
    const region = this.region(addr, len);
    return { region, offset: addr - region.guestAddr };
  }

  /**
   * Where `[addr, addr+len)` lies in one buffer: in one region, or across adjacent regions that
   * are also adjacent windows of the same buffer (an emulator's RAM split into regions). Throws
   * GuestMemoryError otherwise (outside memory, or across regions of different buffers, which no
   * single view can cover).
   */
  private window(addr: number, len: number): { buffer: SharedArrayBuffer | ArrayBuffer; byteOffset: number } {
    const last = this.last;
    if (last !== null && addr >= last.guestAddr && addr + len <= last.end && len >= 0) {
      return { buffer: last.buffer, byteOffset: last.byteOffset + (addr - last.guestAddr) };
    }
    this.checkArgs(addr, len);
    const first = this.findRegion(addr, 0);
    let r = first;
    let i = this.regions.indexOf(first);
    while (addr + len > r.end) {
      const next = this.regions[++i];
      if (next === undefined || next.guestAddr !== r.end) throw new GuestMemoryError('out-of-range', addr, len, `crosses the end of the region at ${'0x' + r.guestAddr.toString(16)}`);
      if (next.buffer !== r.buffer || next.byteOffset !== r.byteOffset + r.length) {
        throw new GuestMemoryError('split-view', addr, len, `at ${'0x' + next.guestAddr.toString(16)}`);
      }
      r = next;
    }
    return { buffer: first.buffer, byteOffset: first.byteOffset + (addr - first.guestAddr) };
  }

  /** Zero-copy view of `[addr, addr+len)`; the range must lie in one buffer (see window()). */
  bytes(addr: number, len: number): Uint8Array {
    const w = this.window(addr, len);
    return new Uint8Array(w.buffer, w.byteOffset, len);
  }

  /** Typed view of `count` u16 at `addr` (2-aligned), for ring fields. */
  u16Array(addr: number, count: number): Uint16Array {
    if (addr % 2 !== 0) throw new GuestMemoryError('misaligned', addr, count * 2);
    const w = this.window(addr, count * 2);
    return new Uint16Array(w.buffer, w.byteOffset, count);
  }

  /** Typed view of `count` u32 at `addr` (4-aligned), for descriptors and used entries. */
  u32Array(addr: number, count: number): Uint32Array {
    if (addr % 4 !== 0) throw new GuestMemoryError('misaligned', addr, count * 4);
    const w = this.window(addr, count * 4);
    return new Uint32Array(w.buffer, w.byteOffset, count);
  }

  readU8(addr: number): number {
    const r = this.region(addr, 1);
    return r.u8[addr - r.guestAddr]!;
  }
  readU16(addr: number): number {
    const r = this.region(addr, 2);
    return r.view.getUint16(addr - r.guestAddr, true);
  }
  readU32(addr: number): number {
    const r = this.region(addr, 4);
    return r.view.getUint32(addr - r.guestAddr, true);
  }
  readU64(addr: number): bigint {
    const r = this.region(addr, 8);
    return r.view.getBigUint64(addr - r.guestAddr, true);
  }
  writeU8(addr: number, v: number): void {
    const r = this.region(addr, 1);
    r.u8[addr - r.guestAddr] = v;
  }
  writeU16(addr: number, v: number): void {
    const r = this.region(addr, 2);
    r.view.setUint16(addr - r.guestAddr, v, true);
  }
  writeU32(addr: number, v: number): void {
    const r = this.region(addr, 4);
    r.view.setUint32(addr - r.guestAddr, v >>> 0, true);
  }
  writeU64(addr: number, v: bigint | number): void {
    const r = this.region(addr, 8);
    r.view.setBigUint64(addr - r.guestAddr, BigInt(v), true);
  }

  // Atomic accesses for indices, flags and event words. They are SeqCst (ECMA-262 §29), so a
  // plain write followed by atomicStore gives release, and atomicLoad followed by plain reads
  // gives acquire; the caller's comment says which access on the other side each one pairs with.
  atomicLoad16(addr: number): number {
    return Atomics.load(this.u16Array(addr, 1), 0);
  }
  atomicStore16(addr: number, v: number): void {
    Atomics.store(this.u16Array(addr, 1), 0, v);
  }
  atomicLoad32(addr: number): number {
    return Atomics.load(this.u32Array(addr, 1), 0);
  }
  atomicStore32(addr: number, v: number): void {
    Atomics.store(this.u32Array(addr, 1), 0, v);
  }

  /** Copies `src` into guest memory at `addr`, across adjacent regions if needed. */
  copyIn(addr: number, src: Uint8Array): void {
    this.copyInFrom(addr, src, 0, src.length);
  }

  /**
   * Copies `src[srcOff, srcOff + len)` into guest memory at `addr`, across adjacent regions if
   * needed. Allocates nothing for short runs (see copyBytes), nor for a recurring range of `src`
   * when the caller passes its own `views` cache (which then keeps `src` alive).
   */
  copyInFrom(addr: number, src: Uint8Array, srcOff: number, len: number, views?: SubarrayCache): void {
    // The whole source range first: never a partial copy before a RangeError.
    if (!(srcOff >= 0 && len >= 0 && srcOff + len <= src.length)) throw new RangeError(`copyInFrom: ${len} bytes at ${srcOff} are not in ${src.length}`);
    const r = this.last;
    if (r !== null && addr >= r.guestAddr && addr + len <= r.end) {
      copyBytes(r.u8, addr - r.guestAddr, src, srcOff, len, views); // not this.views: it would keep callers' arrays alive
      return;
    }
    this.check(addr, len);
    let done = 0;
    while (done < len) {
      const reg = this.findRegion(addr + done, 0);
      const n = Math.min(len - done, reg.end - (addr + done));
      copyBytes(reg.u8, addr + done - reg.guestAddr, src, srcOff + done, n, views);
      done += n;
    }
  }

  /** Copies guest memory at `addr` into `dst`, across adjacent regions if needed. */
  copyOut(addr: number, dst: Uint8Array): void {
    this.copyOutTo(addr, dst, 0, dst.length);
  }

  /**
   * Copies `len` bytes of guest memory at `addr` into `dst[dstOff…)`, across adjacent regions if
   * needed. Allocates nothing for short runs (see copyBytes).
   */
  copyOutTo(addr: number, dst: Uint8Array, dstOff: number, len: number): void {
    // The whole destination range first: never a partial copy before a RangeError.
    if (!(dstOff >= 0 && len >= 0 && dstOff + len <= dst.length)) throw new RangeError(`copyOutTo: ${len} bytes at ${dstOff} do not fit ${dst.length}`);
    const r = this.last;
    if (r !== null && addr >= r.guestAddr && addr + len <= r.end) {
      copyBytes(dst, dstOff, r.u8, addr - r.guestAddr, len, this.views);
      return;
    }
    this.check(addr, len);
    let done = 0;
    while (done < len) {
      const reg = this.findRegion(addr + done, 0);
      const n = Math.min(len - done, reg.end - (addr + done));
      copyBytes(dst, dstOff + done, reg.u8, addr + done - reg.guestAddr, n, this.views);
      done += n;
    }
  }

  /** Fills `[addr, addr+len)` with `value`. */
  fill(addr: number, len: number, value: number): void {
    this.check(addr, len);
    let done = 0;
    while (done < len) {
      const reg = this.findRegion(addr + done, 0);
      const n = Math.min(len - done, reg.end - (addr + done));
      const off = addr + done - reg.guestAddr;
      reg.u8.fill(value, off, off + n);
      done += n;
    }
  }
}
