// How the transport reaches a device backend: the DeviceRunner contract, and the inline runner
// that calls the backend synchronously inside the QueueNotify write (v86's model: simplest, no
// second thread, the emulator's CPU stalls while the device works). The worker runner lives in
// worker-runner.ts. Runs in browser Web Workers: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import { BackendHost } from './backend-host.js';
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

/** Runs the backend on the caller's thread: a notify processes the queue before returning. */
export class InlineRunner implements DeviceRunner {
  readonly signals = new DeviceSignals();
  readonly host: BackendHost;
  onSignal: (() => void) | null = null;
  /** Upper bound on back-to-back passes per notify, so a backend that always has work cannot hang the CPU thread. */
  maxPassesPerNotify = 64;
  private paused = false;
  private pendingMask = 0;

  constructor(backend: VirtioDeviceBackend, mem: GuestMemory) {
    this.host = new BackendHost(backend, mem, this.signals, () => this.onSignal?.());
  }

  activate(plan: ActivationPlan): void {
    this.host.activate(plan);
    // A restored device may hold work (frames waiting for rx buffers): give it one pass.
    if (plan.restore) this.run(0);
  }

  notify(queue: number): void {
    this.run(1 << queue);
  }

  /** Lets a backend with its own input (a host network) make progress between notifies. */
  poll(): void {
    this.run(0);
  }

  private run(mask: number): void {
    if (this.paused) {
      this.pendingMask |= mask;
      return;
    }
    let more = this.host.process(mask);
    for (let i = 1; more && i < this.maxPassesPerNotify; i++) more = this.host.process(0);
  }

  reset(): boolean {
    this.paused = false;
    this.pendingMask = 0;
    this.host.deactivate();
    return true;
  }
  resetDone(): boolean {
    return true;
  }
  save(): Promise<BackendSnapshot> {
    return Promise.resolve(this.saveSync());
  }
  /** Synchronous save for callers on the same thread (pauses like save()). */
  saveSync(): BackendSnapshot {
    this.paused = true;
    return this.host.save();
  }
  resume(): void {
    this.paused = false;
    const mask = this.pendingMask;
    this.pendingMask = 0;
    this.run(mask);
  }
  close(): Promise<void> {
    this.host.deactivate();
    return Promise.resolve();
  }
}
