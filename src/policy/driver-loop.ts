// The policy-driven driver (guest) loop for one queue, in either role: 'tx' (the guest sends:
// fill → publish → kick decision, reap completions on xmit, forced kick when the ring is full,
// sleep for completions with interrupts re-enabled at once or after 3/4) or 'rx' (the guest
// receives: NAPI-style reap up to a budget, refill and kick per the device's suppression, and
// the disable → poll → enable → re-check → sleep cycle of virtio 1.2 §2.7.14). Kicks under the
// QEMU-2008 model are synchronous exits that take the global lock, as is each interrupt
// acknowledgement. With `queues` it runs several queues (a virtio-net driver's rx and tx) in one
// thread on one kick and one irq doorbell, telling the device which queue each kick is for.
// Queue work is passed in as callbacks. Browser-safe (Atomics.wait: workers only).

import type { PolicyConfig } from './config.js';
import type { LoopDoorbell } from './device-loop.js';
import type { BigLock } from './lock.js';
import type { WaitResult } from '../notify/doorbell.js';
import { CostPayer } from './costs.js';
import { performanceClock } from './clock.js';

/** One driver queue as the loop sees it; the workload implements these with a DriverQueue. */
export interface DriverQueueCallbacks {
  role: 'tx' | 'rx';
  /** Reaps up to `budget` used elements (verifying or recycling each); returns how many. */
  reap(budget: number): number;
  /** Adds up to `max` chains (tx: frames to send; rx: empty buffers); returns how many. */
  fill(max: number): number;
  /** DriverQueue.publish. */
  publish(): number;
  /** DriverQueue.kickNeeded (the device's suppression, event idx, forced kick after a failed add). */
  kickNeeded(): boolean;
  /** DriverQueue.enableInterrupts / enableInterruptsDelayed: enable, fence, re-check; true when used entries wait. */
  enableInterrupts(): boolean;
  enableInterruptsDelayed(): boolean;
  disableInterrupts(): void;
  /** Chains added and not yet reaped. */
  outstanding(): number;
  /** tx: true when fill() stopped because no buffer or descriptor was free (not because the source ran dry). */
  ringFull(): boolean;
  /** True once the queue's work is finished (tx: all sent and reaped; rx: all received). */
  done(): boolean;
  /**
   * Called just before a kick for this queue rings the shared doorbell: tells the device which
   * queue it is for (the QueueNotify register, virtio 1.2 §4.2.2.2). Optional.
   */
  beforeKick?(): void;
  /**
   * rx: called after a poll's refill is published (and kicked, when needed) — the stack's work
   * on what the poll took that Linux did after NAPI re-posted its buffers (the copy to user).
   */
  afterRefill?(): void;
}

export interface DriverLoopOptions {
  policy: PolicyConfig;
  /** One queue (the loop's original form): run() is the tx or the rx loop below. */
  queue?: DriverQueueCallbacks;
  /**
   * Several queues sharing one kick and one irq doorbell (a virtio-net driver: rx and tx): run()
   * interleaves them in one thread (see runShared). Give `queue` or `queues`.
   */
  queues?: DriverQueueCallbacks[];
  /** A workload's own wake-up time (performance.now() ms, Infinity = none), e.g. a ping timeout. */
  deadlineMs?(): number;
  /** Guest → host doorbell (this loop rings it). */
  kick: LoopDoorbell;
  /** Host → guest doorbell (this loop waits on it). */
  irq: LoopDoorbell;
  stopped(): boolean;
  lock?: BigLock | null;
  /** Chains per publish + kick decision (tx) and refill batch (rx). Default 32. */
  kickBatch?: number;
  /** rx NAPI budget per poll (Linux NAPI_POLL_WEIGHT). Default 64. */
  napiBudget?: number;
  /** Kick unconditionally when a tx add fails for lack of room (Linux virtqueue_add). Default true. */
  kickOnRingFull?: boolean;
  onIteration?(): void;
  /** Called each time a wait on the irq doorbell returns (tracing: the driver's wake point). Optional. */
  afterWake?(result: WaitResult): void;
  /** Called where a tx queue is counted full (once per episode, with ringFullEvents). Optional. */
  onRingFull?(queue: DriverQueueCallbacks): void;
}

export class DriverLoopCounters {
  /** Kicks rung, kick decisions that the device's suppression declined, forced ring-full kicks. */
  kicks = 0;
  kicksSuppressed = 0;
  ringFullKicks = 0;
  /** Times the tx ring/pool was found full. */
  ringFullEvents = 0;
  /** Interrupts waited for and received, and those that found nothing to reap. */
  interruptsTaken = 0;
  emptyInterrupts = 0;
  /** enable + re-check found work already waiting (no sleep needed). */
  recheckHits = 0;
  reaped = 0;
  added = 0;
}

export class DriverLoop {
  readonly counters = new DriverLoopCounters();
  private readonly lock: BigLock | null;
  private readonly kickBatch: number;
  private readonly napiBudget: number;
  private readonly delayed: boolean;
  private readonly kickOnRingFull: boolean;
  /** The modelled guest costs (policy.costs): exitUs on each kick and ISR read, guestPacketUs per frame sent, guestRxPacketUs (or guestPacketUs) per frame received. */
  readonly cost: CostPayer;

  private readonly qs: DriverQueueCallbacks[];
  /** Shared mode: kicks rung and kick decisions declined, per queue (reported as rx…/tx… counters). */
  private readonly qKicks: number[];
  private readonly qKicksSuppressed: number[];

  constructor(private readonly o: DriverLoopOptions) {
    const p = o.policy;
    this.qs = o.queues ?? (o.queue !== undefined ? [o.queue] : []);
    if (this.qs.length === 0) throw new RangeError('DriverLoop: give queue or queues');
    this.qKicks = this.qs.map(() => 0);
    this.qKicksSuppressed = this.qs.map(() => 0);
    this.lock = p.dataPath.lock === 'none' ? null : (o.lock ?? null);
    this.kickBatch = Math.max(1, o.kickBatch ?? 32);
    this.napiBudget = Math.max(1, o.napiBudget ?? 64);
    this.delayed = p.interrupts.driverEnable === 'delayed';
    this.kickOnRingFull = o.kickOnRingFull ?? true;
    // The guest's waits for the global lock are not its own stack work (costs.absorbOwnWork).
    this.cost = new CostPayer(p.costs, performanceClock, () => this.lock?.waitUs ?? 0);
  }

  run(): void {
    if (this.o.queues !== undefined || this.o.deadlineMs !== undefined) this.runShared();
    else if (this.qs[0]!.role === 'tx') this.runTx();
    else this.runRx();
  }

  /** Publishes what was added and kicks if the device wants it (or `force`). */
  publishAndKick(force: boolean, q: DriverQueueCallbacks = this.qs[0]!): void {
    q.publish();
    const wanted = q.kickNeeded();
    if (wanted || force) this.kick(force && !wanted, q);
    else this.counters.kicksSuppressed++;
  }

  toExtra(out: Record<string, number> = {}): Record<string, number> {
    const c = this.counters;
    Object.assign(out, {
      kicks: c.kicks,
      kicksSuppressed: c.kicksSuppressed,
      ringFullKicks: c.ringFullKicks,
      ringFullEvents: c.ringFullEvents,
      interruptsTaken: c.interruptsTaken,
      emptyInterrupts: c.emptyInterrupts,
      drvRecheckHits: c.recheckHits,
      drvReaped: c.reaped,
      drvAdded: c.added,
    });
    if (this.o.queues !== undefined) {
      // Per role (several queues of one role add up): rxKicks, rxKicksSuppressed, txKicks, txKicksSuppressed.
      for (const role of ['rx', 'tx'] as const) {
        let k = 0;
        let s = 0;
        this.qs.forEach((q, i) => {
          if (q.role === role) {
            k += this.qKicks[i]!;
            s += this.qKicksSuppressed[i]!;
          }
        });
        out[`${role}Kicks`] = k;
        out[`${role}KicksSuppressed`] = s;
      }
    }
    this.cost.toExtra(out);
    if (this.lock !== null) {
      out.drvLockAcquisitions = this.lock.acquisitions;
      out.drvLockContended = this.lock.contended;
      out.drvLockWaitUs = this.lock.waitUs;
    }
    return out;
  }

  private kick(forced: boolean, q: DriverQueueCallbacks = this.qs[0]!): void {
    this.counters.kicks++;
    const qi = this.qs.indexOf(q);
    if (qi >= 0) this.qKicks[qi]!++;
    if (forced) this.counters.ringFullKicks++;
    // QEMU-2008: the kick is a PIO exit handled under the global lock (its cost: costs.exitUs).
    if (this.lock !== null) this.lock.lock();
    this.cost.exit();
    q.beforeKick?.();
    this.o.kick.ring();
    if (this.lock !== null) this.lock.unlock();
  }

  /** The guest's ISR read after an interrupt: an exit, under the global lock when the preset holds it. */
  private isrRead(): void {
    if (this.lock !== null) this.lock.lock();
    this.cost.exit();
    if (this.lock !== null) this.lock.unlock();
  }

  /** Sleeps for an interrupt unless enable + re-check finds work; returns false when stopped. */
  private waitForUsed(delayed: boolean): boolean {
    const q = this.qs[0]!;
    const c = this.counters;
    const seen = this.o.irq.seq();
    const again = delayed ? q.enableInterruptsDelayed() : q.enableInterrupts();
    if (again) {
      c.recheckHits++;
      q.disableInterrupts();
      return true;
    }
    const r = this.o.irq.wait(seen);
    this.o.afterWake?.(r);
    q.disableInterrupts();
    if (r === 'stopped') return false;
    c.interruptsTaken++;
    // The interrupt's ISR read: another exit under the global lock.
    this.isrRead();
    return true;
  }

  private runTx(): void {
    const o = this.o;
    const q = this.qs[0]!;
    const c = this.counters;
    q.disableInterrupts();
    let fullEpisode = false;
    let wokeByIrq = false;
    while (!o.stopped()) {
      o.onIteration?.();
      // Completions are reaped on xmit (Linux start_xmit of 2008 and later).
      const r = q.reap(Infinity);
      c.reaped += r;
      if (wokeByIrq && r === 0) c.emptyInterrupts++;
      wokeByIrq = false;
      if (r > 0) fullEpisode = false;
      if (q.done()) break;
      this.cost.beginOwnWork();
      const added = q.fill(this.kickBatch);
      this.cost.guestPacket(added, 'tx');
      if (added > 0) {
        c.added += added;
        this.publishAndKick(false);
        continue;
      }
      if (q.ringFull() && !fullEpisode) {
        fullEpisode = true;
        c.ringFullEvents++;
        o.onRingFull?.(q);
        // The driver kicks when an add fails for lack of descriptors, suppressed or not: what
        // the device's ring-full heuristic keys on (reference §0).
        if (this.kickOnRingFull) this.kick(true);
      }
      if (q.outstanding() === 0) continue;
      const before = c.interruptsTaken;
      if (!this.waitForUsed(this.delayed)) break;
      wokeByIrq = c.interruptsTaken > before;
    }
  }

  private runRx(): void {
    const o = this.o;
    const q = this.qs[0]!;
    const c = this.counters;
    q.disableInterrupts();
    // Post every buffer we have, then tell the device.
    let added = 0;
    let n;
    while ((n = q.fill(this.kickBatch)) > 0) added += n;
    c.added += added;
    if (added > 0) this.publishAndKick(false);
    let wokeByIrq = false;
    while (!o.stopped()) {
      o.onIteration?.();
      this.cost.beginOwnWork();
      const got = q.reap(this.napiBudget);
      this.cost.guestPacket(got, 'rx');
      c.reaped += got;
      if (wokeByIrq && got === 0) c.emptyInterrupts++;
      wokeByIrq = false;
      if (got > 0) {
        const refilled = q.fill(got);
        if (refilled > 0) {
          c.added += refilled;
          this.publishAndKick(false);
        }
        q.afterRefill?.();
      }
      if (q.done()) break;
      // A full budget: poll again. Less: complete (enable + re-check inside waitForUsed).
      if (got === this.napiBudget) continue;
      const before = c.interruptsTaken;
      if (!this.waitForUsed(false)) break;
      wokeByIrq = c.interruptsTaken > before;
    }
  }

  /**
   * Several queues in one thread, one pass each per iteration: tx = reap on xmit, fill ≤
   * kickBatch, publish + kick decision, one forced kick per ring-full episode; rx = NAPI reap ≤
   * napiBudget, refill, publish + kick decision. When a pass did nothing: re-enable interrupts
   * (rx always; tx only while it waits for completions — a full ring with `outstanding` — at once
   * or after 3/4 as the policy says), full fence + re-check inside the callbacks, then sleep on
   * the irq doorbell until it rings, `deadlineMs` passes or the run stops (virtio 1.2 §2.7.14).
   */
  private runShared(): void {
    const o = this.o;
    const c = this.counters;
    for (const q of this.qs) q.disableInterrupts();
    // Post every rx buffer there is, then tell the device.
    for (const q of this.qs) {
      if (q.role !== 'rx') continue;
      let n;
      let added = 0;
      while ((n = q.fill(this.kickBatch)) > 0) added += n;
      c.added += added;
      if (added > 0) this.publishAndKickShared(q, false);
    }
    const fullEpisode = this.qs.map(() => false);
    let wokeByIrq = false;
    while (!o.stopped()) {
      o.onIteration?.();
      if (o.stopped()) break;
      let work = 0;
      let reapedAny = 0;
      for (let i = 0; i < this.qs.length; i++) {
        const q = this.qs[i]!;
        if (q.role === 'tx') {
          const r = q.reap(Infinity);
          c.reaped += r;
          reapedAny += r;
          if (r > 0) fullEpisode[i] = false;
          // The frames built from here on are the guest stack's own work (costs.absorbOwnWork).
          this.cost.beginOwnWork();
          const added = q.fill(this.kickBatch);
          // The guest's stack built these frames (costs.guestPacketUs).
          this.cost.guestPacket(added, 'tx');
          if (added > 0) {
            c.added += added;
            this.publishAndKickShared(q, false);
          } else if (q.ringFull() && !fullEpisode[i]) {
            fullEpisode[i] = true;
            c.ringFullEvents++;
            o.onRingFull?.(q);
            // Linux kicks when an add fails for lack of room, suppressed or not (reference §0).
            if (this.kickOnRingFull) this.kick(true, q);
          }
          work += r + added;
        } else {
          // The poll, its refill and the later per-KiB payment are the guest stack's own work.
          this.cost.beginOwnWork();
          const got = q.reap(this.napiBudget);
          // The guest's stack takes these frames in (costs.guestPacketUs).
          this.cost.guestPacket(got, 'rx');
          c.reaped += got;
          reapedAny += got;
          const refilled = q.fill(this.napiBudget);
          c.added += refilled;
          // Publish what the reap's own refill or ours added (publishAndKickShared skips when nothing is new).
          this.publishAndKickShared(q, false);
          q.afterRefill?.();
          work += got;
          // A full budget: more may wait, poll again before re-enabling.
          if (got === this.napiBudget) work++;
        }
      }
      if (wokeByIrq && reapedAny === 0) c.emptyInterrupts++;
      wokeByIrq = false;
      if (this.qs.every((q) => q.done())) break;
      if (work > 0) continue;
      // Nothing to do: enable where we want an interrupt, re-check, sleep.
      const seen = o.irq.seq();
      let again = false;
      for (let i = 0; i < this.qs.length; i++) {
        const q = this.qs[i]!;
        if (q.role === 'rx') again = q.enableInterrupts() || again;
        else if (q.outstanding() > 0 && q.ringFull()) again = (this.delayed ? q.enableInterruptsDelayed() : q.enableInterrupts()) || again;
      }
      if (again) {
        c.recheckHits++;
        for (const q of this.qs) q.disableInterrupts();
        continue;
      }
      const deadline = o.deadlineMs?.() ?? Infinity;
      const r = deadline === Infinity ? o.irq.wait(seen) : o.irq.waitUntil(seen, deadline);
      o.afterWake?.(r);
      for (const q of this.qs) q.disableInterrupts();
      if (r === 'stopped') break;
      if (r !== 'rung') continue;
      c.interruptsTaken++;
      wokeByIrq = true;
      // The interrupt's ISR read: another exit under the global lock.
      this.isrRead();
    }
  }

  /** publishAndKick for one of several queues; nothing new published = no kick decision. */
  private publishAndKickShared(q: DriverQueueCallbacks, force: boolean): void {
    if (q.publish() === 0 && !force) return;
    const wanted = q.kickNeeded();
    if (wanted || force) this.kick(force && !wanted, q);
    else {
      this.counters.kicksSuppressed++;
      this.qKicksSuppressed[this.qs.indexOf(q)]!++;
    }
  }
}
