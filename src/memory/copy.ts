// One byte-range copy for the data path, without a subarray view where the view costs more than
// it saves. TypedArray.prototype.set of a view costs ~30 ns flat here (the view is a 64-byte
// object), a plain byte loop over a SharedArrayBuffer ~1.2 ns per byte: the loop wins only for a
// few bytes (a 256-byte threshold made 64-byte copies 3× slower and the ring ping-pong 20 %
// slower). A whole source array is copied by set without a view. Runs in Web Workers (no `node:`
// imports).

/** Longest run copied by the loop; longer runs go through one subarray view and `set`. */
export const COPY_LOOP_MAX_BYTES = 8;

/**
 * Shortest run that a misaligned copy touching a SharedArrayBuffer sends through the bounce
 * buffer. V8 copies to or from shared memory with relaxed atomic accesses (base::Relaxed_Memcpy):
 * 8 bytes at a time only when source and destination are equally aligned modulo 8, else one byte
 * at a time — ~4 GB/s against ~32 GB/s here (measured: a 64 KiB `set` into a SharedArrayBuffer,
 * source offset 4 vs 0 modulo 8). A virtio-net frame lands 12 bytes (the header) into a buffer, so
 * most data-path copies are misaligned. Bouncing through an unshared buffer placed at the
 * destination's alignment costs two `set`s (~60 ns) and a plain memmove, so it wins from a few
 * hundred bytes on.
 */
export const BOUNCE_MIN_BYTES = 512;

/** Default slots of a SubarrayCache: 2^10, which covers a 1024-entry queue's buffers. */
const VIEW_CACHE_BITS = 10;

/**
 * Exact-extent subarray views, kept by (array, offset, length) in a direct-mapped table, so a
 * copy from a range that recurs — a driver's buffer pool, a DPDK mbuf, a ring's rx buffers, all
 * recycled at fixed addresses — costs a hash and three compares instead of a 64-byte view object
 * and its garbage (~30 ns, the gap between the ring and the bare SPSC ring that pre-builds its
 * views per slot). A miss builds the view and replaces the slot. Views of a SharedArrayBuffer
 * stay valid (it cannot be detached); clear() drops them when their buffers are retired.
 */
export class SubarrayCache {
  private readonly arrays: (Uint8Array | null)[];
  private readonly views: (Uint8Array | null)[];
  private readonly offsets: Float64Array;
  private readonly lengths: Float64Array;
  private readonly shift: number;

  /**
   * A table of 2^bits slots (1..16). A cache of views of a caller's arrays keeps up to that many
   * of them alive: size it to what the caller can afford to retain.
   */
  constructor(bits = VIEW_CACHE_BITS) {
    if (!Number.isInteger(bits) || bits < 1 || bits > 16) throw new RangeError(`SubarrayCache: bits must be an integer in 1..16 (got ${bits})`);
    const n = 1 << bits;
    this.arrays = new Array<Uint8Array | null>(n).fill(null);
    this.views = new Array<Uint8Array | null>(n).fill(null);
    this.offsets = new Float64Array(n);
    this.lengths = new Float64Array(n);
    this.shift = 32 - bits;
  }

  /** `src.subarray(off, off + len)`, from the table when the same range was asked for before. */
  view(src: Uint8Array, off: number, len: number): Uint8Array {
    // Fibonacci hashing spreads a pool's arithmetic progression of offsets over the table.
    const slot = Math.imul((off + Math.imul(len, 0x27d4eb2d)) | 0, 0x9e3779b1) >>> this.shift;
    if (this.arrays[slot] === src && this.offsets[slot] === off && this.lengths[slot] === len) return this.views[slot]!;
    const v = src.subarray(off, off + len);
    this.arrays[slot] = src;
    this.views[slot] = v;
    this.offsets[slot] = off;
    this.lengths[slot] = len;
    return v;
  }

  /** Forgets every view (and the buffers they keep alive). */
  clear(): void {
    this.arrays.fill(null);
    this.views.fill(null);
  }
}

/** Bounce buffer size: longer copies go through it in pieces of this size. */
const BOUNCE_BYTES = 64 * 1024;
// Unshared, so copies into and within it are plain memmoves at any alignment.
const bounce = new Uint8Array(BOUNCE_BYTES + 8);
// Views of the bounce buffer (recurring (alignment, length) pairs: chunk sizes, frame sizes).
const bounceViews = new SubarrayCache(6);

/**
 * Copies `src[srcOff, srcOff + len)` to `dst[dstOff, dstOff + len)`. Overlapping ranges of one
 * buffer are copied as `set` does (memmove). A range outside either array is a RangeError, as
 * with `set` (never a silent short copy). With `views`, the source view of a long run comes from
 * that cache.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number, views?: SubarrayCache): void {
  if (!(len >= 0 && dstOff >= 0 && srcOff >= 0 && dstOff + len <= dst.length && srcOff + len <= src.length)) {
    throw new RangeError(`copyBytes: ${len} bytes from ${srcOff} of ${src.length} to ${dstOff} of ${dst.length} out of range`);
  }
  if (len >= BOUNCE_MIN_BYTES && ((dst.byteOffset + dstOff) & 7) !== ((src.byteOffset + srcOff) & 7) && isShared(dst, src)) {
    // Same buffer: only in one piece (a whole-range bounce is a memmove; pieces would not be).
    if (dst.buffer !== src.buffer || len <= BOUNCE_BYTES) return bounceCopy(dst, dstOff, src, srcOff, len, views);
  }
  if (srcOff === 0 && len === src.length) {
    // set copies as if through a temporary when both share a buffer (memmove).
    dst.set(src, dstOff);
    return;
  }
  if (len > COPY_LOOP_MAX_BYTES || (dst.buffer === src.buffer && dstOff + dst.byteOffset > srcOff + src.byteOffset)) {
    dst.set(views !== undefined ? views.view(src, srcOff, len) : src.subarray(srcOff, srcOff + len), dstOff);
    return;
  }
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
}

function isShared(a: Uint8Array, b: Uint8Array): boolean {
  // Not `instanceof SharedArrayBuffer`: that global is absent where cross-origin isolation is off.
  return !(a.buffer instanceof ArrayBuffer) || !(b.buffer instanceof ArrayBuffer);
}

/**
 * A misaligned copy touching shared memory, in pieces through the bounce buffer: each piece is
 * read at the source's alignment (8 bytes at a time), moved to the destination's alignment inside
 * the unshared buffer (memmove), and written at the destination's alignment (8 at a time).
 */
function bounceCopy(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number, views?: SubarrayCache): void {
  const da = (dst.byteOffset + dstOff) & 7;
  // An unshared source goes straight to the destination's alignment (a plain memmove).
  const sa = src.buffer instanceof ArrayBuffer ? da : (src.byteOffset + srcOff) & 7;
  for (let done = 0; done < len; ) {
    const n = Math.min(BOUNCE_BYTES, len - done);
    bounce.set(views !== undefined ? views.view(src, srcOff + done, n) : src.subarray(srcOff + done, srcOff + done + n), sa);
    if (sa !== da) bounce.copyWithin(da, sa, sa + n);
    dst.set(bounceViews.view(bounce, da, n), dstOff + done);
    done += n;
  }
}
