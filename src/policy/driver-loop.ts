// The policy-driven driver (guest) loop for one queue, in either role: 'tx' (the guest sends:
// fill → publish → kick decision, reap completions on xmit, forced kick when the ring is full,
// sleep for completions with interrupts re-enabled at once or after 3/4) or 'rx' (the guest
// receives: NAPI-style reap up to a budget, refill and kick per the device's suppression, and
// the disable → poll → enable → re-check → sleep cycle of virtio 1.2 §2.7.14). Kicks under the
// QEMU-2008 model are synchronous exits that take the global lock, as is each interrupt
// acknowledgement. Queue work is passed in as callbacks. Browser-safe (Atomics.wait: workers only).

import type { PolicyConfig } from './config.js';
import type { LoopDoorbell } from './device-loop.js';
import type { BigLock } from './lock.js';

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
}

export interface DriverLoopOptions {
  policy: PolicyConfig;
  queue: DriverQueueCallbacks;
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

  constructor(private readonly o: DriverLoopOptions) {
    const p = o.policy;
    this.lock = p.dataPath.lock === 'none' ? null : (o.lock ?? null);
    this.kickBatch = Math.max(1, o.kickBatch ?? 32);
    this.napiBudget = Math.max(1, o.napiBudget ?? 64);
    this.delayed = p.interrupts.driverEnable === 'delayed';
    this.kickOnRingFull = o.kickOnRingFull ?? true;
  }

  run(): void {
    if (this.o.queue.role === 'tx') this.runTx();
    else this.runRx();
  }

  /** Publishes what was added and kicks if the device wants it (or `force`). */
  publishAndKick(force: boolean): void {
    const q = this.o.queue;
    q.publish();
    const wanted = q.kickNeeded();
    if (wanted || force) this.kick(force && !wanted);
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
    if (this.lock !== null) {
      out.drvLockAcquisitions = this.lock.acquisitions;
      out.drvLockContended = this.lock.contended;
      out.drvLockWaitUs = this.lock.waitUs;
    }
    return out;
  }

  private kick(forced: boolean): void {
    this.counters.kicks++;
    if (forced) this.counters.ringFullKicks++;
    // QEMU-2008: the kick is a PIO exit handled under the global lock.
    if (this.lock !== null) this.lock.lock();
    this.o.kick.ring();
    if (this.lock !== null) this.lock.unlock();
  }

  /** Sleeps for an interrupt unless enable + re-check finds work; returns false when stopped. */
  private waitForUsed(delayed: boolean): boolean {
    const q = this.o.queue;
    const c = this.counters;
    const seen = this.o.irq.seq();
    const again = delayed ? q.enableInterruptsDelayed() : q.enableInterrupts();
    if (again) {
      c.recheckHits++;
      q.disableInterrupts();
      return true;
    }
    const r = this.o.irq.wait(seen);
    q.disableInterrupts();
    if (r === 'stopped') return false;
    c.interruptsTaken++;
    // The interrupt's ISR read: another exit under the global lock.
    if (this.lock !== null) {
      this.lock.lock();
      this.lock.unlock();
    }
    return true;
  }

  private runTx(): void {
    const o = this.o;
    const q = o.queue;
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
      const added = q.fill(this.kickBatch);
      if (added > 0) {
        c.added += added;
        this.publishAndKick(false);
        continue;
      }
      if (q.ringFull() && !fullEpisode) {
        fullEpisode = true;
        c.ringFullEvents++;
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
    const q = o.queue;
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
      const got = q.reap(this.napiBudget);
      c.reaped += got;
      if (wokeByIrq && got === 0) c.emptyInterrupts++;
      wokeByIrq = false;
      if (got > 0) {
        const refilled = q.fill(got);
        if (refilled > 0) {
          c.added += refilled;
          this.publishAndKick(false);
        }
      }
      if (q.done()) break;
      // A full budget: poll again. Less: complete (enable + re-check inside waitForUsed).
      if (got === this.napiBudget) continue;
      const before = c.interruptsTaken;
      if (!this.waitForUsed(false)) break;
      wokeByIrq = c.interruptsTaken > before;
    }
  }
}
