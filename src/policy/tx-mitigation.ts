// Device-side tx mitigation state machines (reference §1.1–1.3, §2.2): `bh` (flush at once up to
// a burst, then re-enable + re-check) and `timer` (a kick arms a timer with kicks suppressed; a
// kick while armed rearms, flushes at the ring-full heuristic, or flushes at once). The kvm-71
// baseline is a timer of 2 ns with a 250 µs alarm floor that fires at the next host wake-up.
// Pure: state + counters over the times it is given. Browser-safe.

import type { TxMitigationConfig } from './config.js';
import type { TxAction, TxAfterFlush, TxMitigationHooks } from './hooks.js';
import { LatenessRecorder } from '../notify/lateness.js';

export class TxCounters {
  kicks = 0;
  flushes = 0;
  timerArms = 0;
  timerRearms = 0;
  timerFires = 0;
  /** Kicks while armed that met the ring-full heuristic (or flushNow). */
  kickFlushes = 0;
  bursts = 0;
}

/** QEMU tx=bh (virtio_net_handle_tx_bh / virtio_net_tx_bh). */
export class TxBh implements TxMitigationHooks {
  readonly counters = new TxCounters();
  readonly precise = false;
  readonly burst: number;
  private scheduled = false;

  constructor(cfg: { burst: number }) {
    this.burst = cfg.burst;
  }

  get kicksSuppressed(): boolean {
    return this.scheduled;
  }

  onKick(_nowUs: number, _pending: number): TxAction {
    this.counters.kicks++;
    this.scheduled = true;
    return 'flush';
  }

  onTimer(): TxAction {
    return 'defer';
  }

  afterFlush(_nowUs: number, flushed: number, _pending: number): TxAfterFlush {
    this.counters.flushes++;
    // A full burst: more may be waiting; run again without re-enabling kicks.
    if (flushed >= this.burst) {
      this.counters.bursts++;
      return 'again';
    }
    this.scheduled = false;
    return 'idle';
  }

  deadlineUs(): number {
    return Infinity;
  }

  sleepFloorUs(): number {
    return 0;
  }
}

export type TimerConfig = Extract<TxMitigationConfig, { kind: 'timer' }>;

/** QEMU tx=timer, in its kvm-71, RFC and modern variants. */
export class TxTimer implements TxMitigationHooks {
  readonly counters = new TxCounters();
  /** Lateness of each expiry (fire time − deadline), ns. */
  readonly lateness = new LatenessRecorder(4096);
  readonly burst: number;
  readonly kicksDuringFlush: boolean;
  private intervalUs: number;
  private readonly rearmOnKick: boolean;
  private readonly flushNow: boolean;
  private readonly ringFullPending: number;
  private readonly minRearmUs: number;
  private armed = false;
  private deadline = Infinity;

  /** `capacityPackets`: what ringFullPending 0 stands for (ring size / descriptors per packet). */
  constructor(cfg: TimerConfig, capacityPackets: number) {
    this.intervalUs = cfg.intervalUs;
    this.rearmOnKick = cfg.rearmOnKick;
    this.flushNow = cfg.kickWhileArmed === 'flushNow';
    this.ringFullPending = cfg.ringFullPending === 0 ? capacityPackets : Math.min(cfg.ringFullPending, capacityPackets);
    this.burst = cfg.burst;
    this.kicksDuringFlush = cfg.kicksDuringFlush === true;
    this.minRearmUs = cfg.fireOnAnyWakeup ? cfg.minRearmUs : 0;
  }

  get precise(): boolean {
    return this.minRearmUs === 0;
  }

  get kicksSuppressed(): boolean {
    return this.armed;
  }

  get isArmed(): boolean {
    return this.armed;
  }

  get interval(): number {
    return this.intervalUs;
  }

  setIntervalUs(intervalUs: number): void {
    this.intervalUs = intervalUs;
  }

  onKick(nowUs: number, pending: number): TxAction {
    const c = this.counters;
    c.kicks++;
    if (this.intervalUs === 0) return 'flush';
    if (!this.armed) {
      this.armed = true;
      this.deadline = nowUs + this.intervalUs;
      c.timerArms++;
      return 'defer';
    }
    // A kick while armed: with kicks suppressed the only kicks left are the driver's forced
    // ones when its ring is full (reference §0), which is what the heuristic keys on.
    if (this.flushNow || pending >= this.ringFullPending) {
      this.armed = false;
      this.deadline = Infinity;
      c.kickFlushes++;
      return 'flush';
    }
    if (this.rearmOnKick) {
      this.deadline = nowUs + this.intervalUs;
      c.timerRearms++;
    }
    return 'defer';
  }

  onTimer(nowUs: number): TxAction {
    if (!this.armed || nowUs < this.deadline) return 'defer';
    this.armed = false;
    this.counters.timerFires++;
    this.lateness.record((nowUs - this.deadline) * 1000);
    this.deadline = Infinity;
    return 'flush';
  }

  afterFlush(nowUs: number, flushed: number, pending: number): TxAfterFlush {
    this.counters.flushes++;
    // A full burst with more waiting: re-arm and keep kicks off (QEMU virtio_net_tx_timer).
    if (flushed >= this.burst && pending > 0) {
      this.counters.bursts++;
      if (this.intervalUs === 0) return 'again';
      this.armed = true;
      this.deadline = nowUs + this.intervalUs;
      this.counters.timerArms++;
      return 'defer';
    }
    return 'idle';
  }

  deadlineUs(): number {
    return this.deadline;
  }

  sleepFloorUs(): number {
    return this.minRearmUs;
  }
}

/** The module a tx config names. */
export function createTxMitigation(cfg: TxMitigationConfig, capacityPackets: number): TxBh | TxTimer {
  return cfg.kind === 'bh' ? new TxBh(cfg) : new TxTimer(cfg, capacityPackets);
}
