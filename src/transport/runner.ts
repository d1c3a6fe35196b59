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
  /** Snapshot of queue and device state, taken between backend passes. */
  save(): Promise<BackendSnapshot>;
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
    let more = this.host.process(mask);
    for (let i = 1; more && i < this.maxPassesPerNotify; i++) more = this.host.process(0);
  }

  reset(): boolean {
    this.host.deactivate();
    return true;
  }
  resetDone(): boolean {
    return true;
  }
  save(): Promise<BackendSnapshot> {
    return Promise.resolve(this.host.save());
  }
  /** Synchronous save for callers on the same thread. */
  saveSync(): BackendSnapshot {
    return this.host.save();
  }
  close(): Promise<void> {
    this.host.deactivate();
    return Promise.resolve();
  }
}
