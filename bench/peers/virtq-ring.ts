// The virtq cases of `virtq bench peers`: the split ring itself, run through the engine exactly
// as a user runs it (two piscina worker threads, doorbells, event idx), beside the bare SPSC ring
// it is judged against.
//   virtq-ring      the `stream` workload with verify 'seq': the guest copies each payload into
//                   a guest buffer (copy 1), the device copies it out of the chain (copy 2), the
//                   same two copies per packet as the bare ring; sequence and length checked;
//                   event idx on (VIRTIO_F_EVENT_IDX, as Linux negotiates with modern devices).
//   virtq-pingpong  the `pingpong` workload: one 64 B request in flight, RTT timed by the guest.
// The kick strategy maps onto the engine's wait strategies: wait → block, spin<N>+wait → hybrid
// with N spin iterations, spin → spin.

import { Engine, type EngineResult } from '../../src/engine/index.js';
import type { WaitSettings } from '../../src/engine/types.js';
import { REFERENCE_STRATEGY, parseStrategy, type KickStrategy, type LatencyRunContext, type PeerCaseResult, type PeerRunContext, type PingPongResult } from './types.js';

export const VIRTQ_RING_CASE = 'virtq-ring';
export const VIRTQ_PINGPONG_CASE = 'virtq-pingpong';
/** Queue size of the throughput case (the bare ring has 256 slots). */
export const VIRTQ_QUEUE_SIZE = 256;
const PUBLISH_EVERY = 32;

export function waitSettingsOf(strategy: KickStrategy): WaitSettings {
  if (!strategy.canSleep) return { strategy: 'spin' };
  if (strategy.spinIters === 0) return { strategy: 'block' };
  return { strategy: 'hybrid', spinIterations: strategy.spinIters };
}

function per1000(n: number, packets: number): number {
  return packets > 0 ? (n * 1000) / packets : 0;
}

/** One run of the split ring through the engine. */
export async function runVirtqRing(ctx: PeerRunContext): Promise<PeerCaseResult> {
  const strategy = ctx.strategy ?? parseStrategy(REFERENCE_STRATEGY);
  const payloadBytes = Math.ceil(ctx.payloadBytes / 4) * 4;
  const r: EngineResult = await Engine.run({
    workload: 'stream',
    queues: [{ size: VIRTQ_QUEUE_SIZE, eventIdx: true }],
    arenaBytes: VIRTQ_QUEUE_SIZE * Math.ceil(payloadBytes / 64) * 64 + (1 << 20),
    wait: waitSettingsOf(strategy),
    durationMs: ctx.warmupMs + ctx.durationMs,
    timeoutMs: ctx.warmupMs + ctx.durationMs + 30_000,
    params: { payloadBytes, verify: 'seq', publishEvery: PUBLISH_EVERY, warmupMs: ctx.warmupMs },
  });
  const g = r.guest;
  const h = r.host;
  const seconds = h.windowMs / 1000;
  const packets = h.windowPackets;
  const bytes = packets * payloadBytes;
  const cpuSecondsProducer = g.windowCpuNs / 1e9;
  const cpuSecondsConsumer = h.windowCpuNs / 1e9;
  const result: PeerCaseResult = {
    name: `${VIRTQ_RING_CASE}/${strategy.name}/q${VIRTQ_QUEUE_SIZE}`,
    payloadBytes: ctx.payloadBytes,
    packets,
    bytes,
    seconds,
    pps: seconds > 0 ? packets / seconds : 0,
    gbps: seconds > 0 ? (bytes * 8) / seconds / 1e9 : 0,
    cpuSecondsProducer,
    cpuSecondsConsumer,
    cpuSecondsPerGB: bytes > 0 ? (cpuSecondsProducer + cpuSecondsConsumer) / (bytes / 1e9) : 0,
    // Doorbell counters cover the whole run (warm-up included), so divide by all packets.
    notifiesPer1000: per1000(g.notifies + h.notifies, h.packets),
    consumerSleepsPer1000: per1000(h.sleeps, h.packets),
    verified: g.errors === 0 && h.errors === 0 && packets > 0,
    caseName: VIRTQ_RING_CASE,
    strategy: strategy.name,
    publishEvery: PUBLISH_EVERY,
    cpuProcessWide: false,
  };
  const firstError = h.firstError ?? g.firstError;
  if (firstError !== undefined) result.error = firstError;
  return result;
}

/** One ping-pong run through the split ring (64 B requests, one in flight). */
export async function runVirtqPingPong(ctx: LatencyRunContext): Promise<PingPongResult> {
  const r = await Engine.run({
    workload: 'pingpong',
    queues: [{ size: 256, eventIdx: true }],
    wait: waitSettingsOf(ctx.strategy),
    durationMs: ctx.warmupMs + ctx.durationMs,
    timeoutMs: ctx.warmupMs + ctx.durationMs + 30_000,
    params: { payloadBytes: 64, warmupMs: ctx.warmupMs, ...(ctx.maxRtts !== undefined ? { count: ctx.maxRtts } : {}) },
  });
  const e = r.guest.extra;
  const result: PingPongResult = {
    name: VIRTQ_PINGPONG_CASE,
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
