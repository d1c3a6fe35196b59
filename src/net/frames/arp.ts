// ARP for IPv4 over Ethernet (RFC 826): the 28-byte request/reply body after an Ethernet header
// with EtherType 0x0806. The builder writes into a caller buffer; the parser accepts only
// hardware type 1 / protocol 0x0800 / lengths 6 and 4, and reports address offsets rather than
// copying MACs.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { get16, get32, put16, put32 } from './bytes.js';
import { MAC_BYTES } from './addr.js';
import { EtherType } from './ethernet.js';

export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;
export const ARP_BYTES = 28;
const HTYPE_ETHERNET = 1;

export interface ArpFields {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  /** Ignored by receivers of a request; zeros are conventional there. */
  targetMac: Uint8Array;
  targetIp: number;
}

export interface ArpPacket {
  op: number;
  senderMacOffset: number;
  senderIp: number;
  targetMacOffset: number;
  targetIp: number;
}

export function newArpPacket(): ArpPacket {
  return { op: 0, senderMacOffset: 0, senderIp: 0, targetMacOffset: 0, targetIp: 0 };
}

/** Writes the 28-byte ARP body at `buf[offset…]`; returns 28. Throws `no-room` / `bad-argument`. */
export function writeArp(buf: Uint8Array, offset: number, f: Readonly<ArpFields>): number {
  if (f.senderMac.length !== MAC_BYTES || f.targetMac.length !== MAC_BYTES) {
    throw new NetError('bad-argument', 'arp', 'sender and target MACs must be 6 bytes');
  }
  ensureRoom('arp', buf, offset, ARP_BYTES);
  put16(buf, offset, HTYPE_ETHERNET);
  put16(buf, offset + 2, EtherType.IPV4);
  buf[offset + 4] = MAC_BYTES;
  buf[offset + 5] = 4;
  put16(buf, offset + 6, f.op);
  buf.set(f.senderMac, offset + 8);
  put32(buf, offset + 14, f.senderIp);
  buf.set(f.targetMac, offset + 18);
  put32(buf, offset + 24, f.targetIp);
  return ARP_BYTES;
}

/** Parses an ARP body at `buf[offset…end)` into `out`, or returns why it cannot. */
export function parseArp(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: ArpPacket = newArpPacket(),
): ArpPacket | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + ARP_BYTES > end) return truncated('arp', offset, ARP_BYTES, end);
  const htype = get16(buf, offset);
  const ptype = get16(buf, offset + 2);
  if (htype !== HTYPE_ETHERNET || ptype !== EtherType.IPV4) {
    return new NetError(
      'unsupported',
      'arp',
      `hardware type ${htype} / protocol 0x${ptype.toString(16)} (only Ethernet/IPv4)`,
      offset,
    );
  }
  if (buf[offset + 4] !== MAC_BYTES || buf[offset + 5] !== 4) {
    return new NetError(
      'malformed',
      'arp',
      `address lengths ${buf[offset + 4]}/${buf[offset + 5]} for Ethernet/IPv4 (want 6/4)`,
      offset,
    );
  }
  out.op = get16(buf, offset + 6);
  out.senderMacOffset = offset + 8;
  out.senderIp = get32(buf, offset + 14);
  out.targetMacOffset = offset + 18;
  out.targetIp = get32(buf, offset + 24);
  return out;
}
