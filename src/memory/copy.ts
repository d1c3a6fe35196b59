// One byte-range copy for the data path that allocates nothing for short runs. A view per copy
// (`dst.set(src.subarray(a, b), at)`) is one 64-byte object per frame, which is what a flood
// of small frames turns into scavenges; a short frame is copied by a plain loop instead, and a
// long one (more than COPY_LOOP_MAX_BYTES) by TypedArray.prototype.set, whose one view is small
// next to the bytes moved. Runs in Web Workers (no `node:` imports).

/** Longest run copied by the loop; longer runs go through one subarray view and `set`. */
export const COPY_LOOP_MAX_BYTES = 256;

/**
 * Copies `src[srcOff, srcOff + len)` to `dst[dstOff, dstOff + len)`. Overlapping ranges of one
 * buffer are copied as `set` does (memmove). A range outside either array is a RangeError, as
 * with `set` (never a silent short copy).
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (!(len >= 0 && dstOff >= 0 && srcOff >= 0 && dstOff + len <= dst.length && srcOff + len <= src.length)) {
    throw new RangeError(`copyBytes: ${len} bytes from ${srcOff} of ${src.length} to ${dstOff} of ${dst.length} out of range`);
  }
  if (len > COPY_LOOP_MAX_BYTES || (dst.buffer === src.buffer && dstOff + dst.byteOffset > srcOff + src.byteOffset)) {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
    return;
  }
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
}
