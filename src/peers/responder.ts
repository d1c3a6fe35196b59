// A minimal IPv4 endpoint for real-peer demos: answers ARP requests and ICMP echo requests for
// one address and counts everything else by reason (the kernel's IPv6 router solicitations and
// MLD reports on link-up are expected strays). Works on bare Ethernet frames (no virtio_net_hdr)
// and writes the reply into a caller's buffer. Runs in Web Workers too: no `node:` imports.

import { internetChecksum } from '../net/checksum.js';

const ETH = 14;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

export type IgnoredReason = 'ipv6' | 'arp-not-for-us' | 'ipv4-not-for-us' | 'not-echo-request' | 'malformed' | 'other-ethertype';

export interface ResponderStats {
  arpReplies: number;
  echoReplies: number;
  ignored: Record<IgnoredReason, number>;
}

export class Responder {
  readonly stats: ResponderStats = {
    arpReplies: 0,
    echoReplies: 0,
    ignored: { ipv6: 0, 'arp-not-for-us': 0, 'ipv4-not-for-us': 0, 'not-echo-request': 0, malformed: 0, 'other-ethertype': 0 },
  };

  /** `mac`: 6 bytes; `ipv4`: the address as a u32 (host order, e.g. 0x0a4d0002 for 10.77.0.2). */
  constructor(
    readonly mac: Uint8Array,
    readonly ipv4: number,
  ) {
    if (mac.length !== 6) throw new RangeError('Responder: a MAC address has 6 bytes');
  }

  /**
   * The reply to `frame[0, len)` written at `out[0…]`, returning its length, or 0 when the frame
   * needs no reply (counted in stats.ignored). Never throws on frame content.
   */
  respond(frame: Uint8Array, len: number, out: Uint8Array): number {
    if (len < ETH || len > frame.length) return this.ignore('malformed');
    const type = (frame[12]! << 8) | frame[13]!;
    if (type === ETHERTYPE_ARP) return this.arp(frame, len, out);
    if (type === ETHERTYPE_IPV4) return this.icmp(frame, len, out);
    return this.ignore(type === ETHERTYPE_IPV6 ? 'ipv6' : 'other-ethertype');
  }

  private ignore(reason: IgnoredReason): number {
    this.stats.ignored[reason]++;
    return 0;
  }

  private arp(f: Uint8Array, len: number, out: Uint8Array): number {
    const a = ETH;
    if (len < a + 28 || out.length < a + 28) return this.ignore('malformed');
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if (f[a] !== 0 || f[a + 1] !== 1 || f[a + 2] !== 8 || f[a + 3] !== 0 || f[a + 4] !== 6 || f[a + 5] !== 4) return this.ignore('malformed');
    const op = (f[a + 6]! << 8) | f[a + 7]!;
    if (op !== 1 || readU32(f, a + 24) !== this.ipv4) return this.ignore('arp-not-for-us');
    out.set(f.subarray(6, 12), 0); // to the sender
    out.set(this.mac, 6);
    out[12] = 0x08;
    out[13] = 0x06;
    out.set(f.subarray(a, a + 6), a); // htype, ptype, hlen, plen
    out[a + 6] = 0;
    out[a + 7] = 2; // reply
    out.set(this.mac, a + 8); // sha
    writeU32(out, a + 14, this.ipv4); // spa
    out.set(f.subarray(a + 8, a + 18), a + 18); // tha, tpa = requester's sha, spa
    this.stats.arpReplies++;
    return a + 28;
  }

  private icmp(f: Uint8Array, len: number, out: Uint8Array): number {
    const ip = ETH;
    if (len < ip + 20) return this.ignore('malformed');
    const ihl = (f[ip]! & 0x0f) * 4;
    const totalLen = (f[ip + 2]! << 8) | f[ip + 3]!;
    if (f[ip]! >> 4 !== 4 || ihl < 20 || totalLen < ihl + 8 || ip + totalLen > len) return this.ignore('malformed');
    if (readU32(f, ip + 16) !== this.ipv4) return this.ignore('ipv4-not-for-us');
    const icmp = ip + ihl;
    if (f[ip + 9] !== 1 || f[icmp] !== 8 || f[icmp + 1] !== 0) return this.ignore('not-echo-request');
    const fragment = ((f[ip + 6]! & 0x3f) << 8) | f[ip + 7]!; // MF bit or offset: a fragment
    if (fragment !== 0) return this.ignore('not-echo-request');
    const outLen = ip + totalLen;
    if (out.length < outLen) return this.ignore('malformed');
    out.set(f.subarray(0, outLen), 0);
    out.set(f.subarray(6, 12), 0);
    out.set(this.mac, 6);
    out.set(f.subarray(ip + 16, ip + 20), ip + 12); // src = the address asked
    out.set(f.subarray(ip + 12, ip + 16), ip + 16); // dst = the asker
    out[ip + 8] = 64; // ttl
    out[ip + 10] = 0;
    out[ip + 11] = 0;
    const ipSum = internetChecksum(out, ip, ihl);
    out[ip + 10] = ipSum >> 8;
    out[ip + 11] = ipSum & 0xff;
    out[icmp] = 0; // echo reply
    out[icmp + 2] = 0;
    out[icmp + 3] = 0;
    const sum = internetChecksum(out, icmp, totalLen - ihl);
    out[icmp + 2] = sum >> 8;
    out[icmp + 3] = sum & 0xff;
    this.stats.echoReplies++;
    return outLen;
  }
}

/** Swaps source and destination MAC addresses in place (the `reflect` backend). */
export function swapMacs(frame: Uint8Array, offset: number): void {
  for (let i = 0; i < 6; i++) {
    const t = frame[offset + i]!;
    frame[offset + i] = frame[offset + 6 + i]!;
    frame[offset + 6 + i] = t;
  }
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
