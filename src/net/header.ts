// The virtio_net_hdr that precedes every frame on the tx and rx queues (virtio 1.2 §5.1.6):
// its four layouts, its size for a negotiated feature set, an allocation-free codec over a
// caller's bytes (which may be a view onto guest memory in a SharedArrayBuffer), and the
// device-side validation of a transmitted header against the negotiated features (virtio 1.2
// §5.1.6.2.1). Owns no queue and no frame parsing beyond the lengths it is handed.

import { type NetError, truncated, ensureRoom } from './errors.js';
import { NetF, VirtioF } from './features.js';

/** `flags` bits (virtio 1.2 §5.1.6). */
export const NetHdrFlags = {
  NEEDS_CSUM: 1,
  /** rx only, with GUEST_CSUM: the device validated the checksum. */
  DATA_VALID: 2,
  /** rx only, with RSC_EXT: csum_start/csum_offset carry coalescing counters. */
  RSC_INFO: 4,
} as const;

/** `gso_type` values (virtio 1.2 §5.1.6); ECN is OR-ed into the others. */
export const GsoType = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  UDP_L4: 5,
  ECN: 0x80,
} as const;

/** `hash_report` values (virtio 1.2 §5.1.6.4.3). */
export const HashReport = {
  NONE: 0,
  IPV4: 1,
  TCPV4: 2,
  UDPV4: 3,
  IPV6: 4,
  TCPV6: 5,
  UDPV6: 6,
  IPV6_EX: 7,
  TCPV6_EX: 8,
  UDPV6_EX: 9,
} as const;

/**
 * The header layouts:
 * - `legacy`: 10 bytes, legacy interface without MRG_RXBUF (no num_buffers; virtio 1.2 §5.1.6.1);
 * - `legacy-mrg`: 12 bytes, legacy interface with MRG_RXBUF;
 * - `v1`: 12 bytes, VERSION_1 (num_buffers always present);
 * - `hash`: 20 bytes, with HASH_REPORT (hash_value, hash_report, padding_reserved).
 * Legacy fields are guest-endian (virtio 1.2 §5.1.6.1); this codec assumes a little-endian guest,
 * which every host JavaScript runs on in practice.
 */
export type NetHdrLayout = 'legacy' | 'legacy-mrg' | 'v1' | 'hash';

export const NET_HDR_BYTES: Readonly<Record<NetHdrLayout, number>> = {
  legacy: 10,
  'legacy-mrg': 12,
  v1: 12,
  hash: 20,
};

/** The decoded header. Fields a layout lacks decode as 0. */
export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
  hashValue: number;
  hashReport: number;
}

/** A zeroed header (flags 0, GSO_NONE): "a completely checksummed packet" (§5.1.6.2). */
export function emptyNetHdr(): VirtioNetHdr {
  return {
    flags: 0,
    gsoType: 0,
    hdrLen: 0,
    gsoSize: 0,
    csumStart: 0,
    csumOffset: 0,
    numBuffers: 0,
    hashValue: 0,
    hashReport: 0,
  };
}

/** Zeroes every field of `h` in place (reusing one header object on a hot path allocates nothing). */
export function clearNetHdr(h: VirtioNetHdr): void {
  h.flags = 0;
  h.gsoType = 0;
  h.hdrLen = 0;
  h.gsoSize = 0;
  h.csumStart = 0;
  h.csumOffset = 0;
  h.numBuffers = 0;
  h.hashValue = 0;
  h.hashReport = 0;
}

/** Which layout the negotiated features select (virtio 1.2 §5.1.6, §5.1.6.1). */
export function headerLayout(negotiated: bigint): NetHdrLayout {
  if (negotiated & NetF.HASH_REPORT) return 'hash';
  if (negotiated & VirtioF.VERSION_1) return 'v1';
  return negotiated & NetF.MRG_RXBUF ? 'legacy-mrg' : 'legacy';
}

/** Size in bytes of the virtio_net_hdr for the negotiated features: 10, 12 or 20. */
export function headerSize(negotiated: bigint): number {
  return NET_HDR_BYTES[headerLayout(negotiated)];
}

const LAYER = 'virtio_net_hdr';

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
function get16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/**
 * Writes `hdr` in `layout` at `out[offset…]`, little-endian; returns the bytes written. Field
 * values are truncated to their widths. Throws `no-room` if the header does not fit.
 */
export function encodeNetHdr(
  hdr: Readonly<VirtioNetHdr>,
  layout: NetHdrLayout,
  out: Uint8Array,
  offset = 0,
): number {
  const size = NET_HDR_BYTES[layout];
  ensureRoom(LAYER, out, offset, size);
  out[offset] = hdr.flags & 0xff;
  out[offset + 1] = hdr.gsoType & 0xff;
  put16(out, offset + 2, hdr.hdrLen);
  put16(out, offset + 4, hdr.gsoSize);
  put16(out, offset + 6, hdr.csumStart);
  put16(out, offset + 8, hdr.csumOffset);
  if (size >= 12) put16(out, offset + 10, hdr.numBuffers);
  if (size === 20) {
    const h = hdr.hashValue >>> 0;
    out[offset + 12] = h & 0xff;
    out[offset + 13] = (h >>> 8) & 0xff;
    out[offset + 14] = (h >>> 16) & 0xff;
    out[offset + 15] = h >>> 24;
    put16(out, offset + 16, hdr.hashReport);
    put16(out, offset + 18, 0); // padding_reserved
  }
  return size;
}

/**
 * Reads a header in `layout` from `buf[offset…]` into `into` (a fresh object when omitted) and
 * returns it, or a `truncated` error when fewer than the layout's bytes remain before `end`.
 */
export function decodeNetHdr(
  buf: Uint8Array,
  offset: number,
  layout: NetHdrLayout,
  into: VirtioNetHdr = emptyNetHdr(),
  end: number = buf.length,
): VirtioNetHdr | NetError {
  const size = NET_HDR_BYTES[layout];
  if (offset < 0 || offset + size > Math.min(end, buf.length)) {
    return truncated(LAYER, offset, size, Math.min(end, buf.length));
  }
  into.flags = buf[offset]!;
  into.gsoType = buf[offset + 1]!;
  into.hdrLen = get16(buf, offset + 2);
  into.gsoSize = get16(buf, offset + 4);
  into.csumStart = get16(buf, offset + 6);
  into.csumOffset = get16(buf, offset + 8);
  into.numBuffers = size >= 12 ? get16(buf, offset + 10) : 0;
  if (size === 20) {
    into.hashValue =
      (buf[offset + 12]! |
        (buf[offset + 13]! << 8) |
        (buf[offset + 14]! << 16) |
        (buf[offset + 15]! << 24)) >>>
      0;
    into.hashReport = get16(buf, offset + 16);
  } else {
    into.hashValue = 0;
    into.hashReport = 0;
  }
  return into;
}

/** Why a device drops a transmitted frame whose header breaks virtio 1.2 §5.1.6.2.1. */
export type TxDropReason =
  | 'frame-too-short' // shorter than an Ethernet header
  | 'frame-too-long' // over the device's limit for its kind (GSO or not)
  | 'rx-only-flags' // DATA_VALID or RSC_INFO set on tx ("driver MUST NOT set")
  | 'needs-csum-not-negotiated' // NEEDS_CSUM without VIRTIO_NET_F_CSUM ("MUST set flags to zero")
  | 'csum-start-past-frame' // csum_start ≥ frame length
  | 'csum-offset-past-frame' // the 2-byte field at csum_start + csum_offset is outside the frame
  | 'gso-type-unknown' // a gso_type value the spec does not define
  | 'gso-type-not-negotiated' // TCPV4/TCPV6/UDP/UDP_L4 without HOST_TSO4/TSO6/UFO/USO
  | 'gso-ecn-not-negotiated' // GSO_ECN without HOST_ECN
  | 'gso-without-needs-csum' // gso_type ≠ NONE requires NEEDS_CSUM
  | 'gso-size-zero' // gso_type ≠ NONE with gso_size 0 (no MSS)
  | 'hdr-len-past-frame'; // with GUEST_HDRLEN, hdr_len is exact and must lie inside the frame

/**
 * Largest GSO frame a device accepts by default: a 65535-byte IPv6 payload plus its 40-byte
 * header and a 14-byte Ethernet header (the 65589 of virtio 1.4 §5.1.6.3).
 */
export const MAX_GSO_FRAME_BYTES = 65589;

/**
 * Device-side check of a tx header for a frame of `frameLen` bytes (header excluded) against the
 * negotiated features (virtio 1.2 §5.1.6.2.1). Returns the first reason to drop, or null.
 * `maxFrameBytes` bounds non-GSO frames (e.g. 1514, or MTU + 14 (+4 for a VLAN tag));
 * `maxGsoFrameBytes` bounds GSO frames. num_buffers is not checked: the device ignores it on tx.
 */
export function validateTxHeader(
  hdr: Readonly<VirtioNetHdr>,
  frameLen: number,
  negotiated: bigint,
  maxFrameBytes: number,
  maxGsoFrameBytes: number = MAX_GSO_FRAME_BYTES,
): TxDropReason | null {
  if (frameLen < 14) return 'frame-too-short';
  if (hdr.flags & (NetHdrFlags.DATA_VALID | NetHdrFlags.RSC_INFO)) return 'rx-only-flags';
  const needsCsum = (hdr.flags & NetHdrFlags.NEEDS_CSUM) !== 0;
  if (needsCsum) {
    if (!(negotiated & NetF.CSUM)) return 'needs-csum-not-negotiated';
    if (hdr.csumStart >= frameLen) return 'csum-start-past-frame';
    if (hdr.csumStart + hdr.csumOffset + 2 > frameLen) return 'csum-offset-past-frame';
  }
  const base = hdr.gsoType & ~GsoType.ECN;
  if (base === GsoType.NONE) {
    // ECN is only meaningful with a segmentation type.
    if (hdr.gsoType & GsoType.ECN) return 'gso-type-unknown';
    return frameLen > maxFrameBytes ? 'frame-too-long' : null;
  }
  let needed: bigint;
  switch (base) {
    case GsoType.TCPV4:
      needed = NetF.HOST_TSO4;
      break;
    case GsoType.TCPV6:
      needed = NetF.HOST_TSO6;
      break;
    case GsoType.UDP:
      needed = NetF.HOST_UFO;
      break;
    case GsoType.UDP_L4:
      needed = NetF.HOST_USO;
      break;
    default:
      return 'gso-type-unknown';
  }
  if (!(negotiated & needed)) return 'gso-type-not-negotiated';
  if (hdr.gsoType & GsoType.ECN && !(negotiated & NetF.HOST_ECN)) return 'gso-ecn-not-negotiated';
  if (!needsCsum) return 'gso-without-needs-csum';
  if (hdr.gsoSize === 0) return 'gso-size-zero';
  if (negotiated & NetF.GUEST_HDRLEN && hdr.hdrLen > frameLen) return 'hdr-len-past-frame';
  if (frameLen > Math.max(maxFrameBytes, maxGsoFrameBytes)) return 'frame-too-long';
  return null;
}

const TX_DROP_TEXT: Readonly<Record<TxDropReason, string>> = {
  'frame-too-short': 'frame shorter than an Ethernet header',
  'frame-too-long': 'frame longer than the device accepts',
  'rx-only-flags': 'DATA_VALID or RSC_INFO set on a transmitted header',
  'needs-csum-not-negotiated': 'NEEDS_CSUM set but VIRTIO_NET_F_CSUM was not negotiated',
  'csum-start-past-frame': 'csum_start lies past the end of the frame',
  'csum-offset-past-frame': 'csum_start + csum_offset leaves no room for the checksum field',
  'gso-type-unknown': 'gso_type is not a value the spec defines',
  'gso-type-not-negotiated': 'gso_type needs a HOST_TSO4/TSO6/UFO/USO feature not negotiated',
  'gso-ecn-not-negotiated': 'GSO_ECN set but VIRTIO_NET_F_HOST_ECN was not negotiated',
  'gso-without-needs-csum': 'gso_type is not NONE but NEEDS_CSUM is clear',
  'gso-size-zero': 'gso_type is not NONE but gso_size is 0',
  'hdr-len-past-frame': 'hdr_len (exact, GUEST_HDRLEN negotiated) exceeds the frame',
};

/** A sentence for a drop reason, citing the spec rule, for logs and error messages. */
export function describeTxDrop(reason: TxDropReason): string {
  return `${LAYER}: tx frame dropped: ${TX_DROP_TEXT[reason]} (virtio 1.2 §5.1.6.2.1)`;
}

/**
 * Copies the offload fields (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) of
 * `from` into `to`, and zeroes num_buffers and the hash fields: what a header keeps when a frame
 * moves between a ring and a port (num_buffers is the receiving side's to set, §5.1.6.2/§5.1.6.4).
 */
export function copyNetHdrOffload(to: VirtioNetHdr, from: Readonly<VirtioNetHdr>): VirtioNetHdr {
  to.flags = from.flags;
  to.gsoType = from.gsoType;
  to.hdrLen = from.hdrLen;
  to.gsoSize = from.gsoSize;
  to.csumStart = from.csumStart;
  to.csumOffset = from.csumOffset;
  to.numBuffers = 0;
  to.hashValue = 0;
  to.hashReport = 0;
  return to;
}
