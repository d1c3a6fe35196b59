// Ethernet II framing (IEEE 802.3 with EtherType) and 802.1Q / 802.1ad VLAN tags: a builder that
// writes the 14-byte header (18 with one tag) into a caller buffer, and a parser that skips up
// to two stacked tags and reports where the payload starts. Frames here carry no FCS, as on
// virtio-net and TAP.

import { NetError, truncated, ensureRoom } from '../errors.js';
import { get16, put16 } from './bytes.js';
import { MAC_BYTES } from './addr.js';

export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
  QINQ: 0x88a8,
  /** Pre-standard QinQ outer tag, still seen on some switches. */
  QINQ_LEGACY: 0x9100,
} as const;

export const ETH_HEADER_BYTES = 14;
export const VLAN_TAG_BYTES = 4;
/** Shortest Ethernet frame without FCS; shorter frames are padded with zeros by senders. */
export const ETH_MIN_FRAME_BYTES = 60;

const MAX_TAGS = 2;

export interface EthernetHeader {
  dstOffset: number;
  srcOffset: number;
  /** EtherType after any VLAN tags (a value < 0x0600 is an 802.3 length, left to the caller). */
  etherType: number;
  /** Number of VLAN tags skipped (0, 1 or 2). */
  vlanTags: number;
  /** VLAN ID (12 bits) of the outermost tag, or -1 when untagged. */
  vlanId: number;
  /** Priority code point of the outermost tag (0 when untagged). */
  vlanPcp: number;
  /** Offset of the first byte after the Ethernet header and its tags. */
  payloadOffset: number;
}

export function newEthernetHeader(): EthernetHeader {
  return { dstOffset: 0, srcOffset: 0, etherType: 0, vlanTags: 0, vlanId: -1, vlanPcp: 0, payloadOffset: 0 };
}

function checkMac(what: string, mac: Uint8Array): void {
  if (mac.length !== MAC_BYTES) {
    throw new NetError('bad-argument', 'ethernet', `${what} MAC has ${mac.length} bytes, not 6`);
  }
}

/**
 * Writes an Ethernet header at `buf[offset…]`: dst, src, then an 802.1Q tag when `vlanId` ≥ 0,
 * then `etherType`. Returns the bytes written (14 or 18). Throws `no-room` / `bad-argument`.
 */
export function writeEthernet(
  buf: Uint8Array,
  offset: number,
  dst: Uint8Array,
  src: Uint8Array,
  etherType: number,
  vlanId = -1,
  vlanPcp = 0,
): number {
  checkMac('destination', dst);
  checkMac('source', src);
  const tagged = vlanId >= 0;
  if (tagged && vlanId > 0xfff) {
    throw new NetError('bad-argument', 'ethernet', `VLAN ID ${vlanId} exceeds 4095`);
  }
  const len = ETH_HEADER_BYTES + (tagged ? VLAN_TAG_BYTES : 0);
  ensureRoom('ethernet', buf, offset, len);
  buf.set(dst, offset);
  buf.set(src, offset + 6);
  let o = offset + 12;
  if (tagged) {
    put16(buf, o, EtherType.VLAN);
    put16(buf, o + 2, ((vlanPcp & 7) << 13) | vlanId);
    o += 4;
  }
  put16(buf, o, etherType);
  return len;
}

/**
 * Parses the Ethernet header at `buf[offset…end)`, skipping up to two VLAN tags (0x8100,
 * 0x88a8, 0x9100). Fills `out` (or a fresh object) or returns a `truncated` / `unsupported` error.
 */
export function parseEthernet(
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
  out: EthernetHeader = newEthernetHeader(),
): EthernetHeader | NetError {
  end = Math.min(end, buf.length);
  if (offset < 0 || offset + ETH_HEADER_BYTES > end) {
    return truncated('ethernet', offset, ETH_HEADER_BYTES, end);
  }
  out.dstOffset = offset;
  out.srcOffset = offset + 6;
  out.vlanTags = 0;
  out.vlanId = -1;
  out.vlanPcp = 0;
  let o = offset + 12;
  let type = get16(buf, o);
  while (type === EtherType.VLAN || type === EtherType.QINQ || type === EtherType.QINQ_LEGACY) {
    if (out.vlanTags === MAX_TAGS) {
      return new NetError('unsupported', 'ethernet', `more than ${MAX_TAGS} stacked VLAN tags`, offset);
    }
    if (o + 2 + VLAN_TAG_BYTES > end) {
      return truncated('ethernet', offset, o + 2 + VLAN_TAG_BYTES - offset, end);
    }
    const tci = get16(buf, o + 2);
    if (out.vlanTags === 0) {
      out.vlanId = tci & 0xfff;
      out.vlanPcp = tci >>> 13;
    }
    out.vlanTags++;
    o += VLAN_TAG_BYTES;
    type = get16(buf, o);
  }
  out.etherType = type;
  out.payloadOffset = o + 2;
  return out;
}

/** Zero-pads a frame of `len` bytes at `offset` to the 60-byte minimum; returns the new length. */
export function padEthernet(buf: Uint8Array, offset: number, len: number): number {
  if (len >= ETH_MIN_FRAME_BYTES) return len;
  ensureRoom('ethernet', buf, offset, ETH_MIN_FRAME_BYTES);
  buf.fill(0, offset + len, offset + ETH_MIN_FRAME_BYTES);
  return ETH_MIN_FRAME_BYTES;
}
