// The "net-ping" workload: `ping -f` over virtio-net with real ICMP echo frames. The pinging
// side sends the next echo request as soon as the reply to the previous one arrives, or after
// `timeoutMs` without one (counted lost); the other side's endpoint answers. RTT is measured on
// the pinging side's clock alone (send → reply handed to the endpoint), in µs.
//
// Params: direction 'g2h' (the guest pings the host stack) | 'h2g'; count (requests, default
// 1000; 0 = until stopped); payloadBytes (56); timeoutMs (10); v6 (false: ICMPv6 echo when
// true); warmupMs (0: RTTs before it are not kept); plus the net-common knobs (gso, mergeable,
// mtu, eventIdx, budget, txLayout, rxMode, preset / policy: the notification policy, default
// 'vhost'; gso defaults to the policy's). The pinging side stops the run when done.
// Pinging side SideStats: series.rttUs (one per reply, µs), packets = replies, bytes = reply
// payload bytes, extra.sent/received/lost/late/badData; a reply with wrong data is an error.

import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';
import { netFeatures, netParams, netSide, type NetSide } from './net-common.js';

const PING_ID = 0x7171;

function runPing(ctx: SideContext, role: 'guest' | 'host'): SideStats {
  const p = netParams(ctx);
  const features = netFeatures(p, ctx.setup.queues[0]!.indirect);
  const pinger = (p.direction === 'g2h') === (role === 'guest');
  const count = ctx.numParam('count', 1000);
  const payloadBytes = ctx.numParam('payloadBytes', 56);
  const timeoutMs = ctx.numParam('timeoutMs', 10);
  const v6 = ctx.params.v6 === true;
  if (!Number.isInteger(payloadBytes) || payloadBytes < 0 || payloadBytes > p.mtu - 48) {
    throw new RangeError(`net-ping: payloadBytes must be 0..${p.mtu - 48} (got ${payloadBytes})`);
  }
  const stats = ctx.stats;
  // RTTs in a typed array sized for the run when the count is known (count 0: grown by
  // doubling): a plain array grown per echo copies itself again and again during the flood.
  let rtts = new Float64Array(count > 0 ? Math.min(count, 1 << 20) : 1024);
  let nRtts = 0;
  let seq = 0;
  // The send time lives in a typed array: a double stored in a closure variable is a fresh heap
  // number per store (one per echo).
  const sentAtMs = new Float64Array(1);
  let outstanding = false;
  let sent = 0;
  let received = 0;
  let lost = 0;
  let late = 0;
  let badData = 0;
  const tick = (): void => {
    if (!pinger) return;
    // The clock only while a request is out (each read is a heap number).
    if (outstanding && performance.now() - sentAtMs[0]! >= timeoutMs) {
      outstanding = false;
      lost++;
    }
    if (!outstanding && (count === 0 || sent < count)) {
      seq = sent;
      if (ep.sendEchoRequest(PING_ID, seq & 0xffff, payloadBytes, v6)) {
        sentAtMs[0] = performance.now();
        outstanding = true;
        sent++;
      }
    }
  };
  const side: NetSide = netSide(ctx, role, p, features, {
    tick,
    // Every request answered or timed out: end the run for both sides.
    done: () => pinger && count !== 0 && sent >= count && !outstanding,
    deadlineMs: () => (pinger && outstanding ? sentAtMs[0]! + timeoutMs : Infinity),
  });
  const ep = side.endpoint;
  ep.onEchoReply = (id, replySeq, ok) => {
    const now = performance.now();
    if (id !== PING_ID) return;
    if (!ok) {
      badData++;
      ctx.error(`echo reply ${replySeq}: data differs from the request`);
    }
    if (outstanding && replySeq === (seq & 0xffff)) {
      outstanding = false;
      received++;
      stats.packets++;
      stats.bytes += payloadBytes;
      if (ctx.windowIsOpen) {
        if (nRtts === rtts.length) {
          const grown = new Float64Array(rtts.length * 2);
          grown.set(rtts);
          rtts = grown;
        }
        rtts[nRtts++] = (now - sentAtMs[0]!) * 1000;
      }
    } else {
      late++;
    }
  };
  if (!ctx.arriveAndWait()) return ctx.finish();
  if (pinger) ep.sendArpRequest();
  side.run();
  side.close?.();
  const result = ctx.finish();
  if (pinger) {
    // A plain array of doubles (Array.from would box every element on the way through its iterator).
    const rttUs: number[] = new Array<number>(nRtts);
    for (let i = 0; i < nRtts; i++) rttUs[i] = rtts[i]!;
    result.series = { rttUs };
    result.extra = { ...result.extra, sent, received, lost, late, badData };
  }
  result.extra = { ...result.extra, ...side.extra(), pinger: pinger ? 1 : 0, arpRepliesIn: ep.stats.arpRepliesIn };
  return result;
}

export function guest(ctx: SideContext): SideStats {
  return runPing(ctx, 'guest');
}

export function host(ctx: SideContext): SideStats {
  return runPing(ctx, 'host');
}
