// One direction of notification between two threads (a "kick" guest→host or an "irq"
// host→guest): ring() on one side, wait*() on the other. Owns the ringing/waiting protocol on a
// doorbell slot's sequence and sleepers words, the wait strategies (block, spin, hybrid), the
// precise-deadline mode and the per-thread counters. Does not own the memory layout (layout.ts)
// or the stop word's writer (block.ts); it only reads the stop word.
//
// Protocol (Dekker over two SeqCst words, so one side always sees the other):
//   ringer: Atomics.add(seq, 1); if (Atomics.load(sleepers) > 0) Atomics.notify(seq)
//   waiter: Atomics.add(sleepers, 1); cur = Atomics.load(seq); if cur not past seen:
//           Atomics.wait(seq, cur); Atomics.sub(sleepers, 1)
// Either the ringer's load of sleepers comes after the waiter's add (the ringer notifies) or the
// waiter's load of seq comes after the ringer's add (the waiter does not sleep). Atomics.wait
// re-checks seq == cur inside the futex, so a notify that arrives before the waiter is queued is
// not lost either. Waits test "seq moved past seen" (wrap-aware), never equality with a target.
//
// Times are on the calling thread's performance.now() clock (ms). Worker threads have their own
// time origin, so never pass a deadline from one thread to another.
//
// Runs in Node workers and browser Web Workers: no `node:` imports. Atomics.wait (block, hybrid,
// waitUntil) is unavailable on a browser's main thread; use waitAsync there.

import { DoorbellError } from './errors.js';
import { LatenessRecorder } from './lateness.js';
import {
  CTRL_COUNT,
  CTRL_MAGIC,
  CTRL_STOP,
  CTRL_TABLE,
  CONTROL_MAGIC,
  DOORBELL_MAGIC,
  DOORBELL_SLOT_BYTES,
  SLOT_CONTROL,
  SLOT_INDEX,
  SLOT_MAGIC,
  SLOT_SEQ,
  SLOT_SLEEPERS,
  SLOT_WORDS,
  checkPlacement,
  requireShared,
} from './layout.js';

/**
 * How wait() spends the time before the doorbell rings.
 * - `block`: declare sleeping and Atomics.wait at once (≈25 µs round trip here, no CPU).
 * - `spin`: poll the sequence without ever sleeping (≈0.5 µs round trip, a whole vCPU). Never
 *   use it when both threads can share one vCPU.
 * - `hybrid`: poll `spinIterations` times (or `spinUs`), then block. The budget must exceed the
 *   partner's response time: 2000 iterations works on the project VM, 200 collapses into `block`.
 */
export type WaitStrategy = 'block' | 'spin' | 'hybrid';

/** Why a wait returned. `stopped` wins over `rung` when both hold. */
export type WaitResult = 'rung' | 'timeout' | 'stopped';

export interface DoorbellOptions {
  /** Default `hybrid`. */
  strategy?: WaitStrategy;
  /** Hybrid: poll iterations before sleeping. Default 2000. */
  spinIterations?: number;
  /** Hybrid: also stop polling after this many µs. Default Infinity (iterations alone decide). */
  spinUs?: number;
  /**
   * waitUntil: stop blocking this many µs before the deadline and spin the rest. Default 150:
   * Atomics.wait(timeout) wakes 46–115 µs late here (p50, depending on timer slack).
   */
  guardUs?: number;
  /** Receives the lateness (achieved − requested, ns) of every wait that ends in `timeout`. */
  lateness?: LatenessRecorder | null;
  /**
   * waitAsync: keep a ref'd interval while a wait is pending. Default true. In Node 20 a pending
   * Atomics.waitAsync does not keep a worker alive: without this handle the worker exits (code 13,
   * unsettled top-level await) and a partner blocked on it hangs.
   */
  keepAlive?: boolean;
}

export const DEFAULT_SPIN_ITERATIONS = 2000;
export const DEFAULT_GUARD_US = 150;

/** Per-thread counters of one Doorbell object (not shared: each side counts its own work). */
export class DoorbellStats {
  /** ring() calls. */
  rings = 0;
  /** Atomics.notify calls issued by ring() (a peer had declared itself asleep). */
  notifies = 0;
  /** wait(), waitUntil() and waitAsync() calls. */
  waits = 0;
  /** Times the thread really blocked in Atomics.wait / waitAsync (not counting 'not-equal'). */
  sleeps = 0;
  /** Blocks ended by a notify. */
  wakeups = 0;
  /** Wakeups that found the sequence unchanged and no stop (then the waiter sleeps again). */
  spuriousWakeups = 0;
  /** Waits that returned `timeout`. */
  timeouts = 0;
  /** Waits that returned `stopped`. */
  stops = 0;
  /** Sum and maximum of achieved − requested over the waits that returned `timeout`, in ns. */
  latenessTotalNs = 0;
  latenessMaxNs = 0;

  reset(): void {
    this.rings = 0;
    this.notifies = 0;
    this.waits = 0;
    this.sleeps = 0;
    this.wakeups = 0;
    this.spuriousWakeups = 0;
    this.timeouts = 0;
    this.stops = 0;
    this.latenessTotalNs = 0;
    this.latenessMaxNs = 0;
  }

  /** A plain copy, safe to postMessage. */
  snapshot(): DoorbellStatsSnapshot {
    return {
      rings: this.rings,
      notifies: this.notifies,
      waits: this.waits,
      sleeps: this.sleeps,
      wakeups: this.wakeups,
      spuriousWakeups: this.spuriousWakeups,
      timeouts: this.timeouts,
      stops: this.stops,
      latenessTotalNs: this.latenessTotalNs,
      latenessMaxNs: this.latenessMaxNs,
    };
  }
}

export type DoorbellStatsSnapshot = {
  readonly [K in keyof DoorbellStats as DoorbellStats[K] extends number ? K : never]: number;
};

/** Atomics.waitAsync as in ES2024 (the project compiles against ES2023 typings). */
type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };
type WaitAsyncFn = (typedArray: Int32Array, index: number, value: number, timeoutMs?: number) => WaitAsyncResult;

const waitAsyncImpl: WaitAsyncFn | undefined = (Atomics as unknown as { waitAsync?: WaitAsyncFn }).waitAsync;

// Long enough never to fire; the interval only exists to hold the event loop open.
const KEEP_ALIVE_INTERVAL_MS = 0x3fffffff;
const noop = (): void => {};

// Fewest spin iterations between two clock reads (performance.now() costs ~45 ns, a load ~6),
// and the most (keeps the read index a small integer; a stride this long is never reached first).
const SPIN_CLOCK_MIN = 16;
const SPIN_CLOCK_MAX_STRIDE = 1 << 30;

/** True when `cur` lies after `seen` in wrap-around int32 order. */
export function seqPassed(cur: number, seen: number): boolean {
  return ((cur - seen) | 0) > 0;
}

export class Doorbell {
  readonly sab: SharedArrayBuffer;
  /** Byte offset of this doorbell's slot in `sab`. */
  readonly byteOffset: number;
  /** Byte offset of the control block whose stop word this doorbell watches. */
  readonly controlByteOffset: number;
  readonly stats = new DoorbellStats();
  /** The sequence value the last wait observed when it returned. */
  lastSeq = 0;

  private readonly slot: Int32Array;
  private readonly ctrl: Int32Array;
  private strategyValue: WaitStrategy = 'hybrid';
  private spinIterationsValue = DEFAULT_SPIN_ITERATIONS;
  private spinUsValue = Infinity;
  private guardMs = DEFAULT_GUARD_US / 1000;
  private recorder: LatenessRecorder | null = null;
  private keepAlive = true;

  /** Opens the doorbell that DoorbellBlock placed at `byteOffset` (any thread, same SAB). */
  static open(sab: SharedArrayBuffer, byteOffset: number, options: DoorbellOptions = {}): Doorbell {
    return new Doorbell(sab, byteOffset, options);
  }

  private constructor(buffer: SharedArrayBuffer, byteOffset: number, options: DoorbellOptions) {
    const sab = requireShared(buffer);
    checkPlacement(sab, byteOffset, DOORBELL_SLOT_BYTES, 'doorbell');
    const slot = new Int32Array(sab, byteOffset, SLOT_WORDS);
    if (slot[SLOT_MAGIC] !== DOORBELL_MAGIC) {
      throw new DoorbellError('not-initialised', byteOffset, 'no doorbell magic (was DoorbellBlock.init run?)');
    }
    const controlByteOffset = slot[SLOT_CONTROL]!;
    const index = slot[SLOT_INDEX]!;
    checkPlacement(sab, controlByteOffset, (CTRL_TABLE + 1) * 4, 'control block');
    const head = new Int32Array(sab, controlByteOffset, CTRL_TABLE);
    const count = head[CTRL_COUNT]!;
    // Pairs with the Atomics.store of the control magic at the end of DoorbellBlock.init().
    if (Atomics.load(head, CTRL_MAGIC) !== CONTROL_MAGIC || index < 0 || index >= count) {
      throw new DoorbellError('not-initialised', controlByteOffset, `no control block for doorbell ${byteOffset}`);
    }
    const ctrl = new Int32Array(sab, controlByteOffset, CTRL_TABLE + count);
    if (ctrl[CTRL_TABLE + index] !== byteOffset) {
      throw new DoorbellError('not-initialised', byteOffset, `control block does not list this doorbell`);
    }
    this.sab = sab;
    this.byteOffset = byteOffset;
    this.controlByteOffset = controlByteOffset;
    this.slot = slot;
    this.ctrl = ctrl;
    this.configure(options);
  }

  /** Changes wait options; fields not given keep their value. */
  configure(options: DoorbellOptions): void {
    const { strategy, spinIterations, spinUs, guardUs, lateness, keepAlive } = options;
    if (strategy !== undefined) {
      if (strategy !== 'block' && strategy !== 'spin' && strategy !== 'hybrid') {
        throw new DoorbellError('bad-option', this.byteOffset, `unknown wait strategy ${String(strategy)}`);
      }
      this.strategyValue = strategy;
    }
    if (spinIterations !== undefined) {
      if (!(spinIterations >= 0) || !Number.isInteger(spinIterations)) {
        throw new DoorbellError('bad-option', this.byteOffset, `spinIterations ${spinIterations} must be an integer ≥ 0`);
      }
      this.spinIterationsValue = spinIterations;
    }
    if (spinUs !== undefined) {
      if (!(spinUs >= 0)) throw new DoorbellError('bad-option', this.byteOffset, `spinUs ${spinUs} must be ≥ 0`);
      this.spinUsValue = spinUs;
    }
    if (guardUs !== undefined) {
      if (!(guardUs >= 0) || guardUs === Infinity) {
        throw new DoorbellError('bad-option', this.byteOffset, `guardUs ${guardUs} must be finite and ≥ 0`);
      }
      this.guardMs = guardUs / 1000;
    }
    if (lateness !== undefined) this.recorder = lateness;
    if (keepAlive !== undefined) this.keepAlive = keepAlive;
  }

  get strategy(): WaitStrategy {
    return this.strategyValue;
  }
  get spinIterations(): number {
    return this.spinIterationsValue;
  }
  get spinUs(): number {
    return this.spinUsValue;
  }
  get guardUs(): number {
    return this.guardMs * 1000;
  }
  get lateness(): LatenessRecorder | null {
    return this.recorder;
  }

  /** Current sequence value: pass it to a later wait as `seen`. */
  seq(): number {
    // Acquire: pairs with the Atomics.add in ring(); work published before that ring is visible.
    return Atomics.load(this.slot, SLOT_SEQ);
  }

  /** Number of waiters currently declared asleep on this doorbell. */
  sleepers(): number {
    // Pairs with the waiter's Atomics.add/sub of sleepers around its Atomics.wait.
    return Atomics.load(this.slot, SLOT_SLEEPERS);
  }

  /** True once the control block's stop word is set. */
  get stopped(): boolean {
    // Pairs with the Atomics.store of the stop word in DoorbellBlock.stop().
    return Atomics.load(this.ctrl, CTRL_STOP) !== 0;
  }

  /**
   * Bumps the sequence and wakes the peer only if it declared itself asleep. Returns true when
   * it issued Atomics.notify. Allocation-free.
   */
  ring(): boolean {
    this.stats.rings++;
    // SeqCst RMW: publishes everything written before the ring (release) and orders the load of
    // sleepers below after it (pairs with the waiter's add of sleepers, then load of seq).
    Atomics.add(this.slot, SLOT_SEQ, 1);
    // Pairs with Atomics.add(sleepers, 1) in block()/waitAsync(): if we read 0 here, the
    // waiter's re-check of seq will see our add and it will not sleep.
    if (Atomics.load(this.slot, SLOT_SLEEPERS) === 0) return false;
    this.stats.notifies++;
    // Wakes the waiters queued on seq (pairs with their Atomics.wait / waitAsync on seq).
    Atomics.notify(this.slot, SLOT_SEQ);
    return true;
  }

  /**
   * Waits until the sequence moves past `seen`, the absolute `deadlineMs` (performance.now()
   * clock) passes, or the engine stops. With `block`/`hybrid` the deadline is an Atomics.wait
   * timeout, which wakes tens of µs late here; use waitUntil() for precise deadlines.
   */
  wait(seen: number, deadlineMs: number = Infinity): WaitResult {
    return this.waitCore(seen, deadlineMs, 0);
  }

  /**
   * Precise-deadline wait for mitigation timers: block (per the strategy) until `guardUs` before
   * `deadlineMs`, then spin to the deadline. Same results as wait(); lateness of a `timeout` goes
   * to the stats and the lateness recorder. Spends up to guardUs of CPU per expiry.
   */
  waitUntil(seen: number, deadlineMs: number): WaitResult {
    return this.waitCore(seen, deadlineMs, this.guardMs);
  }

  /**
   * Promise-returning wait for a thread that must keep its event loop (an emulator's main
   * thread). Uses Atomics.waitAsync; never spins. Deadlines are coarse: V8 fires waitAsync
   * timeouts under 1 ms at once and rounds longer ones to whole ms, so each sleep is at least
   * 1 ms and a `timeout` may be up to ~1–2 ms late. While pending it holds a ref'd interval
   * (see DoorbellOptions.keepAlive) so a Node worker does not exit under it.
   */
  async waitAsync(seen: number, deadlineMs: number = Infinity): Promise<WaitResult> {
    const waitAsyncFn = waitAsyncImpl;
    if (waitAsyncFn === undefined) {
      throw new DoorbellError('unsupported', this.byteOffset, 'Atomics.waitAsync is not available here');
    }
    if (deadlineMs !== deadlineMs) throw new DoorbellError('bad-option', this.byteOffset, 'deadlineMs is NaN');
    const stats = this.stats;
    stats.waits++;
    for (;;) {
      const early = this.check(seen);
      if (early !== null) return early;
      let timeoutMs = Infinity;
      if (deadlineMs !== Infinity) {
        const nowMs = performance.now();
        if (nowMs >= deadlineMs) return this.timedOut(deadlineMs, nowMs);
        timeoutMs = Math.max(1, Math.ceil(deadlineMs - nowMs));
      }
      // Declare sleeping: pairs with the load of sleepers in ring() (same Dekker pair as block()).
      Atomics.add(this.slot, SLOT_SLEEPERS, 1);
      // Re-check after declaring: pairs with the Atomics.add of seq in ring() and stop().
      const cur = Atomics.load(this.slot, SLOT_SEQ);
      if (seqPassed(cur, seen) || this.stopped) {
        // Undeclare: pairs with the load of sleepers in ring().
        Atomics.sub(this.slot, SLOT_SLEEPERS, 1);
        continue;
      }
      // Sleeps while seq still equals cur (pairs with Atomics.notify in ring() and stop()).
      const res = waitAsyncFn(this.slot, SLOT_SEQ, cur, timeoutMs);
      if (!res.async) {
        // Undeclare: pairs with the load of sleepers in ring().
        Atomics.sub(this.slot, SLOT_SLEEPERS, 1);
        continue;
      }
      stats.sleeps++;
      const handle = this.keepAlive ? setInterval(noop, KEEP_ALIVE_INTERVAL_MS) : undefined;
      let outcome: 'ok' | 'timed-out';
      try {
        outcome = await res.value;
      } finally {
        if (handle !== undefined) clearInterval(handle);
        // Undeclare: pairs with the load of sleepers in ring() (a late reader notifies in vain).
        Atomics.sub(this.slot, SLOT_SLEEPERS, 1);
      }
      if (outcome === 'ok') this.countWakeup(cur);
    }
  }

  /** Clears the counters of this object (the peer's are its own). */
  resetStats(): void {
    this.stats.reset();
  }

  // The three phases: optional spin, optional block until deadline − guard, spin to deadline.
  private waitCore(seen: number, deadlineMs: number, guardMs: number): WaitResult {
    if (deadlineMs !== deadlineMs) throw new DoorbellError('bad-option', this.byteOffset, 'deadlineMs is NaN');
    this.stats.waits++;
    let res: WaitResult | null = null;
    const strategy = this.strategyValue;
    if (strategy === 'spin') {
      res = this.spin(seen, deadlineMs, Infinity, Infinity);
    } else {
      if (strategy === 'hybrid') res = this.spin(seen, deadlineMs, this.spinIterationsValue, this.spinUsValue);
      if (res === null) res = this.block(seen, deadlineMs - guardMs);
      if (res === null && guardMs > 0) res = this.spin(seen, deadlineMs, Infinity, Infinity);
    }
    if (res !== null) return res;
    return this.timedOut(deadlineMs, performance.now());
  }

  // Returns the early result (stopped or rung) or null to keep waiting. Counts returns.
  private check(seen: number): WaitResult | null {
    // Acquire: pairs with the Atomics.add of seq in ring() and stop().
    const cur = Atomics.load(this.slot, SLOT_SEQ);
    this.lastSeq = cur;
    // Read after seq: stop() stores the stop word before bumping seq, so a seq bump caused by
    // stop is always seen together with the stop word (pairs with DoorbellBlock.stop()).
    if (Atomics.load(this.ctrl, CTRL_STOP) !== 0) {
      this.stats.stops++;
      return 'stopped';
    }
    return seqPassed(cur, seen) ? 'rung' : null;
  }

  // Polls until rung/stopped (result), or until the iteration budget, the µs budget or the
  // deadline runs out (null). Allocation-free once optimized except for its clock reads
  // (performance.now() returns a fresh heap number, 16 B, in Node 20), so it reads the clock
  // sparingly: once on entry, once after SPIN_CLOCK_MIN iterations, then each time at the
  // iteration where, at the rate of the last stride, half the time left would be spent. The reads
  // close in on the end geometrically (about log2(time left / SPIN_CLOCK_MIN iterations) of
  // them) and the last ones are SPIN_CLOCK_MIN iterations apart, as precise as a fixed stride:
  // a 2000-iteration hybrid spin with a far deadline reads the clock twice, not 125 times.
  private spin(seen: number, deadlineMs: number, maxIterations: number, maxUs: number): WaitResult | null {
    let endMs = deadlineMs;
    let lastMs = 0;
    let lastI = 0;
    // Iteration of the next clock read; never reached when neither a deadline nor a µs budget applies.
    let nextRead = Infinity;
    if (endMs !== Infinity || maxUs !== Infinity) {
      lastMs = performance.now();
      if (maxUs !== Infinity) endMs = Math.min(endMs, lastMs + maxUs / 1000);
      if (lastMs >= endMs) return this.check(seen);
      nextRead = SPIN_CLOCK_MIN;
    }
    const slot = this.slot;
    const ctrl = this.ctrl;
    for (let i = 0; i < maxIterations; i++) {
      // Acquire: pairs with the Atomics.add of seq in ring() and stop().
      const cur = Atomics.load(slot, SLOT_SEQ);
      // Pairs with the Atomics.store of the stop word in DoorbellBlock.stop().
      if (Atomics.load(ctrl, CTRL_STOP) !== 0 || seqPassed(cur, seen)) return this.check(seen);
      if (i === nextRead) {
        const nowMs = performance.now();
        if (nowMs >= endMs) return null;
        // The last stride (i − lastI polls) took nowMs − lastMs: aim the next read at half the
        // time left at that rate (no measurable time: the shortest stride). Only the last
        // stride counts, so a preemption shortens one stride, not the rest of the spin.
        const tookMs = nowMs - lastMs;
        const ahead = tookMs > 0 ? Math.floor(((endMs - nowMs) * (i - lastI)) / (2 * tookMs)) : 0;
        lastMs = nowMs;
        lastI = i;
        nextRead = i + (ahead > SPIN_CLOCK_MIN ? Math.min(ahead, SPIN_CLOCK_MAX_STRIDE) : SPIN_CLOCK_MIN);
      }
    }
    return null;
  }

  // Declares sleeping and blocks in Atomics.wait until rung/stopped (result) or untilMs (null).
  private block(seen: number, untilMs: number): WaitResult | null {
    const slot = this.slot;
    const stats = this.stats;
    for (;;) {
      const early = this.check(seen);
      if (early !== null) return early;
      let timeoutMs = Infinity;
      if (untilMs !== Infinity) {
        const nowMs = performance.now();
        if (nowMs >= untilMs) return null;
        timeoutMs = untilMs - nowMs;
      }
      // Declare sleeping: pairs with the load of sleepers in ring(). SeqCst, so the re-check of
      // seq below cannot be ordered before it.
      Atomics.add(slot, SLOT_SLEEPERS, 1);
      // Re-check after declaring: pairs with the Atomics.add of seq in ring() and stop(); the
      // stop word pairs with the store in DoorbellBlock.stop().
      const cur = Atomics.load(slot, SLOT_SEQ);
      if (seqPassed(cur, seen) || Atomics.load(this.ctrl, CTRL_STOP) !== 0) {
        // Undeclare: pairs with the load of sleepers in ring().
        Atomics.sub(slot, SLOT_SLEEPERS, 1);
        continue;
      }
      // Sleeps while seq still equals cur (pairs with Atomics.notify in ring() and stop()).
      const outcome = Atomics.wait(slot, SLOT_SEQ, cur, timeoutMs);
      // Undeclare: pairs with the load of sleepers in ring() (a late reader notifies in vain).
      Atomics.sub(slot, SLOT_SLEEPERS, 1);
      if (outcome === 'not-equal') continue;
      stats.sleeps++;
      if (outcome === 'ok') this.countWakeup(cur);
    }
  }

  private countWakeup(sleptOn: number): void {
    this.stats.wakeups++;
    // Pairs with ring()/stop(): a notify normally follows a seq bump; one without is spurious
    // (a late notify meant for an earlier sleep, or a notify from outside the protocol).
    if (Atomics.load(this.slot, SLOT_SEQ) === sleptOn && Atomics.load(this.ctrl, CTRL_STOP) === 0) {
      this.stats.spuriousWakeups++;
    }
  }

  private timedOut(deadlineMs: number, nowMs: number): WaitResult {
    const latenessNs = (nowMs - deadlineMs) * 1e6;
    const stats = this.stats;
    stats.timeouts++;
    stats.latenessTotalNs += latenessNs;
    if (latenessNs > stats.latenessMaxNs) stats.latenessMaxNs = latenessNs;
    if (this.recorder !== null) this.recorder.record(latenessNs);
    return 'timeout';
  }
}
