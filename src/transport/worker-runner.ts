// The transport's side of a device backend running on its own worker: a QueueNotify write sets
// the queue's bit and rings the kick doorbell (the device thread does the work, the emulator's
// CPU goes on — like ioeventfd); control operations (activate at DRIVER_OK, reset, save) are
// commands over the shared channel; interrupts come back on the irq doorbell and are delivered
// by an async watcher (for an event-loop emulator) or by waitForInterrupt() (for a CPU thread
// that halts). Spawning the worker is the caller's (Node and browsers differ): see
// node-worker.ts and web-device-worker.ts. Runs in browser Web Workers: no `node:` imports.

import type { Doorbell } from '../notify/index.js';
import { Cmd, DeviceChannel, IRQ_DOORBELL, KICK_DOORBELL, W_ACK_SEQ, W_CLOSED, W_CMD_KIND, W_CMD_SEQ, W_PENDING, W_READY, W_RESULT } from './channel.js';
import { DeviceSignals, type ActivationPlan, type BackendSnapshot } from './device.js';
import { TransportError } from './errors.js';
import type { DeviceRunner } from './runner.js';

/** What the runner needs of the worker it does not create. */
export interface DeviceWorkerHandle {
  terminate(): unknown;
}

export interface WorkerRunnerOptions {
  /** How long a synchronous control command may wait for the device thread (default 2000 ms). */
  commandTimeoutMs?: number;
  /** Start the async interrupt watcher (default true; turn off when the CPU thread uses waitForInterrupt). */
  watchInterrupts?: boolean;
}

// Atomics.wait throws on threads that may not block (a browser's main thread).
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

export class WorkerRunner implements DeviceRunner {
  readonly signals: DeviceSignals;
  onSignal: (() => void) | null = null;
  readonly kick: Doorbell;
  /** The device's interrupt doorbell (for emulators that wait on it themselves). */
  readonly irq: Doorbell;
  private issued = 0;
  private resetSeq = -1;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly blocking = canBlock();

  constructor(
    readonly channel: DeviceChannel,
    private readonly worker: DeviceWorkerHandle,
    opts: WorkerRunnerOptions = {},
  ) {
    this.signals = new DeviceSignals(channel.signalWords);
    this.kick = channel.doorbell(KICK_DOORBELL);
    this.irq = channel.doorbell(IRQ_DOORBELL, { strategy: 'block' });
    this.timeoutMs = opts.commandTimeoutMs ?? 2000;
    // A fresh channel reads 0; pairs with nothing yet (no command was issued).
    this.issued = Atomics.load(channel.words, W_CMD_SEQ);
    if (opts.watchInterrupts ?? true) void this.watch();
  }

  /** Resolves once the device loop runs. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const w = this.channel.words;
    const end = performance.now() + timeoutMs;
    // Pairs with the device loop's store of W_READY.
    while (Atomics.load(w, W_READY) === 0) {
      if (performance.now() > end) throw new TransportError('worker-timeout', 'device worker did not start');
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  activate(plan: ActivationPlan): void {
    this.issue(Cmd.ACTIVATE, plan);
  }

  notify(queue: number): void {
    // Set the bit before ringing: the device loop reads the bits after it sees the ring
    // (pairs with its Atomics.exchange of W_PENDING).
    Atomics.or(this.channel.words, W_PENDING, 1 << queue);
    this.kick.ring();
  }

  reset(): boolean {
    this.resetSeq = this.issue(Cmd.RESET);
    this.waitAck(this.resetSeq, this.timeoutMs);
    return this.resetDone();
  }

  resetDone(): boolean {
    return this.acked(this.resetSeq);
  }

  async save(): Promise<BackendSnapshot> {
    const seq = this.issue(Cmd.SAVE);
    await this.waitAckAsync(seq);
    const out = this.channel.readPayload() as BackendSnapshot | { error: string };
    // Pairs with the device's store of W_RESULT before its ack.
    if (Atomics.load(this.channel.words, W_RESULT) !== 0) throw new TransportError('worker-failed', `save failed: ${(out as { error: string }).error}`);
    return out as BackendSnapshot;
  }

  resume(): void {
    this.issue(Cmd.RESUME);
  }

  /**
   * Blocks the calling CPU thread until the device raises an interrupt or `timeoutMs` passes
   * (a guest's HLT). Returns true when InterruptStatus is non-zero. Not on a browser main thread.
   */
  waitForInterrupt(timeoutMs: number): boolean {
    const seen = this.irq.seq();
    if (this.signals.interruptStatus !== 0) {
      this.onSignal?.();
      return true;
    }
    this.irq.wait(seen, performance.now() + timeoutMs);
    this.onSignal?.();
    return this.signals.interruptStatus !== 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Stops the device loop and the interrupt watcher: every wait on the block returns 'stopped'.
    this.channel.block.stop();
    // Let the device thread leave its loop and release what its backend holds (a TAP's fd,
    // which outlives a terminated thread: fds belong to the process), up to a second; then end it.
    const end = performance.now() + 1000;
    // Acquire: pairs with the device thread's store of W_CLOSED after its backend closed.
    while (Atomics.load(this.channel.words, W_CLOSED) === 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 1));
    await this.worker.terminate();
  }

  private async watch(): Promise<void> {
    while (!this.closed) {
      const seen = this.irq.seq();
      this.onSignal?.();
      const r = await this.irq.waitAsync(seen);
      if (r === 'stopped') return;
    }
  }

  /** Writes a command and rings; waits first for the previous one so the payload area is free. */
  private issue(kind: number, payload?: unknown): number {
    const w = this.channel.words;
    if (!this.waitAck(this.issued, this.timeoutMs)) throw new TransportError('worker-timeout', `device thread did not finish command ${this.issued}`);
    if (payload !== undefined) this.channel.writePayload(payload);
    // Ordered before the W_CMD_SEQ add below (pairs with the device loop's load of W_CMD_KIND).
    Atomics.store(w, W_CMD_KIND, kind);
    // Release: kind and payload become visible before the sequence (pairs with the device loop's load).
    this.issued = Atomics.add(w, W_CMD_SEQ, 1) + 1;
    this.kick.ring();
    return this.issued;
  }

  private acked(seq: number): boolean {
    // Acquire: pairs with the device loop's release store of W_ACK_SEQ.
    return ((Atomics.load(this.channel.words, W_ACK_SEQ) - seq) | 0) >= 0;
  }

  private waitAck(seq: number, timeoutMs: number): boolean {
    const w = this.channel.words;
    const end = performance.now() + timeoutMs;
    while (!this.acked(seq)) {
      const left = end - performance.now();
      if (left <= 0 || this.channel.block.stopped) return false;
      const cur = Atomics.load(w, W_ACK_SEQ);
      // Sleeps until the device's Atomics.notify of W_ACK_SEQ; a thread that may not block spins.
      if (this.blocking) Atomics.wait(w, W_ACK_SEQ, cur, Math.min(left, 50));
    }
    return true;
  }

  private async waitAckAsync(seq: number): Promise<void> {
    const end = performance.now() + this.timeoutMs;
    while (!this.acked(seq)) {
      if (performance.now() > end) throw new TransportError('worker-timeout', `device thread did not answer command ${seq}`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}
