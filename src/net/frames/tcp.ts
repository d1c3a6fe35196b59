// TCP headers (RFC 9293): a builder for the header with optional (pre-encoded) options, the flag
// bits, and a parser that checks the data offset against the bytes present. Checksums are
// filled afterwards with l4.ts, once the payload is in place.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { get16, get32, put16, put32 } from './bytes.js';
import { checkPort } from './addr.js';

export const TCP_HEADER_BYTES = 20;
const TCP_MAX_HEADER_BYTES = 60;

export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  urgent?: number;
  /** Encoded options; zero-padded to a multiple of 4 bytes (at most 40). */
  options?: Uint8Array;
}

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  headerBytes: number;
  flags: number;
  window: number;
  checksum: number;
  urgent: number;
  optionsOffset: number;
  payloadOffset: number;
  payloadEnd: number;
}

export function newTcpHeader(): TcpHeader {
  return {
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    headerBytes: 0,
    flags: 0,
    window: 0,
    checksum: 0,
    urgent: 0,
    optionsOffset: 0,
    payloadOffset: 0,
    payloadEnd: 0,
  };
}

/** Writes a TCP header (checksum 0) at `buf[offset…]`; returns its length (20 + options). */
export function writeTcpHeader(buf: Uint8Array, offset: number, f: Readonly<TcpFields>): number {
  checkPort('tcp', 'source', f.srcPort);
  checkPort('tcp', 'destination', f.dstPort);
  const optLen = f.options ? (f.options.length + 3) & ~3 : 0;
  const hl = TCP_HEADER_BYTES + optLen;
  if (hl > TCP_MAX_HEADER_BYTES) {
    throw new NetError('bad-argument', 'tcp', `${f.options!.length} bytes of options exceed 40`);
  }
  ensureRoom('tcp', buf, offset, hl);
  put16(buf, offset, f.srcPort);
  put16(buf, offset + 2, f.dstPort);
  put32(buf, offset + 4, f.seq >>> 0);
  put32(buf, offset + 8, (f.ack ?? 0) >>> 0);
  buf[offset + 12] = (hl / 4) << 4;
  buf[offset + 13] = f.flags & 0xff;
  put16(buf, offset + 14, f.window ?? 0xffff);
  put16(buf, offset + 16, 0);
  put16(buf, offset + 18, f.urgent ?? 0);
  if (f.options) {
    buf.set(f.options, offset + TCP_HEADER_BYTES);
    buf.fill(0, offset + TCP_HEADER_BYTES + f.options.length, offset + hl);
  }
  return hl;
}

/** Parses a TCP header at `buf[offset…end)` (`end` = end of the IP payload). */
export function parseTcp(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: TcpHeader = newTcpHeader(),
): TcpHeader | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + TCP_HEADER_BYTES > end) {
    return truncated('tcp', offset, TCP_HEADER_BYTES, end);
  }
  const hl = (buf[offset + 12]! >>> 4) * 4;
  if (hl < TCP_HEADER_BYTES) {
    return new NetError('malformed', 'tcp', `data offset ${hl} bytes below 20`, offset);
  }
  if (offset + hl > end) return truncated('tcp', offset, hl, end);
  out.srcPort = get16(buf, offset);
  out.dstPort = get16(buf, offset + 2);
  out.seq = get32(buf, offset + 4);
  out.ack = get32(buf, offset + 8);
  out.headerBytes = hl;
  out.flags = buf[offset + 13]!;
  out.window = get16(buf, offset + 14);
  out.checksum = get16(buf, offset + 16);
  out.urgent = get16(buf, offset + 18);
  out.optionsOffset = offset + TCP_HEADER_BYTES;
  out.payloadOffset = offset + hl;
  out.payloadEnd = end;
  return out;
}

/** Encodes the MSS option (kind 2, length 4) into 4 bytes at `buf[offset…]`; returns 4. */
export function writeMssOption(buf: Uint8Array, offset: number, mss: number): number {
  ensureRoom('tcp', buf, offset, 4);
  buf[offset] = 2;
  buf[offset + 1] = 4;
  put16(buf, offset + 2, mss);
  return 4;
}
