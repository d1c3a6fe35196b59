// The "net-stream" workload: netperf TCP_STREAM over virtio-net. One side's endpoint sends a
// TCP-like byte stream (GSO frames of up to 64 KiB, or MSS-sized frames), the other side's sink
// checks order, counts payload bytes (and with `verify`, every byte and checksum) and sends ACK
// frames back, so both queues carry traffic. Queue 0 = rx, queue 1 = tx.
//
// Params: direction 'g2h' (guest sends to the host stack) | 'h2g'; msgBytes (payload per send,
// default 65536 with gso, 16384 without); gso and mergeable (default: the policy's); mtu
// (1500); warmupMs (0); verify (false); totalBytes (0 = until stopped; else the receiver stops
// the run once it has every byte); windowBytes (4 MiB in flight); ackEveryBytes (2 × MSS);
// plus the net-common knobs: preset / policy (the notification policy, default 'vhost'; see
// net-common.ts), csum, eventIdx, budget, txLayout, rxMode, backendGso.
// Receiver SideStats: packets = data frames received, bytes = payload bytes (so windowBytes is
// the measured payload); sender: packets = data frames sent, bytes = payload bytes sent.

import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';
import { netFeatures, netParams, netSide, type NetSide } from './net-common.js';

const SINK_PORT = 5001; // netserver's data port
const SOURCE_PORT = 40000;

function runStream(ctx: SideContext, role: 'guest' | 'host'): SideStats {
  const p = netParams(ctx);
  const features = netFeatures(p, ctx.setup.queues[0]!.indirect);
  const sender = (p.direction === 'g2h') === (role === 'guest');
  const totalBytes = ctx.numParam('totalBytes', 0);
  const stats = ctx.stats;
  const update = (): void => {
    if (sender) {
      stats.packets = ep.source!.frames;
      stats.bytes = ep.source!.sentBytes;
    } else {
      stats.packets = ep.sink!.segments;
      stats.bytes = ep.sink!.payloadBytes;
    }
  };
  const side: NetSide = netSide(ctx, role, p, features, {
    done: () => {
      update();
      // The receiver has every byte: end the run for both sides.
      return !sender && ep.sink!.done;
    },
  });
  const ep = side.endpoint;
  if (sender) {
    ep.startSource({
      srcPort: SOURCE_PORT,
      dstPort: SINK_PORT,
      msgBytes: ctx.numParam('msgBytes', p.gso ? 65536 : 16384),
      totalBytes,
      windowBytes: ctx.numParam('windowBytes', 4 << 20),
    });
  } else {
    const ackEvery = ctx.numParam('ackEveryBytes', 0);
    ep.startSink({ port: SINK_PORT, verify: p.verify, expectBytes: totalBytes, ...(ackEvery > 0 ? { ackEveryBytes: ackEvery } : {}), ackEach: p.policy.dataPath.ackEach === true });
  }
  if (!ctx.arriveAndWait()) return ctx.finish();
  side.run();
  update();
  if (!sender && ep.sink!.errors > 0) {
    stats.errors += ep.sink!.errors;
    stats.firstError ??= ep.sink!.firstError;
  }
  const s = ep.source;
  const k = ep.sink;
  const roleExtra: Record<string, number> = s
    ? { sentBytes: s.sentBytes, ackedBytes: s.ackedBytes, dataFrames: s.frames, gsoFrames: s.gsoFrames, acksIn: s.acksIn, badAcks: s.badAcks }
    : { payloadBytes: k!.payloadBytes, dataFrames: k!.segments, acksSent: k!.acksSent, verifyErrors: k!.errors };
  side.close?.();
  const result = ctx.finish();
  result.extra = { ...result.extra, ...side.extra(), ...roleExtra, sender: sender ? 1 : 0 };
  return result;
}

export function guest(ctx: SideContext): SideStats {
  return runStream(ctx, 'guest');
}

export function host(ctx: SideContext): SideStats {
  return runStream(ctx, 'host');
}
