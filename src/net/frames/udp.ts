// UDP (RFC 768): the 8-byte header builder (checksum filled afterwards with l4.ts, once the
// payload is in place) and a parser that checks the length field against the bytes present.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { get16, put16 } from './bytes.js';
import { checkPort } from './addr.js';

export const UDP_HEADER_BYTES = 8;

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  /** The UDP length field: header + payload. */
  length: number;
  checksum: number;
  payloadOffset: number;
  payloadEnd: number;
}

export function newUdpHeader(): UdpHeader {
  return { srcPort: 0, dstPort: 0, length: 0, checksum: 0, payloadOffset: 0, payloadEnd: 0 };
}

/** Writes a UDP header (checksum 0) for `payloadBytes` of payload; returns 8. */
export function writeUdpHeader(
  buf: Uint8Array,
  offset: number,
  srcPort: number,
  dstPort: number,
  payloadBytes: number,
): number {
  checkPort('udp', 'source', srcPort);
  checkPort('udp', 'destination', dstPort);
  const len = UDP_HEADER_BYTES + payloadBytes;
  if (len > 0xffff) throw new NetError('bad-argument', 'udp', `length ${len} exceeds 65535`);
  ensureRoom('udp', buf, offset, UDP_HEADER_BYTES);
  put16(buf, offset, srcPort);
  put16(buf, offset + 2, dstPort);
  put16(buf, offset + 4, len);
  put16(buf, offset + 6, 0);
  return UDP_HEADER_BYTES;
}

/** Parses a UDP header at `buf[offset…end)` (`end` = end of the IP payload). */
export function parseUdp(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: UdpHeader = newUdpHeader(),
): UdpHeader | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + UDP_HEADER_BYTES > end) {
    return truncated('udp', offset, UDP_HEADER_BYTES, end);
  }
  const len = get16(buf, offset + 4);
  if (len < UDP_HEADER_BYTES) {
    return new NetError('malformed', 'udp', `length field ${len} below 8`, offset);
  }
  if (offset + len > end) return truncated('udp', offset, len, end);
  out.srcPort = get16(buf, offset);
  out.dstPort = get16(buf, offset + 2);
  out.length = len;
  out.checksum = get16(buf, offset + 6);
  out.payloadOffset = offset + UDP_HEADER_BYTES;
  out.payloadEnd = offset + len;
  return out;
}
