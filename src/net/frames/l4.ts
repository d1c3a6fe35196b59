// Transport checksums over an IP packet already in a buffer: where each protocol keeps its
// checksum, the pseudo-header sum for IPv4 or IPv6, filling a full checksum, filling the
// "partial" checksum of virtio 1.2 §5.1.6.2 (pseudo-header sum only, for NEEDS_CSUM), and
// verifying. ICMPv4 has no pseudo-header; ICMPv6, UDP and TCP do.

import { NetError } from '../errors.js';
import { csumFold, csumPartial, pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../checksum.js';
import { get16, put16 } from './bytes.js';
import { IpProto } from './ipv4.js';

export type IpVersion = 4 | 6;

/** Offset of the checksum field inside the transport header (TCP 16, UDP 6, ICMP/ICMPv6 2). */
export function l4ChecksumFieldOffset(protocol: number): number {
  switch (protocol) {
    case IpProto.TCP:
      return 16;
    case IpProto.UDP:
      return 6;
    case IpProto.ICMP:
    case IpProto.ICMPV6:
      return 2;
    default:
      throw new NetError('bad-argument', 'l4', `no checksum rule for IP protocol ${protocol}`);
  }
}

/** Running pseudo-header sum for `protocol` (0 for ICMPv4, which has none). */
export function l4PseudoSum(
  buf: Uint8Array,
  version: IpVersion,
  ipOffset: number,
  protocol: number,
  l4Len: number,
): number {
  if (protocol === IpProto.ICMP) return 0;
  return version === 4
    ? pseudoHeaderSumV4(buf, ipOffset, protocol, l4Len)
    : pseudoHeaderSumV6(buf, ipOffset, protocol, l4Len);
}

/**
 * Computes and stores the full checksum of the `l4Len`-byte transport packet at `l4Offset`
 * (its IP header at `ipOffset`); returns the stored value. A UDP result of 0 is sent as 0xffff
 * (RFC 768: 0 means "no checksum").
 */
export function fillL4Checksum(
  buf: Uint8Array,
  version: IpVersion,
  ipOffset: number,
  protocol: number,
  l4Offset: number,
  l4Len: number,
): number {
  const field = l4Offset + l4ChecksumFieldOffset(protocol);
  put16(buf, field, 0);
  let c = csumFold(csumPartial(buf, l4Offset, l4Len, l4PseudoSum(buf, version, ipOffset, protocol, l4Len)));
  if (c === 0 && protocol === IpProto.UDP) c = 0xffff;
  put16(buf, field, c);
  return c;
}

/**
 * Stores the folded (not complemented) pseudo-header sum in the checksum field, as a driver does
 * before setting NEEDS_CSUM (virtio 1.2 §5.1.6.2): whoever then sums from `l4Offset` to the end
 * and stores the complement there gets the full checksum. Returns the field's offset inside
 * the transport header (the virtio `csum_offset`).
 */
export function fillL4PartialChecksum(
  buf: Uint8Array,
  version: IpVersion,
  ipOffset: number,
  protocol: number,
  l4Offset: number,
  l4Len: number,
): number {
  const off = l4ChecksumFieldOffset(protocol);
  put16(buf, l4Offset + off, l4PseudoSum(buf, version, ipOffset, protocol, l4Len));
  return off;
}

/** True when the transport checksum verifies (an IPv4 UDP checksum of 0 means "none": true). */
export function verifyL4Checksum(
  buf: Uint8Array,
  version: IpVersion,
  ipOffset: number,
  protocol: number,
  l4Offset: number,
  l4Len: number,
): boolean {
  if (protocol === IpProto.UDP && version === 4 && get16(buf, l4Offset + 6) === 0) return true;
  const sum = csumPartial(buf, l4Offset, l4Len, l4PseudoSum(buf, version, ipOffset, protocol, l4Len));
  return csumFold(sum) === 0;
}
