// Whole-frame builders: Ethernet (+ optional 802.1Q tag) + ARP, or + IPv4/IPv6 + ICMP echo / UDP
// / TCP with every checksum filled — for the in-memory host stack, traffic generators and
// tests. Each writes into a caller buffer and returns the frame length; an optional
// `FrameLayout` receives where each layer starts (e.g. to set virtio csum_start). Frames are
// not padded to 60 bytes (see padEthernet).

import { copyBytes } from '../../memory/copy.js';
import { NetError, ensureRoom } from '../errors.js';
import { writeEthernet, EtherType } from './ethernet.js';
import { writeArp, ArpOp, ARP_BYTES } from './arp.js';
import { writeIpv4Header, IpProto, IPV4_HEADER_BYTES, type Ipv4Fields } from './ipv4.js';
import { writeIpv6Header, IPV6_HEADER_BYTES, type Ipv6Fields } from './ipv6.js';
import { writeIcmpEcho, writeIcmpv6Echo, echoDataLength, IcmpType, Icmpv6Type, type IcmpEchoFields } from './icmp.js';
import { writeUdpHeader, UDP_HEADER_BYTES } from './udp.js';
import { writeTcpHeader, type TcpFields } from './tcp.js';
import { fillL4Checksum, fillL4PartialChecksum } from './l4.js';

export interface LinkFields {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  /** 802.1Q VLAN ID; omitted or -1 for an untagged frame. */
  vlanId?: number;
}

export type IpFields =
  | {
      version: 4;
      src: number;
      dst: number;
      ttl?: number;
      id?: number;
      tos?: number;
      dontFragment?: boolean;
    }
  | {
      version: 6;
      src: Uint8Array;
      dst: Uint8Array;
      hopLimit?: number;
      trafficClass?: number;
      flowLabel?: number;
    };

/**
 * `full`: the transport checksum is complete. `partial`: it holds only the pseudo-header sum, as
 * a driver leaves it with NEEDS_CSUM (virtio 1.2 §5.1.6.2); csum_start = layout.l4Offset and
 * csum_offset = 16 (TCP) / 6 (UDP). `none`: left 0 (for UDP over IPv4, "no checksum").
 */
export type ChecksumMode = 'full' | 'partial' | 'none';

/** Where the layers of a built frame start (absolute offsets in the buffer). */
export interface FrameLayout {
  ipOffset: number;
  l4Offset: number;
  payloadOffset: number;
  end: number;
}

export function newFrameLayout(): FrameLayout {
  return { ipOffset: 0, l4Offset: 0, payloadOffset: 0, end: 0 };
}

// Header fields handed to the layer writers, reused by every build (the builders run to
// completion in one thread, and the writers keep nothing): no object per frame.
const V4_OUT: Ipv4Fields = { src: 0, dst: 0, protocol: 0, payloadBytes: 0, ttl: undefined, id: undefined, tos: undefined, dontFragment: undefined };
const V6_OUT: Ipv6Fields = { src: new Uint8Array(16), dst: new Uint8Array(16), nextHeader: 0, payloadBytes: 0, hopLimit: undefined, trafficClass: undefined, flowLabel: undefined };
const ECHO_OUT: IcmpEchoFields = { type: 0, id: 0, seq: 0, data: undefined, dataOffset: undefined, dataLength: undefined };

function writeIp(buf: Uint8Array, offset: number, ip: Readonly<IpFields>, protocol: number, l4Len: number): number {
  if (ip.version === 4) {
    const o = V4_OUT;
    o.src = ip.src;
    o.dst = ip.dst;
    o.protocol = protocol;
    o.payloadBytes = l4Len;
    o.ttl = ip.ttl;
    o.id = ip.id;
    o.tos = ip.tos;
    o.dontFragment = ip.dontFragment;
    return writeIpv4Header(buf, offset, o);
  }
  const o = V6_OUT;
  o.src = ip.src;
  o.dst = ip.dst;
  o.nextHeader = protocol;
  o.payloadBytes = l4Len;
  o.hopLimit = ip.hopLimit;
  o.trafficClass = ip.trafficClass;
  o.flowLabel = ip.flowLabel;
  return writeIpv6Header(buf, offset, o);
}

function ipHeaderBytes(ip: Readonly<IpFields>): number {
  return ip.version === 4 ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES;
}

function fill(layout: FrameLayout | undefined, ipOff: number, l4Off: number, payOff: number, end: number): void {
  if (!layout) return;
  layout.ipOffset = ipOff;
  layout.l4Offset = l4Off;
  layout.payloadOffset = payOff;
  layout.end = end;
}

export interface ArpFrameFields {
  op: number;
  srcMac: Uint8Array;
  senderIp: number;
  targetIp: number;
  /** Defaults: broadcast for a request; required for a reply. */
  dstMac?: Uint8Array;
  /** Defaults to 00:00:00:00:00:00 for a request, to dstMac for a reply. */
  targetMac?: Uint8Array;
  vlanId?: number;
}

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);

/** Ethernet + ARP request or reply (42 bytes untagged); returns the frame length. */
export function buildArpFrame(buf: Uint8Array, offset: number, f: Readonly<ArpFrameFields>): number {
  const isReply = f.op === ArpOp.REPLY;
  const dst = f.dstMac ?? (isReply ? undefined : BROADCAST);
  if (!dst) throw new NetError('bad-argument', 'arp', 'an ARP reply needs dstMac');
  const target = f.targetMac ?? (isReply ? dst : ZERO_MAC);
  const eth = writeEthernet(buf, offset, dst, f.srcMac, EtherType.ARP, f.vlanId ?? -1);
  writeArp(buf, offset + eth, {
    op: f.op,
    senderMac: f.srcMac,
    senderIp: f.senderIp,
    targetMac: target,
    targetIp: f.targetIp,
  });
  return eth + ARP_BYTES;
}

export interface IcmpEchoFrameFields {
  link: LinkFields;
  ip: IpFields;
  kind: 'request' | 'reply';
  id: number;
  seq: number;
  /** Echo data: `data[dataOffset, dataOffset + dataLength)` (defaults: all of data). */
  data?: Uint8Array;
  dataOffset?: number;
  dataLength?: number;
}

/** Ethernet + IPv4/IPv6 + ICMP(v6) echo request/reply; returns the frame length. */
export function buildIcmpEchoFrame(
  buf: Uint8Array,
  offset: number,
  f: Readonly<IcmpEchoFrameFields>,
  layout?: FrameLayout,
): number {
  const v6 = f.ip.version === 6;
  const l4Len = 8 + echoDataLength(f);
  const eth = writeEthernet(
    buf,
    offset,
    f.link.dstMac,
    f.link.srcMac,
    v6 ? EtherType.IPV6 : EtherType.IPV4,
    f.link.vlanId ?? -1,
  );
  const ipOff = offset + eth;
  const l4Off = ipOff + ipHeaderBytes(f.ip);
  ensureRoom('icmp', buf, l4Off, l4Len);
  writeIp(buf, ipOff, f.ip, v6 ? IpProto.ICMPV6 : IpProto.ICMP, l4Len);
  const echo = ECHO_OUT;
  echo.id = f.id;
  echo.seq = f.seq;
  echo.data = f.data;
  echo.dataOffset = f.dataOffset;
  echo.dataLength = f.dataLength;
  if (v6) {
    echo.type = f.kind === 'request' ? Icmpv6Type.ECHO_REQUEST : Icmpv6Type.ECHO_REPLY;
    writeIcmpv6Echo(buf, l4Off, echo, ipOff);
  } else {
    echo.type = f.kind === 'request' ? IcmpType.ECHO_REQUEST : IcmpType.ECHO_REPLY;
    writeIcmpEcho(buf, l4Off, echo);
  }
  echo.data = undefined;
  fill(layout, ipOff, l4Off, l4Off + 8, l4Off + l4Len);
  return l4Off + l4Len - offset;
}

export interface UdpFrameFields {
  link: LinkFields;
  ip: IpFields;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  checksum?: ChecksumMode;
}

/** Ethernet + IPv4/IPv6 + UDP + payload; returns the frame length. */
export function buildUdpFrame(
  buf: Uint8Array,
  offset: number,
  f: Readonly<UdpFrameFields>,
  layout?: FrameLayout,
): number {
  const l4Len = UDP_HEADER_BYTES + f.payload.length;
  const eth = writeEthernet(
    buf,
    offset,
    f.link.dstMac,
    f.link.srcMac,
    f.ip.version === 6 ? EtherType.IPV6 : EtherType.IPV4,
    f.link.vlanId ?? -1,
  );
  const ipOff = offset + eth;
  const l4Off = ipOff + ipHeaderBytes(f.ip);
  ensureRoom('udp', buf, l4Off, l4Len);
  writeIp(buf, ipOff, f.ip, IpProto.UDP, l4Len);
  writeUdpHeader(buf, l4Off, f.srcPort, f.dstPort, f.payload.length);
  copyBytes(buf, l4Off + UDP_HEADER_BYTES, f.payload, 0, f.payload.length);
  finishChecksum(buf, f.ip.version, ipOff, IpProto.UDP, l4Off, l4Len, f.checksum ?? 'full');
  fill(layout, ipOff, l4Off, l4Off + UDP_HEADER_BYTES, l4Off + l4Len);
  return l4Off + l4Len - offset;
}

export interface TcpFrameFields extends TcpFields {
  link: LinkFields;
  ip: IpFields;
  payload: Uint8Array;
  checksum?: ChecksumMode;
  /**
   * The payload travels apart from the headers (a two-part frame, PortRxFrame.tail): the frame
   * has this many payload bytes that the caller sends after the headers; nothing is copied,
   * `payload` must be empty and the checksum 'partial' or 'none' (a full one needs the bytes).
   */
  payloadApart?: number;
}

/**
 * Ethernet + IPv4/IPv6 + TCP (+ options) + payload; returns the frame length (with
 * `payloadApart`, the headers alone are written and the length counts the payload too).
 */
export function buildTcpFrame(
  buf: Uint8Array,
  offset: number,
  f: Readonly<TcpFrameFields>,
  layout?: FrameLayout,
): number {
  const eth = writeEthernet(
    buf,
    offset,
    f.link.dstMac,
    f.link.srcMac,
    f.ip.version === 6 ? EtherType.IPV6 : EtherType.IPV4,
    f.link.vlanId ?? -1,
  );
  const ipOff = offset + eth;
  const l4Off = ipOff + ipHeaderBytes(f.ip);
  const hl = writeTcpHeader(buf, l4Off, f);
  const apart = f.payloadApart ?? 0;
  if (apart > 0 && (f.payload.length > 0 || f.checksum === undefined || f.checksum === 'full')) {
    throw new NetError('bad-argument', 'tcp', 'a payload apart from the headers needs an empty payload and a partial (or no) checksum');
  }
  const l4Len = hl + f.payload.length + apart;
  ensureRoom('tcp', buf, l4Off, l4Len - apart);
  writeIp(buf, ipOff, f.ip, IpProto.TCP, l4Len);
  copyBytes(buf, l4Off + hl, f.payload, 0, f.payload.length);
  finishChecksum(buf, f.ip.version, ipOff, IpProto.TCP, l4Off, l4Len, f.checksum ?? 'full');
  fill(layout, ipOff, l4Off, l4Off + hl, l4Off + l4Len);
  return l4Off + l4Len - offset;
}

function finishChecksum(
  buf: Uint8Array,
  version: 4 | 6,
  ipOff: number,
  protocol: number,
  l4Off: number,
  l4Len: number,
  mode: ChecksumMode,
): void {
  if (mode === 'full') fillL4Checksum(buf, version, ipOff, protocol, l4Off, l4Len);
  else if (mode === 'partial') fillL4PartialChecksum(buf, version, ipOff, protocol, l4Off, l4Len);
}
