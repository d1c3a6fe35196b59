// IPv4 headers (RFC 791): a builder for the 20-byte option-less header with its header checksum,
// and a parser that accepts options (IHL 5..15), checks version, lengths and the header
// checksum, and reports fragment fields and where the payload lies.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { csumFold, csumPartial } from '../checksum.js';
import { get16, get32, put16, put32 } from './bytes.js';

export const IPV4_HEADER_BYTES = 20;

/** IP protocol / IPv6 next-header numbers used here (IANA). */
export const IpProto = {
  HOPOPTS: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ROUTING: 43,
  FRAGMENT: 44,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
} as const;

export interface Ipv4Fields {
  src: number;
  dst: number;
  protocol: number;
  /** Bytes after the IP header (the total length is 20 + this). */
  payloadBytes: number;
  ttl?: number;
  id?: number;
  tos?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragmentOffsetBytes?: number;
}

export interface Ipv4Header {
  headerBytes: number;
  tos: number;
  totalLength: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  fragmentOffsetBytes: number;
  ttl: number;
  protocol: number;
  checksum: number;
  /** True when the header (options included) sums to 0xffff. */
  checksumOk: boolean;
  src: number;
  dst: number;
  payloadOffset: number;
  /** End of the IP datagram per total length (link padding after it is excluded). */
  payloadEnd: number;
}

export function newIpv4Header(): Ipv4Header {
  return {
    headerBytes: 0,
    tos: 0,
    totalLength: 0,
    id: 0,
    dontFragment: false,
    moreFragments: false,
    fragmentOffsetBytes: 0,
    ttl: 0,
    protocol: 0,
    checksum: 0,
    checksumOk: false,
    src: 0,
    dst: 0,
    payloadOffset: 0,
    payloadEnd: 0,
  };
}

/** Recomputes and stores the header checksum of the IPv4 header at `offset` (IHL honoured). */
export function fillIpv4Checksum(buf: Uint8Array, offset: number): number {
  const hl = (buf[offset]! & 0x0f) * 4;
  buf[offset + 10] = 0;
  buf[offset + 11] = 0;
  const c = csumFold(csumPartial(buf, offset, hl));
  put16(buf, offset + 10, c);
  return c;
}

/** Writes a 20-byte IPv4 header with its checksum at `buf[offset…]`; returns 20. */
export function writeIpv4Header(buf: Uint8Array, offset: number, f: Readonly<Ipv4Fields>): number {
  const total = IPV4_HEADER_BYTES + f.payloadBytes;
  if (total > 0xffff || f.payloadBytes < 0) {
    throw new NetError('bad-argument', 'ipv4', `total length ${total} outside 20..65535`);
  }
  const frag = f.fragmentOffsetBytes ?? 0;
  if (frag % 8 !== 0 || frag / 8 > 0x1fff) {
    throw new NetError('bad-argument', 'ipv4', `fragment offset ${frag} is not a multiple of 8 below 65536`);
  }
  ensureRoom('ipv4', buf, offset, IPV4_HEADER_BYTES);
  buf[offset] = 0x45;
  buf[offset + 1] = (f.tos ?? 0) & 0xff;
  put16(buf, offset + 2, total);
  put16(buf, offset + 4, (f.id ?? 0) & 0xffff);
  const flags = ((f.dontFragment ?? true) ? 0x4000 : 0) | (f.moreFragments ? 0x2000 : 0);
  put16(buf, offset + 6, flags | (frag / 8));
  buf[offset + 8] = (f.ttl ?? 64) & 0xff;
  buf[offset + 9] = f.protocol & 0xff;
  put32(buf, offset + 12, f.src);
  put32(buf, offset + 16, f.dst);
  fillIpv4Checksum(buf, offset);
  return IPV4_HEADER_BYTES;
}

/**
 * Parses the IPv4 header at `buf[offset…end)`. Errors: `truncated` (short header or datagram
 * longer than the bytes present), `malformed` (version ≠ 4, IHL < 5, total length < IHL).
 * A bad header checksum is reported in `checksumOk`, not as an error.
 */
export function parseIpv4(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: Ipv4Header = newIpv4Header(),
): Ipv4Header | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + IPV4_HEADER_BYTES > end) {
    return truncated('ipv4', offset, IPV4_HEADER_BYTES, end);
  }
  const vihl = buf[offset]!;
  if (vihl >>> 4 !== 4) {
    return new NetError('malformed', 'ipv4', `version ${vihl >>> 4}, not 4`, offset);
  }
  const hl = (vihl & 0x0f) * 4;
  if (hl < IPV4_HEADER_BYTES) {
    return new NetError('malformed', 'ipv4', `header length ${hl} below 20`, offset);
  }
  if (offset + hl > end) return truncated('ipv4', offset, hl, end);
  const total = get16(buf, offset + 2);
  if (total < hl) {
    return new NetError('malformed', 'ipv4', `total length ${total} below header length ${hl}`, offset);
  }
  if (offset + total > end) return truncated('ipv4', offset, total, end);
  const ff = get16(buf, offset + 6);
  out.headerBytes = hl;
  out.tos = buf[offset + 1]!;
  out.totalLength = total;
  out.id = get16(buf, offset + 4);
  out.dontFragment = (ff & 0x4000) !== 0;
  out.moreFragments = (ff & 0x2000) !== 0;
  out.fragmentOffsetBytes = (ff & 0x1fff) * 8;
  out.ttl = buf[offset + 8]!;
  out.protocol = buf[offset + 9]!;
  out.checksum = get16(buf, offset + 10);
  out.checksumOk = csumFold(csumPartial(buf, offset, hl)) === 0;
  out.src = get32(buf, offset + 12);
  out.dst = get32(buf, offset + 16);
  out.payloadOffset = offset + hl;
  out.payloadEnd = offset + total;
  return out;
}
