// One-call dissection of an Ethernet frame down to its transport header: Ethernet (VLAN tags
// skipped) → ARP | IPv4 | IPv6 (extension headers walked) → TCP | UDP | ICMP | ICMPv6, into a
// reusable result whose sub-objects are filled in place (allocation-free after the first call).
// Returns a NetError naming the first layer that is malformed. Optionally verifies transport
// checksums (the IPv4 header checksum is always checked: it costs 20 bytes).

import { NetError } from '../errors.js';
import { parseEthernet, newEthernetHeader, EtherType, type EthernetHeader } from './ethernet.js';
import { parseArp, newArpPacket, type ArpPacket } from './arp.js';
import { parseIpv4, newIpv4Header, IpProto, type Ipv4Header } from './ipv4.js';
import { parseIpv6, newIpv6Header, type Ipv6Header } from './ipv6.js';
import { parseTcp, newTcpHeader, type TcpHeader } from './tcp.js';
import { parseUdp, newUdpHeader, type UdpHeader } from './udp.js';
import { parseIcmp, parseIcmpv6, newIcmpMessage, type IcmpMessage } from './icmp.js';
import { verifyL4Checksum } from './l4.js';

export type L3Kind = 'arp' | 'ipv4' | 'ipv6' | 'other';
/** `fragment`: a non-first IP fragment (or an IPv6 fragment) whose transport header is not parsed. */
export type L4Kind = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'fragment' | 'other' | 'none';

export interface ParsedPacket {
  eth: EthernetHeader;
  l3: L3Kind;
  arp: ArpPacket;
  ipv4: Ipv4Header;
  ipv6: Ipv6Header;
  /** Offset of the IP header (when l3 is ipv4/ipv6). */
  ipOffset: number;
  l4: L4Kind;
  /** IP protocol / upper-layer next header (when l3 is ipv4/ipv6). */
  protocol: number;
  l4Offset: number;
  /** End of the IP payload (excludes Ethernet padding). */
  l4End: number;
  tcp: TcpHeader;
  udp: UdpHeader;
  icmp: IcmpMessage;
  /** Transport checksum verdict when requested and applicable; null otherwise. */
  l4ChecksumOk: boolean | null;
}

export function newParsedPacket(): ParsedPacket {
  return {
    eth: newEthernetHeader(),
    l3: 'other',
    arp: newArpPacket(),
    ipv4: newIpv4Header(),
    ipv6: newIpv6Header(),
    ipOffset: 0,
    l4: 'none',
    protocol: 0,
    l4Offset: 0,
    l4End: 0,
    tcp: newTcpHeader(),
    udp: newUdpHeader(),
    icmp: newIcmpMessage(),
    l4ChecksumOk: null,
  };
}

/** Dissects the frame `buf[offset…end)` into `out`; see the file header. */
export function parsePacket(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: ParsedPacket = newParsedPacket(),
  verifyChecksums = false,
): ParsedPacket | NetError {
  out.l3 = 'other';
  out.l4 = 'none';
  out.l4ChecksumOk = null;
  const eth = parseEthernet(buf, offset, end, out.eth);
  if (eth instanceof NetError) return eth;
  const p = eth.payloadOffset;
  let version: 4 | 6;
  switch (eth.etherType) {
    case EtherType.ARP: {
      const a = parseArp(buf, p, end, out.arp);
      if (a instanceof NetError) return a;
      out.l3 = 'arp';
      return out;
    }
    case EtherType.IPV4: {
      const ip = parseIpv4(buf, p, end, out.ipv4);
      if (ip instanceof NetError) return ip;
      out.l3 = 'ipv4';
      out.ipOffset = p;
      out.protocol = ip.protocol;
      out.l4Offset = ip.payloadOffset;
      out.l4End = ip.payloadEnd;
      version = 4;
      if (ip.fragmentOffsetBytes !== 0 || ip.moreFragments) {
        out.l4 = 'fragment';
        return out;
      }
      break;
    }
    case EtherType.IPV6: {
      const ip = parseIpv6(buf, p, end, out.ipv6);
      if (ip instanceof NetError) return ip;
      out.l3 = 'ipv6';
      out.ipOffset = p;
      out.protocol = ip.upperProtocol;
      out.l4Offset = ip.upperOffset;
      out.l4End = ip.payloadEnd;
      version = 6;
      if (ip.fragmented) {
        out.l4 = 'fragment';
        return out;
      }
      break;
    }
    default:
      return out;
  }
  let l4Len = out.l4End - out.l4Offset;
  switch (out.protocol) {
    case IpProto.TCP: {
      const t = parseTcp(buf, out.l4Offset, out.l4End, out.tcp);
      if (t instanceof NetError) return t;
      out.l4 = 'tcp';
      break;
    }
    case IpProto.UDP: {
      const u = parseUdp(buf, out.l4Offset, out.l4End, out.udp);
      if (u instanceof NetError) return u;
      out.l4 = 'udp';
      l4Len = u.length;
      break;
    }
    case IpProto.ICMP: {
      if (version !== 4) return out;
      const m = parseIcmp(buf, out.l4Offset, out.l4End, out.icmp);
      if (m instanceof NetError) return m;
      out.l4 = 'icmp';
      if (verifyChecksums) out.l4ChecksumOk = m.checksumOk;
      return out;
    }
    case IpProto.ICMPV6: {
      if (version !== 6) return out;
      const m = parseIcmpv6(buf, out.l4Offset, out.l4End, out.ipOffset, out.icmp);
      if (m instanceof NetError) return m;
      out.l4 = 'icmpv6';
      if (verifyChecksums) out.l4ChecksumOk = m.checksumOk;
      return out;
    }
    default:
      out.l4 = 'other';
      return out;
  }
  if (verifyChecksums) {
    out.l4ChecksumOk = verifyL4Checksum(buf, version, out.ipOffset, out.protocol, out.l4Offset, l4Len);
  }
  return out;
}
