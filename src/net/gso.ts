// Software segmentation offload and checksum completion for frames a driver hands over with a
// virtio_net_hdr (virtio 1.2 §5.1.6.2): `gsoSegmentTcp` cuts a TCPv4/TCPv6 GSO frame into
// MSS-sized frames, each fully checksummed (what a device without TSO hardware, or a backend that
// cannot take GSO frames, must do); `applyNeedsCsum` finishes a NEEDS_CSUM partial checksum.
// The frame's own headers are parsed and trusted over hdr_len, which without GUEST_HDRLEN is
// only a hint (virtio 1.2 §5.1.6.2.2). UDP (UFO/USO) segmentation is not handled here.

import { copyBytes } from '../memory/copy.js';
import { NetError } from './errors.js';
import { csumFold, csumPartial } from './checksum.js';
import { GsoType, type VirtioNetHdr } from './header.js';
import { parseEthernet, newEthernetHeader, EtherType } from './frames/ethernet.js';
import { parseIpv4, newIpv4Header, IpProto, fillIpv4Checksum } from './frames/ipv4.js';
import { parseIpv6, newIpv6Header, IPV6_HEADER_BYTES } from './frames/ipv6.js';
import { parseTcp, newTcpHeader, TcpFlags } from './frames/tcp.js';
import { fillL4Checksum } from './frames/l4.js';
import { get16, get32, put16, put32 } from './frames/bytes.js';

/**
 * Receives one segment: `buf[0…lenBytes)` is a complete Ethernet frame, valid only during the
 * call (the buffer is the caller's scratch and is rewritten for the next segment).
 */
export type SegmentSink = (buf: Uint8Array, lenBytes: number, index: number, last: boolean) => void;

/** Number of segments a payload of `payloadBytes` makes at `mss` (at least one). */
export function gsoSegmentCount(payloadBytes: number, mss: number): number {
  return Math.max(1, Math.ceil(payloadBytes / mss));
}

// Per-module parse state, reused so that segmenting allocates nothing per frame.
const eth = newEthernetHeader();
const ip4 = newIpv4Header();
const ip6 = newIpv6Header();
const tcp = newTcpHeader();

function bad(detail: string, offset: number): NetError {
  return new NetError('bad-gso', 'gso', detail, offset);
}

/** Where the headers of a TCP GSO frame end and what the segmenter needs from them. */
interface TcpGsoShape {
  version: 4 | 6;
  ipRel: number;
  l4Rel: number;
  /** Bytes of headers replicated in every segment (Ethernet through TCP options). */
  headerBytes: number;
  payloadStart: number;
  payloadBytes: number;
}

const shape: TcpGsoShape = { version: 4, ipRel: 0, l4Rel: 0, headerBytes: 0, payloadStart: 0, payloadBytes: 0 };

function locateTcp(frame: Uint8Array, offset: number, end: number, gsoType: number): TcpGsoShape | NetError {
  const base = gsoType & ~GsoType.ECN;
  if (base !== GsoType.TCPV4 && base !== GsoType.TCPV6) {
    return bad(`gso_type ${gsoType} is not TCPV4 or TCPV6`, offset);
  }
  const e = parseEthernet(frame, offset, end, eth);
  if (e instanceof NetError) return e;
  let ipEnd: number;
  let l4Off: number;
  if (base === GsoType.TCPV4) {
    if (e.etherType !== EtherType.IPV4) {
      return bad(`gso_type TCPV4 on a frame with EtherType 0x${e.etherType.toString(16)}`, offset);
    }
    const ip = parseIpv4(frame, e.payloadOffset, end, ip4);
    if (ip instanceof NetError) return ip;
    if (ip.protocol !== IpProto.TCP) return bad(`IPv4 protocol ${ip.protocol} is not TCP`, e.payloadOffset);
    if (ip.moreFragments || ip.fragmentOffsetBytes !== 0) return bad('IPv4 fragment', e.payloadOffset);
    ipEnd = ip.payloadEnd;
    l4Off = ip.payloadOffset;
    shape.version = 4;
  } else {
    if (e.etherType !== EtherType.IPV6) {
      return bad(`gso_type TCPV6 on a frame with EtherType 0x${e.etherType.toString(16)}`, offset);
    }
    const ip = parseIpv6(frame, e.payloadOffset, end, ip6);
    if (ip instanceof NetError) return ip;
    if (ip.fragmented) return bad('IPv6 fragment', e.payloadOffset);
    if (ip.upperProtocol !== IpProto.TCP) {
      return bad(`IPv6 upper-layer protocol ${ip.upperProtocol} is not TCP`, e.payloadOffset);
    }
    ipEnd = ip.payloadEnd;
    l4Off = ip.upperOffset;
    shape.version = 6;
  }
  const t = parseTcp(frame, l4Off, ipEnd, tcp);
  if (t instanceof NetError) return t;
  shape.ipRel = e.payloadOffset - offset;
  shape.l4Rel = l4Off - offset;
  shape.headerBytes = t.payloadOffset - offset;
  shape.payloadStart = t.payloadOffset;
  shape.payloadBytes = ipEnd - t.payloadOffset;
  return shape;
}

/**
 * Splits the TCP GSO frame `frame[offset…offset+frameBytes)` into segments of at most
 * `hdr.gsoSize` payload bytes, building each in `scratch` and handing it to `emit`. Every
 * segment gets: the original headers; IPv4 total length and ID (original + index) with a fresh
 * header checksum, or IPv6 payload length; the TCP sequence number advanced by the payload
 * before it; FIN and PSH only on the last segment, CWR only on the first; a full TCP checksum.
 * Returns the number of segments, or a NetError (`bad-gso`, a parse error, or `no-room` when
 * `scratch` is shorter than headers + one MSS). A frame whose payload fits one MSS yields one
 * segment with its checksums completed.
 */
export function gsoSegmentTcp(
  frame: Uint8Array,
  offset: number,
  frameBytes: number,
  hdr: Readonly<Pick<VirtioNetHdr, 'gsoType' | 'gsoSize'>>,
  scratch: Uint8Array,
  emit: SegmentSink,
): number | NetError {
  const mss = hdr.gsoSize;
  if (mss <= 0) return bad('gso_size is 0', offset);
  const s = locateTcp(frame, offset, offset + frameBytes, hdr.gsoType);
  if (s instanceof NetError) return s;
  const { version, ipRel, l4Rel, headerBytes, payloadStart, payloadBytes } = s;
  const count = gsoSegmentCount(payloadBytes, mss);
  const maxSeg = headerBytes + Math.min(mss, payloadBytes);
  if (scratch.length < maxSeg) {
    return new NetError('no-room', 'gso', `scratch of ${scratch.length} bytes, segments need ${maxSeg}`);
  }
  if (headerBytes - ipRel + Math.min(mss, payloadBytes) > 0xffff + (version === 6 ? IPV6_HEADER_BYTES : 0)) {
    return bad(`headers + gso_size ${mss} exceed the IP length limit`, offset);
  }
  const seq0 = get32(frame, offset + l4Rel + 4);
  const flags0 = frame[offset + l4Rel + 13]!;
  const id0 = version === 4 ? get16(frame, offset + ipRel + 4) : 0;
  for (let i = 0; i < count; i++) {
    const last = i === count - 1;
    const chunk = last ? payloadBytes - i * mss : mss;
    for (let b = 0; b < headerBytes; b++) scratch[b] = frame[offset + b]!;
    copyBytes(scratch, headerBytes, frame, payloadStart + i * mss, chunk);
    const segLen = headerBytes + chunk;
    if (version === 4) {
      put16(scratch, ipRel + 2, segLen - ipRel);
      put16(scratch, ipRel + 4, (id0 + i) & 0xffff);
      fillIpv4Checksum(scratch, ipRel);
    } else {
      put16(scratch, ipRel + 4, segLen - ipRel - IPV6_HEADER_BYTES);
    }
    put32(scratch, l4Rel + 4, (seq0 + i * mss) >>> 0);
    let flags = flags0;
    if (i > 0) flags &= ~TcpFlags.CWR;
    if (!last) flags &= ~(TcpFlags.FIN | TcpFlags.PSH);
    scratch[l4Rel + 13] = flags;
    fillL4Checksum(scratch, version, ipRel, IpProto.TCP, l4Rel, segLen - l4Rel);
    emit(scratch, segLen, i, last);
  }
  return count;
}

/** Convenience over `gsoSegmentTcp` that returns each segment as its own copy (allocates). */
export function gsoSegmentTcpToArrays(
  frame: Uint8Array,
  offset: number,
  frameBytes: number,
  hdr: Readonly<Pick<VirtioNetHdr, 'gsoType' | 'gsoSize'>>,
): Uint8Array[] | NetError {
  const scratch = new Uint8Array(frameBytes);
  const out: Uint8Array[] = [];
  const r = gsoSegmentTcp(frame, offset, frameBytes, hdr, scratch, (buf, len) => {
    out.push(buf.slice(0, len));
  });
  return r instanceof NetError ? r : out;
}

/**
 * Completes a NEEDS_CSUM partial checksum in place (virtio 1.2 §5.1.6.2): sums
 * `frame[csumStart…frameEnd)` — whose checksum field already holds the driver's pseudo-header
 * sum — and stores the complement at `csumStart + csumOffset`, big-endian. A result of 0 is
 * stored as 0xffff (equivalent for TCP, required for UDP where 0 means "no checksum"; Linux's
 * skb_checksum_help does the same). Returns null, or `bad-csum-offsets` when the field does not
 * lie inside the frame.
 */
export function applyNeedsCsum(
  frame: Uint8Array,
  csumStart: number,
  csumOffset: number,
  frameEnd: number = frame.length,
): NetError | null {
  frameEnd = Math.min(frameEnd, frame.length);
  const field = csumStart + csumOffset;
  if (csumStart < 0 || csumOffset < 0 || field + 2 > frameEnd) {
    return new NetError(
      'bad-csum-offsets',
      'virtio_net_hdr',
      `csum_start ${csumStart} + csum_offset ${csumOffset} + 2 exceeds the ${frameEnd}-byte frame`,
    );
  }
  const c = csumFold(csumPartial(frame, csumStart, frameEnd - csumStart));
  put16(frame, field, c === 0 ? 0xffff : c);
  return null;
}
