// The "pingpong" workload: one request in flight at a time through queue 0. The guest (driver)
// adds one readable buffer carrying a sequence number, publishes, kicks when the ring asks for
// it, and waits for the used entry; the host (device) pops it, checks the sequence number,
// returns it and interrupts when the ring asks for it. The guest times each round trip into an
// HDR histogram (ns) while the measurement window is open. This is the virtq counterpart of the
// raw Atomics ping-pong in `virtq bench peers`: the same wake-ups, plus the ring's work.
//
// Params: payloadBytes (default 64, a multiple of 4, at least 8), count (round trips; 0 = until
// stopped), warmupMs (default 0), pollSpins (default 0): before waiting on its doorbell, each
// side polls the ring index itself this many times with notifications suppressed (vhost's busy
// polling; Infinity = a DPDK-style poll-mode loop that never rings or waits on a doorbell). Only
// when the budget runs out does it re-enable notifications, re-check and sleep. Results (guest): extra.rtts, extra.p50Ns, extra.p99Ns,
// extra.maxNs, extra.meanNs.

import * as hdr from 'hdr-histogram-js';
import { Arena } from '../../memory/index.js';
import { DescriptorChain, openDeviceQueue, openDriverQueue, readFromChain } from '../../virtqueue/index.js';
import { layoutOf } from '../setup.js';
import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';

/** pollSpins may be Infinity (poll mode), which numParam (finite numbers only) would refuse. */
function pollSpinsOf(ctx: SideContext): number {
  const v = ctx.params.pollSpins;
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`pingpong: pollSpins must be a number ≥ 0 or Infinity (got ${String(v)})`);
  return v;
}

function payloadBytesOf(ctx: SideContext): number {
  const n = ctx.numParam('payloadBytes', 64);
  if (!Number.isInteger(n) || n < 8 || n % 4 !== 0) throw new RangeError(`pingpong: payloadBytes must be a multiple of 4 and at least 8 (got ${n})`);
  return n;
}

/** Guest side: one buffer out, wait for it back, time the round trip. */
export function guest(ctx: SideContext): SideStats {
  const payloadBytes = payloadBytesOf(ctx);
  const count = ctx.numParam('count', 0);
  const warmupMs = ctx.numParam('warmupMs', 0);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = openDriverQueue<number>(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false, inOrder: plan.inOrder ?? false });
  const arena = new Arena(mem, ctx.setup.arenaBase, ctx.setup.arenaBytes);
  const addr = arena.alloc(payloadBytes, 64);
  const region = mem.region(addr, payloadBytes);
  const word = (addr - region.guestAddr) / 4;
  const u32 = region.u32;
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: 3 });
  const stats = ctx.stats;
  const irq = ctx.irq;
  const pollSpins = pollSpinsOf(ctx);
  if (pollSpins > 0) q.disableInterrupts();
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let seq = 0;
  outer: while (!ctx.stopped && (count === 0 || seq < count)) {
    if (!ctx.windowIsOpen && performance.now() - t0 >= warmupMs) ctx.openWindow();
    const start = performance.now();
    u32[word] = seq >>> 0;
    q.add1(addr, payloadBytes, false, seq);
    q.publish();
    if (q.kickNeeded()) ctx.kick.ring();
    for (let spins = 0; ; spins++) {
      const u = q.reap();
      if (u !== null) {
        if (u.token !== seq) ctx.error(`round trip ${seq}: got token ${u.token} back`);
        break;
      }
      if (spins < pollSpins) {
        // Polling with interrupts off: reap's acquire load of used.idx looks again; check the
        // stop word now and then.
        if ((spins & 1023) === 1023 && ctx.stopped) break outer;
        continue;
      }
      // Re-arm (event idx: used_event = next used) and re-check before sleeping, so a used entry
      // published in between is not slept through.
      const seen = irq.seq();
      if (q.enableInterrupts()) continue;
      if (irq.wait(seen) === 'stopped') break outer;
    }
    if (pollSpins > 0) q.disableInterrupts(); // the next round trip polls first again
    if (ctx.windowIsOpen) histogram.recordValue(Math.max(1, Math.round((performance.now() - start) * 1e6)));
    seq++;
    stats.packets++;
    stats.bytes += payloadBytes;
  }
  const s = ctx.finish();
  s.extra.rtts = histogram.totalCount;
  // An HDR percentile is its bucket's highest equivalent value, which can exceed the largest
  // sample recorded: no percentile is reported above the maximum.
  s.extra.maxNs = histogram.maxValue;
  s.extra.p50Ns = Math.min(histogram.maxValue, histogram.getValueAtPercentile(50));
  s.extra.p99Ns = Math.min(histogram.maxValue, histogram.getValueAtPercentile(99));
  s.extra.meanNs = histogram.mean;
  histogram.destroy();
  return s;
}

/** Host side: pop, check, return, interrupt per the ring, sleep until kicked. */
export function host(ctx: SideContext): SideStats {
  const payloadBytes = payloadBytesOf(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = openDeviceQueue(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false, inOrder: plan.inOrder ?? false });
  const chain = new DescriptorChain();
  const dst = new Uint8Array(new SharedArrayBuffer(Math.ceil(payloadBytes / 8) * 8));
  const dst32 = new Uint32Array(dst.buffer);
  const stats = ctx.stats;
  const kick = ctx.kick;
  const pollSpins = pollSpinsOf(ctx);
  if (pollSpins > 0) q.disableNotification();
  if (!ctx.arriveAndWait()) return ctx.finish();
  let expect = 0;
  for (let idle = 0; ; idle++) {
    let c;
    while ((c = q.pop(chain)) !== null) {
      if (c.readableBytes !== payloadBytes) ctx.error(`request ${expect}: length ${c.readableBytes}, expected ${payloadBytes}`);
      else {
        readFromChain(mem, c, dst);
        if (dst32[0] !== expect >>> 0) ctx.error(`request ${expect}: sequence ${dst32[0]} (lost, duplicated or reordered)`);
      }
      expect++;
      stats.packets++;
      stats.bytes += c.readableBytes;
      q.addUsed(c.head, 0);
      if (q.publishUsed() > 0 && q.needsNotification()) ctx.irq.ring();
      idle = 0;
    }
    if (idle < pollSpins) {
      // Polling with kicks off: pop's acquire load of avail.idx looks again.
      if ((idle & 1023) === 1023 && ctx.stopped) break;
      continue;
    }
    if (ctx.stopped) break;
    const seen = kick.seq();
    if (q.enableNotification()) {
      if (pollSpins > 0) q.disableNotification();
      idle = 0;
      continue;
    }
    if (kick.wait(seen) === 'stopped') break;
    if (pollSpins > 0) q.disableNotification();
    idle = 0;
  }
  return ctx.finish();
}
