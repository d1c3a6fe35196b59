// The hook surface every policy module implements (reference §1 "Suggested hook surface"). The
// loop runners (device-loop.ts, driver-loop.ts) own ring I/O, fences and doorbells and call these
// at the decision points; a module only keeps state and answers. A user may pass their own
// objects implementing these interfaces to the loops instead of the built-in modules.
// All times are µs on the loop's Clock. Browser-safe.

/** What a tx mitigation wants done now. */
export type TxAction = 'flush' | 'defer';
/** After a flush pass: flush again at once, stay deferred (timer re-armed), or go idle. */
export type TxAfterFlush = 'again' | 'defer' | 'idle';

/** Device side, per tx queue: when to flush what the driver made available. */
export interface TxMitigationHooks {
  /** A kick arrived (or work was found with kicks enabled); `pending` chains are available. */
  onKick(nowUs: number, pending: number): TxAction;
  /** The loop passed deadlineUs() (or woke while a coarse timer was armed). */
  onTimer(nowUs: number): TxAction;
  /** A flush pass moved `flushed` chains; `pending` remain available. */
  afterFlush(nowUs: number, flushed: number, pending: number): TxAfterFlush;
  /** The absolute deadline of an armed timer, or Infinity. */
  deadlineUs(): number;
  /** Shortest sleep while armed: a coarse host alarm (kvm-71: 250 µs) never sleeps less; 0 = precise. */
  sleepFloorUs(): number;
  /** True when the deadline should be met by spinning the last stretch (precise timers). */
  readonly precise: boolean;
  /** True while the device wants no kicks (timer armed or flush scheduled). */
  readonly kicksSuppressed: boolean;
  /** Most chains one flush pass may move. */
  readonly burst: number;
  /** True to leave kicks on while a flush runs (kvm-71's timer; absent = off during flushes). */
  readonly kicksDuringFlush?: boolean;
  /** The adaptive policy changes the timer interval through this (µs; 0 = flush at once). */
  setIntervalUs?(intervalUs: number): void;
}

/** How the loop must treat one notification decision. */
export type IrqDecision =
  /** Notify regardless of the driver's suppression (notify-on-empty, legacy empty ring). */
  | 'force'
  /** Notify if the driver's suppression (flags / used_event) allows. */
  | 'check'
  /** Not yet (coalescing): the loop must come back by deadlineUs(). */
  | 'defer';

/** Device side, per queue: whether a used publish is followed by an interrupt. */
export interface InterruptHooks {
  /** Used entries per publish (1 = a decision per buffer). */
  readonly publishBatch: number;
  /** True when afterPublish needs `pendingAvail` and `inFlight` (costs an acquire load). */
  readonly needsRingState: boolean;
  /** After publishing `published` used entries. */
  afterPublish(nowUs: number, published: number, pendingAvail: number, inFlight: number): IrqDecision;
  /** Deadline of a deferred decision, or Infinity. */
  deadlineUs(): number;
  /** Called when the loop passed deadlineUs(): 'check' to decide now, 'defer' to keep waiting. */
  onDeadline(nowUs: number): IrqDecision;
  /** The adaptive policy changes coalescing through this. Returns 'check' if now already due. */
  setCoalesce?(nowUs: number, maxPackets: number, maxUsecs: number): IrqDecision;
}

/** Device side, per rx queue: whether the driver should kick when it refills. */
export interface RxKickHooks {
  /** After a pass over the rx queue with `pendingAvail` buffers still available. */
  wantKicks(pendingAvail: number): boolean;
}
