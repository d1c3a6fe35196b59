// IPv6 headers (RFC 8200): a builder for the 40-byte fixed header, and a parser that checks the
// version and payload length and walks the extension-header chain (hop-by-hop, routing,
// destination options, fragment, AH) to the upper-layer protocol.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { get16, get32, put16, put32 } from './bytes.js';
import { IPV6_ADDR_BYTES } from './addr.js';
import { IpProto } from './ipv4.js';

export const IPV6_HEADER_BYTES = 40;
/** Extension headers walked before giving up (a hostile chain could be long). */
const MAX_EXT_HEADERS = 8;

export interface Ipv6Fields {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  /** Bytes after the fixed 40-byte header (extension headers included). */
  payloadBytes: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

export interface Ipv6Header {
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  srcOffset: number;
  dstOffset: number;
  /** First byte after the fixed header. */
  payloadOffset: number;
  /** End of the packet per payload length. */
  payloadEnd: number;
  /** Protocol after the extension headers (IpProto.NONE when there is none). */
  upperProtocol: number;
  /** Offset of the upper-layer header. */
  upperOffset: number;
  /** A fragment header was present: the upper-layer header may be absent or incomplete. */
  fragmented: boolean;
}

export function newIpv6Header(): Ipv6Header {
  return {
    trafficClass: 0,
    flowLabel: 0,
    payloadLength: 0,
    nextHeader: 0,
    hopLimit: 0,
    srcOffset: 0,
    dstOffset: 0,
    payloadOffset: 0,
    payloadEnd: 0,
    upperProtocol: 0,
    upperOffset: 0,
    fragmented: false,
  };
}

/** Writes the 40-byte IPv6 fixed header at `buf[offset…]`; returns 40. */
export function writeIpv6Header(buf: Uint8Array, offset: number, f: Readonly<Ipv6Fields>): number {
  if (f.src.length !== IPV6_ADDR_BYTES || f.dst.length !== IPV6_ADDR_BYTES) {
    throw new NetError('bad-argument', 'ipv6', 'source and destination must be 16 bytes');
  }
  if (f.payloadBytes < 0 || f.payloadBytes > 0xffff) {
    throw new NetError('bad-argument', 'ipv6', `payload length ${f.payloadBytes} outside 0..65535`);
  }
  ensureRoom('ipv6', buf, offset, IPV6_HEADER_BYTES);
  const tc = (f.trafficClass ?? 0) & 0xff;
  const fl = (f.flowLabel ?? 0) & 0xfffff;
  put32(buf, offset, ((6 << 28) | (tc << 20) | fl) >>> 0);
  put16(buf, offset + 4, f.payloadBytes);
  buf[offset + 6] = f.nextHeader & 0xff;
  buf[offset + 7] = (f.hopLimit ?? 64) & 0xff;
  buf.set(f.src, offset + 8);
  buf.set(f.dst, offset + 24);
  return IPV6_HEADER_BYTES;
}

/**
 * Parses the IPv6 header at `buf[offset…end)` and its extension headers. Errors: `truncated`,
 * `malformed` (version ≠ 6, an extension header running past the packet), `unsupported` (jumbo
 * payload length 0, more than 8 extension headers).
 */
export function parseIpv6(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: Ipv6Header = newIpv6Header(),
): Ipv6Header | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + IPV6_HEADER_BYTES > end) {
    return truncated('ipv6', offset, IPV6_HEADER_BYTES, end);
  }
  const w0 = get32(buf, offset);
  if (w0 >>> 28 !== 6) return new NetError('malformed', 'ipv6', `version ${w0 >>> 28}, not 6`, offset);
  const plen = get16(buf, offset + 4);
  const next = buf[offset + 6]!;
  if (plen === 0 && next === IpProto.HOPOPTS) {
    return new NetError('unsupported', 'ipv6', 'jumbogram (payload length 0)', offset);
  }
  const pend = offset + IPV6_HEADER_BYTES + plen;
  if (pend > end) return truncated('ipv6', offset, IPV6_HEADER_BYTES + plen, end);
  out.trafficClass = (w0 >>> 20) & 0xff;
  out.flowLabel = w0 & 0xfffff;
  out.payloadLength = plen;
  out.nextHeader = next;
  out.hopLimit = buf[offset + 7]!;
  out.srcOffset = offset + 8;
  out.dstOffset = offset + 24;
  out.payloadOffset = offset + IPV6_HEADER_BYTES;
  out.payloadEnd = pend;
  out.fragmented = false;
  let proto = next;
  let o = out.payloadOffset;
  for (let n = 0; ; n++) {
    let extLen: number;
    if (proto === IpProto.HOPOPTS || proto === IpProto.ROUTING || proto === IpProto.DSTOPTS) {
      if (o + 2 > pend) return truncated('ipv6 extension header', o, 2, pend);
      extLen = (buf[o + 1]! + 1) * 8;
    } else if (proto === IpProto.FRAGMENT) {
      extLen = 8;
      out.fragmented = true;
    } else if (proto === IpProto.AH) {
      if (o + 2 > pend) return truncated('ipv6 extension header', o, 2, pend);
      extLen = (buf[o + 1]! + 2) * 4;
    } else {
      break;
    }
    if (n === MAX_EXT_HEADERS) {
      return new NetError('unsupported', 'ipv6', `more than ${MAX_EXT_HEADERS} extension headers`, offset);
    }
    if (o + extLen > pend) {
      return new NetError('malformed', 'ipv6', `extension header ${proto} runs past the packet`, o);
    }
    proto = buf[o]!;
    o += extLen;
  }
  out.upperProtocol = proto;
  out.upperOffset = o;
  return out;
}
