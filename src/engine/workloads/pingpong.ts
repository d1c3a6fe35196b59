// The "pingpong" workload: one request in flight at a time through queue 0. The guest (driver)
// adds one readable buffer carrying a sequence number, publishes, kicks when the ring asks for
// it, and waits for the used entry; the host (device) pops it, checks the sequence number,
// returns it and interrupts when the ring asks for it. The guest times each round trip into an
// HDR histogram (ns) while the measurement window is open. This is the virtq counterpart of the
// raw Atomics ping-pong in `virtq bench peers`: the same wake-ups, plus the ring's work.
//
// Params: payloadBytes (default 64, a multiple of 4, at least 8), count (round trips; 0 = until
// stopped), warmupMs (default 0). Results (guest): extra.rtts, extra.p50Ns, extra.p99Ns,
// extra.maxNs, extra.meanNs.

import * as hdr from 'hdr-histogram-js';
import { Arena } from '../../memory/index.js';
import { DescriptorChain, DeviceQueue, DriverQueue, readFromChain } from '../../virtqueue/index.js';
import { layoutOf } from '../setup.js';
import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';

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
  const q = new DriverQueue<number>(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false });
  const arena = new Arena(mem, ctx.setup.arenaBase, ctx.setup.arenaBytes);
  const addr = arena.alloc(payloadBytes, 64);
  const region = mem.region(addr, payloadBytes);
  const word = (addr - region.guestAddr) / 4;
  const u32 = region.u32;
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: 3 });
  const stats = ctx.stats;
  const irq = ctx.irq;
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
    for (;;) {
      const u = q.reap();
      if (u !== null) {
        if (u.token !== seq) ctx.error(`round trip ${seq}: got token ${u.token} back`);
        break;
      }
      // Interrupts stay enabled: re-arm (event idx: used_event = next used) and re-check before
      // sleeping, so a used entry published in between is not slept through.
      const seen = irq.seq();
      if (q.enableInterrupts()) continue;
      if (irq.wait(seen) === 'stopped') break outer;
    }
    if (ctx.windowIsOpen) histogram.recordValue(Math.max(1, Math.round((performance.now() - start) * 1e6)));
    seq++;
    stats.packets++;
    stats.bytes += payloadBytes;
  }
  const s = ctx.finish();
  s.extra.rtts = histogram.totalCount;
  s.extra.p50Ns = histogram.getValueAtPercentile(50);
  s.extra.p99Ns = histogram.getValueAtPercentile(99);
  s.extra.maxNs = histogram.maxValue;
  s.extra.meanNs = histogram.mean;
  histogram.destroy();
  return s;
}

/** Host side: pop, check, return, interrupt per the ring, sleep until kicked. */
export function host(ctx: SideContext): SideStats {
  const payloadBytes = payloadBytesOf(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = new DeviceQueue(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false });
  const chain = new DescriptorChain();
  const dst = new Uint8Array(new SharedArrayBuffer(Math.ceil(payloadBytes / 8) * 8));
  const dst32 = new Uint32Array(dst.buffer);
  const stats = ctx.stats;
  const kick = ctx.kick;
  if (!ctx.arriveAndWait()) return ctx.finish();
  let expect = 0;
  for (;;) {
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
    }
    if (ctx.stopped) break;
    const seen = kick.seq();
    if (q.enableNotification()) continue;
    if (kick.wait(seen) === 'stopped') break;
  }
  return ctx.finish();
}
