// The per-thread tracer a processor calls at its trace points. A workload keeps
// `const tracing = ctx.tracer.enabled` in a local and guards every call with `if (tracing)`, so
// with tracing off the hot path pays one cached boolean test and nothing else.
//
// Packet identity is the workload's sequence number (carried in the payload, so both threads
// see the same one). Sampling "1 in N" keeps packets with seq % N === 0, which both threads
// decide alone. Batch events (publish, kick, wakes, used, interrupt) are recorded only when the
// batch holds a sampled packet; wakes are remembered and written at the next sampled packet, so
// a run sampled 1 in 100 pays for about 1 packet in 100. Runs in a browser Web Worker.

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

export class Tracer {
  /** Master switch: false for the no-op tracer. Cache it in a local on hot paths. */
  readonly enabled: boolean;
  private readonly writer: TraceWriter | null;
  private readonly offsetNs: number;
  private readonly everyN: number;
  private readonly level: number;
  // Sampled-batch bookkeeping (see the file comment).
  private batchSampled = false;
  private publishSampled = false;
  private usedSampled = false;
  private irqSampled = false;
  private wakeNs = -1;

  constructor(setup: TracerSetup | null) {
    this.enabled = setup !== null;
    this.writer = setup === null ? null : new TraceWriter(setup.sab);
    this.offsetNs = setup === null ? 0 : clockOffsetNs(setup.origin);
    this.everyN = setup === null ? 0 : setup.everyN;
    this.level = setup === null ? 100 : setup.level;
  }

  /** The disabled tracer. */
  static readonly off = new Tracer(null);

  /** ns since the run's origin, comparable across threads (see clock.ts). */
  now(): number {
    return performance.now() * 1e6 + this.offsetNs;
  }

  /** Whether packet `seq` is traced (same answer in every thread). */
  sampled(seq: number): boolean {
    return seq % this.everyN === 0; // everyN 0 gives NaN: never
  }

  /** Records dropped because this thread's buffer was full. */
  get dropped(): number {
    return this.writer?.dropped ?? 0;
  }

  /** Publishes every record written so far; call when the side ends. */
  flush(): void {
    this.writer?.flush();
  }

  // ---- driver (guest) points ----

  /** The driver starts building packet `seq`. */
  add(seq: number, queue = 0): void {
    if (seq % this.everyN !== 0) return;
    this.batchSampled = true;
    this.writer!.put(TraceKind.Add, queue, seq, this.now(), 0);
  }

  /** The driver is about to publish `entries` new avail entries (call before the store). */
  publish(entries: number, queue = 0): void {
    this.publishSampled = this.batchSampled;
    if (!this.batchSampled) return;
    this.batchSampled = false;
    this.writer!.put(TraceKind.Publish, queue, NO_ID, this.now(), entries);
  }

  /** The driver is about to ring the device's doorbell for the batch just published. */
  kick(queue = 0): void {
    if (!this.publishSampled) return;
    this.publishSampled = false;
    this.writer!.put(TraceKind.Kick, queue, NO_ID, this.now(), 0);
  }

  /** The driver returned from waiting on its doorbell. */
  driverWake(): void {
    this.wakeNs = this.now();
  }

  /** The driver reaped packet `seq` (`lenBytes` as the device reported). */
  reap(seq: number, lenBytes: number, queue = 0): void {
    if (seq % this.everyN !== 0) return;
    const t = this.now();
    if (this.wakeNs >= 0) {
      this.writer!.put(TraceKind.DriverWake, queue, NO_ID, this.wakeNs, 0);
      this.wakeNs = -1;
    }
    this.writer!.put(TraceKind.Reap, queue, seq, t, lenBytes);
  }

  // ---- device (host) points ----

  /** The device returned from waiting on its doorbell. */
  deviceWake(): void {
    this.wakeNs = this.now();
  }

  /** The device popped packet `seq` (call right after the pop, before the backend works). */
  pop(seq: number, queue = 0): void {
    if (seq % this.everyN !== 0) return;
    const t = this.now();
    if (this.wakeNs >= 0) {
      this.writer!.put(TraceKind.DeviceWake, queue, NO_ID, this.wakeNs, 0);
      this.wakeNs = -1;
    }
    this.writer!.put(TraceKind.Pop, queue, seq, t, 0);
  }

  /** The backend is done with packet `seq` (before the used entry is added). */
  done(seq: number, lenBytes: number, queue = 0): void {
    if (seq % this.everyN !== 0) return;
    this.usedSampled = true;
    this.writer!.put(TraceKind.Done, queue, seq, this.now(), lenBytes);
  }

  /** The device is about to publish `entries` used entries (call before the store). */
  used(entries: number, queue = 0): void {
    this.irqSampled = this.usedSampled;
    if (!this.usedSampled) return;
    this.usedSampled = false;
    this.writer!.put(TraceKind.Used, queue, NO_ID, this.now(), entries);
  }

  /** The device is about to ring the driver's doorbell for the used entries just published. */
  interrupt(queue = 0): void {
    if (!this.irqSampled) return;
    this.irqSampled = false;
    this.writer!.put(TraceKind.Interrupt, queue, NO_ID, this.now(), 0);
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
    w.put(kind, queue, id >>> 0, this.now(), arg);
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
