// The Internet checksum (RFC 1071): the 16-bit ones'-complement sum used by IPv4 headers, ICMP,
// UDP and TCP, and the pseudo-header sums of RFC 768/793 (IPv4) and RFC 8200 §8.1 (IPv6). Owns
// only arithmetic over caller bytes; never allocates, never reads outside [offset, offset+len).
//
// Conventions (those of Linux's csum_partial/csum_fold):
// - `csumPartial` returns a *running sum* folded to 16 bits but NOT complemented; running sums
//   compose with `csumAdd` or by passing one as the next call's `initial`.
// - `csumFold` turns a running sum into the value stored in a header (its ones' complement).
//   Verifying = summing the covered bytes including the stored checksum: `csumFold(...) === 0`.
// - Chunks summed separately must start at even offsets of the logical stream (an odd-length
//   chunk is padded with a zero byte, as only the last chunk may be).
// - The "partial checksum" of virtio 1.2 §5.1.6.2 (NEEDS_CSUM) stores the folded, *not*
//   complemented pseudo-header sum in the checksum field: see `pseudoHeaderSumV4/V6`.

/** Folds a non-negative integer sum (< 2^53) into 16 bits with end-around carry. */
function fold16(sum: number): number {
  // Division, not >>>, so sums past 2^32 keep their high part.
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * Ones'-complement sum of `len` bytes of `buf` from `offset` as big-endian 16-bit words (an odd
 * trailing byte is the high byte of a zero-padded word), added to `initial`. Returns a running
 * sum in [0, 0xffff], not complemented.
 */
export function csumPartial(buf: Uint8Array, offset: number, len: number, initial = 0): number {
  let sum = initial;
  let i = offset;
  const end = offset + len;
  const evenEnd = end - ((end - offset) & 1);
  // 2^53 / 2^17 words before the accumulator could lose precision; fold every 32 Ki words anyway
  // to keep it a small integer for the JIT.
  while (i < evenEnd) {
    const stop = Math.min(evenEnd, i + 65536);
    for (; i < stop; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
    sum = fold16(sum);
  }
  if (i < end) sum += buf[i]! << 8;
  return fold16(sum);
}

/** Ones'-complement addition of two running sums (or a running sum and a 16-bit word). */
export function csumAdd(a: number, b: number): number {
  return fold16(a + b);
}

/** Ones'-complement subtraction: removes a running sum / word `b` from `a` (RFC 1624). */
export function csumSub(a: number, b: number): number {
  return fold16(a + (~b & 0xffff));
}

/** The value to store in a checksum field for running sum `sum`: its 16-bit ones' complement. */
export function csumFold(sum: number): number {
  return ~fold16(sum) & 0xffff;
}

/** The finished Internet checksum of `len` bytes at `offset` (RFC 1071). */
export function internetChecksum(buf: Uint8Array, offset: number, len: number, initial = 0): number {
  return csumFold(csumPartial(buf, offset, len, initial));
}

/**
 * Running sum of the IPv4 pseudo-header (RFC 793 §3.1 / RFC 768) for an upper-layer segment of
 * `l4Len` bytes, reading source and destination from the IPv4 header at `ipOffset`.
 */
export function pseudoHeaderSumV4(
  buf: Uint8Array,
  ipOffset: number,
  protocol: number,
  l4Len: number,
): number {
  // src (12..16) and dst (16..20) are contiguous in the IPv4 header.
  const addrs = csumPartial(buf, ipOffset + 12, 8);
  return fold16(addrs + protocol + (l4Len & 0xffff) + Math.floor(l4Len / 0x10000));
}

/** IPv4 pseudo-header running sum from addresses given as unsigned 32-bit integers. */
export function pseudoHeaderSumV4Addrs(
  src: number,
  dst: number,
  protocol: number,
  l4Len: number,
): number {
  return fold16(
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + l4Len,
  );
}

/**
 * Running sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `l4Len`
 * bytes with next header `nextHeader`, reading the addresses from the IPv6 header at `ipOffset`.
 */
export function pseudoHeaderSumV6(
  buf: Uint8Array,
  ipOffset: number,
  nextHeader: number,
  l4Len: number,
): number {
  // src (8..24) and dst (24..40) are contiguous in the IPv6 header.
  const addrs = csumPartial(buf, ipOffset + 8, 32);
  return fold16(addrs + nextHeader + (l4Len & 0xffff) + Math.floor(l4Len / 0x10000));
}
