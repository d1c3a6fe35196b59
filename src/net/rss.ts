// Receive-side scaling and hash reports (virtio 1.2 §5.1.6.4.3 "Hash calculation for incoming
// packets", §5.1.6.5.7 "Receive-side scaling (RSS)"): the Toeplitz hash, the hash input a frame
// gives under the enabled hash types (and the hash_report value that goes with it), and the RSS
// configuration the driver sets with VIRTIO_NET_CTRL_MQ_RSS_CONFIG or HASH_CONFIG. Pure; the
// steering that uses it is PortSteering's, the header field NetDevice's. Only the non-_EX hash
// types are supported (IPv6 extension headers are not walked): supported_hash_types says so.
// Runs in Web Workers too: no `node:` imports.

import { HashReport } from './header.js';

/** VIRTIO_NET_RSS_HASH_TYPE_* bits (virtio 1.2 §5.1.6.4.3.1). */
export const RssHashType = {
  IPV4: 1 << 0,
  TCPV4: 1 << 1,
  UDPV4: 1 << 2,
  IPV6: 1 << 3,
  TCPV6: 1 << 4,
  UDPV6: 1 << 5,
  IP_EX: 1 << 6,
  TCP_EX: 1 << 7,
  UDP_EX: 1 << 8,
} as const;

/** The hash types this device computes (config supported_hash_types). */
export const SUPPORTED_HASH_TYPES = RssHashType.IPV4 | RssHashType.TCPV4 | RssHashType.UDPV4 | RssHashType.IPV6 | RssHashType.TCPV6 | RssHashType.UDPV6;
/** rss_max_key_size (§5.1.4: at least 40) and rss_max_indirection_table_length. */
export const RSS_MAX_KEY_BYTES = 40;
export const RSS_MAX_INDIRECTION_ENTRIES = 128;

/** What RSS_CONFIG (steering) or HASH_CONFIG (reports only) set. */
export interface RssConfig {
  hashTypes: number;
  key: Uint8Array;
  /** Receive queue (pair) per hash & (length - 1); empty for HASH_CONFIG. */
  indirection: Uint16Array;
  unclassifiedQueue: number;
  /** Transmit queues the driver may use (RSS_CONFIG's max_tx_vq): the pairs in use. */
  maxTxVq: number;
}

/**
 * The Toeplitz hash of `input[0…len)` under `key` (the MSFT RSS definition virtio adopts): for
 * every set bit of the input, XOR in the 32 key bits starting at that bit position. A key shorter
 * than len + 4 bytes reads as zero past its end.
 */
export function toeplitz(key: Uint8Array, input: Uint8Array, len: number): number {
  let result = 0;
  // The 32-bit window of the key at the current bit, shifted left one bit per input bit.
  let window = ((key[0] ?? 0) << 24) | ((key[1] ?? 0) << 16) | ((key[2] ?? 0) << 8) | (key[3] ?? 0);
  for (let i = 0; i < len; i++) {
    const byte = input[i]!;
    const next = key[i + 4] ?? 0;
    for (let b = 7; b >= 0; b--) {
      if (byte & (1 << b)) result ^= window;
      window = (window << 1) | ((next >> b) & 1);
    }
  }
  return result >>> 0;
}

/**
 * The hash input of an Ethernet frame under `hashTypes` (§5.1.6.4.3.4 IPv4, .5 IPv6 without
 * extension headers): TCP/UDP 4-tuple when that type is enabled and the frame carries it (not a
 * fragment), else the two addresses when the IP type is enabled, else none. Writes the input into
 * `out` (≥ 36 bytes) and returns its length with the hash_report value, or null (unclassified).
 */
export function rssInput(b: Uint8Array, off: number, len: number, hashTypes: number, out: Uint8Array): { lenBytes: number; report: number } | null {
  if (len < 14) return null;
  let l3 = off + 12;
  let type = (b[l3]! << 8) | b[l3 + 1]!;
  if (type === 0x8100 && len >= 18) {
    l3 += 4;
    type = (b[l3]! << 8) | b[l3 + 1]!;
  }
  l3 += 2;
  const end = off + len;
  let addrOff: number;
  let addrLen: number;
  let proto: number;
  let l4: number;
  let ports: boolean;
  let t: { ip: number; tcp: number; udp: number; rIp: number; rTcp: number; rUdp: number };
  if (type === 0x0800) {
    if (end - l3 < 20) return null;
    const ihl = (b[l3]! & 0x0f) * 4;
    if (ihl < 20 || end - l3 < ihl) return null;
    const frag = ((b[l3 + 6]! & 0x3f) << 8) | b[l3 + 7]!;
    addrOff = l3 + 12;
    addrLen = 4;
    proto = b[l3 + 9]!;
    l4 = l3 + ihl;
    ports = frag === 0;
    t = { ip: RssHashType.IPV4, tcp: RssHashType.TCPV4, udp: RssHashType.UDPV4, rIp: HashReport.IPV4, rTcp: HashReport.TCPV4, rUdp: HashReport.UDPV4 };
  } else if (type === 0x86dd) {
    if (end - l3 < 40) return null;
    addrOff = l3 + 8;
    addrLen = 16;
    proto = b[l3 + 6]!;
    l4 = l3 + 40;
    ports = true;
    t = { ip: RssHashType.IPV6, tcp: RssHashType.TCPV6, udp: RssHashType.UDPV6, rIp: HashReport.IPV6, rTcp: HashReport.TCPV6, rUdp: HashReport.UDPV6 };
  } else {
    return null;
  }
  out.set(b.subarray(addrOff, addrOff + 2 * addrLen), 0);
  const l4Type = proto === 6 ? t.tcp : proto === 17 ? t.udp : 0;
  if (ports && l4Type !== 0 && (hashTypes & l4Type) !== 0 && end - l4 >= 4) {
    // Source port, then destination port, after the addresses (§5.1.6.4.3.4).
    out.set(b.subarray(l4, l4 + 4), 2 * addrLen);
    return { lenBytes: 2 * addrLen + 4, report: proto === 6 ? t.rTcp : t.rUdp };
  }
  if ((hashTypes & t.ip) !== 0) return { lenBytes: 2 * addrLen, report: t.rIp };
  return null;
}

/** Why an RSS_CONFIG / HASH_CONFIG payload was refused. */
export type RssConfigError = string;

/**
 * Decodes struct virtio_net_rss_config (RSS_CONFIG: `steering` true) or struct
 * virtio_net_hash_config (HASH_CONFIG) from the command data, checked against the device's
 * limits and `maxPairs`. Returns the config or a sentence saying what was wrong.
 */
export function parseRssConfig(d: Uint8Array, steering: boolean, maxPairs: number): RssConfig | RssConfigError {
  const u16 = (o: number): number => d[o]! | (d[o + 1]! << 8);
  if (d.length < 4) return `${d.length} bytes, no hash_types`;
  const hashTypes = (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
  if ((hashTypes & ~SUPPORTED_HASH_TYPES) !== 0) return `hash_types 0x${hashTypes.toString(16)} include types not in supported_hash_types 0x${SUPPORTED_HASH_TYPES.toString(16)}`;
  let at: number;
  let indirection = new Uint16Array(0);
  let unclassifiedQueue = 0;
  let maxTxVq = 0;
  if (steering) {
    // le32 hash_types; le16 indirection_table_mask; le16 unclassified_queue;
    // le16 indirection_table[mask + 1]; le16 max_tx_vq; u8 hash_key_length; u8 hash_key_data[].
    if (d.length < 8) return `${d.length} bytes, no indirection_table_mask`;
    const entries = u16(4) + 1;
    if ((entries & (entries - 1)) !== 0 || entries > RSS_MAX_INDIRECTION_ENTRIES) return `indirection table of ${entries} entries: a power of 2 up to ${RSS_MAX_INDIRECTION_ENTRIES}`;
    unclassifiedQueue = u16(6);
    if (d.length < 8 + 2 * entries + 3) return `${d.length} bytes, the ${entries}-entry table and max_tx_vq need ${8 + 2 * entries + 3}`;
    indirection = new Uint16Array(entries);
    for (let i = 0; i < entries; i++) indirection[i] = u16(8 + 2 * i);
    at = 8 + 2 * entries;
    maxTxVq = u16(at);
    at += 2;
    if (maxTxVq < 1 || maxTxVq > maxPairs) return `max_tx_vq ${maxTxVq} outside 1..${maxPairs}`;
    if (unclassifiedQueue >= maxPairs) return `unclassified_queue ${unclassifiedQueue} ≥ ${maxPairs} pairs`;
    for (const q of indirection) if (q >= maxPairs) return `indirection table names queue ${q} ≥ ${maxPairs} pairs`;
  } else {
    // le32 hash_types; le16 reserved[4]; u8 hash_key_length; u8 hash_key_data[].
    if (d.length < 13) return `${d.length} bytes, no hash_key_length`;
    at = 12;
  }
  const keyLen = d[at]!;
  at += 1;
  if (keyLen > RSS_MAX_KEY_BYTES) return `hash key of ${keyLen} bytes exceeds rss_max_key_size ${RSS_MAX_KEY_BYTES}`;
  if (d.length !== at + keyLen) return `${d.length} bytes, the ${keyLen}-byte key makes ${at + keyLen}`;
  return { hashTypes, key: d.slice(at, at + keyLen), indirection, unclassifiedQueue, maxTxVq };
}

/** Encodes an RssConfig as RSS_CONFIG (`steering`) or HASH_CONFIG command data (drivers, tests). */
export function encodeRssConfig(c: RssConfig, steering: boolean): Uint8Array {
  const n = c.indirection.length;
  const out = new Uint8Array(steering ? 8 + 2 * n + 3 + c.key.length : 13 + c.key.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, c.hashTypes >>> 0, true);
  let at: number;
  if (steering) {
    v.setUint16(4, Math.max(0, n - 1), true);
    v.setUint16(6, c.unclassifiedQueue, true);
    for (let i = 0; i < n; i++) v.setUint16(8 + 2 * i, c.indirection[i]!, true);
    at = 8 + 2 * n;
    v.setUint16(at, c.maxTxVq, true);
    at += 2;
  } else {
    at = 12;
  }
  out[at] = c.key.length;
  out.set(c.key, at + 1);
  return out;
}
