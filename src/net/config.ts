// The virtio-net device configuration space (virtio 1.2 §5.1.4): struct virtio_net_config as
// bytes, little-endian, as a transport exposes it to the driver (mac, status, max_virtqueue_pairs,
// mtu, speed, duplex, and the RSS fields: rss_max_key_size, rss_max_indirection_table_length and
// supported_hash_types, zero unless given). Fields exist only when their feature is
// offered (MAC, STATUS, MQ, MTU, SPEED_DUPLEX), but the layout is fixed, so the whole 24 bytes
// are always produced and the driver reads what it negotiated.

import { NetError } from './errors.js';

export const NET_CONFIG_BYTES = 24;
/** Offsets in struct virtio_net_config (virtio 1.2 §5.1.4). */
export const NetConfigOffset = {
  MAC: 0,
  STATUS: 6,
  MAX_VIRTQUEUE_PAIRS: 8,
  MTU: 10,
  SPEED: 12,
  DUPLEX: 16,
  RSS_MAX_KEY_SIZE: 17,
  RSS_MAX_INDIRECTION_TABLE_LENGTH: 18,
  SUPPORTED_HASH_TYPES: 20,
} as const;

/** `status` bits (virtio 1.2 §5.1.4). */
export const NetStatus = { LINK_UP: 1, ANNOUNCE: 2 } as const;
/** `speed` when unknown, `duplex` values (virtio 1.2 §5.1.4). */
export const SPEED_UNKNOWN = 0xffffffff;
export const Duplex = { HALF: 0, FULL: 1, UNKNOWN: 0xff } as const;

export interface NetConfig {
  mac: Uint8Array;
  linkUp: boolean;
  announce?: boolean;
  maxVirtqueuePairs?: number;
  mtu: number;
  speedMbps?: number;
  duplex?: number;
  /** rss_max_key_size, rss_max_indirection_table_length, supported_hash_types (RSS / HASH_REPORT). */
  rssMaxKeyBytes?: number;
  rssMaxIndirectionEntries?: number;
  supportedHashTypes?: number;
}

/** Encodes `cfg` as the 24 bytes of struct virtio_net_config. */
export function encodeNetConfig(cfg: Readonly<NetConfig>): Uint8Array {
  if (cfg.mac.length !== 6) throw new NetError('bad-argument', 'net-config', `MAC has ${cfg.mac.length} bytes, not 6`);
  if (!Number.isInteger(cfg.mtu) || cfg.mtu < 68 || cfg.mtu > 65535) {
    throw new NetError('bad-argument', 'net-config', `mtu ${cfg.mtu} outside 68..65535 (virtio 1.2 §5.1.4.1)`);
  }
  const out = new Uint8Array(NET_CONFIG_BYTES);
  const v = new DataView(out.buffer);
  out.set(cfg.mac, NetConfigOffset.MAC);
  v.setUint16(NetConfigOffset.STATUS, (cfg.linkUp ? NetStatus.LINK_UP : 0) | (cfg.announce ? NetStatus.ANNOUNCE : 0), true);
  v.setUint16(NetConfigOffset.MAX_VIRTQUEUE_PAIRS, cfg.maxVirtqueuePairs ?? 1, true);
  v.setUint16(NetConfigOffset.MTU, cfg.mtu, true);
  v.setUint32(NetConfigOffset.SPEED, cfg.speedMbps ?? SPEED_UNKNOWN, true);
  out[NetConfigOffset.DUPLEX] = cfg.duplex ?? Duplex.UNKNOWN;
  out[NetConfigOffset.RSS_MAX_KEY_SIZE] = cfg.rssMaxKeyBytes ?? 0;
  v.setUint16(NetConfigOffset.RSS_MAX_INDIRECTION_TABLE_LENGTH, cfg.rssMaxIndirectionEntries ?? 0, true);
  v.setUint32(NetConfigOffset.SUPPORTED_HASH_TYPES, cfg.supportedHashTypes ?? 0, true);
  return out;
}

/** Decodes struct virtio_net_config (as a driver reads it). */
export function decodeNetConfig(bytes: Uint8Array): NetConfig {
  if (bytes.length < NET_CONFIG_BYTES) {
    throw new NetError('truncated', 'net-config', `needs ${NET_CONFIG_BYTES} bytes, got ${bytes.length}`, 0);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const status = v.getUint16(NetConfigOffset.STATUS, true);
  return {
    mac: bytes.slice(0, 6),
    linkUp: (status & NetStatus.LINK_UP) !== 0,
    announce: (status & NetStatus.ANNOUNCE) !== 0,
    maxVirtqueuePairs: v.getUint16(NetConfigOffset.MAX_VIRTQUEUE_PAIRS, true),
    mtu: v.getUint16(NetConfigOffset.MTU, true),
    speedMbps: v.getUint32(NetConfigOffset.SPEED, true),
    duplex: bytes[NetConfigOffset.DUPLEX]!,
    rssMaxKeyBytes: bytes[NetConfigOffset.RSS_MAX_KEY_SIZE]!,
    rssMaxIndirectionEntries: v.getUint16(NetConfigOffset.RSS_MAX_INDIRECTION_TABLE_LENGTH, true),
    supportedHashTypes: v.getUint32(NetConfigOffset.SUPPORTED_HASH_TYPES, true),
  };
}
