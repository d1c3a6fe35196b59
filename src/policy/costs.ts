// Paying a modelled cost (PolicyConfig.costs): the thread that paid it in 2008 spins for that
// long, so the cost takes its time and its CPU as a VM exit, an interrupt injection or a system
// call did, and counts what it paid. Browser-safe.

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
  exits = 0;
  guestPackets = 0;
  injections = 0;
  syscalls = 0;
  readonly costs: CostConfig;

  constructor(
    costs: CostConfig | undefined,
    private readonly clock: Clock,
  ) {
    this.costs = costs ?? NO_COSTS;
  }

  get any(): boolean {
    return this.costs.exitUs > 0 || this.costs.irqInjectUs > 0 || this.costs.syscallUs > 0 || this.costs.guestPacketUs > 0 || this.perKiB;
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

  /** `n` system calls back to back (one per frame moved). */
  syscall(n = 1): void {
    if (this.costs.syscallUs <= 0 || n <= 0) return;
    this.syscalls += n;
    this.syscallUs += this.spin(this.costs.syscallUs * n);
  }

  /** The guest stack's work for `n` frames sent or received. */
  guestPacket(n: number): void {
    if (this.costs.guestPacketUs <= 0 || n <= 0) return;
    this.guestPackets += n;
    this.guestPacketUs += this.spin(this.costs.guestPacketUs * n);
  }

  /** The guest stack's per-byte work for `bytes` of frames it sent ('tx') or received ('rx'). */
  guestBytes(dir: 'tx' | 'rx', bytes: number): void {
    const perKiB = (dir === 'tx' ? this.costs.guestTxKiBUs : this.costs.guestRxKiBUs) ?? 0;
    if (perKiB <= 0 || bytes <= 0) return;
    this.guestKiBUs += this.spin((perKiB * bytes) / 1024);
  }

  /** Reading a `bytes` frame from the backend (the tap read's copy). */
  backendRead(bytes: number): void {
    const perKiB = this.costs.backendReadKiBUs ?? 0;
    if (perKiB <= 0 || bytes <= 0) return;
    this.backendReadUs += this.spin((perKiB * bytes) / 1024);
  }

  /** Busy-waits `us` on the clock; returns the µs that actually passed. */
  private spin(us: number): number {
    const start = this.clock.nowUs();
    const end = start + us;
    let now = start;
    while (now < end) now = this.clock.nowUs();
    return now - start;
  }

  /** Counters for SideStats.extra (prefix `cost`): only when a cost is set. */
  toExtra(out: Record<string, number>): void {
    if (!this.any) return;
    Object.assign(out, { costExits: this.exits, costExitUs: this.exitUs, costInjections: this.injections, costIrqInjectUs: this.irqInjectUs, costSyscalls: this.syscalls, costSyscallUs: this.syscallUs, costGuestPackets: this.guestPackets, costGuestPacketUs: this.guestPacketUs });
    if (this.perKiB) Object.assign(out, { costGuestKiBUs: this.guestKiBUs, costBackendReadUs: this.backendReadUs });
  }
}
