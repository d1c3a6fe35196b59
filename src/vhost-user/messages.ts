// The vhost-user wire format (vhost-user protocol, "Message Specification"): a 12-byte header
// (u32 request, u32 flags, u32 size, little-endian) followed by `size` bytes of payload, with
// file descriptors as SCM_RIGHTS ancillary data. Decoding validates every size against the
// request and returns typed payloads; anything malformed is a VhostUserError. Pure and
// allocation-light; runs in Web Workers too (no `node:` imports).

import { VhostUserError } from './errors.js';

export const HEADER_BYTES = 12;
/** The largest payload we accept: a memory table of 8 regions (8 + 8·32 bytes), rounded up. */
export const MAX_PAYLOAD_BYTES = 4096;
export const MAX_MEM_REGIONS = 8; // VHOST_MEMORY_BASELINE_NREGIONS

export const Flags = { VERSION: 0x1, VERSION_MASK: 0x3, REPLY: 0x4, NEED_REPLY: 0x8 } as const;

/** Front-end → back-end requests (the numbers are the protocol's). */
export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
} as const;
export type ReqName = keyof typeof Req;

const NAMES = new Map<number, ReqName>(Object.entries(Req).map(([k, v]) => [v, k as ReqName]));
export function requestName(req: number): string {
  return NAMES.get(req) ?? `request ${req}`;
}

/** Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
export const ProtocolF = { MQ: 0, LOG_SHMFD: 1, RARP: 2, REPLY_ACK: 3, MTU: 4, CONFIG: 9 } as const;
/** VHOST_USER_F_PROTOCOL_FEATURES: bit 30 of GET_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 1n << 30n;
/** VHOST_F_LOG_ALL: bit 26, dirty logging for migration (not offered). */
export const VHOST_F_LOG_ALL = 1n << 26n;
/** Bit 8 of a SET_VRING_KICK/CALL/ERR payload: no file descriptor attached. */
export const VRING_NOFD_MASK = 0x100;
export const VRING_IDX_MASK = 0xff;

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export interface MemRegionDesc {
  guestAddr: number;
  sizeBytes: number;
  userAddr: number;
  mmapOffset: number;
}

export interface VringAddr {
  index: number;
  flags: number;
  descUser: number;
  usedUser: number;
  availUser: number;
  logGuest: number;
}

export type Message =
  | { request: number; kind: 'none' }
  | { request: number; kind: 'u64'; value: bigint }
  | { request: number; kind: 'state'; index: number; num: number }
  | { request: number; kind: 'addr'; addr: VringAddr }
  | { request: number; kind: 'mem'; regions: MemRegionDesc[] }
  | { request: number; kind: 'fd'; index: number; noFd: boolean };

/** Decodes and checks the 12-byte header. */
export function decodeHeader(buf: Uint8Array, lenBytes: number): Header {
  if (lenBytes < HEADER_BYTES) throw new VhostUserError('truncated', `vhost-user header needs ${HEADER_BYTES} bytes, got ${lenBytes}`);
  const v = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  const request = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  const size = v.getUint32(8, true);
  if ((flags & Flags.VERSION_MASK) !== Flags.VERSION) {
    throw new VhostUserError('bad-version', `${requestName(request)}: header flags 0x${flags.toString(16)} lack protocol version 1`);
  }
  if (size > MAX_PAYLOAD_BYTES) throw new VhostUserError('bad-size', `${requestName(request)}: payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  return { request, flags, size };
}

function u64(v: DataView, off: number, what: string, req: number): number {
  const big = v.getBigUint64(off, true);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VhostUserError('bad-memory', `${requestName(req)}: ${what} 0x${big.toString(16)} is beyond 2^53`);
  }
  return Number(big);
}

function expectSize(h: Header, want: number): void {
  if (h.size !== want) throw new VhostUserError('bad-size', `${requestName(h.request)}: payload of ${h.size} bytes, expected ${want}`);
}

/**
 * Decodes the payload of a request with header `h` (`payload` holds exactly h.size bytes).
 * Unknown requests are an 'unknown-request' error; the caller decides to refuse or close.
 */
export function decodeMessage(h: Header, payload: Uint8Array): Message {
  if (payload.length < h.size) throw new VhostUserError('truncated', `${requestName(h.request)}: payload needs ${h.size} bytes, got ${payload.length}`);
  const v = new DataView(payload.buffer, payload.byteOffset, h.size);
  const r = h.request;
  switch (r) {
    case Req.GET_FEATURES:
    case Req.GET_PROTOCOL_FEATURES:
    case Req.SET_OWNER:
    case Req.RESET_OWNER:
    case Req.GET_QUEUE_NUM:
      // Some frontends send a zero u64 with requests that carry nothing; accept 0 or 8 bytes.
      if (h.size !== 0 && h.size !== 8) expectSize(h, 0);
      return { request: r, kind: 'none' };
    case Req.SET_FEATURES:
    case Req.SET_PROTOCOL_FEATURES:
    case Req.SET_LOG_BASE:
    case Req.SEND_RARP:
    case Req.NET_SET_MTU:
      if (r === Req.SET_LOG_BASE) return { request: r, kind: 'none' }; // refused by the backend
      expectSize(h, 8);
      return { request: r, kind: 'u64', value: v.getBigUint64(0, true) };
    case Req.SET_VRING_NUM:
    case Req.SET_VRING_BASE:
    case Req.GET_VRING_BASE:
    case Req.SET_VRING_ENABLE:
      expectSize(h, 8);
      return { request: r, kind: 'state', index: v.getUint32(0, true), num: v.getUint32(4, true) };
    case Req.SET_VRING_ADDR:
      expectSize(h, 40);
      return {
        request: r,
        kind: 'addr',
        addr: {
          index: v.getUint32(0, true),
          flags: v.getUint32(4, true),
          descUser: u64(v, 8, 'descriptor table address', r),
          usedUser: u64(v, 16, 'used ring address', r),
          availUser: u64(v, 24, 'avail ring address', r),
          logGuest: Number(v.getBigUint64(32, true) & 0xfffffffffffffn),
        },
      };
    case Req.SET_MEM_TABLE: {
      if (h.size < 8) throw new VhostUserError('bad-size', `SET_MEM_TABLE: payload of ${h.size} bytes has no region count`);
      const n = v.getUint32(0, true);
      if (n === 0 || n > MAX_MEM_REGIONS) throw new VhostUserError('bad-memory', `SET_MEM_TABLE: ${n} regions (1..${MAX_MEM_REGIONS} allowed)`);
      expectSize(h, 8 + 32 * n);
      const regions: MemRegionDesc[] = [];
      for (let i = 0; i < n; i++) {
        const o = 8 + 32 * i;
        regions.push({
          guestAddr: u64(v, o, `region ${i} guest address`, r),
          sizeBytes: u64(v, o + 8, `region ${i} size`, r),
          userAddr: u64(v, o + 16, `region ${i} user address`, r),
          mmapOffset: u64(v, o + 24, `region ${i} mmap offset`, r),
        });
      }
      return { request: r, kind: 'mem', regions };
    }
    case Req.SET_VRING_KICK:
    case Req.SET_VRING_CALL:
    case Req.SET_VRING_ERR: {
      expectSize(h, 8);
      const x = v.getUint32(0, true);
      return { request: r, kind: 'fd', index: x & VRING_IDX_MASK, noFd: (x & VRING_NOFD_MASK) !== 0 };
    }
    default:
      throw new VhostUserError('unknown-request', `${requestName(r)} is not implemented by this backend`);
  }
}

/** Encodes a header + payload into `out`; returns the byte count. */
export function encodeMessage(out: Uint8Array, request: number, flags: number, payload: Uint8Array): number {
  const total = HEADER_BYTES + payload.length;
  if (out.length < total) throw new RangeError(`vhost-user: ${total} bytes do not fit in ${out.length}`);
  const v = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, payload.length, true);
  out.set(payload, HEADER_BYTES);
  return total;
}

export function u64Payload(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return b;
}

export function statePayload(index: number, num: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, index, true);
  v.setUint32(4, num, true);
  return b;
}

export function addrPayload(a: VringAddr): Uint8Array {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(4, a.flags, true);
  v.setBigUint64(8, BigInt(a.descUser), true);
  v.setBigUint64(16, BigInt(a.usedUser), true);
  v.setBigUint64(24, BigInt(a.availUser), true);
  v.setBigUint64(32, BigInt(a.logGuest), true);
  return b;
}

export function memTablePayload(regions: readonly MemRegionDesc[]): Uint8Array {
  const b = new Uint8Array(8 + 32 * regions.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const o = 8 + 32 * i;
    v.setBigUint64(o, BigInt(r.guestAddr), true);
    v.setBigUint64(o + 8, BigInt(r.sizeBytes), true);
    v.setBigUint64(o + 16, BigInt(r.userAddr), true);
    v.setBigUint64(o + 24, BigInt(r.mmapOffset), true);
  });
  return b;
}
