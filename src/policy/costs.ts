// Paying a modelled cost (PolicyConfig.costs): the thread that paid it in 2008 spins for that
// long, so the cost takes its time and its CPU as a VM exit, an interrupt injection or a system
// call did, and counts what it paid. With `costs.absorbOwnWork`, the guest stack's costs and the
// per-frame syscall are totals: this thread's own work on the same frames (building, parsing,
// the ring, the host stack) counts toward them and only the rest is spun, so the machine's own
// per-frame time is not added on top of what the RFC's figures already contain. Browser-safe.

import type { Clock } from './clock.js';
import { NO_COSTS, type CostConfig } from './config.js';

export class CostPayer {
  /** µs paid so far, by kind. */
  exitUs = 0;
  irqInjectUs = 0;
  syscallUs = 0;
  guestPacketUs = 0;
  guestKiBUs = 0;
  backendReadUs = 0;
  timerFireUs = 0;
  timerFires = 0;
  exits = 0;
  guestPackets = 0;
  injections = 0;
  syscalls = 0;
  /** µs of this thread's own work that counted toward an own-work cost (absorbOwnWork), so were not spun. */
  absorbedUs = 0;
  readonly costs: CostConfig;
  private readonly absorb: boolean;
  /** µs spun so far, every kind: left out of own work. */
  private spunUs = 0;
  /** Own work measured since beginOwnWork and not yet set against a cost. */
  private creditUs = 0;
  /** Where own work was last measured from (NaN: outside a stretch of own work), and the spin and excluded totals then. */
  private markUs = Number.NaN;
  private markSpunUs = 0;
  private markExcludedUs = 0;

  constructor(
    costs: CostConfig | undefined,
    private readonly clock: Clock,
    /** A running total of µs to leave out of own work: this thread's waits for the global lock. */
    private readonly excludedUs: () => number = () => 0,
  ) {
    this.costs = costs ?? NO_COSTS;
    this.absorb = this.costs.absorbOwnWork === true;
  }

  /**
   * Starts a stretch of this thread's own work on frames whose own-work costs (guest stack,
   * syscall) are paid later in the stretch; earlier unused credit is dropped. No-op unless
   * absorbOwnWork.
   */
  beginOwnWork(): void {
    if (!this.absorb) return;
    this.creditUs = 0;
    this.markUs = this.clock.nowUs();
    this.markSpunUs = this.spunUs;
    this.markExcludedUs = this.excludedUs();
  }

  /** Pays an own-work cost of `us`: the credit measured since the mark first, then spins the rest. */
  private payOwn(us: number): number {
    if (!this.absorb || Number.isNaN(this.markUs)) return this.spin(us);
    const now = this.clock.nowUs();
    const excluded = this.excludedUs();
    // Elapsed time, less what spinning for other costs and waiting for the lock took.
    const own = now - this.markUs - (this.spunUs - this.markSpunUs) - (excluded - this.markExcludedUs);
    if (own > 0) this.creditUs += own;
    const used = Math.min(this.creditUs, us);
    this.creditUs -= used;
    this.absorbedUs += used;
    const spun = this.spin(us - used);
    this.markUs = this.clock.nowUs();
    this.markSpunUs = this.spunUs;
    this.markExcludedUs = excluded;
    return spun;
  }

  get any(): boolean {
    return this.costs.exitUs > 0 || this.costs.irqInjectUs > 0 || this.costs.syscallUs > 0 || this.costs.guestPacketUs > 0 || (this.costs.guestRxPacketUs ?? 0) > 0 || (this.costs.timerFireUs ?? 0) > 0 || this.perKiB;
  }

  /** True when a per-KiB cost is set (callers skip counting bytes otherwise). */
  get perKiB(): boolean {
    return (this.costs.guestTxKiBUs ?? 0) > 0 || (this.costs.guestRxKiBUs ?? 0) > 0 || (this.costs.backendReadKiBUs ?? 0) > 0;
  }

  exit(): void {
    if (this.costs.exitUs <= 0) return;
    this.exits++;
    this.exitUs += this.spin(this.costs.exitUs);
  }

  irqInject(): void {
    if (this.costs.irqInjectUs <= 0) return;
    this.injections++;
    this.irqInjectUs += this.spin(this.costs.irqInjectUs);
  }

  /** The host's work for one tx mitigation timer fire (kvm-71: SIGALRM, select's EINTR, the alarm's re-arm). */
  timerFire(): void {
    const us = this.costs.timerFireUs ?? 0;
    if (us <= 0) return;
    this.timerFires++;
    this.timerFireUs += this.spin(us);
  }

  /** `n` system calls back to back (one per frame moved). */
  syscall(n = 1): void {
    if (this.costs.syscallUs <= 0 || n <= 0) return;
    this.syscalls += n;
    this.syscallUs += this.payOwn(this.costs.syscallUs * n);
  }

  /** The guest stack's work for `n` frames it sent ('tx') or received ('rx'). */
  guestPacket(n: number, dir: 'tx' | 'rx'): void {
    const us = dir === 'rx' ? (this.costs.guestRxPacketUs ?? this.costs.guestPacketUs) : this.costs.guestPacketUs;
    if (us <= 0 || n <= 0) return;
    this.guestPackets += n;
    this.guestPacketUs += this.payOwn(us * n);
  }

  /** The guest stack's per-byte work for `bytes` of frames it sent ('tx') or received ('rx'). */
  guestBytes(dir: 'tx' | 'rx', bytes: number): void {
    const perKiB = (dir === 'tx' ? this.costs.guestTxKiBUs : this.costs.guestRxKiBUs) ?? 0;
    if (perKiB <= 0 || bytes <= 0) return;
    this.guestKiBUs += this.payOwn((perKiB * bytes) / 1024);
  }

  /** Reading a `bytes` frame from the backend (the tap read's copy). */
  backendRead(bytes: number): void {
    const perKiB = this.costs.backendReadKiBUs ?? 0;
    if (perKiB <= 0 || bytes <= 0) return;
    this.backendReadUs += this.spin((perKiB * bytes) / 1024);
  }

  /** Busy-waits `us` on the clock; returns the µs that actually passed. */
  private spin(us: number): number {
    if (us <= 0) return 0;
    const start = this.clock.nowUs();
    const end = start + us;
    let now = start;
    while (now < end) now = this.clock.nowUs();
    this.spunUs += now - start;
    return now - start;
  }

  /** Counters for SideStats.extra (prefix `cost`): only when a cost is set. */
  toExtra(out: Record<string, number>): void {
    if (!this.any) return;
    Object.assign(out, { costExits: this.exits, costExitUs: this.exitUs, costInjections: this.injections, costIrqInjectUs: this.irqInjectUs, costSyscalls: this.syscalls, costSyscallUs: this.syscallUs, costGuestPackets: this.guestPackets, costGuestPacketUs: this.guestPacketUs });
    if (this.perKiB) Object.assign(out, { costGuestKiBUs: this.guestKiBUs, costBackendReadUs: this.backendReadUs });
    if (this.absorb) out.costAbsorbedUs = this.absorbedUs;
    if ((this.costs.timerFireUs ?? 0) > 0) Object.assign(out, { costTimerFires: this.timerFires, costTimerFireUs: this.timerFireUs });
  }
}
