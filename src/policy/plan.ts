// What a policy asks of the engine's setup: queue sizes and features (event idx), the guest RAM
// its buffers need, and how one packet is laid out in descriptors (header alone or inline, page-
// sized fragments). Callers pass policyQueues() as EngineOptions.queues. Browser-safe.

import type { PolicyConfig } from './config.js';

/** Structurally an engine QueueRequest. */
export interface PolicyQueueRequest {
  size: number;
  eventIdx: boolean;
}

/** Bytes of the per-packet header descriptor when the header travels alone (virtio_net_hdr, 1.x). */
export const HEADER_BYTES = 12;

export interface PacketLayout {
  /** Bytes of one packet's buffer (header + frame). */
  packetBytes: number;
  /** Descriptor lengths of one packet, in order. */
  segments: number[];
  /** Packets the ring holds. */
  capacityPackets: number;
}

/** Default frame size: 1500 B (MTU) without GSO, 64 KiB with. */
export function defaultFrameBytes(p: PolicyConfig): number {
  return p.dataPath.gso ? 65536 : 1500;
}

/** How one packet of `frameBytes` is split into descriptors under `p`, on a ring of `ringSize`. */
export function packetLayout(p: PolicyConfig, frameBytes: number, ringSize: number): PacketLayout {
  const d = p.dataPath;
  const segments: number[] = [];
  if (d.headerSeparate) segments.push(HEADER_BYTES);
  let rest = d.headerSeparate ? frameBytes : frameBytes + HEADER_BYTES;
  const seg = d.segmentBytes === 0 ? rest : d.segmentBytes;
  while (rest > 0) {
    const n = Math.min(seg, rest);
    segments.push(n);
    rest -= n;
  }
  // A packet needing more descriptors than the ring has could never be added.
  while (segments.length > ringSize) {
    const last = segments.pop()!;
    segments[segments.length - 1]! += last;
  }
  const packetBytes = segments.reduce((a, b) => a + b, 0);
  return { packetBytes, segments, capacityPackets: Math.max(1, Math.floor(ringSize / segments.length)) };
}

/** The queue for a one-queue workload in `direction` (g2h = the tx ring, h2g = the rx ring). */
export function policyQueues(p: PolicyConfig, direction: 'g2h' | 'h2g' = 'g2h'): PolicyQueueRequest[] {
  const eventIdx = p.interrupts.mode === 'eventIdx';
  return [{ size: direction === 'g2h' ? p.dataPath.txRingSize : p.dataPath.rxRingSize, eventIdx }];
}

/** Guest RAM the workload's buffers need (one buffer per ring entry, 64-byte aligned, + slack). */
export function policyArenaBytes(p: PolicyConfig, frameBytes: number, direction: 'g2h' | 'h2g' = 'g2h'): number {
  const ring = direction === 'g2h' ? p.dataPath.txRingSize : p.dataPath.rxRingSize;
  const lay = packetLayout(p, frameBytes, ring);
  return lay.capacityPackets * Math.ceil(lay.packetBytes / 64) * 64 + (1 << 16);
}
