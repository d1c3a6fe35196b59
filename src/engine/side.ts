// The runtime a workload's processor gets inside its worker: guest memory, doorbells, the stop
// signal, the start barrier, and a measurement window that excludes warm-up. One SideContext per
// side per run.

import type { GuestMemory } from '../memory/index.js';
import type { Doorbell, DoorbellBlock } from '../notify/index.js';
import { Tracer } from '../trace/tracer.js';
import { sideLogger, type Logger, type LogLevel } from '../trace/log.js';
import { threadCpuNs } from './thread-cpu.js';
import { openDoorbells, openMemory } from './setup.js';
import { IRQ_DOORBELL, KICK_DOORBELL, emptySideStats, type ProcessorTask, type Role, type SharedSetup, type SideStats } from './types.js';

const CTRL_READY = 0; // start barrier: number of sides that arrived

export class SideContext {
  readonly role: Role;
  readonly setup: SharedSetup;
  readonly mem: GuestMemory;
  readonly block: DoorbellBlock;
  /** Guest → host doorbell: the guest rings it, the host waits on it. */
  readonly kick: Doorbell;
  /** Host → guest doorbell: the host rings it, the guest waits on it. */
  readonly irq: Doorbell;
  readonly params: Record<string, unknown>;
  readonly stats: SideStats;
  /** This side's tracer (Tracer.off when the run is not traced): guard calls with `tracer.enabled`. */
  readonly tracer: Tracer;
  /** Operational logger of this side (pino child, `side` = role). Never per packet. */
  readonly log: Logger;
  private readonly control: Int32Array;
  private windowStartMs = 0;
  private windowStartCpuNs = 0;
  private windowStartPackets = 0;
  private windowStartBytes = 0;
  private windowOpen = false;
  /** Wall-clock (epoch ms, comparable across threads) when this side passed the start barrier. */
  readyEpochMs = 0;

  constructor(task: ProcessorTask) {
    this.role = task.role;
    this.setup = task.setup;
    this.params = task.params;
    this.mem = openMemory(task.setup);
    this.block = openDoorbells(task.setup);
    const opts = { strategy: task.wait.strategy, ...(task.wait.spinIterations !== undefined ? { spinIterations: task.wait.spinIterations } : {}) };
    this.kick = this.block.doorbell(KICK_DOORBELL, opts);
    this.irq = this.block.doorbell(IRQ_DOORBELL, opts);
    this.control = new Int32Array(task.setup.controlSab);
    this.stats = emptySideStats(task.role);
    this.tracer = task.trace ? new Tracer(task.trace) : Tracer.off;
    this.log = sideLogger(task.role, task.logLevel as LogLevel | undefined);
  }

  get stopped(): boolean {
    return this.block.stopped;
  }

  /**
   * Start barrier: returns when both sides arrived (true) or the engine stopped (false). Waits
   * in 50 ms slices so a stop is seen even if the peer never arrives.
   */
  arriveAndWait(): boolean {
    // Pairs with the other side's Atomics.add and with its load loop below.
    Atomics.add(this.control, CTRL_READY, 1);
    Atomics.notify(this.control, CTRL_READY);
    for (;;) {
      const n = Atomics.load(this.control, CTRL_READY);
      if (n >= 2) {
        this.readyEpochMs = performance.timeOrigin + performance.now();
        return true;
      }
      if (this.stopped) return false;
      Atomics.wait(this.control, CTRL_READY, n, 50);
    }
  }

  /** Opens the measurement window now (call after warm-up). */
  openWindow(): void {
    this.windowOpen = true;
    this.windowStartMs = performance.now();
    this.windowStartCpuNs = threadCpuNs();
    this.windowStartPackets = this.stats.packets;
    this.windowStartBytes = this.stats.bytes;
  }

  get windowIsOpen(): boolean {
    return this.windowOpen;
  }

  /** Closes the window and folds doorbell counters into the stats; returns them. */
  finish(): SideStats {
    const s = this.stats;
    if (this.tracer.enabled) {
      this.tracer.flush();
      s.extra.traceDroppedRecords = this.tracer.dropped;
      s.extra.traceClockReads = this.tracer.clockReads;
    }
    if (!this.windowOpen) this.openWindow();
    s.windowMs = performance.now() - this.windowStartMs;
    s.windowCpuNs = threadCpuNs() - this.windowStartCpuNs;
    s.windowPackets = s.packets - this.windowStartPackets;
    s.windowBytes = s.bytes - this.windowStartBytes;
    const out = this.role === 'guest' ? this.kick : this.irq;
    const inc = this.role === 'guest' ? this.irq : this.kick;
    s.rings = out.stats.rings;
    s.notifies = out.stats.notifies;
    s.waits = inc.stats.waits;
    s.sleeps = inc.stats.sleeps;
    s.wakeups = inc.stats.wakeups;
    s.spuriousWakeups = inc.stats.spuriousWakeups;
    return s;
  }

  /** Records a verification failure (the first one keeps its message). */
  error(message: string): void {
    if (this.stats.errors++ === 0) this.stats.firstError = message;
  }

  numParam(name: string, fallback: number): number {
    const v = this.params[name];
    return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
  }

  strParam(name: string, fallback: string): string {
    const v = this.params[name];
    return typeof v === 'string' ? v : fallback;
  }
}
