// The per-thread tracer a processor calls at its trace points. A workload keeps
// `const tracing = ctx.tracer.enabled` in a local and guards every call with `if (tracing)`, so
// with tracing off the hot path pays one cached boolean test and nothing else.
//
// Packet identity is the workload's sequence number (carried in the payload, so both threads
// see the same one). Sampling "1 in N" keeps blocks of `sampleBlock` consecutive identities,
// 1 block in N (block = seq >>> log2 sampleBlock, kept when a multiple of N; with blocks of 1,
// seq % N === 0), which both threads decide alone. Batch events (publish, kick, wakes, used,
// interrupt) are recorded only when the batch holds a sampled packet; wakes are remembered and
// written at the next sampled packet. Those batch events cost clock reads (~50 ns each, and
// on the two-thread path they cost several times that in throughput): kept one by one, each
// kept packet pays for its batch's reads alone; kept in blocks as long as a batch (the default
// 32), a batch's reads serve all its kept packets, so a run sampled 1 in 100 pays for about
// 1 batch in 100. Runs in a browser Web Worker.
//
// Stamping. Reading the clock costs ~50 ns here (performance.now(); even Date.now() costs 40),
// a fifth of a 1500 B packet's whole cost per thread at full rate, so a clock read per packet
// cannot stay within the overhead budget. Two ways to stamp:
// - 'exact': every record reads the clock when it is written (~50 ns a point).
// - 'interpolated' (the default): per-packet points (add, pop, done, reap) are written untimed
//   and take times spread evenly, in order, between the thread's clock reads just before and
//   just after them. The clock is read at every batch point (publish, kick, used, interrupt),
//   every wake and event, and after UNTIMED_MAX untimed records. So a point's time is off by
//   less than the gap between two reads on its thread (a batch, a few µs at full rate).
//   Cross-thread pairs stay causal: the producer reads the clock before its release store
//   (publish, used), and the consumer's points after the acquire that saw it are never timed
//   earlier. A per-point pop or reap that is the first after a fresh index read (the `fetch`
//   counter) reads the clock; a batched loop calls fetched(), which uses the producer's
//   release stamp instead. Interpolated points lie strictly between their thread's bounds.
// Every packet traced, a loop may record runs instead of points (see `batched`); sampled 1 in
// N with interpolated stamps, runs keep only the sampled packets. Point-by-point callers in a
// sampled run stamp exactly.

import type { NetObserver } from '../net/observer.js';
import { TraceWriter } from './buffer.js';
import { clockOffsetNs, type TraceClockOrigin } from './clock.js';
import { DROP_REASONS, ERROR_CODES, KIND_INFO, NO_ID, TRACE_LEVELS, TraceKind, type DropReason, type TraceErrorCode } from './schema.js';

/** What a processor receives to attach its tracer (plain data, survives structured clone). */
export interface TracerSetup {
  sab: SharedArrayBuffer;
  origin: TraceClockOrigin;
  /**
   * Per-packet points: 0 = none, 1 = every packet, N = 1 packet in N: the packets whose block
   * (seq / sampleBlock, rounded down) is a multiple of N.
   */
  everyN: number;
  /**
   * Sampled 1 in N > 1: how many consecutive identities are kept together, a power of two in
   * 1..4096 (default DEFAULT_SAMPLE_BLOCK). 1 keeps seq % N === 0, spread out; a block as long
   * as a batch keeps whole batches, so the batch's clock reads (publish, kick, used) serve all
   * its kept packets instead of one (see the file comment).
   */
  sampleBlock?: number;
  /** Lowest level recorded (pino numbers: trace 10 … error 50). */
  level: number;
  /** How per-packet points get their time (see the file comment); default 'interpolated'. */
  stamping?: TraceStamping;
  /**
   * Release stamps shared by the two sides of a run (TraceSession allocates it): per side and
   * queue, the time of that side's latest stamped publish (driver) or used (device). Without
   * it, fetched() reads the clock instead.
   */
  releaseStamps?: { sab: SharedArrayBuffer; side: 0 | 1 };
}

/** Queues per side in the release-stamp block (a record's queue is a byte). */
export const RELEASE_STAMP_QUEUES = 256;

/** Allocates the release-stamp block for a run (two sides × RELEASE_STAMP_QUEUES f64). */
export function allocateReleaseStamps(): SharedArrayBuffer {
  return new SharedArrayBuffer(2 * RELEASE_STAMP_QUEUES * 8);
}

export type TraceStamping = 'exact' | 'interpolated';
export const TRACE_STAMPINGS: readonly TraceStamping[] = ['exact', 'interpolated'];

/** Consecutive identities kept together when sampling 1 in N > 1 (TracerSetup.sampleBlock). */
export const DEFAULT_SAMPLE_BLOCK = 32;

export class TraceSetupError extends Error {
  override readonly name = 'TraceSetupError';
  readonly code = 'bad-trace-setup';
}

/** Whether `b` is a valid sample block (a power of two in 1..4096). */
export function isSampleBlock(b: number): boolean {
  return Number.isInteger(b) && b >= 1 && b <= 4096 && (b & (b - 1)) === 0;
}

/** Untimed records after which the clock is read anyway (bounds the interpolation span). */
const UNTIMED_MAX = 128;

export class Tracer implements NetObserver {
  /** Master switch: false for the no-op tracer. Cache it in a local on hot paths. */
  readonly enabled: boolean;
  private readonly writer: TraceWriter | null;
  private readonly offsetNs: number;
  private readonly everyN: number;
  /** Consecutive identities kept together when sampling (TracerSetup.sampleBlock; 1 when not sampling). */
  readonly sampleBlock: number;
  private readonly blockShift: number; // log2(sampleBlock)
  private readonly level: number;
  // Divisibility test constants for 1-in-everyN sampling (see sampled()).
  private readonly lowMask: number;
  private readonly shift: number;
  private readonly oddInverse: number;
  private readonly limit: number;
  // Sampled-batch bookkeeping (see the file comment).
  private batchSampled = false;
  private publishSampled = false;
  private usedSampled = false;
  private irqSampled = false;
  private wakeNs = -1;
  private wakeKind = 0;
  /** Per-packet points are interpolated (every packet traced, stamping 'interpolated'). */
  readonly interpolated: boolean;
  /** Runs of per-packet points are taken (stamping 'interpolated', any sampling; see `batched`). */
  private readonly runs: boolean;
  /** Sampled 1 in N > 1 with interpolated stamps: kept points may be written alone (see `sparse`). */
  readonly sparse: boolean;
  // Per kind: the ordinal up to which this thread's points of that kind are accounted (kept
  // or skipped); −1 until the first (see keep()).
  private readonly keptTo = new Float64Array(32).fill(-1);
  private lastNs: number; // this thread's latest clock read
  // Per queue: the fetch counter at the last pop/reap that read the clock (see the file comment).
  private readonly lastFetch = new Float64Array(256).fill(-1);
  // Release stamps: this side's (written) and the other side's (read); see fetched().
  private readonly ownRelease: Float64Array | null = null;
  private readonly peerRelease: Float64Array | null = null;
  // Per kind: where its last sampled range ended and the next sampled identity from there.
  private readonly rangeFrom = new Float64Array(32).fill(-1);
  private readonly rangeAt = new Float64Array(32);
  // Per event kind: events to skip before the next recorded one (sampled runs, see event()).
  private readonly eventCountdown = new Int32Array(256).fill(1);

  constructor(setup: TracerSetup | null) {
    this.enabled = setup !== null;
    this.writer = setup === null ? null : new TraceWriter(setup.sab);
    this.offsetNs = setup === null ? 0 : clockOffsetNs(setup.origin);
    this.everyN = setup === null ? 0 : setup.everyN;
    const block = setup === null || setup.everyN <= 1 ? 1 : (setup.sampleBlock ?? DEFAULT_SAMPLE_BLOCK);
    if (!isSampleBlock(block)) throw new TraceSetupError(`sampleBlock must be a power of two in 1..4096 (got ${String(block)})`);
    this.sampleBlock = block;
    this.blockShift = 31 - Math.clz32(block);
    this.level = setup === null ? 100 : setup.level;
    const interpolating = setup !== null && setup.everyN >= 1 && (setup.stamping ?? 'interpolated') === 'interpolated';
    this.interpolated = interpolating && setup.everyN === 1;
    this.runs = interpolating;
    this.sparse = interpolating && setup.everyN > 1;
    const rs = setup?.releaseStamps;
    if (rs !== undefined) {
      this.ownRelease = new Float64Array(rs.sab, rs.side * RELEASE_STAMP_QUEUES * 8, RELEASE_STAMP_QUEUES);
      this.peerRelease = new Float64Array(rs.sab, (1 - rs.side) * RELEASE_STAMP_QUEUES * 8, RELEASE_STAMP_QUEUES);
    }
    this.lastNs = setup === null ? 0 : this.now();
    const n = this.everyN;
    if (!(Number.isInteger(n) && n >= 1 && n <= 0x7fff_ffff)) {
      this.lowMask = 0;
      this.shift = 0;
      this.oddInverse = 1;
      this.limit = -1;
    } else {
      let k = 0;
      while (((n >>> k) & 1) === 0) k++;
      const odd = n >>> k;
      // Inverse of `odd` modulo 2^32 by Newton's iteration (each step doubles the correct bits).
      let inv = odd;
      for (let i = 0; i < 5; i++) inv = Math.imul(inv, 2 - Math.imul(odd, inv));
      this.lowMask = (1 << k) - 1;
      this.shift = k;
      this.oddInverse = inv;
      this.limit = Math.floor(0xffff_ffff / odd);
    }
  }

  /** The disabled tracer. */
  static readonly off = new Tracer(null);

  /** ns since the run's origin, comparable across threads (see clock.ts). */
  now(): number {
    return performance.now() * 1e6 + this.offsetNs;
  }

  /** Reads the clock; untimed records written since the previous read get times between the two. */
  private stamp(): number {
    this.clockReads++;
    const t = performance.now() * 1e6 + this.offsetNs;
    const w = this.writer!;
    if (w.pending) w.stampUntimed(this.lastNs, t);
    this.lastNs = t;
    return t;
  }

  /** Records a per-packet point: untimed when interpolating, else stamped now. */
  private point(kind: number, queue: number, id: number, arg: number): void {
    const w = this.writer!;
    if (!this.interpolated) {
      w.put(kind, queue, id, this.stamp(), arg);
      return;
    }
    w.putUntimed(kind, queue, id, arg);
    if (w.untimed >= UNTIMED_MAX) this.stamp();
  }

  /**
   * Records a pop or reap: like point(), but it reads the clock when it is the first since the
   * queue's other-side index was fetched anew (`fetch` changed; −1 = unknown, always read), so
   * it is never stamped before the release it observed.
   */
  private fetchedPoint(kind: number, queue: number, id: number, arg: number, fetch: number): void {
    if (this.interpolated && fetch >= 0) {
      if (this.lastFetch[queue] === fetch) {
        this.point(kind, queue, id, arg);
        return;
      }
      this.lastFetch[queue] = fetch;
    }
    this.writer!.put(kind, queue, id, this.stamp(), arg);
  }

  /**
   * Whether packet `seq` (a u32) is traced: its block (seq >>> log2 sampleBlock) is a multiple
   * of everyN; with blocks of 1, seq % everyN === 0. The same in every thread.
   */
  sampled(seq: number): boolean {
    // A division costs ~10 ns per packet; this is two ALU steps: the low bits of everyN's power
    // of two must be zero, and (b >> k) times the inverse of the odd part must stay below
    // 2^32 / odd (Granlund–Montgomery divisibility test). limit −1 means "never".
    const b = seq >>> this.blockShift;
    return (b & this.lowMask) === 0 && (Math.imul(b >>> this.shift, this.oddInverse) >>> 0) <= this.limit;
  }

  /**
   * The first packet identity ≥ `seq` (a u32) that is traced, wrapping past 2^32 − 1 to 0;
   * −1 when tracing is off or per-packet points are not recorded. A hot loop whose identities
   * count up keeps this in a local and compares, so a packet that is not traced costs one
   * comparison and no call (see the stream workload).
   */
  nextSampled(seq: number): number {
    // Small enough to be inlined at the call site: every packet traced is the hot case.
    return this.everyN === 1 ? seq >>> 0 : this.nextSampledSlow(seq);
  }

  private nextSampledSlow(seq: number): number {
    const n = this.everyN;
    if (this.writer === null || !(n >= 1)) return -1;
    const s = seq >>> 0;
    const b = s >>> this.blockShift; // s's block
    const r = b % n;
    if (r === 0) return s; // inside a kept block
    const next = (b + n - r) * this.sampleBlock; // the first identity of the next kept block
    return next > 0xffff_ffff ? 0 : next; // block 0 is kept after a wrap past 2^32 − 1
  }

  /**
   * Reads the clock now, so the points written so far are timed before this moment, and
   * forgets the kept-point counts. Call where a loop switches its trace calls off or on (the
   * stream's traceToggleMs): without it, untimed points would be spread over the untraced
   * stretch, and the points skipped during it would be counted as if traced around.
   */
  mark(): void {
    if (this.writer === null) return;
    this.stamp();
    this.keptTo.fill(-1);
  }

  /** Clock reads this tracer made (what tracing costs beyond writing records). */
  clockReads = 0;

  /** Records dropped because this thread's buffer was full. */
  get dropped(): number {
    return this.writer?.dropped ?? 0;
  }

  /** Publishes every record written so far; call when the side ends. */
  flush(): void {
    if (this.writer === null) return;
    this.stamp();
    this.writer.flush();
  }

  // ---- driver (guest) points ----

  /**
   * The driver starts building packet `seq`. Returns whether `seq` is traced, so a workload can
   * remember it (per descriptor head) and skip the reap call for packets that are not.
   */
  add(seq: number, queue = 0): boolean {
    if (!this.sampled(seq)) return false;
    this.batchSampled = true;
    this.point(TraceKind.Add, queue, seq, 0);
    return true;
  }

  /**
   * Reads the clock for packet `seq`'s add when the packet is only certain later (a frame whose
   * building may still be cancelled): returns the time to pass to addAt, or −1 when `seq` is not
   * sampled. Stamps queued end points like every clock read.
   */
  addTime(seq: number): number {
    return this.sampled(seq) ? this.stamp() : -1;
  }

  /** Records packet `seq`'s add at `tNs` from addTime (nothing when it is negative). */
  addAt(seq: number, tNs: number, queue = 0): void {
    if (tNs < 0 || this.writer === null) return;
    this.batchSampled = true;
    this.writer.put(TraceKind.Add, queue, seq, tNs, 0);
  }

  /** The driver is about to publish `entries` new avail entries (call before the store). */
  publish(entries: number, queue = 0): void {
    this.publishSampled = this.batchSampled;
    if (!this.batchSampled) return;
    this.batchSampled = false;
    this.release(TraceKind.Publish, queue, entries);
  }

  /** The driver is about to ring the device's doorbell for the batch just published. */
  kick(queue = 0): void {
    if (!this.publishSampled) return;
    this.publishSampled = false;
    this.writer!.put(TraceKind.Kick, queue, NO_ID, this.stamp(), 0);
  }

  /**
   * The driver returned from waiting on its doorbell. `slept`: the wait blocked in the kernel
   * (Doorbell stats.sleeps moved); a sampled run records only such wakes (see wake()).
   */
  driverWake(queue = 0, slept = true): void {
    this.wake(TraceKind.DriverWake, queue, slept);
  }

  /**
   * The driver reaped packet `seq`. `fetch` is the queue's count of used.idx reads that found
   * new entries (DriverQueue.usedFetches), which lets an interpolated reap read the clock when
   * it is the first after such a read; −1 (unknown) reads the clock.
   */
  reap(seq: number, lenBytes: number, queue = 0, fetch = -1): void {
    if (!this.sampled(seq)) return;
    if (this.wakeNs >= 0) this.writeWake(queue);
    this.fetchedPoint(TraceKind.Reap, queue, seq, lenBytes, fetch);
  }

  // ---- device (host) points ----

  /** The device returned from waiting on its doorbell; `slept` as in driverWake. */
  deviceWake(queue = 0, slept = true): void {
    this.wake(TraceKind.DeviceWake, queue, slept);
  }

  /**
   * The device popped packet `seq` (call right after the pop, before the backend works).
   * `fetch` is the queue's count of avail.idx reads that found new entries
   * (DeviceQueue.availFetches); see reap. Returns whether `seq` is traced (done may be skipped
   * when it is not).
   */
  pop(seq: number, queue = 0, fetch = -1): boolean {
    if (!this.sampled(seq)) return false;
    if (this.wakeNs >= 0) this.writeWake(queue);
    this.fetchedPoint(TraceKind.Pop, queue, seq, 0, fetch);
    return true;
  }

  /** The backend is done with packet `seq`. */
  done(seq: number, lenBytes: number, queue = 0): void {
    if (!this.sampled(seq)) return;
    this.usedSampled = true;
    this.point(TraceKind.Done, queue, seq, lenBytes);
  }

  /**
   * A wake: written at once when every packet is traced, else remembered and written before
   * the next sampled packet (so a sampled run writes the wakes of its sampled packets only).
   * A sampled run does not even read the clock for a wait that never blocked (resolved while
   * spinning, most waits at full rate): that read per sleep/wake turn, on the path that hands
   * the ring back and forth, cost ~5 % of the 1500 B stream's throughput (BENCHMARKS.md).
   */
  private wake(kind: number, queue: number, slept: boolean): void {
    if (this.writer === null || (!slept && this.everyN !== 1)) return;
    const t = this.stamp();
    if (this.everyN === 1) this.writer.put(kind, queue, NO_ID, t, 0);
    else {
      this.wakeKind = kind;
      this.wakeNs = t;
    }
  }

  private writeWake(queue: number): void {
    const w = this.writer!;
    // Points written or counted since the wake are later than it: they get a time from a fresh
    // read first (put() would give them the older wake time, below their lower bound). The
    // wake record then follows records with later times; the timeline builder expects that.
    if (w.pending) this.stamp();
    w.put(this.wakeKind, queue, NO_ID, this.wakeNs, 0);
    this.wakeNs = -1;
  }

  /** The device is about to publish `entries` used entries (call before the store). */
  used(entries: number, queue = 0): void {
    this.irqSampled = this.usedSampled;
    if (!this.usedSampled) return;
    this.usedSampled = false;
    this.release(TraceKind.Used, queue, entries);
  }

  /** The device is about to ring the driver's doorbell for the used entries just published. */
  interrupt(queue = 0): void {
    if (!this.irqSampled) return;
    this.irqSampled = false;
    this.writer!.put(TraceKind.Interrupt, queue, NO_ID, this.stamp(), 0);
  }

  /**
   * A publish or used: stamped, and the stamp kept as this side's release stamp for the other
   * side's fetched(). Plain store, published by the avail.idx or used.idx store the caller
   * makes next (release; the other side's acquire of that index pairs with it).
   */
  private release(kind: number, queue: number, entries: number): void {
    const t = this.stamp();
    if (this.ownRelease !== null) this.ownRelease[queue] = t;
    this.writer!.put(kind, queue, NO_ID, t, entries);
  }

  // ---- runs of per-packet points (interpolated stamping: see `batched`) ----

  /**
   * True with interpolated stamping. A hot loop may then record its per-packet points in
   * runs, once per batch, instead of a call per packet: the records and their times are the
   * same (interpolation goes by write order), but a run of consecutive identities is written
   * as one two-slot run record (TraceWriter.putRun), not a record each. Sampled 1 in N, a run
   * keeps only its sampled packets and counts the others' points (skipPoints), so a sampled
   * point is timed as precisely as with every packet traced, and nothing is called per packet.
   * The loop must call fetched() right after an acquire that saw new entries (the first pop or
   * reap of a fresh index read), after recording the run before it; see the stream workload.
   */
  get batched(): boolean {
    return this.runs;
  }

  /**
   * Call right after an acquire that saw the other side's new entries on `queue` (a fresh
   * avail.idx or used.idx read), before recording the points that depend on them: later points
   * are then never timed before the other side's release. Instead of reading the clock it uses
   * the other side's release stamp (its publish or used time, stored before the release this
   * acquire saw): when that is later than this thread's last read, the untimed points so far
   * are timed up to it and it becomes the lower bound of the next ones. Those earlier points
   * may come out early, never before their own lower bound, so every causal pair holds.
   * Without shared release stamps it reads the clock.
   */
  fetched(queue = 0): void {
    const w = this.writer;
    if (w === null) return;
    const peer = this.peerRelease;
    if (peer === null) {
      this.stamp();
      return;
    }
    // Plain load after the caller's acquire (pairs with the other side's store before its
    // release). An aligned Float64Array access does not tear.
    const p = peer[queue]!;
    if (p > this.lastNs) {
      if (w.pending) w.stampUntimed(this.lastNs, p);
      this.lastNs = p;
    }
  }

  /** Add points of packets firstId, firstId + 1, … (u32), in that order (batched runs only). */
  addRange(firstId: number, count: number, queue = 0): void {
    if (!this.runs || count <= 0) return;
    if (this.rangeRun(TraceKind.Add, 0, queue, firstId, count, 0)) this.batchSampled = true;
  }

  /** Pop and done points of packets firstId, firstId + 1, …, each pop followed by its done (batched runs only). */
  popDoneRange(firstId: number, count: number, lenBytes: number, queue = 0): void {
    if (!this.runs || count <= 0) return;
    if (this.rangeRun(TraceKind.Pop, TraceKind.Done, queue, firstId, count, lenBytes)) this.usedSampled = true;
  }

  /** Reap points of the packets ids[0..count), in that order (batched runs only). */
  reapRun(ids: Uint32Array, count: number, lenBytes: number, queue = 0): void {
    if (!this.runs || count <= 0) return;
    const w = this.writer!;
    if (this.everyN === 1) {
      // One run per stretch of consecutive identities (a FIFO device returns them in order).
      let start = 0;
      for (let k = 1; k <= count; k++) {
        if (k === count || ids[k] !== ((ids[k - 1]! + 1) >>> 0)) {
          w.putRun(TraceKind.Reap, 0, queue, ids[start]!, k - start, lenBytes);
          start = k;
        }
      }
    } else {
      // Consecutive identities (the usual FIFO case): the sampled ones by arithmetic.
      const first = ids[0]!;
      let k = 1;
      while (k < count && ids[k] === ((first + k) >>> 0)) k++;
      if (k === count) {
        this.rangeRun(TraceKind.Reap, 0, queue, first, count, lenBytes);
        return;
      }
      let done = 0; // reaps accounted for (written or skipped)
      for (let k = 0; k < count; k++) {
        if (!this.sampled(ids[k]!)) continue;
        w.skipPoints(k - done);
        w.putRun(TraceKind.Reap, 0, queue, ids[k]!, 1, lenBytes);
        done = k + 1;
      }
      w.skipPoints(count - done);
    }
    if (w.untimed >= UNTIMED_MAX) this.stamp();
  }

  /** Writes the range as a run, or (sampled) a run per sampled packet with the rest skipped; true when any was written. */
  private rangeRun(kind: number, kind2: number, queue: number, firstId: number, count: number, arg: number): boolean {
    const w = this.writer!;
    if (this.everyN === 1) {
      w.putRun(kind, kind2, queue, firstId, count, arg);
      if (w.untimed >= UNTIMED_MAX) this.stamp();
      return true;
    }
    const per = kind2 === 0 ? 1 : 2; // points per packet
    const first = firstId >>> 0;
    // The identity of the next sampled packet: remembered from the kind's previous range when
    // this one continues it (no division per batch), else computed.
    let at = this.rangeFrom[kind] === first ? this.rangeAt[kind]! : this.nextSampledSlow(first);
    let done = 0; // packets of the range accounted for
    let wrote = false;
    const block = this.sampleBlock;
    for (;;) {
      const k = (at - first) >>> 0; // its place in the range (u32 wrap)
      if (k >= count) break;
      // The kept packets from `at` to the end of its block or of the range, whichever is first.
      const len = Math.min(block - (at & (block - 1)), count - k);
      w.skipPoints((k - done) * per);
      w.putRun(kind, kind2, queue, at, len, arg);
      wrote = true;
      done = k + len;
      at = this.nextSampledSlow(at + len); // the rest of this block (the range ended), or the next kept block
    }
    this.rangeFrom[kind] = (first + count) >>> 0;
    this.rangeAt[kind] = at;
    w.skipPoints((count - done) * per);
    if (w.untimed >= UNTIMED_MAX) this.stamp();
    return wrote;
  }

  // ---- kept points of sampled runs (interpolated stamping, 1 in N > 1: see `sparse`) ----

  /**
   * True when sampling 1 in N > 1 with interpolated stamps. A hot loop may then call the
   * tracer only for the packets it keeps (identity === nextSampled, a comparison per packet)
   * and for the batches that hold one, instead of a range call per batch: a kept point is
   * written untimed, with its thread's *ordinal* of that kind of point (its count of adds,
   * pops or reaps), and the points skipped since the kind's previous call are counted from the
   * ordinals, so the kept point keeps its place in the even spread between two clock reads.
   * Skipped points must be counted (addsUpTo / popsUpTo / reapsUpTo) before the time bound
   * moves past them, else they are spread after it and squeeze the next kept points against
   * the following read: before publish and used (the batch's points after its last kept
   * one), before a kept point of another kind that they preceded, before fetched() at the
   * first kept pop or reap since a fresh index read (the points up to that acquire:
   * DeviceQueue.popsSinceFetch, DriverQueue.reapsSinceFetch), and before the wake of a kernel
   * sleep. Order and bounds are exact as everywhere; a read with no count before it (a sampled
   * event) may have skipped points that preceded it spread after it.
   */

  /** Packet `id` (kept) is added; `ordinal` counts this thread's adds (the stream's seq). */
  addKept(id: number, ordinal: number, queue = 0): void {
    this.batchSampled = true;
    this.keep(TraceKind.Add, 1, queue, id, ordinal, 0);
  }

  /** The batch's adds end before add `ordinal` (call before publish when the batch kept one). */
  addsUpTo(ordinal: number): void {
    this.skipTo(TraceKind.Add, 1, ordinal);
  }

  /** Packet `id` (kept) is popped; `ordinal` counts this thread's pops. Its done follows with doneKept. */
  popKept(id: number, ordinal: number, queue = 0): void {
    if (this.wakeNs >= 0) this.writeWake(queue);
    this.keep(TraceKind.Pop, 2, queue, id, ordinal, 0); // a pop and a done per packet
  }

  /** The backend is done with kept packet `id` (popped with popKept just before). */
  doneKept(id: number, lenBytes: number, queue = 0): void {
    this.usedSampled = true;
    const w = this.writer!;
    w.putUntimed(TraceKind.Done, queue, id, lenBytes);
    if (w.untimed >= UNTIMED_MAX) this.stamp();
  }

  /** The batch's pops (and dones) end before pop `ordinal` (call before used when the batch kept one). */
  popsUpTo(ordinal: number): void {
    this.skipTo(TraceKind.Pop, 2, ordinal);
  }

  /** Packet `id` (kept) is reaped; `ordinal` counts this thread's reaps. */
  reapKept(id: number, ordinal: number, lenBytes: number, queue = 0): void {
    if (this.wakeNs >= 0) this.writeWake(queue);
    this.keep(TraceKind.Reap, 1, queue, id, ordinal, lenBytes);
  }

  /** This round of reaps ends before reap `ordinal` (call after the reaps when one was kept). */
  reapsUpTo(ordinal: number): void {
    this.skipTo(TraceKind.Reap, 1, ordinal);
  }

  /** Counts the points of `kind` skipped up to `ordinal` (u32 counters; `per` points per packet), then writes the kept one untimed. */
  private keep(kind: number, per: number, queue: number, id: number, ordinal: number, arg: number): void {
    this.skipTo(kind, per, ordinal);
    // The kept packet is counted too, unless its ordinal was behind the count (see skipTo).
    if (this.keptTo[kind] === ordinal >>> 0) this.keptTo[kind] = (ordinal + 1) >>> 0;
    const w = this.writer!;
    w.putUntimed(kind, queue, id, arg);
    if (w.untimed >= UNTIMED_MAX) this.stamp();
  }

  private skipTo(kind: number, per: number, ordinal: number): void {
    const from = this.keptTo[kind]!;
    const to = ordinal >>> 0;
    if (from < 0) {
      this.keptTo[kind] = to; // the first call: nothing known before it
      return;
    }
    const skipped = (to - from) >>> 0;
    // An ordinal behind the count (u32 distance ≥ 2^31) counts nothing and leaves the count
    // where it is, so no point is counted twice when the caller's ordinals move on.
    if (skipped >= 0x8000_0000) return;
    this.keptTo[kind] = to;
    this.writer!.skipPoints(skipped * per);
  }

  // ---- policy and health events (recorded whenever their level is enabled) ----

  /** A mitigation timer was armed for `intervalNs`. */
  timerArmed(intervalNs: number, queue = 0): void {
    this.event(TraceKind.TimerArmed, queue, NO_ID, intervalNs);
  }

  /** A mitigation timer fired `latenessNs` after its deadline. */
  timerFired(latenessNs: number, queue = 0): void {
    this.event(TraceKind.TimerFired, queue, NO_ID, latenessNs);
  }

  /** Notifications (kicks on the device side, interrupts on the driver side) switched on or off. */
  notifications(enabled: boolean, queue = 0): void {
    const kind = enabled ? TraceKind.NotifyEnabled : TraceKind.NotifyDisabled;
    // Sampled runs: the 1-in-N countdown first, before any other work (one per sleep turn).
    if (this.everyN > 1 && --this.eventCountdown[kind]! > 0) return;
    this.record(kind, queue, NO_ID, 0);
  }

  /** No descriptor or buffer was free; `inFlight` entries were outstanding. */
  ringFull(inFlight: number, queue = 0): void {
    this.event(TraceKind.RingFull, queue, NO_ID, inFlight);
  }

  /** A packet was dropped (seq when known). */
  drop(reason: DropReason, seq = NO_ID, queue = 0): void {
    this.event(TraceKind.Drop, queue, seq, reasonCode(reason));
  }

  /** An error happened (seq when it concerns one packet). */
  error(code: TraceErrorCode, seq = NO_ID, queue = 0): void {
    this.event(TraceKind.Error, queue, seq, errorCode(code));
  }

  /**
   * Any event, by kind, if its level is enabled. When packets are sampled 1 in N > 1, events
   * at debug level and below (notification switches, timer armed/fired: one per sleep or
   * timer, often every few packets) are sampled too, 1 in N of each kind: each recorded one
   * costs a clock read, and the run's counters have all of them.
   */
  event(kind: TraceKind, queue: number, id: number, arg: number): void {
    if (this.writer === null) return;
    // Countdown per kind (1 in N without a division).
    if (this.everyN > 1 && KIND_INFO[kind]!.level <= TRACE_LEVELS.debug && --this.eventCountdown[kind]! > 0) return;
    this.record(kind, queue, id, arg);
  }

  /** Writes an event if its level is enabled (sampling already decided); restarts its countdown. */
  private record(kind: TraceKind, queue: number, id: number, arg: number): void {
    const w = this.writer;
    if (w === null) return;
    this.eventCountdown[kind] = this.everyN;
    if (KIND_INFO[kind]!.level < this.level) return;
    w.put(kind, queue, id >>> 0, this.stamp(), arg);
  }
}

function reasonCode(r: DropReason): number {
  const i = DROP_REASONS.indexOf(r);
  return i < 0 ? 0 : i;
}

function errorCode(c: TraceErrorCode): number {
  const i = ERROR_CODES.indexOf(c);
  return i < 0 ? 0 : i;
}
