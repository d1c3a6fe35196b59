// ICMP echo (RFC 792) and ICMPv6 echo (RFC 4443 §4): builders for echo request/reply messages
// with their checksums, and a parser for any ICMP/ICMPv6 message that reports type, code,
// checksum validity and, for echo, identifier / sequence / data. ICMPv4's checksum covers the
// message only; ICMPv6's also covers the IPv6 pseudo-header, so its functions take the offset of
// the IPv6 header already written in the same buffer.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { copyBytes } from '../../memory/copy.js';
import { csumFold, csumPartial } from '../checksum.js';
import { get16, put16 } from './bytes.js';
import { IpProto } from './ipv4.js';
import { fillL4Checksum, verifyL4Checksum } from './l4.js';

export const ICMP_ECHO_HEADER_BYTES = 8;

export const IcmpType = { ECHO_REPLY: 0, DEST_UNREACHABLE: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;
export const Icmpv6Type = { ECHO_REQUEST: 128, ECHO_REPLY: 129 } as const;

export interface IcmpEchoFields {
  /** IcmpType.ECHO_REQUEST/ECHO_REPLY, or Icmpv6Type.* for ICMPv6. */
  type: number;
  id: number;
  seq: number;
  /** Echo data copied after the 8-byte header: `data[dataOffset, dataOffset + dataLength)`. */
  data?: Uint8Array;
  /** Where the echo data starts in `data` (default 0): a range, not a subarray per message. */
  dataOffset?: number;
  /** Echo data bytes (default: the rest of `data` after dataOffset). */
  dataLength?: number;
}

/** The echo data length `f` describes (0 without data). */
export function echoDataLength(f: Readonly<Pick<IcmpEchoFields, 'data' | 'dataOffset' | 'dataLength'>>): number {
  const d = f.data;
  if (d === undefined) return 0;
  return f.dataLength ?? d.length - (f.dataOffset ?? 0);
}

export interface IcmpMessage {
  type: number;
  code: number;
  checksum: number;
  checksumOk: boolean;
  /** Echo identifier / sequence (bytes 4..8; meaningful for echo types only). */
  id: number;
  seq: number;
  dataOffset: number;
  dataEnd: number;
}

export function newIcmpMessage(): IcmpMessage {
  return { type: 0, code: 0, checksum: 0, checksumOk: false, id: 0, seq: 0, dataOffset: 0, dataEnd: 0 };
}

function writeEchoBody(buf: Uint8Array, offset: number, f: Readonly<IcmpEchoFields>): number {
  const dataLen = echoDataLength(f);
  const len = ICMP_ECHO_HEADER_BYTES + dataLen;
  ensureRoom('icmp', buf, offset, len);
  buf[offset] = f.type;
  buf[offset + 1] = 0;
  put16(buf, offset + 2, 0);
  put16(buf, offset + 4, f.id & 0xffff);
  put16(buf, offset + 6, f.seq & 0xffff);
  if (f.data) copyBytes(buf, offset + ICMP_ECHO_HEADER_BYTES, f.data, f.dataOffset ?? 0, dataLen);
  return len;
}

/** Writes an ICMPv4 echo request/reply with its checksum; returns 8 + data length. */
export function writeIcmpEcho(buf: Uint8Array, offset: number, f: Readonly<IcmpEchoFields>): number {
  const len = writeEchoBody(buf, offset, f);
  put16(buf, offset + 2, csumFold(csumPartial(buf, offset, len)));
  return len;
}

/**
 * Writes an ICMPv6 echo request/reply with its checksum, whose pseudo-header comes from the
 * IPv6 header at `ipv6Offset` (write that header first); returns 8 + data length.
 */
export function writeIcmpv6Echo(
  buf: Uint8Array,
  offset: number,
  f: Readonly<IcmpEchoFields>,
  ipv6Offset: number,
): number {
  const len = writeEchoBody(buf, offset, f);
  fillL4Checksum(buf, 6, ipv6Offset, IpProto.ICMPV6, offset, len);
  return len;
}

function parseBody(
  layer: string,
  buf: Uint8Array,
  offset: number,
  end: number,
  out: IcmpMessage,
): IcmpMessage | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + ICMP_ECHO_HEADER_BYTES > end) {
    return truncated(layer, offset, ICMP_ECHO_HEADER_BYTES, end);
  }
  out.type = buf[offset]!;
  out.code = buf[offset + 1]!;
  out.checksum = get16(buf, offset + 2);
  out.id = get16(buf, offset + 4);
  out.seq = get16(buf, offset + 6);
  out.dataOffset = offset + ICMP_ECHO_HEADER_BYTES;
  out.dataEnd = end;
  return out;
}

/** Parses an ICMPv4 message filling `buf[offset…end)` (`end` = end of the IP payload). */
export function parseIcmp(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: IcmpMessage = newIcmpMessage(),
): IcmpMessage | NetError {
  const r = parseBody('icmp', buf, offset, end, out);
  if (r instanceof NetError) return r;
  r.checksumOk = csumFold(csumPartial(buf, offset, r.dataEnd - offset)) === 0;
  return r;
}

/** Parses an ICMPv6 message; `ipv6Offset` locates its IPv6 header for the pseudo-header. */
export function parseIcmpv6(
  buf: Uint8Array,
  offset: number,
  end: number,
  ipv6Offset: number,
  out: IcmpMessage = newIcmpMessage(),
): IcmpMessage | NetError {
  const r = parseBody('icmpv6', buf, offset, end, out);
  if (r instanceof NetError) return r;
  r.checksumOk = verifyL4Checksum(buf, 6, ipv6Offset, IpProto.ICMPV6, offset, r.dataEnd - offset);
  return r;
}
