// The "stream" workload: the guest (driver) sends sequence-numbered payloads through queue 0;
// the host (device) pops each chain, copies the payload out, verifies it and returns the buffer.
// It is both the cross-thread stress test (every word checked) and the ring's throughput case
// in `virtq bench peers` (two copies per packet, like the bare SPSC ring it is compared with).
//
// Params: payloadBytes (default 1500), count (packets; 0 = until stopped), publishEvery (adds
// per avail.idx publish, default 32), verify ('full' = every word, 'seq' = sequence and length
// only), warmupMs (excluded from the window, default 0), traceToggleMs (benchmark aid, see
// TraceSlices; default 0 = off).
//
// Tracing (ctx.tracer, see docs/tracing.md): the packet identity is the sequence number. Both
// sides count packets (the driver's seq, the device's `expect`), keep the next traced identity
// in a local (Tracer.nextSampled) and call the tracer only for traced packets, so a packet that
// is not traced costs a comparison, not a call; the driver remembers traced chains by head for
// the reap. The device's count is checked against payload word 0 after the copy (a mismatch is
// a stream error, and is also recorded as a trace identity error). Pops and reaps pass the
// queue's fetch counter so interpolated stamping reads the clock after each fresh index read
// (src/trace/tracer.ts). With tracing off every trace site is one cached boolean test.

import { BufferPool, Arena } from '../../memory/index.js';
import { openDeviceQueue, openDriverQueue, readFromChain, DescriptorChain } from '../../virtqueue/index.js';
import { layoutOf } from '../setup.js';
import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';

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
  traceToggleMs: number;
}

/**
 * Benchmark aid (param traceToggleMs > 0, traced runs only): tracing is off and on in
 * alternate slices of that many ms of the shared clock, in both threads, and the host counts
 * the packets and time of each kind of slice inside the window. Comparing the two rates
 * measures what tracing costs within one run, interleaved every few ms, so a shared host's
 * slow spells (seconds long) hit both alike. Packets that cross a slice edge have partial
 * timelines; a toggled run's trace is for this measurement only.
 */
class TraceSlices {
  onPackets = 0;
  offPackets = 0;
  private firstMs = -1; // first update inside the window
  private lastMs = -1;
  private lastPackets = 0;
  private on = false;

  constructor(private readonly sliceMs: number) {}

  /**
   * Whether tracing is on now. Packets done since the last call ran in the slice of that call
   * (they were processed right after it; a sleep, if any, came after them).
   */
  update(nowMs: number, packets: number, counting: boolean): boolean {
    if (counting) {
      if (this.firstMs < 0) this.firstMs = nowMs;
      else if (this.on) this.onPackets += packets - this.lastPackets;
      else this.offPackets += packets - this.lastPackets;
    }
    this.lastMs = nowMs;
    this.lastPackets = packets;
    this.on = Math.floor(nowMs / this.sliceMs) % 2 === 1;
    return this.on;
  }

  /** Time of on-slices between the first counted update and the last update (from the slice grid, not from the loop). */
  get onMs(): number {
    return this.firstMs < 0 ? 0 : this.onTimeUntil(this.lastMs) - this.onTimeUntil(this.firstMs);
  }

  get offMs(): number {
    return this.firstMs < 0 ? 0 : this.lastMs - this.firstMs - this.onMs;
  }

  /** On-slice time in [0, t): odd slices are on. */
  private onTimeUntil(t: number): number {
    const pairs = Math.floor(t / (2 * this.sliceMs));
    const rest = t - pairs * 2 * this.sliceMs;
    return pairs * this.sliceMs + Math.max(0, rest - this.sliceMs);
  }
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
    traceToggleMs: ctx.numParam('traceToggleMs', 0),
  };
}

/** Guest side: fill buffers, add, publish, kick per the ring's suppression, reap completions. */
export function guest(ctx: SideContext): SideStats {
  const p = params(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = openDriverQueue<number>(mem, layoutOf(plan), {
    index: 0,
    inOrder: plan.inOrder ?? false,
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
  const tr = ctx.tracer;
  let tracing = tr.enabled;
  // Traced chains in flight, by head (the driver's own record: a reap never reads the payload
  // back, which costs a cache miss per packet).
  // −1: the chain was added while tracing was off (toggled runs), so its reap is not recorded.
  const seqOfHead = new Float64Array(plan.size).fill(-1);
  const tracedHead = new Uint8Array(plan.size); // 1 while that chain's packet is traced
  // Sampled 1 in N with interpolated stamps: kept packets only, with ordinals (Tracer.sparse).
  const sparse = tr.sparse;
  // Every packet traced with interpolated stamps: points are recorded in runs, once per batch.
  const batched = tr.batched && !sparse;
  // Otherwise the next identity traced one by one (sampled or exact stamps); −1 when none, so
  // the per-packet test is a single comparison.
  let nextTrace = tracing && !batched ? tr.nextSampled(0) : -1;
  const reapIds = new Uint32Array(plan.size);
  let usedFetchSeen = -1; // q.usedFetches at the last tr.fetched()
  let reaped = 0; // reaps so far (the reap ordinal of sparse tracing)
  const slices = tr.enabled && p.traceToggleMs > 0 ? new TraceSlices(p.traceToggleMs) : null;
  /** Reaps every used buffer back into the pool, recording the reaps of traced packets. */
  const reapAll = (): void => {
    let runLen = 0;
    let kept = false;
    let u;
    while ((u = q.reap()) !== null) {
      if (tracing) {
        if (batched) {
          if (q.usedFetches !== usedFetchSeen) {
            // This reap follows a fresh read of used.idx: the reaps before it go first, then
            // the lower bound moves past the device's used (no reap timed before it).
            if (runLen > 0) tr.reapRun(reapIds, runLen, p.payloadBytes);
            runLen = 0;
            tr.fetched();
            usedFetchSeen = q.usedFetches;
          }
          const id = seqOfHead[u.head]!;
          if (id >= 0) reapIds[runLen++] = id;
        } else if (tracedHead[u.head] !== 0) {
          tracedHead[u.head] = 0;
          if (sparse) {
            // Every add so far came before this reap: counted first, so the spread keeps the order.
            tr.addsUpTo(seq);
            if (q.usedFetches !== usedFetchSeen) {
              // The first kept reap since a fresh read of used.idx: the reaps before that acquire
              // are counted first, then the device's used stamp bounds what follows.
              tr.reapsUpTo(reaped - q.reapsSinceFetch);
              tr.fetched();
              usedFetchSeen = q.usedFetches;
            }
            tr.reapKept(seqOfHead[u.head]!, reaped, p.payloadBytes);
            kept = true;
          } else tr.reap(seqOfHead[u.head]!, p.payloadBytes, 0, q.usedFetches);
        }
      }
      reaped++;
      pool.put(u.token);
    }
    if (runLen > 0) tr.reapRun(reapIds, runLen, p.payloadBytes);
    if (kept) tr.reapsUpTo(reaped);
  };
  /** Records a driver wake; with kept points, the points before a kernel sleep are counted before its stamp. */
  const driverWoke = (slept: boolean): void => {
    if (sparse && slept) {
      tr.addsUpTo(seq);
      tr.reapsUpTo(reaped);
    }
    tr.driverWake(0, slept);
  };
  while (!ctx.stopped && (p.count === 0 || seq < p.count)) {
    if (!ctx.windowIsOpen && performance.now() - t0 >= p.warmupMs) ctx.openWindow();
    if (slices !== null) {
      const on = slices.update(performance.now(), 0, false);
      if (on !== tracing) {
        tr.mark(); // no untimed point spreads over the untraced stretch
        nextTrace = on && !batched ? tr.nextSampled(seq) : -1;
        // Chains added before the switch are not traced: flags left from an earlier on-slice
        // would make a reused head's reap record the old packet's identity.
        if (on) {
          tracedHead.fill(0);
          seqOfHead.fill(-1);
        }
      }
      tracing = on;
    }
    reapAll();
    let added = 0;
    let kept = false;
    while (added < batch && pool.available > 0 && (p.count === 0 || seq < p.count)) {
      const addr = pool.get();
      const traced = seq >>> 0 === nextTrace; // a comparison per packet, a call per traced one
      if (traced) {
        if (sparse) {
          tr.reapsUpTo(reaped); // this round's reaps came before these adds
          tr.addKept(nextTrace, nextTrace); // the identity is the add count
          kept = true;
        } else tr.add(nextTrace);
        nextTrace = tr.nextSampled(nextTrace + 1);
      }
      const w = (addr - region.guestAddr) / 4;
      if (p.verify === 'full') {
        for (let i = HEADER_WORDS; i < words; i++) u32[w + i] = patternWord(seq, i);
      } else {
        u8.set(source, addr - region.guestAddr);
      }
      u32[w] = seq >>> 0;
      u32[w + 1] = p.payloadBytes;
      const head = q.add1(addr, p.payloadBytes, false, addr);
      if (traced) {
        seqOfHead[head] = seq;
        tracedHead[head] = 1;
      } else if (tracing && batched) seqOfHead[head] = seq;
      seq++;
      added++;
      stats.packets++;
      stats.bytes += p.payloadBytes;
    }
    if (added > 0) {
      if (tracing) {
        if (batched) tr.addRange(seq - added, added);
        else if (kept) tr.addsUpTo(seq); // the batch's adds after its last kept one come before the publish stamp
        tr.publish(added);
      }
      q.publish();
      if (q.kickNeeded()) {
        if (tracing) tr.kick();
        kick.ring();
      }
      continue;
    }
    // Out of buffers: ask for an interrupt after 3/4 of them are used, then sleep.
    if (tracing && pool.available === 0) tr.ringFull(q.outstanding);
    const seen = irq.seq();
    if (!q.enableInterruptsDelayed()) {
      if (tracing) tr.notifications(true);
      const sleeps = irq.stats.sleeps;
      irq.wait(seen);
      if (tracing) driverWoke(irq.stats.sleeps !== sleeps);
    }
    q.disableInterrupts();
  }
  // Drain: wait until the device returned every buffer (or the engine stopped).
  while (!ctx.stopped && q.outstanding > 0) {
    reapAll();
    if (q.outstanding === 0) break;
    const seen = irq.seq();
    if (!q.enableInterrupts()) {
      if (tracing) tr.notifications(true);
      const sleeps = irq.stats.sleeps;
      irq.wait(seen);
      if (tracing) driverWoke(irq.stats.sleeps !== sleeps);
    }
  }
  return ctx.finish();
}

/** Host side: disable kicks, drain, verify, publish used, interrupt per suppression, sleep. */
export function host(ctx: SideContext): SideStats {
  const p = params(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const q = openDeviceQueue(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: plan.indirect, inOrder: plan.inOrder ?? false, batchUsed: true });
  // The second copy goes into host memory that is not guest RAM (a SAB like the bare ring's).
  const dst = new Uint8Array(new SharedArrayBuffer(Math.ceil(p.payloadBytes / 8) * 8));
  const dst32 = new Uint32Array(dst.buffer);
  const words = p.payloadBytes / 4;
  const chain = new DescriptorChain();
  const batch = Math.min(p.publishEvery, plan.size);
  const stats = ctx.stats;
  const kick = ctx.kick;
  const irq = ctx.irq;
  const tr = ctx.tracer;
  let tracing = tr.enabled;
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let expect = 0;
  // Sampled 1 in N with interpolated stamps: kept packets only, with ordinals (Tracer.sparse).
  const sparse = tr.sparse;
  let kept = false; // the batch kept a packet (sparse)
  // Every packet traced with interpolated stamps: pops and dones are recorded in runs of
  // consecutive identities [runStart, upTo), once per batch and before each tr.fetched().
  const batched = tr.batched && !sparse;
  let runsOn = tracing && batched;
  // Otherwise the next identity traced one by one (sampled or exact stamps); −1 when none.
  let nextTrace = tracing && !batched ? tr.nextSampled(0) : -1;
  let runStart = 0;
  let availFetchSeen = -1; // q.availFetches at the last tr.fetched()
  const slices = tr.enabled && p.traceToggleMs > 0 ? new TraceSlices(p.traceToggleMs) : null;
  /** Publishes the used entries of the batch (the batch's pops and dones recorded first). */
  const flush = (entries: number, upTo: number): void => {
    if (tracing) {
      if (batched && upTo !== runStart) tr.popDoneRange(runStart, upTo - runStart, p.payloadBytes);
      else if (kept) {
        tr.popsUpTo(upTo);
        kept = false;
      }
      if (entries > 0) tr.used(entries);
    }
    runStart = upTo;
    if (q.publishUsed() > 0 && q.needsNotification()) {
      if (tracing) tr.interrupt();
      irq.ring();
    }
  };
  for (;;) {
    if (!ctx.windowIsOpen && performance.now() - t0 >= p.warmupMs) ctx.openWindow();
    if (slices !== null) {
      const on = slices.update(performance.now(), expect, ctx.windowIsOpen);
      if (on !== tracing) {
        tr.mark(); // no untimed point spreads over the untraced stretch
        nextTrace = on && !batched ? tr.nextSampled(expect) : -1;
        runStart = expect;
      }
      tracing = on;
      runsOn = on && batched;
    }
    q.disableNotification();
    let n = 0;
    let c;
    while ((c = q.pop(chain)) !== null) {
      const len = c.readableBytes;
      // The packet's identity is the device's count (checked against the payload below).
      const id = expect >>> 0;
      if (runsOn && q.availFetches !== availFetchSeen) {
        // This pop follows a fresh read of avail.idx: the run before it goes first, then the
        // lower bound moves past the driver's publish (no pop timed before it).
        if (expect !== runStart) tr.popDoneRange(runStart, expect - runStart, p.payloadBytes);
        runStart = expect;
        tr.fetched();
        availFetchSeen = q.availFetches;
      }
      const traced = id === nextTrace;
      if (traced) {
        if (sparse) {
          if (q.availFetches !== availFetchSeen) {
            // The first kept pop since a fresh read of avail.idx: the pops before that acquire
            // are counted first, then the driver's publish stamp bounds what follows.
            tr.popsUpTo(expect - q.popsSinceFetch);
            tr.fetched();
            availFetchSeen = q.availFetches;
          }
          tr.popKept(id, expect); // the identity is the pop count
          kept = true;
        } else tr.pop(nextTrace, 0, q.availFetches);
        nextTrace = tr.nextSampled(nextTrace + 1);
      }
      if (len !== p.payloadBytes) {
        ctx.error(`packet ${expect}: length ${len}, expected ${p.payloadBytes}`);
      } else {
        readFromChain(mem, c, dst);
        const seq = dst32[0]!;
        if (seq !== id) {
          ctx.error(`packet ${expect}: sequence ${seq} (lost, duplicated or reordered)`);
          if (traced) tr.error('identity', id);
        } else if (dst32[1] !== p.payloadBytes) ctx.error(`packet ${expect}: length word ${dst32[1]}`);
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
      if (traced) {
        if (sparse) tr.doneKept(id, len);
        else tr.done(id, len);
      }
      q.addUsed(c.head, 0);
      if (++n === batch) {
        flush(n, expect);
        n = 0;
        if (slices !== null) {
          // A busy device may stay in this loop for many slices. (The same as at the loop's top,
          // written out: a closure would capture expect and nextTrace, and V8 would then keep
          // them in a heap context on the per-packet path.)
          const on = slices.update(performance.now(), expect, ctx.windowIsOpen);
          if (on !== tracing) {
            tr.mark();
            nextTrace = on && !batched ? tr.nextSampled(expect) : -1;
            runStart = expect;
          }
          tracing = on;
          runsOn = on && batched;
        }
      }
    }
    flush(n, expect);
    if (p.count !== 0 && expect >= p.count) break;
    if (ctx.stopped) break;
    // Re-enable kicks, re-check (full barrier inside), and sleep only if still empty.
    const seen = kick.seq();
    if (q.enableNotification()) continue;
    if (tracing) tr.notifications(true);
    const sleeps = kick.stats.sleeps;
    if (kick.wait(seen) === 'stopped') break;
    if (tracing) {
      const slept = kick.stats.sleeps !== sleeps;
      if (sparse && slept) tr.popsUpTo(expect); // the pops before the sleep come before the wake's stamp
      tr.deviceWake(0, slept);
    }
  }
  if (slices !== null) {
    ctx.stats.extra.traceOnMs = slices.onMs;
    ctx.stats.extra.traceOffMs = slices.offMs;
    ctx.stats.extra.traceOnPackets = slices.onPackets;
    ctx.stats.extra.traceOffPackets = slices.offPackets;
  }
  return ctx.finish();
}
