// The virtq cases of `virtq bench peers`: the split ring (and the packed ring, virtio 1.2 §2.8,
// as virtq-packed / virtq-packed-pingpong) itself, run through the engine exactly as a user runs
// it (two piscina worker threads, doorbells, event idx), beside the bare SPSC ring it is judged
// against.
//   virtq-ring      the `stream` workload with verify 'seq': the guest copies each payload into
//                   a guest buffer (copy 1), the device copies it out of the chain (copy 2), the
//                   same two copies per packet as the bare ring; sequence and length checked;
//                   event idx on (VIRTIO_F_EVENT_IDX, as Linux negotiates with modern devices).
//   virtq-pingpong  the `pingpong` workload: one 64 B request in flight, RTT timed by the guest.
//                   Spinning happens on the ring itself: with `spin` both sides poll the ring
//                   indices with notifications suppressed (a DPDK poll-mode driver), with
//                   `spin<N>+wait` they poll N times, then re-enable notifications, re-check and
//                   sleep on the doorbell (vhost's busy polling); `wait` uses the doorbells only.
//                   A side that polls gains nothing from a doorbell its peer must ring, and the
//                   raw ping-pong it is compared with polls its one shared word the same way.
// The kick strategy maps onto the engine's wait strategies: wait → block, spin<N>+wait → hybrid
// with N spin iterations, spin → spin.

import { Engine, threadCpuSource, type EngineResult } from '../engine/index.js';
import type { SideStats, WaitSettings } from '../engine/types.js';
import type { RingKind } from '../virtqueue/index.js';
import type { WorkerReport } from './control.js';
import { throughputResult } from './harness.js';
import { REFERENCE_STRATEGY, parseStrategy, type KickStrategy, type LatencyRunContext, type PeerCaseResult, type PeerRunContext, type PingPongResult } from './types.js';

export const VIRTQ_RING_CASE = 'virtq-ring';
export const VIRTQ_PINGPONG_CASE = 'virtq-pingpong';
export const VIRTQ_PACKED_CASE = 'virtq-packed';
export const VIRTQ_PACKED_PINGPONG_CASE = 'virtq-packed-pingpong';
/**
 * The same two throughput cases with VIRTIO_F_IN_ORDER (§2.7.9, §2.8.8): the device returns a
 * publish batch of chains as one used element (split) or one used descriptor (packed), the
 * layout DPDK and Linux pick when they want the fewest cache lines per buffer.
 */
export const VIRTQ_RING_INORDER_CASE = 'virtq-ring-inorder';
export const VIRTQ_PACKED_INORDER_CASE = 'virtq-packed-inorder';
/** Queue size of the throughput case (the bare ring has 256 slots). */
export const VIRTQ_QUEUE_SIZE = 256;
const PUBLISH_EVERY = 32;

export function waitSettingsOf(strategy: KickStrategy): WaitSettings {
  if (!strategy.canSleep) return { strategy: 'spin' };
  if (strategy.spinIters === 0) return { strategy: 'block' };
  return { strategy: 'hybrid', spinIterations: strategy.spinIters };
}

/** One run of the split (or packed) ring through the engine, optionally with IN_ORDER. */
export async function runVirtqRing(ctx: PeerRunContext, ring: RingKind = 'split', inOrder = false): Promise<PeerCaseResult> {
  const caseName = inOrder ? (ring === 'packed' ? VIRTQ_PACKED_INORDER_CASE : VIRTQ_RING_INORDER_CASE) : ring === 'packed' ? VIRTQ_PACKED_CASE : VIRTQ_RING_CASE;
  const strategy = ctx.strategy ?? parseStrategy(REFERENCE_STRATEGY);
  const payloadBytes = Math.ceil(ctx.payloadBytes / 4) * 4;
  const r: EngineResult = await Engine.run({
    workload: 'stream',
    queues: [{ size: VIRTQ_QUEUE_SIZE, eventIdx: true, ring, inOrder }],
    arenaBytes: VIRTQ_QUEUE_SIZE * Math.ceil(payloadBytes / 64) * 64 + (1 << 20),
    wait: waitSettingsOf(strategy),
    durationMs: ctx.warmupMs + ctx.durationMs,
    timeoutMs: ctx.warmupMs + ctx.durationMs + 30_000,
    params: { payloadBytes, verify: 'seq', publishEvery: PUBLISH_EVERY, warmupMs: ctx.warmupMs },
  });
  // Fold the engine's side stats into the harness's per-worker reports, so this case's row is
  // computed by the same code as every other case's. Doorbell counters cover the whole run
  // (warm-up included), so they are paired with whole-run packets.
  const report = (s: SideStats, windowPackets: number): WorkerReport => ({
    role: s.role === 'guest' ? 'producer' : 'consumer',
    window: { packets: windowPackets, notifies: s.notifies, sleeps: s.sleeps, cpuNs: s.windowCpuNs, wallMs: s.windowMs },
    totalPackets: s.packets,
    verified: s.errors === 0,
    errors: s.errors,
    ...(s.firstError !== undefined ? { firstError: s.firstError } : {}),
    cpuSource: threadCpuSource(),
  });
  const h = r.host;
  const consumer = report(h, h.windowPackets);
  // Notifies and sleeps per 1000 are divided by the consumer's window packets: scale the
  // whole-run counters to that window.
  const scale = h.packets > 0 ? h.windowPackets / h.packets : 0;
  consumer.window.notifies = (r.guest.notifies + h.notifies) * scale;
  consumer.window.sleeps = h.sleeps * scale;
  const producer = report(r.guest, r.guest.windowPackets);
  producer.window.notifies = 0;
  return throughputResult(
    { name: `${caseName}/${strategy.name}/q${VIRTQ_QUEUE_SIZE}`, caseName, payloadBytes, strategy: strategy.name, publishEvery: PUBLISH_EVERY },
    { producer, consumer, consumedPackets: h.windowPackets, seconds: h.windowMs / 1000 },
  );
}

/** One ping-pong run through the split (or packed) ring (64 B requests, one in flight). */
export async function runVirtqPingPong(ctx: LatencyRunContext, ring: RingKind = 'split'): Promise<PingPongResult> {
  const r = await Engine.run({
    workload: 'pingpong',
    queues: [{ size: 256, eventIdx: true, ring }],
    wait: waitSettingsOf(ctx.strategy),
    durationMs: ctx.warmupMs + ctx.durationMs,
    timeoutMs: ctx.warmupMs + ctx.durationMs + 30_000,
    params: { payloadBytes: 64, warmupMs: ctx.warmupMs, pollSpins: ctx.strategy.canSleep ? ctx.strategy.spinIters : Infinity, ...(ctx.maxRtts !== undefined ? { count: ctx.maxRtts } : {}) },
  });
  const e = r.guest.extra;
  const result: PingPongResult = {
    name: ring === 'packed' ? VIRTQ_PACKED_PINGPONG_CASE : VIRTQ_PINGPONG_CASE,
    strategy: ctx.strategy.name,
    rtts: e.rtts ?? 0,
    p50Us: (e.p50Ns ?? 0) / 1000,
    p99Us: (e.p99Ns ?? 0) / 1000,
    maxUs: (e.maxNs ?? 0) / 1000,
    meanUs: (e.meanNs ?? 0) / 1000,
  };
  const firstError = r.host.firstError ?? r.guest.firstError;
  if (firstError !== undefined) result.error = firstError;
  return result;
}
