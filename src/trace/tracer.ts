// The per-thread tracer a processor calls at its trace points. A workload keeps
// `const tracing = ctx.tracer.enabled` in a local and guards every call with `if (tracing)`, so
// with tracing off the hot path pays one cached boolean test and nothing else.
//
// Packet identity is the workload's sequence number (carried in the payload, so both threads
// see the same one). Sampling "1 in N" keeps packets with seq % N === 0, which both threads
// decide alone. Batch events (publish, kick, wakes, used, interrupt) are recorded only when the
// batch holds a sampled packet; wakes are remembered and written at the next sampled packet, so
// a run sampled 1 in 100 pays for about 1 packet in 100. Runs in a browser Web Worker.
//
// Reading the clock costs ~60 ns here (limits-measured.md: a packet costs well under 1 µs), so
// when every packet is traced each thread reads it once per packet, not twice: the end points
// `done` and `reap` are queued unstamped and take the time of the thread's next clock read (the
// next pop, add, publish, used, event or flush). They are late by the work in between (an
// addUsed and a pop; the rest of a run of reaps) and never early, which keeps every cross-thread
// pair causal. A workload must therefore make a clock-reading call before it blocks (stream
// records `notifications(true)` before every wait). Sampled 1 in N > 1, end points are stamped
// at once: the next clock read may be N packets away.

import { TraceWriter } from './buffer.js';
import { clockOffsetNs, type TraceClockOrigin } from './clock.js';
import { DROP_REASONS, ERROR_CODES, KIND_INFO, NO_ID, TraceKind, type DropReason, type TraceErrorCode } from './schema.js';

/** What a processor receives to attach its tracer (plain data, survives structured clone). */
export interface TracerSetup {
  sab: SharedArrayBuffer;
  origin: TraceClockOrigin;
  /** Per-packet points: 0 = none, 1 = every packet, N = packets with seq % N === 0. */
  everyN: number;
  /** Lowest level recorded (pino numbers: trace 10 … error 50). */
  level: number;
}

/** End points that may wait for a clock read; more are stamped at once. */
const PENDING_MAX = 1024;

export class Tracer {
  /** Master switch: false for the no-op tracer. Cache it in a local on hot paths. */
  readonly enabled: boolean;
  private readonly writer: TraceWriter | null;
  private readonly offsetNs: number;
  private readonly everyN: number;
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
  // End points waiting for the next clock read (see the file comment).
  private readonly pendMeta = new Uint16Array(PENDING_MAX); // kind | queue << 8
  private readonly pendId = new Uint32Array(PENDING_MAX);
  private readonly pendArg = new Float64Array(PENDING_MAX);
  private pendN = 0;

  constructor(setup: TracerSetup | null) {
    this.enabled = setup !== null;
    this.writer = setup === null ? null : new TraceWriter(setup.sab);
    this.offsetNs = setup === null ? 0 : clockOffsetNs(setup.origin);
    this.everyN = setup === null ? 0 : setup.everyN;
    this.level = setup === null ? 100 : setup.level;
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

  /** Reads the clock and stamps the queued end points with it. */
  private stamp(): number {
    const t = performance.now() * 1e6 + this.offsetNs;
    const n = this.pendN;
    if (n > 0) {
      const w = this.writer!;
      for (let i = 0; i < n; i++) {
        const m = this.pendMeta[i]!;
        w.put(m & 0xff, m >>> 8, this.pendId[i]!, t, this.pendArg[i]!);
      }
      this.pendN = 0;
    }
    return t;
  }

  /** Records an end point: queued for the next clock read when every packet is traced. */
  private endPoint(kind: number, queue: number, id: number, arg: number): void {
    if (this.everyN !== 1) {
      this.writer!.put(kind, queue, id, this.stamp(), arg);
      return;
    }
    if (this.pendN === PENDING_MAX) this.stamp();
    const i = this.pendN++;
    this.pendMeta[i] = kind | (queue << 8);
    this.pendId[i] = id;
    this.pendArg[i] = arg;
  }

  /** Whether packet `seq` (a u32) is traced: seq % everyN === 0, the same in every thread. */
  sampled(seq: number): boolean {
    // A division costs ~10 ns per packet; this is two ALU steps: the low bits of everyN's power
    // of two must be zero, and (seq >> k) times the inverse of the odd part must stay below
    // 2^32 / odd (Granlund–Montgomery divisibility test). limit −1 means "never".
    return (seq & this.lowMask) === 0 && (Math.imul(seq >>> this.shift, this.oddInverse) >>> 0) <= this.limit;
  }

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

  /** The driver starts building packet `seq`. */
  add(seq: number, queue = 0): void {
    if (!this.sampled(seq)) return;
    this.batchSampled = true;
    this.writer!.put(TraceKind.Add, queue, seq, this.stamp(), 0);
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
    this.writer!.put(TraceKind.Publish, queue, NO_ID, this.stamp(), entries);
  }

  /** The driver is about to ring the device's doorbell for the batch just published. */
  kick(queue = 0): void {
    if (!this.publishSampled) return;
    this.publishSampled = false;
    this.writer!.put(TraceKind.Kick, queue, NO_ID, this.stamp(), 0);
  }

  /** The driver returned from waiting on its doorbell. */
  driverWake(): void {
    if (this.writer !== null) this.wakeNs = this.stamp();
  }

  /** The driver reaped packet `seq` (stamped at the thread's next clock read). */
  reap(seq: number, lenBytes: number, queue = 0): void {
    if (!this.sampled(seq)) return;
    if (this.wakeNs >= 0) {
      this.writer!.put(TraceKind.DriverWake, queue, NO_ID, this.wakeNs, 0);
      this.wakeNs = -1;
    }
    this.endPoint(TraceKind.Reap, queue, seq, lenBytes);
  }

  // ---- device (host) points ----

  /** The device returned from waiting on its doorbell. */
  deviceWake(): void {
    if (this.writer !== null) this.wakeNs = this.stamp();
  }

  /** The device popped packet `seq` (call right after the pop, before the backend works). */
  pop(seq: number, queue = 0): void {
    if (!this.sampled(seq)) return;
    const t = this.stamp();
    if (this.wakeNs >= 0) {
      this.writer!.put(TraceKind.DeviceWake, queue, NO_ID, this.wakeNs, 0);
      this.wakeNs = -1;
    }
    this.writer!.put(TraceKind.Pop, queue, seq, t, 0);
  }

  /** The backend is done with packet `seq` (stamped at the thread's next clock read). */
  done(seq: number, lenBytes: number, queue = 0): void {
    if (!this.sampled(seq)) return;
    this.usedSampled = true;
    this.endPoint(TraceKind.Done, queue, seq, lenBytes);
  }

  /** The device is about to publish `entries` used entries (call before the store). */
  used(entries: number, queue = 0): void {
    this.irqSampled = this.usedSampled;
    if (!this.usedSampled) return;
    this.usedSampled = false;
    this.writer!.put(TraceKind.Used, queue, NO_ID, this.stamp(), entries);
  }

  /** The device is about to ring the driver's doorbell for the used entries just published. */
  interrupt(queue = 0): void {
    if (!this.irqSampled) return;
    this.irqSampled = false;
    this.writer!.put(TraceKind.Interrupt, queue, NO_ID, this.stamp(), 0);
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
    this.event(enabled ? TraceKind.NotifyEnabled : TraceKind.NotifyDisabled, queue, NO_ID, 0);
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

  /** Any event, by kind, if its level is enabled. */
  event(kind: TraceKind, queue: number, id: number, arg: number): void {
    const w = this.writer;
    if (w === null || KIND_INFO[kind]!.level < this.level) return;
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
