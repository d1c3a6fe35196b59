// Baseline for bench/trace-overhead.ts: the stream workload exactly as it was before trace
// points were added (src/engine/workloads/stream.ts at commit 3b427c4), so "tracing compiled in
// but off" can be compared with "no tracer at all" in the same run. Keep its loops in step with
// stream.ts apart from the trace calls; it is loaded by file URL, not registered.
//
// The "stream" workload: the guest (driver) sends sequence-numbered payloads through queue 0;
// the host (device) pops each chain, copies the payload out, verifies it and returns the buffer.
// It is both the cross-thread stress test (every word checked) and the ring's throughput case
// in `virtq bench peers` (two copies per packet, like the bare SPSC ring it is compared with).
//
// Params: payloadBytes (default 1500), count (packets; 0 = until stopped), publishEvery (adds
// per avail.idx publish, default 32), verify ('full' = every word, 'seq' = sequence and length
// only), warmupMs (excluded from the window, default 0).

import { BufferPool, Arena } from '../../src/memory/index.js';
import { DeviceQueue, DriverQueue, readFromChain, DescriptorChain } from '../../src/virtqueue/index.js';
import { layoutOf } from '../../src/engine/setup.js';
import type { SideContext } from '../../src/engine/side.js';
import type { SideStats } from '../../src/engine/types.js';

const HEADER_WORDS = 2; // [0] = sequence number, [1] = payload length

/** The pattern word `i` of packet `seq` (cheap, position- and sequence-dependent). */
function patternWord(seq: number, i: number): number {
  return (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
}

interface StreamParams {
  payloadBytes: number;
  count: number;
  publishEvery: number;
  verify: 'full' | 'seq';
  warmupMs: number;
}

function params(ctx: SideContext): StreamParams {
  const payloadBytes = ctx.numParam('payloadBytes', 1500);
  if (!Number.isInteger(payloadBytes) || payloadBytes < 8 || payloadBytes % 4 !== 0) {
    throw new RangeError(`stream: payloadBytes must be a multiple of 4 and at least 8 (got ${payloadBytes})`);
  }
  const verify = ctx.strParam('verify', 'full');
  if (verify !== 'full' && verify !== 'seq') throw new RangeError(`stream: verify must be 'full' or 'seq' (got ${verify})`);
  return {
    payloadBytes,
    count: ctx.numParam('count', 0),
    publishEvery: Math.max(1, ctx.numParam('publishEvery', 32)),
    verify,
    warmupMs: ctx.numParam('warmupMs', 0),
  };
}

/** Guest side: fill buffers, add, publish, kick per the ring's suppression, reap completions. */
export function guest(ctx: SideContext): SideStats {
  const p = params(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = new DriverQueue<number>(mem, layoutOf(plan), {
    index: 0,
    eventIdx: plan.eventIdx,
    indirect: plan.indirect,
    indirectArea: plan.indirectArea,
    indirectMaxSegments: plan.indirectMaxSegments,
  });
  const arena = new Arena(mem, ctx.setup.arenaBase, ctx.setup.arenaBytes);
  const pool = new BufferPool(arena, p.payloadBytes, plan.size, 64);
  const region = mem.region(pool.base, plan.size * Math.ceil(p.payloadBytes / 64) * 64);
  const u32 = region.u32;
  const u8 = region.u8;
  // 'seq' mode copies each payload from this source buffer (the first of the two copies).
  const source = new Uint8Array(new SharedArrayBuffer(p.payloadBytes));
  for (let i = 0; i < source.length; i++) source[i] = i & 0xff;
  const words = p.payloadBytes / 4;
  const batch = Math.min(p.publishEvery, plan.size);
  q.disableInterrupts();
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let seq = 0;
  const stats = ctx.stats;
  const kick = ctx.kick;
  const irq = ctx.irq;
  while (!ctx.stopped && (p.count === 0 || seq < p.count)) {
    if (!ctx.windowIsOpen && performance.now() - t0 >= p.warmupMs) ctx.openWindow();
    let u;
    while ((u = q.reap()) !== null) pool.put(u.token);
    let added = 0;
    while (added < batch && pool.available > 0 && (p.count === 0 || seq < p.count)) {
      const addr = pool.get();
      const w = (addr - region.guestAddr) / 4;
      if (p.verify === 'full') {
        for (let i = HEADER_WORDS; i < words; i++) u32[w + i] = patternWord(seq, i);
      } else {
        u8.set(source, addr - region.guestAddr);
      }
      u32[w] = seq >>> 0;
      u32[w + 1] = p.payloadBytes;
      q.add1(addr, p.payloadBytes, false, addr);
      seq++;
      added++;
      stats.packets++;
      stats.bytes += p.payloadBytes;
    }
    if (added > 0) {
      q.publish();
      if (q.kickNeeded()) kick.ring();
      continue;
    }
    // Out of buffers: ask for an interrupt after 3/4 of them are used, then sleep.
    const seen = irq.seq();
    if (!q.enableInterruptsDelayed()) irq.wait(seen);
    q.disableInterrupts();
  }
  // Drain: wait until the device returned every buffer (or the engine stopped).
  while (!ctx.stopped && q.outstanding > 0) {
    let u;
    while ((u = q.reap()) !== null) pool.put(u.token);
    if (q.outstanding === 0) break;
    const seen = irq.seq();
    if (!q.enableInterrupts()) irq.wait(seen);
  }
  return ctx.finish();
}

/** Host side: disable kicks, drain, verify, publish used, interrupt per suppression, sleep. */
export function host(ctx: SideContext): SideStats {
  const p = params(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = new DeviceQueue(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: plan.indirect });
  // The second copy goes into host memory that is not guest RAM (a SAB like the bare ring's).
  const dst = new Uint8Array(new SharedArrayBuffer(Math.ceil(p.payloadBytes / 8) * 8));
  const dst32 = new Uint32Array(dst.buffer);
  const words = p.payloadBytes / 4;
  const chain = new DescriptorChain();
  const batch = Math.min(p.publishEvery, plan.size);
  const stats = ctx.stats;
  const kick = ctx.kick;
  const irq = ctx.irq;
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let expect = 0;
  const flush = (): void => {
    if (q.publishUsed() > 0 && q.needsNotification()) irq.ring();
  };
  for (;;) {
    if (!ctx.windowIsOpen && performance.now() - t0 >= p.warmupMs) ctx.openWindow();
    q.disableNotification();
    let n = 0;
    let c;
    while ((c = q.pop(chain)) !== null) {
      const len = c.readableBytes;
      if (len !== p.payloadBytes) {
        ctx.error(`packet ${expect}: length ${len}, expected ${p.payloadBytes}`);
      } else {
        readFromChain(mem, c, dst);
        const seq = dst32[0]!;
        if (seq !== expect >>> 0) ctx.error(`packet ${expect}: sequence ${seq} (lost, duplicated or reordered)`);
        else if (dst32[1] !== p.payloadBytes) ctx.error(`packet ${expect}: length word ${dst32[1]}`);
        else if (p.verify === 'full') {
          for (let i = HEADER_WORDS; i < words; i++) {
            if (dst32[i] !== patternWord(expect, i)) {
              ctx.error(`packet ${expect}: corrupted word ${i}`);
              break;
            }
          }
        }
      }
      expect++;
      stats.packets++;
      stats.bytes += len;
      q.addUsed(c.head, 0);
      if (++n === batch) {
        flush();
        n = 0;
      }
    }
    flush();
    if (p.count !== 0 && expect >= p.count) break;
    if (ctx.stopped) break;
    // Re-enable kicks, re-check (full barrier inside), and sleep only if still empty.
    const seen = kick.seq();
    if (q.enableNotification()) continue;
    if (kick.wait(seen) === 'stopped') break;
  }
  return ctx.finish();
}
