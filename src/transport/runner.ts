// How the transport reaches a device backend: the DeviceRunner contract, and the inline runner
// that turns the device loop synchronously inside the QueueNotify write (v86's model: simplest,
// no second thread, the emulator's CPU stalls while the device works). The worker runner lives in
// worker-runner.ts. Runs in browser Web Workers: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import { BackendHost } from './backend-host.js';
import type { LoopDoorbell } from '../policy/device-loop.js';
import type { WaitResult } from '../notify/index.js';
import { DeviceSignals, type ActivationPlan, type BackendSnapshot, type VirtioDeviceBackend } from './device.js';

export interface DeviceRunner {
  /** Interrupt status and needs-reset words, shared with the backend's thread. */
  readonly signals: DeviceSignals;
  /** The transport's hook, called on the transport's thread when ISR bits may have been set. */
  onSignal: (() => void) | null;
  /** DRIVER_OK: start the backend with these queues. */
  activate(plan: ActivationPlan): void;
  /** QueueNotify for `queue` (an available-buffer notification, §4.2.3.3). */
  notify(queue: number): void;
  /**
   * Device reset (§2.4): stop the backend. Returns true once the backend no longer touches guest
   * memory; false means it is still in progress (poll resetDone()).
   */
  reset(): boolean;
  resetDone(): boolean;
  /**
   * Snapshot of queue and device state, taken between backend passes. The backend stays paused
   * afterwards (no queue is touched, notifications are remembered) until resume(), so nothing
   * moves between the snapshot and the moment the emulator stops or goes on.
   */
  save(): Promise<BackendSnapshot>;
  /** Ends the pause that save() started; remembered notifications are processed. */
  resume(): void;
  /** Stops the runner for good (terminates a worker). */
  close(): Promise<void>;
}

export interface InlineRunnerOptions {
  /**
   * How device deadlines (a tx mitigation timer, a deferred interrupt) are met: 'auto' (default)
   * schedules a poll() with setTimeout when the event loop runs; 'manual' leaves it to the
   * embedder, who calls poll() by `deadlineMs` (a CPU loop that never yields to the event loop).
   */
  timers?: 'auto' | 'manual';
}

// Inline, the device loop never sleeps: its kick doorbell only counts notifications.
class CountingDoorbell implements LoopDoorbell {
  count = 0;
  seq(): number {
    return this.count;
  }
  ring(): boolean {
    return false;
  }
  wait(): WaitResult {
    return 'timeout';
  }
  waitUntil(): WaitResult {
    return 'timeout';
  }
}

/**
 * Runs the backend on the caller's thread: a QueueNotify write runs one non-blocking turn of the
 * device loop before returning (v86's model: no second thread, the emulator's CPU stalls while
 * the device works). Policies with timers (a tx mitigation interval, interrupt coalescing) need
 * poll() by `deadlineMs`; with timers 'auto' a setTimeout does that when the event loop runs.
 */
export class InlineRunner implements DeviceRunner {
  readonly signals = new DeviceSignals();
  readonly host: BackendHost;
  onSignal: (() => void) | null = null;
  private paused = false;
  private readonly kick = new CountingDoorbell();
  private readonly kickCounts: number[] = [];
  private deadline = Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private readonly autoTimers: boolean;

  constructor(backend: VirtioDeviceBackend, mem: GuestMemory, opts: InlineRunnerOptions = {}) {
    this.autoTimers = (opts.timers ?? 'auto') === 'auto' && typeof setTimeout === 'function';
    this.host = new BackendHost(backend, mem, this.signals, () => this.onSignal?.(), {
      kick: this.kick,
      kicks: (q) => this.kickCounts[q] ?? 0,
      stopped: () => this.paused,
    });
  }

  /** When poll() must run next (performance.now() ms); Infinity while only a notification can bring work. */
  get deadlineMs(): number {
    return this.deadline;
  }

  activate(plan: ActivationPlan): void {
    this.host.activate(plan);
    // A restored device may hold work (frames waiting for rx buffers): give it a turn.
    if (plan.restore) this.turn();
  }

  notify(queue: number): void {
    this.kickCounts[queue] = (this.kickCounts[queue] ?? 0) + 1;
    this.kick.count++;
    this.turn();
  }

  /** Lets the device meet its deadlines and take input of its own (a host network) between notifies. */
  poll(): void {
    this.turn();
  }

  private turn(): void {
    if (this.paused) return; // notifications stay counted until resume()
    this.deadline = this.host.turn();
    if (this.autoTimers && this.deadline !== Infinity && this.deadline < this.timerAt) this.schedule();
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = this.deadline;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.turn();
    }, Math.max(0, this.deadline - performance.now()));
    // A device deadline alone must not keep a Node process alive.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.deadline = Infinity;
  }

  reset(): boolean {
    this.paused = false;
    this.cancelTimer();
    this.host.deactivate();
    return true;
  }
  resetDone(): boolean {
    return true;
  }
  save(): Promise<BackendSnapshot> {
    try {
      return Promise.resolve(this.saveSync());
    } catch (e) {
      return Promise.reject(e);
    }
  }
  /** Synchronous save for callers on the same thread (pauses like save()). */
  saveSync(): BackendSnapshot {
    this.paused = true;
    return this.host.save();
  }
  resume(): void {
    this.paused = false;
    this.turn();
  }
  close(): Promise<void> {
    this.cancelTimer();
    this.host.close();
    return Promise.resolve();
  }
}
