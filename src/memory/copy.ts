// One byte-range copy for the data path, without a subarray view where the view costs more than
// it saves. TypedArray.prototype.set of a view costs ~30 ns flat here (the view is a 64-byte
// object), a plain byte loop over a SharedArrayBuffer ~1.2 ns per byte: the loop wins only for a
// few bytes (a 256-byte threshold made 64-byte copies 3× slower and the ring ping-pong 20 %
// slower). A whole source array is copied by set without a view. Runs in Web Workers (no `node:`
// imports).

/** Longest run copied by the loop; longer runs go through one subarray view and `set`. */
export const COPY_LOOP_MAX_BYTES = 8;

/**
 * Copies `src[srcOff, srcOff + len)` to `dst[dstOff, dstOff + len)`. Overlapping ranges of one
 * buffer are copied as `set` does (memmove). A range outside either array is a RangeError, as
 * with `set` (never a silent short copy).
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (!(len >= 0 && dstOff >= 0 && srcOff >= 0 && dstOff + len <= dst.length && srcOff + len <= src.length)) {
    throw new RangeError(`copyBytes: ${len} bytes from ${srcOff} of ${src.length} to ${dstOff} of ${dst.length} out of range`);
  }
  if (srcOff === 0 && len === src.length) {
    // set copies as if through a temporary when both share a buffer (memmove).
    dst.set(src, dstOff);
    return;
  }
  if (len > COPY_LOOP_MAX_BYTES || (dst.buffer === src.buffer && dstOff + dst.byteOffset > srcOff + src.byteOffset)) {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
    return;
  }
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
}
