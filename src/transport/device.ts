// What a virtio device must provide to sit behind a transport (virtio-mmio here), split the way
// an emulator splits it: the *frontend* (identity, offered features, config space) lives on the
// emulator's thread, because register reads are synchronous there; the *backend* (queues and
// data path) runs inline on that thread or on its own worker. The transport never touches rings;
// the backend never touches registers. Also owns the plain-data shapes that cross threads
// (queue configuration, activation) and the shared signal words (interrupt status, needs-reset).
// Runs in browser Web Workers: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import type { DeviceQueueState, DeviceVirtqueue } from '../virtqueue/index.js';
import type { LoopDoorbell } from '../policy/device-loop.js';
import { Interrupt } from './regs.js';

/** Emulator-thread half of a device: what the register file exposes. */
export interface VirtioDeviceFrontend {
  /** Virtio device type (virtio 1.2 §5; 1 = network). Must not be 0 (a placeholder). */
  readonly deviceId: number;
  /** Feature bits the device offers (device-specific and transport bits, §2.2, §6). */
  readonly offeredFeatures: bigint;
  /** QueueNumMax of each queue; the array length is the number of queues (at most 32). */
  readonly queueMaxSizes: readonly number[];
  /** Bytes of device-specific configuration space (at MMIO offset 0x100). */
  readonly configBytes: number;
  /**
   * Checks the driver's accepted set at FEATURES_OK (only bits that were offered reach here, and
   * VERSION_1 is present). Returns null to accept or a sentence saying why the device refuses,
   * in which case FEATURES_OK stays clear (§2.2.2, §3.1.1 step 6).
   */
  checkFeatures(accepted: bigint): string | null;
  /** Reads `size` (1, 2 or 4) bytes at `offset` of the config space, little-endian. */
  readConfig(offset: number, size: 1 | 2 | 4): number;
  /** Writes config space; returns false for a read-only field (the write is ignored and counted). */
  writeConfig(offset: number, value: number, size: 1 | 2 | 4): boolean;
  /** Called by the transport on device reset (§2.4): config fields the driver may write go back to defaults. */
  resetConfig?(): void;
  /** Plain-object state of whatever the driver can change in config space (save/restore). */
  saveConfig?(): unknown;
  restoreConfig?(state: unknown): void;
}

/** Where the driver placed one queue (§4.2.2 QueueNum and the three area address pairs). */
export interface QueueConfig {
  index: number;
  size: number;
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
}

/** Everything a backend needs at DRIVER_OK, as plain data (crosses to a worker unchanged). */
export interface ActivationPlan {
  /** Negotiated features as a hex string (bigint does not survive JSON). */
  featuresHex: string;
  /** One entry per queue; null for a queue the driver did not make ready. */
  queues: (QueueConfig | null)[];
  /** Present when resuming from a snapshot: queue indices and device state. */
  restore?: BackendSnapshot;
}

/** Backend half of a device snapshot. */
export interface BackendSnapshot {
  queues: (DeviceQueueState | null)[];
  device: unknown;
}

/**
 * How a runner drives a backend: where the device loop sleeps, the notifications per queue, and
 * when it must hand control back. A worker passes the channel's kick doorbell; the inline runner
 * a doorbell the backend never waits on (its thread may not block).
 */
export interface DeviceDrive {
  /** The driver → device doorbell run() sleeps on (rung by every QueueNotify and every command). */
  readonly kick: LoopDoorbell;
  /** Available-buffer notifications for `queue` so far, cumulative (QueueNotify, §4.2.2.2, §4.2.3.3). */
  kicks(queue: number): number;
  /** True when run() must return: a control command waits (reset, save) or the runner stopped. */
  stopped(): boolean;
}

/** What a backend gets at activation. */
export interface DeviceContext extends DeviceDrive {
  readonly mem: GuestMemory;
  /** The negotiated feature set (§2.2). */
  readonly features: bigint;
  /** Live queues configured with the negotiated event idx / indirect bits; null when not ready. */
  readonly queues: readonly (DeviceVirtqueue | null)[];
  /** Sends a used-buffer notification (§2.7.7.2 decided by the caller; this raises the interrupt). */
  notifyUsed(queue: number): void;
  /**
   * The device can no longer operate (a broken queue, a hostile driver): sets
   * DEVICE_NEEDS_RESET and, since DRIVER_OK is set, sends a configuration change notification
   * (virtio 1.2 §2.1.2). The backend must stop touching the queues until deactivate().
   */
  needsReset(reason: Error): void;
}

/**
 * Data-path half of a device. The virtio-net kind runs NetDevice through the policy layer's
 * DeviceLoop (src/net/device-service.ts): that loop alone runs the notify cycle and alone waits.
 */
export interface VirtioDeviceBackend {
  /** Queues come alive (DRIVER_OK, §3.1.1 step 8). Negotiated features configure the device here. */
  activate(ctx: DeviceContext): void;
  /**
   * On a thread that may block (a device worker): runs the device loop, sleeping on ctx.kick,
   * until ctx.stopped() or the device asked for a reset. A VirtqueueError escaping it is caught
   * by the runner and turned into needsReset.
   */
  run(): void;
  /**
   * On a thread that must not block (an emulator's CPU thread, inside the QueueNotify write):
   * one bounded, non-blocking turn of the same loop — notifications read from ctx.kicks, passes
   * until idle, then the re-enable and re-check that precede a sleep. Returns the time
   * (performance.now() ms) by which turn() must run again (a tx timer, a deferred interrupt), or
   * Infinity when only a notification can bring work.
   */
  turn(): number;
  /** Reset: drop every queue and all in-flight state (§2.4). Idempotent. */
  deactivate(): void;
  /**
   * Plain-object device state, only called while neither run() nor turn() runs. Chains popped
   * must have been returned (no in-flight chains) and used elements published, so that queue
   * snapshots plus this state resume without losing or duplicating a buffer.
   */
  save(): unknown;
  /** Re-installs save()'s result, right after activate() on a restored device. */
  restore(state: unknown): void;
  /** The runner is done with this backend for good (after deactivate): release what it holds (a TAP's fd). */
  close?(): void;
}

/** A frontend/backend pair with a name the worker registry can rebuild it from. */
export interface VirtioDeviceKind<O = unknown> {
  readonly kind: string;
  frontend(options: O): VirtioDeviceFrontend;
  backend(options: O): VirtioDeviceBackend;
}

// Shared signal words, written by the backend's thread, read by the transport's.
const SIG_ISR = 0; // InterruptStatus bits
const SIG_NEEDS_RESET = 1; // 1 once the backend asked for DEVICE_NEEDS_RESET
const SIG_NEEDS_RESET_REASON = 2; // length of the reason text in SIG_REASON (diagnostics)
/** Int32 words a signal block needs. */
export const SIGNAL_WORDS = 4;

/**
 * Interrupt status and needs-reset words. Private memory for an inline device, a
 * SharedArrayBuffer window when the backend runs on a worker; every access is an Atomics RMW or
 * load so both threads may set and clear bits concurrently.
 */
export class DeviceSignals {
  constructor(readonly words: Int32Array = new Int32Array(SIGNAL_WORDS)) {}

  /** Sets ISR bits; returns the previous ISR (pairs with the transport's load in interruptStatus). */
  raise(bits: number): number {
    return Atomics.or(this.words, SIG_ISR, bits);
  }
  /** Clears ISR bits (InterruptACK); returns the new ISR. Pairs with raise() on the other thread. */
  ack(bits: number): number {
    return Atomics.and(this.words, SIG_ISR, ~bits) & ~bits;
  }
  get interruptStatus(): number {
    // Pairs with raise()/ack(): the ISR is the only state both threads write.
    return Atomics.load(this.words, SIG_ISR);
  }
  /** Marks the device as needing a reset and raises a config-change interrupt (§2.1.2). */
  setNeedsReset(): number {
    // Store before the interrupt: a driver that sees the config-change bit also sees the flag.
    Atomics.store(this.words, SIG_NEEDS_RESET, 1);
    Atomics.add(this.words, SIG_NEEDS_RESET_REASON, 1); // a counter for diagnostics; pairs with nothing
    return this.raise(Interrupt.CONFIG_CHANGE);
  }
  get needsReset(): boolean {
    // Pairs with the store in setNeedsReset().
    return Atomics.load(this.words, SIG_NEEDS_RESET) !== 0;
  }
  /** Device reset: ISR and needs-reset back to 0 (§4.2.2.1 "Upon reset… clear InterruptStatus"). */
  clear(): void {
    // Both pair with raise()/setNeedsReset() on the device thread, which is stopped by then.
    Atomics.store(this.words, SIG_ISR, 0);
    Atomics.store(this.words, SIG_NEEDS_RESET, 0);
  }
  /** Restores ISR bits from a snapshot. */
  set(isr: number, needsReset: boolean): void {
    // Before activation: published to the device thread by the ACTIVATE command's sequence store.
    Atomics.store(this.words, SIG_ISR, isr);
    Atomics.store(this.words, SIG_NEEDS_RESET, needsReset ? 1 : 0);
  }
}
