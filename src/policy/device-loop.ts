// The policy-driven device (host) loop: owns the cycle "disable kicks → drain (bounded) →
// re-enable → full fence → re-check → sleep", the tx mitigation timers (slept to with the
// Doorbell's precise-deadline wait, or coarsely for the kvm-71 alarm), coalescing deadlines,
// busy polling, the QEMU-2008 global lock, and every counter. Queue work is passed in as
// callbacks (DeviceQueueCallbacks), so any workload (policy-stream, virtio-net) can use it; the
// fences live in DeviceQueue (enableNotification's store + re-check, publishUsed + needsNotification).
//
// Liveness invariant, checked before every sleep: each tx queue either has kicks enabled and
// was re-checked empty after enabling, or has a timer armed that bounds the sleep; each rx queue
// with no buffers has kicks enabled and was re-checked; every deferred interrupt has a deadline
// that bounds the sleep. Browser-safe (Atomics.wait: workers only).

import { CostPayer } from './costs.js';
import type { PolicyConfig } from './config.js';
import type { Clock } from './clock.js';
import { performanceClock } from './clock.js';
import type { InterruptHooks, IrqDecision, RxKickHooks, TxMitigationHooks } from './hooks.js';
import { createTxMitigation, TxBh, TxTimer } from './tx-mitigation.js';
import { InterruptPolicy, RxKickPolicy } from './interrupts.js';
import { BusyPoll } from './busy-poll.js';
import { AdaptivePolicy } from './adaptive.js';
import { FlushSizes } from './counters.js';
import type { BigLock } from './lock.js';
import type { WaitResult } from '../notify/doorbell.js';

/**
 * The doorbell operations each loop needs: an Atomics Doorbell between two workers, or an fd
 * doorbell (eventfds and a TAP polled with poll(2)) when the peer is a real driver or device.
 * `ring(queue)` names the virtio queue the notification is for (an fd doorbell signals that
 * queue's call eventfd, as vhost does); an Atomics doorbell has one line and ignores it.
 */
export interface LoopDoorbell {
  seq(): number;
  ring(queue?: number): boolean;
  wait(seen: number, deadlineMs?: number): WaitResult;
  waitUntil(seen: number, deadlineMs: number): WaitResult;
}

/** One device queue as the loop sees it; the workload implements these with a DeviceQueue. */
export interface DeviceQueueCallbacks {
  /** 'tx': the driver sends (tx mitigation applies). 'rx': the device fills driver buffers (rx kicks apply). */
  role: 'tx' | 'rx';
  /** The virtio queue index, passed to irq.ring() (default: the position in `queues`). */
  queueIndex?: number;
  /** Packets the ring holds (ring size / descriptors per packet), for the ring-full heuristic. */
  capacityPackets: number;
  /** Pops and processes up to `budget` chains, adding used entries (not published). Returns how many. */
  drain(budget: number): number;
  /** Publishes the used entries added so far (DeviceQueue.publishUsed). */
  publish(): number;
  /** The driver's suppression rule for what was published (DeviceQueue.needsNotification). */
  needsNotification(): boolean;
  /** Chains (tx) or buffers (rx) available and not popped (DeviceQueue.pending). */
  pending(): number;
  /** Chains popped and not yet used (DeviceQueue.inFlight). */
  inFlight(): number;
  /** DeviceQueue.disableNotification. */
  disableKicks(): void;
  /** DeviceQueue.enableNotification: enable, full fence, re-check; true when chains wait. */
  enableKicks(): boolean;
  /** rx: the backend has a frame for the guest (default: always). */
  backendReadable?(): boolean;
  /**
   * Work units drained so far beyond one per chain (cumulative), e.g. the software segments a
   * GSO chain became: lets the pass budget bound the work, not only the chains (a 64 KiB GSO
   * chain cut into 48-byte segments is ~1400 frames of work).
   */
  work?(): number;
  /** True once this queue's work is finished (the loop ends when every queue is done). */
  done?(): boolean;
  /**
   * Kicks addressed to this queue so far (cumulative), when the transport says which queue a
   * kick is for (the QueueNotify register, virtio 1.2 §4.2.2.2 / §4.1.4.4). Without it every
   * kick on the shared doorbell counts for every queue (fine for one-queue workloads).
   */
  kicks?(): number;
}

/** Optional replacement modules (a user's own policy), per queue index. */
export interface DeviceModules {
  tx?: (queue: number, capacityPackets: number) => TxMitigationHooks;
  interrupts?: (queue: number) => InterruptHooks;
  rxKicks?: (queue: number) => RxKickHooks;
  /** Adds the module's own counters to the loop's report (SideStats.extra). */
  extra?: (out: Record<string, number>) => void;
}

export interface DeviceLoopOptions {
  policy: PolicyConfig;
  queues: DeviceQueueCallbacks[];
  /** Guest → host doorbell (this loop waits on it). */
  kick: LoopDoorbell;
  /** Host → guest doorbell (this loop rings it). */
  irq: LoopDoorbell;
  stopped(): boolean;
  clock?: Clock;
  /** The global lock, when policy.dataPath.lock is not 'none'. */
  lock?: BigLock | null;
  /** Cumulative packets and bytes processed (feeds the adaptive walk). */
  packets?(): number;
  bytes?(): number;
  modules?: DeviceModules;
  /** Called at the top of every iteration (e.g. to open the measurement window). */
  onIteration?(): void;
  /** Most chains one pass drains from a queue when the burst is unbounded (default 4 × ring capacity). */
  passBudget?: number;
  /**
   * Most work units (a chain, plus what `work()` reports beyond it) one pass spends on a queue
   * before it yields to the next queue, the stop/control check and the next pass (default
   * 4096). A pass may overshoot by one publish batch. Chains left over are taken in the next
   * pass: the loop does not sleep while they wait (the re-enable + re-check finds them).
   */
  passWorkBudget?: number;
  /**
   * A workload's own wake-up time (µs on the loop's clock, Infinity = none), e.g. a ping
   * timeout; the loop sleeps no later than this (precisely) and calls onIteration after.
   */
  deadlineUs?(): number;
  // Observation hooks (tracing); absent, the loop behaves exactly the same.
  /** Called just before the loop rings the irq doorbell for queue `queue` (its index in `queues`). */
  beforeInterrupt?(queue: number): void;
  /** Called each time a sleep on the kick doorbell returns. */
  afterWake?(result: WaitResult): void;
  /** Queue `queue`'s tx mitigation armed (or moved) its timer, due `inUs` from now. */
  onTimerArmed?(queue: number, inUs: number): void;
  /** Queue `queue`'s tx timer deadline was handled `latenessUs` after it passed. */
  onTimerFired?(queue: number, latenessUs: number): void;
}

/** Default DeviceLoopOptions.passWorkBudget. */
const PASS_WORK_BUDGET = 4096;

/** Kicks replayed into the tx mitigation per pass (more only repeat the same decision). */
const MAX_KICKS_PER_PASS = 4;

interface QState {
  /** Position in DeviceLoopOptions.queues. */
  index: number;
  cb: DeviceQueueCallbacks;
  tx: TxMitigationHooks | null;
  irq: InterruptHooks;
  rx: RxKickHooks | null;
  passBudget: number;
  flushes: FlushSizes;
  /** The queue's kick count at the last pass (when the queue reports its own kicks). */
  lastKicks: number;
  /**
   * The loop acted on chains found before their kick landed (queues with their own kick counts
   * only). The next kick seen is taken as that same kick and not replayed a second time: QEMU's
   * kicks were synchronous exits, so the device never saw a chain before its kick. Cleared when
   * the loop re-enables the queue's kicks (any kick after that is a new one).
   */
  owedKick: boolean;
}

/** Device-side counters; `toExtra()` gives plain numbers for SideStats.extra. */
/** Busy-spin iterations between two clock reads and stop checks (busySpin). */
const BUSY_SPIN_STRIDE = 16;

export class DeviceLoopCounters {
  iterations = 0;
  /** Kick doorbell movements seen (the guest's kicks as the device noticed them). */
  kicksSeen = 0;
  interrupts = 0;
  irqSuppressed = 0;
  irqForced = 0;
  irqDeferred = 0;
  /** Re-enable + re-check found work (the race the re-check closes). */
  recheckHits = 0;
  sleeps = 0;
  /** Sleeps ended by a ring that then found nothing to do. */
  emptyWakeups = 0;
  timerWakeups = 0;
  coarseSleeps = 0;
  preciseSleeps = 0;
}

export class DeviceLoop {
  readonly counters = new DeviceLoopCounters();
  readonly busy: BusyPoll;
  readonly adaptive: AdaptivePolicy | null;
  private readonly qs: QState[];
  private readonly clock: Clock;
  private readonly lock: BigLock | null;
  private readonly dropLockForBackend: boolean;
  private readonly passWorkBudget: number;
  private lastKickSeq: number;
  private events = 0;
  private flushCount = 0;
  /** The modelled interrupt-injection and per-frame syscall costs (policy.costs). */
  readonly cost: CostPayer;

  constructor(private readonly o: DeviceLoopOptions) {
    const p = o.policy;
    this.clock = o.clock ?? performanceClock;
    this.lock = p.dataPath.lock === 'none' ? null : (o.lock ?? null);
    this.dropLockForBackend = p.dataPath.lock === 'dropped';
    this.passWorkBudget = o.passWorkBudget ?? PASS_WORK_BUDGET;
    this.busy = new BusyPoll(p.busyPoll.busyUs);
    this.adaptive = p.adaptive === null ? null : new AdaptivePolicy(p.adaptive);
    // Real time even under a test's fake clock: a cost is spent, not simulated.
    // The device's waits for the global lock (re-taking it after a backend read) are not its own work.
    this.cost = new CostPayer(p.costs, performanceClock, () => this.lock?.waitUs ?? 0);
    this.qs = o.queues.map((cb, i) => {
      const cap = Math.max(1, cb.capacityPackets);
      const tx = cb.role === 'tx' ? (o.modules?.tx?.(i, cap) ?? createTxMitigation(p.tx, cap)) : null;
      const burst = tx?.burst ?? Infinity;
      return {
        index: i,
        cb,
        tx,
        irq: o.modules?.interrupts?.(i) ?? new InterruptPolicy(p.interrupts),
        rx: cb.role === 'rx' ? (o.modules?.rxKicks?.(i) ?? new RxKickPolicy(p.rxKicks)) : null,
        passBudget: Math.min(burst, o.passBudget ?? 4 * cap),
        flushes: new FlushSizes(),
        lastKicks: cb.kicks?.() ?? 0,
        owedKick: false,
      };
    });
    if (this.adaptive !== null) this.adaptive.apply(this.clock.nowUs(), this.qs.map((q) => q.tx), this.qs.map((q) => q.irq));
    this.lastKickSeq = o.kick.seq();
  }

  /** The modules in use, per queue (for tests and reports). */
  modules(i: number): { tx: TxMitigationHooks | null; irq: InterruptHooks; rx: RxKickHooks | null } {
    const q = this.qs[i]!;
    return { tx: q.tx, irq: q.irq, rx: q.rx };
  }

  /**
   * New coalescing parameters for the queue at position `pos` (VIRTIO_NET_F_NOTF_COAL's TX_SET /
   * RX_SET, last set wins). Called from the loop's own thread (a control-queue drain). When the
   * new parameters are already met, the deferred notification is decided now (NOTF_COAL: "if new
   * parameters are already satisfied, notify immediately"). No-op for a module without setCoalesce.
   */
  setCoalesce(pos: number, maxPackets: number, maxUsecs: number): void {
    const q = this.qs[pos];
    if (q === undefined || q.irq.setCoalesce === undefined) return;
    if (q.irq.setCoalesce(this.clock.nowUs(), maxPackets, maxUsecs) === 'check') this.notify(q, 'check');
  }

  /** Called by drain callbacks around a backend read: drops the global lock if the policy says so. */
  beginBackendRead(): void {
    if (this.dropLockForBackend && this.lock?.isHeld) this.lock.unlock();
  }

  endBackendRead(): void {
    if (this.dropLockForBackend && this.lock !== null && !this.lock.isHeld) this.lock.lock();
  }

  /** True when every queue reports done. */
  get allDone(): boolean {
    for (let i = 0; i < this.qs.length; i++) {
      const q = this.qs[i]!;
      if (q.cb.done === undefined || !q.cb.done()) return false;
    }
    return this.qs.length > 0;
  }

  /** Runs until stopped or every queue is done. Blocks in Atomics.wait between passes. */
  run(): void {
    const o = this.o;
    const c = this.counters;
    const kick = o.kick;
    this.lock?.lock();
    let wokeByRing = false;
    try {
      for (;;) {
        o.onIteration?.();
        if (o.stopped() || this.allDone) break;
        c.iterations++;
        // Read before the pass: a kick during the pass moves seq past `seen`, so the wait below
        // returns at once (never lose a kick between the re-check and the sleep).
        const seen = kick.seq();
        // Each ring bumps the sequence once: this many kicks arrived since the last look.
        const kicks = (seen - this.lastKickSeq) | 0;
        c.kicksSeen += kicks;
        this.lastKickSeq = seen;
        if (this.pass(kicks)) {
          wokeByRing = false;
          continue;
        }
        if (wokeByRing) c.emptyWakeups++;
        wokeByRing = false;
        if (this.busy.enabled && this.busySpin(seen)) continue;
        if (this.prepareSleep()) {
          c.recheckHits++;
          continue;
        }
        if (o.stopped() || this.allDone) break;
        const r = this.sleep(seen);
        o.afterWake?.(r);
        if (r === 'stopped') break;
        if (r === 'rung') wokeByRing = true;
        else c.timerWakeups++;
      }
      // Whatever is published gets a final notification so no driver waits on a deferred one.
      for (const q of this.qs) {
        q.cb.publish();
        o.irq.ring(q.cb.queueIndex ?? q.index);
      }
    } finally {
      if (this.lock?.isHeld) this.lock.unlock();
    }
  }

  /**
   * One non-blocking pass over every queue: act on the `kicks` that arrived since the last pass,
   * fire due timers and deadlines, drain. Returns true when it did work (call again before
   * sleeping). Exposed for single-thread simulations; run() is the normal entry.
   */
  pass(kicks: number): boolean {
    const now = this.clock.nowUs();
    let worked = false;
    for (let i = 0; i < this.qs.length; i++) {
      const q = this.qs[i]!;
      let k = kicks;
      if (q.cb.kicks !== undefined) {
        const total = q.cb.kicks();
        k = (total - q.lastKicks) | 0;
        q.lastKicks = total;
        if (k > 0 && q.owedKick) {
          k--;
          q.owedKick = false;
        }
      }
      if (q.tx !== null) worked = this.passTx(q, now, k) || worked;
      else worked = this.passRx(q) || worked;
      if (q.irq.deadlineUs() <= now && q.irq.onDeadline(now) === 'check') this.notify(q, 'check');
    }
    return worked;
  }

  /**
   * Re-enables kicks where the policy wants them (full fence + re-check inside enableKicks);
   * returns true when work appeared (do not sleep). Exposed for simulations.
   */
  prepareSleep(): boolean {
    let found = false;
    for (let i = 0; i < this.qs.length; i++) {
      const q = this.qs[i]!;
      if (q.tx !== null) {
        if (!q.tx.kicksSuppressed) {
          q.owedKick = false;
          if (q.cb.enableKicks()) found = true;
        }
      } else if (q.rx !== null) {
        const pending = q.cb.pending();
        if (q.rx.wantKicks(pending)) {
          if (q.cb.enableKicks() && this.readable(q)) found = true;
        }
      }
    }
    return found;
  }

  /**
   * The absolute time (µs) the loop must wake by, and whether to meet it precisely. The result
   * object is reused (valid until the next call): the loop asks before every sleep.
   */
  nextDeadline(nowUs: number): { deadlineUs: number; precise: boolean } {
    let deadline = this.o.deadlineUs?.() ?? Infinity;
    let precise = true;
    for (let i = 0; i < this.qs.length; i++) {
      const q = this.qs[i]!;
      const t = q.tx;
      if (t !== null && t.kicksSuppressed) {
        let d = t.deadlineUs();
        const floor = t.sleepFloorUs();
        if (floor > 0) {
          // A coarse alarm: never re-armed closer than the floor (kvm-71 MIN_TIMER_REARM_US).
          d = Math.max(d, nowUs + floor);
          precise = false;
        } else if (!t.precise) precise = false;
        if (d < deadline) deadline = d;
      }
      const id = q.irq.deadlineUs();
      if (id < deadline) deadline = id;
    }
    const out = this.deadlineOut;
    out.deadlineUs = deadline;
    out.precise = precise;
    return out;
  }

  private readonly deadlineOut = { deadlineUs: Infinity, precise: true };

  /** Folds every counter into plain numbers (SideStats.extra). */
  toExtra(out: Record<string, number> = {}): Record<string, number> {
    const c = this.counters;
    Object.assign(out, {
      devIterations: c.iterations,
      kicksSeen: c.kicksSeen,
      interrupts: c.interrupts,
      irqSuppressed: c.irqSuppressed,
      irqForced: c.irqForced,
      irqDeferred: c.irqDeferred,
      recheckHits: c.recheckHits,
      devSleeps: c.sleeps,
      devEmptyWakeups: c.emptyWakeups,
      devTimerWakeups: c.timerWakeups,
      devCoarseSleeps: c.coarseSleeps,
      devPreciseSleeps: c.preciseSleeps,
      busyPollHits: this.busy.hits,
      busyPollMisses: this.busy.misses,
      busyPollUs: this.busy.spentUs,
    });
    let timerFires = 0;
    let timerArms = 0;
    let timerRearms = 0;
    let kickFlushes = 0;
    let txBursts = 0;
    let coalescePacketFires = 0;
    let coalesceTimeFires = 0;
    const all = new FlushSizes();
    const lateness: number[] = [];
    for (const q of this.qs) {
      const t = q.tx;
      if (t instanceof TxBh || t instanceof TxTimer) {
        timerFires += t.counters.timerFires;
        timerArms += t.counters.timerArms;
        timerRearms += t.counters.timerRearms;
        kickFlushes += t.counters.kickFlushes;
        txBursts += t.counters.bursts;
      }
      if (t instanceof TxTimer && t.lateness.held > 0) {
        lateness.push(t.lateness.percentile(50) / 1000, t.lateness.percentile(99) / 1000, t.lateness.percentile(100) / 1000, t.lateness.summary().meanNs / 1000);
      }
      if (q.irq instanceof InterruptPolicy) {
        coalescePacketFires += q.irq.counters.coalescePacketFires;
        coalesceTimeFires += q.irq.counters.coalesceTimeFires;
      }
      const f = q.flushes;
      all.count += f.count;
      all.total += f.total;
      all.max = Math.max(all.max, f.max);
      all.b1 += f.b1;
      all.b2to7 += f.b2to7;
      all.b8to63 += f.b8to63;
      all.b64up += f.b64up;
    }
    all.into(out, 'dev');
    Object.assign(out, { timerFires, timerArms, timerRearms, ringFullFlushes: kickFlushes, txBursts, coalescePacketFires, coalesceTimeFires });
    // Lateness of the first queue with timer fires (the workloads have one tx queue), µs over the
    // most recent 4096 fires; the mean lets a reader weight sides/queues by timerFires.
    out.timerLatenessP50Us = lateness[0] ?? 0;
    out.timerLatenessP99Us = lateness[1] ?? 0;
    out.timerLatenessMaxUs = lateness[2] ?? 0;
    out.timerLatenessMeanUs = lateness[3] ?? 0;
    if (this.lock !== null) {
      out.devLockAcquisitions = this.lock.acquisitions;
      out.devLockContended = this.lock.contended;
      out.devLockWaitUs = this.lock.waitUs;
    }
    this.cost.toExtra(out);
    this.o.modules?.extra?.(out);
    if (this.adaptive !== null) {
      out.adaptiveSamples = this.adaptive.dim.samples;
      out.adaptiveChanges = this.adaptive.dim.changes;
      out.adaptiveProfileIx = this.adaptive.dim.profileIx;
      out.adaptiveMeanProfileIx = this.adaptive.meanProfileIx(this.clock.nowUs());
      out.adaptiveGuardParks = this.adaptive.guardParks;
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------

  private readable(q: QState): boolean {
    return q.cb.backendReadable === undefined || q.cb.backendReadable();
  }

  private passTx(q: QState, now: number, kicks: number): boolean {
    const armed = this.o.onTimerArmed;
    if (armed === undefined) return this.passTxInner(q, now, kicks);
    const before = q.tx!.deadlineUs();
    const worked = this.passTxInner(q, now, kicks);
    const after = q.tx!.deadlineUs();
    if (after !== before && after !== Infinity) armed(q.index, after - this.clock.nowUs());
    return worked;
  }

  private passTxInner(q: QState, now: number, kicks: number): boolean {
    const tx = q.tx!;
    const cb = q.cb;
    let action: 'flush' | 'defer' = 'defer';
    // Kicks first: in QEMU-2008 the vcpu thread handles each kick exit (handle_tx) as it
    // happens, the timer runs later from the I/O thread's loop; so each kick that arrived gets
    // its own onKick (the first arms, a later forced one meets the ring-full heuristic). A kick
    // while suppressed is a forced one (ring full); with kicks enabled any pending chain stands
    // for a kick sent or about to be.
    // With kvm-71's order (kicksDuringFlush) a kick was a synchronous exit, handled before the
    // guest sent anything more, so the guest never sent a second kick the device had not yet
    // seen: kicks that piled up while this loop was busy or waking were all sent with kicks on
    // and stand for one (else a second one would meet the armed timer as if forced).
    const n = kicks > 0 ? Math.min(kicks, tx.kicksDuringFlush === true ? 1 : MAX_KICKS_PER_PASS) : tx.kicksSuppressed ? 0 : 1;
    if (n > 0) {
      const pending = cb.pending();
      if (kicks === 0 && pending > 0 && cb.kicks !== undefined) q.owedKick = true;
      for (let i = 0; i < n && action === 'defer' && pending > 0; i++) action = tx.onKick(now, pending);
    }
    let fired = false;
    if (action === 'defer' && tx.deadlineUs() <= now) {
      this.o.onTimerFired?.(q.index, now - tx.deadlineUs());
      action = tx.onTimer(now);
      fired = true;
    }
    if (action === 'defer') {
      if (tx.kicksSuppressed) cb.disableKicks();
      return false;
    }
    // Kicks off while we flush (modern QEMU), or on (kvm-71 cleared NO_NOTIFY before flushing:
    // a guest that sends meanwhile exits and waits for the global lock this loop holds).
    if (tx.kicksDuringFlush === true) cb.enableKicks();
    else cb.disableKicks();
    if (fired) this.cost.timerFire();
    let worked = false;
    for (;;) {
      const n = this.flush(q, q.passBudget);
      if (n > 0) worked = true;
      const after = tx.afterFlush(this.clock.nowUs(), n, n >= tx.burst ? cb.pending() : 0);
      if (after !== 'again' || this.o.stopped()) break;
    }
    return worked;
  }

  private passRx(q: QState): boolean {
    const cb = q.cb;
    const rx = q.rx!;
    if (!this.readable(q)) return false;
    const pending = cb.pending();
    if (pending === 0) return false;
    // recv NO_NOTIFY: no refill kicks while the device still has buffers (reference §1.5).
    if (!rx.wantKicks(pending)) cb.disableKicks();
    const n = this.flush(q, q.passBudget);
    // 'always' keeps kicks on (with event idx this moves avail_event up to what we consumed).
    if (rx.wantKicks(cb.pending())) cb.enableKicks();
    else cb.disableKicks();
    return n > 0;
  }

  /** Drains up to `budget` chains in publish batches, deciding on an interrupt after each publish. */
  private flush(q: QState, budget: number): number {
    const cb = q.cb;
    const batch = q.irq.publishBatch;
    const work = cb.work;
    const workBefore = work !== undefined ? work() : 0;
    // Popping, the backend and the host stack are the work kvm-71's per-frame syscall stands for (costs.absorbOwnWork).
    this.cost.beginOwnWork();
    let total = 0;
    while (total < budget) {
      const n = cb.drain(Math.min(batch, budget - total));
      if (n === 0) break;
      total += n;
      const published = cb.publish();
      if (published > 0) this.afterPublish(q, published);
      // Bounded work per pass (Firecracker, vhost): yield once the budget is spent.
      if (total + (work !== undefined ? work() - workBefore : 0) >= this.passWorkBudget) break;
    }
    q.flushes.record(total);
    // kvm-71 moved each frame to or from the tap with its own writev/read (costs.syscallUs).
    this.cost.syscall(total);
    if (total > 0 && this.adaptive !== null) {
      this.events++;
      this.flushCount++;
      this.feedAdaptive();
    }
    return total;
  }

  private afterPublish(q: QState, published: number): void {
    const irq = q.irq;
    const now = this.clock.nowUs();
    const pendingAvail = irq.needsRingState ? q.cb.pending() : 1;
    const inFlight = irq.needsRingState ? q.cb.inFlight() : 0;
    this.notify(q, irq.afterPublish(now, published, pendingAvail, inFlight));
  }

  private notify(q: QState, d: IrqDecision): void {
    const c = this.counters;
    if (d === 'defer') {
      c.irqDeferred++;
      return;
    }
    // Always consult the queue: with event idx it moves signalled_used past what we notify for.
    const wanted = q.cb.needsNotification();
    if (d === 'force' || wanted) {
      if (d === 'force' && !wanted) c.irqForced++;
      c.interrupts++;
      this.o.beforeInterrupt?.(q.index);
      this.cost.irqInject();
      this.o.irq.ring(q.cb.queueIndex ?? q.index);
      if (this.adaptive !== null) {
        this.events++;
        this.feedAdaptive();
      }
    } else {
      c.irqSuppressed++;
    }
  }

  private feedAdaptive(): void {
    const a = this.adaptive!;
    const now = this.clock.nowUs();
    const packets = this.o.packets?.() ?? 0;
    const bytes = this.o.bytes?.() ?? 0;
    if (a.update(now, packets, bytes, this.events, this.flushCount)) {
      if (a.apply(now, this.qs.map((q) => q.tx), this.qs.map((q) => q.irq)) === 'check') {
        for (const q of this.qs) this.notify(q, 'check');
      }
    }
  }

  /** Spins with kicks off for up to busyUs; true when work showed up. */
  private busySpin(seen: number): boolean {
    const busy = this.busy;
    const clock = this.clock;
    const kick = this.o.kick;
    busy.begin(clock.nowUs());
    // The lock is the I/O thread's; a spinning thread in 2008 would have sat in select().
    const dropped = this.lock?.isHeld === true;
    if (dropped) this.lock!.unlock();
    let found = false;
    let now = clock.nowUs();
    const { deadlineUs } = this.nextDeadline(now);
    // The rings are looked at every iteration; the clock (performance.now(), ~45 ns against a
    // few ns per ring load) and the stop check (for vhost-user, a poll(2) of the socket every
    // so often) every BUSY_SPIN_STRIDE iterations — a spin outlives its budget or a deadline by
    // at most one stride (well under a µs), and work is seen as soon as it shows.
    for (let i = 1; busy.keepSpinning(now) && now < deadlineUs; i++) {
      if (kick.seq() !== seen || this.anyWork()) {
        found = true;
        break;
      }
      if (i % BUSY_SPIN_STRIDE === 0) {
        if (this.o.stopped()) break;
        now = clock.nowUs();
      }
    }
    if (dropped) this.lock!.lock();
    busy.end(clock.nowUs(), found || now >= deadlineUs);
    return found || now >= deadlineUs;
  }

  private anyWork(): boolean {
    for (const q of this.qs) {
      if (q.tx !== null) {
        if (!q.tx.kicksSuppressed && q.cb.pending() > 0) return true;
      } else if (q.cb.pending() > 0 && this.readable(q)) return true;
    }
    return false;
  }

  private sleep(seen: number): WaitResult {
    const c = this.counters;
    const now = this.clock.nowUs();
    const { deadlineUs, precise } = this.nextDeadline(now);
    c.sleeps++;
    // The I/O thread drops the global lock only while it sleeps (kvm_sleep_begin/end).
    const lock = this.lock;
    if (lock?.isHeld) lock.unlock();
    let r: WaitResult;
    try {
      if (deadlineUs === Infinity) r = this.o.kick.wait(seen);
      else {
        // Doorbell deadlines are on the same thread's performance.now() clock, in ms.
        const deadlineMs = deadlineUs / 1000;
        if (precise) {
          c.preciseSleeps++;
          r = this.o.kick.waitUntil(seen, deadlineMs);
        } else {
          c.coarseSleeps++;
          r = this.o.kick.wait(seen, deadlineMs);
        }
      }
    } finally {
      if (lock !== null && !this.o.stopped()) lock.lock();
    }
    return r;
  }
}
