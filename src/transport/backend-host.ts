// Hosts a device backend on whichever thread it lives on: builds the DeviceQueues from an
// activation plan (negotiated event idx / indirect applied, state restored when resuming), hands
// the backend the runner's drive (kick doorbell, per-queue notification counts, stop test), calls
// run() (a worker) or turn() (inline), turns an error escaping the backend into
// DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) instead of a crash, and snapshots queues plus device
// state. Shared by the inline runner and the worker. Runs in browser Web Workers: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import { VirtqueueError, openDeviceQueue, ringLayoutOf, type DeviceVirtqueue } from '../virtqueue/index.js';
import { VirtioF } from '../net/features.js';
import type { ActivationPlan, BackendSnapshot, DeviceContext, DeviceDrive, DeviceSignals, VirtioDeviceBackend } from './device.js';
import { Interrupt } from './regs.js';

export interface BackendHostStats {
  activations: number;
  deactivations: number;
  /** run() calls (worker) and turn() calls (inline). */
  runs: number;
  turns: number;
  usedNotifications: number;
  needsResets: number;
  /** Message of the error that set DEVICE_NEEDS_RESET last. */
  lastError: string | null;
}

export class BackendHost {
  private queues: (DeviceVirtqueue | null)[] = [];
  private activeValue = false;
  private brokenValue = false;
  readonly stats: BackendHostStats = { activations: 0, deactivations: 0, runs: 0, turns: 0, usedNotifications: 0, needsResets: 0, lastError: null };

  /** `raiseLine` runs after ISR bits were set: a callback inline, a doorbell ring on a worker. */
  constructor(
    readonly backend: VirtioDeviceBackend,
    readonly mem: GuestMemory,
    readonly signals: DeviceSignals,
    private readonly raiseLine: () => void,
    private readonly drive: DeviceDrive,
  ) {}

  get active(): boolean {
    return this.activeValue;
  }
  /** True after the backend (or a queue) asked for a reset; run() and turn() then do nothing. */
  get broken(): boolean {
    return this.brokenValue;
  }

  /** DRIVER_OK: builds the queues and activates the backend (restoring state when the plan has it). */
  activate(plan: ActivationPlan): void {
    if (this.activeValue) this.deactivate();
    const features = BigInt(plan.featuresHex);
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
    const inOrder = (features & VirtioF.IN_ORDER) !== 0n;
    const ring = (features & VirtioF.RING_PACKED) !== 0n ? 'packed' : 'split';
    this.brokenValue = false;
    try {
      this.queues = plan.queues.map((c) => {
        if (c === null) return null;
        const layout = ringLayoutOf(ring, c.size, c.descAddr, c.driverAddr, c.deviceAddr, c.index);
        const q = openDeviceQueue(this.mem, layout, { index: c.index, eventIdx, indirect, inOrder });
        const st = plan.restore?.queues[c.index];
        if (st) q.restore(st);
        return q;
      });
    } catch (e) {
      // The transport validated the layout; memory may still have changed under us.
      this.queues = [];
      this.fail(e);
      return;
    }
    const drive = this.drive;
    const ctx: DeviceContext = {
      kick: drive.kick,
      kicks: (q) => drive.kicks(q),
      stopped: () => drive.stopped(),
      mem: this.mem,
      features,
      queues: this.queues,
      notifyUsed: () => {
        this.stats.usedNotifications++;
        this.signals.raise(Interrupt.USED_BUFFER);
        this.raiseLine();
      },
      needsReset: (reason: Error) => this.fail(reason),
    };
    this.activeValue = true;
    this.stats.activations++;
    try {
      this.backend.activate(ctx);
      if (plan.restore) this.backend.restore(plan.restore.device);
    } catch (e) {
      this.fail(e);
    }
  }

  /** The backend's blocking loop (a worker); returns when a command waits, the runner stops or the device broke. */
  run(): void {
    if (!this.activeValue || this.brokenValue) return;
    this.stats.runs++;
    try {
      this.backend.run();
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * One non-blocking turn of the backend (inline); returns when to call again (performance.now()
   * ms, Infinity = on the next notification only).
   */
  turn(): number {
    if (!this.activeValue || this.brokenValue) return Infinity;
    this.stats.turns++;
    try {
      return this.backend.turn();
    } catch (e) {
      this.fail(e);
      return Infinity;
    }
  }

  /** Reset: the backend drops its queues; nothing touches guest memory after this returns. */
  deactivate(): void {
    if (this.activeValue) {
      this.stats.deactivations++;
      try {
        this.backend.deactivate();
      } catch {
        // A backend that fails to tear down must not keep the device from resetting.
      }
    }
    this.activeValue = false;
    this.brokenValue = false;
    this.queues = [];
  }

  /** Deactivates and lets the backend release what it holds; the host is not used again. */
  close(): void {
    this.deactivate();
    try {
      this.backend.close?.();
    } catch {
      // Releasing must not keep the runner from closing.
    }
  }

  /** Queue snapshots and the backend's state (call while neither run() nor turn() runs). */
  save(): BackendSnapshot {
    return {
      queues: this.queues.map((q) => (q === null ? null : q.snapshot())),
      device: this.activeValue ? this.backend.save() : null,
    };
  }

  private fail(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    if (!(err instanceof VirtqueueError) && !this.isGuestError(err)) {
      // Not a driver's fault: still never crash the emulator, but say so in the reason.
      this.stats.lastError = `device error: ${err.message}`;
    } else {
      this.stats.lastError = err.message;
    }
    this.brokenValue = true;
    this.stats.needsResets++;
    this.signals.setNeedsReset();
    this.raiseLine();
  }

  private isGuestError(e: Error): boolean {
    return e.name === 'GuestMemoryError' || e.name === 'NetError';
  }
}
