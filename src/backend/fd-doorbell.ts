// A doorbell made of file descriptors (Node only): the LoopDoorbell the policy loops wait on and
// ring when the peer is not the engine's other worker but a real driver or device — a QEMU
// guest or DPDK over vhost-user (kick and call eventfds, one per queue, as vhost does), or the
// TAP demo's two workers. wait() sleeps in poll(2) on the queues' eventfds, plus a port's fd (a
// TAP) while the device can take input, plus an optional control fd (the vhost-user socket,
// whose readability ends the wait as 'stopped' so the caller can handle the message between two
// runs of the loop). ring(queue) writes that queue's eventfd.
//
// Ordering: an eventfd write/read is a syscall, a full barrier on both sides. A kick written
// while the loop was draining keeps its eventfd readable, so the next poll returns at once: the
// loop's re-enable → fence → re-check still decides, the eventfd only ends the sleep early.

import type { LoopDoorbell } from '../policy/device-loop.js';
import type { WaitResult } from '../notify/doorbell.js';
import type { IoAddon } from './native.js';

export interface FdDoorbellOptions {
  io: IoAddon;
  /**
   * Eventfds whose readability is a ring (kicks for a device loop, calls for a driver loop), by
   * virtio queue index (-1: none). Read on every call: a transport may replace them.
   */
  waitFds(): readonly number[];
  /** Eventfds ring(queue) writes, by virtio queue index (-1: none); ring() without a queue writes each. */
  ringFds(): readonly number[];
  /** A port's fd (a TAP): polled only while wantInput() says the device can take a frame. */
  inputFd?: number;
  wantInput?(): boolean;
  /** A control fd (the vhost-user socket): readable ends the wait with 'stopped' and sets controlReady. */
  controlFd?: number;
  stopped(): boolean;
  /** Longest single poll, so stopped() is looked at this often (default 100 ms). */
  idlePollMs?: number;
}

const MAX_FDS = 16; // the addon's poll limit

export class FdDoorbell implements LoopDoorbell {
  /** Rings of the wait fds seen (one per wake-up, however many writes it coalesced). */
  private seqValue = 0;
  /** Writes counted on each wait fd (an eventfd read returns how many it coalesced), by queue. */
  private readonly counts: number[] = [];
  /** The control fd became readable; the caller clears it after handling the input. */
  controlReady = false;
  rings = 0;
  /** Wake-ups because the input fd became readable. */
  inputWakes = 0;
  private readonly fds = new Int32Array(MAX_FDS);
  private readonly events = new Int32Array(MAX_FDS);
  private readonly revents = new Int32Array(MAX_FDS);
  private readonly queueAt = new Int32Array(MAX_FDS);

  constructor(private readonly o: FdDoorbellOptions) {}

  seq(): number {
    return this.seqValue;
  }

  /** Writes counted on queue `queue`'s wait fd so far (its kicks, for a device loop). */
  count(queue: number): number {
    return this.counts[queue] ?? 0;
  }

  ring(queue?: number): boolean {
    const fds = this.o.ringFds();
    if (queue !== undefined) {
      const fd = fds[queue] ?? -1;
      if (fd < 0) return false;
      this.o.io.eventfdWrite(fd, 1);
      this.rings++;
      return true;
    }
    let rang = false;
    const done = new Set<number>();
    for (const fd of fds) {
      if (fd < 0 || done.has(fd)) continue;
      done.add(fd);
      this.o.io.eventfdWrite(fd, 1);
      this.rings++;
      rang = true;
    }
    return rang;
  }

  /** Sleeps until a wait fd or the input fd is readable ('rung'), the deadline passes, or stop/control input. */
  wait(seen: number, deadlineMs?: number): WaitResult {
    const idle = this.o.idlePollMs ?? 100;
    for (;;) {
      if (this.seqValue !== seen) return 'rung';
      if (this.controlReady || this.o.stopped()) return 'stopped';
      let timeout = idle;
      if (deadlineMs !== undefined) {
        const left = deadlineMs - performance.now();
        if (left <= 0) return 'timeout';
        timeout = Math.min(idle, Math.floor(left));
      }
      const r = this.pollOnce(timeout);
      if (r !== null) return r;
    }
  }

  /** Like wait(), but meets the deadline precisely: poll(2) to within a millisecond, then spin. */
  waitUntil(seen: number, deadlineMs: number): WaitResult {
    for (;;) {
      if (this.seqValue !== seen) return 'rung';
      if (this.controlReady || this.o.stopped()) return 'stopped';
      const left = deadlineMs - performance.now();
      if (left <= 0) return 'timeout';
      const r = this.pollOnce(left > 1.5 ? Math.min(this.o.idlePollMs ?? 100, Math.floor(left - 1)) : 0);
      if (r !== null) return r;
    }
  }

  /** One poll(2); null when nothing was ready. */
  private pollOnce(timeoutMs: number): WaitResult | null {
    const io = this.o.io;
    const POLLIN = io.constants.POLLIN;
    let n = 0;
    const waitFds = this.o.waitFds();
    for (let q = 0; q < waitFds.length && n < MAX_FDS - 2; q++) {
      const fd = waitFds[q]!;
      if (fd < 0) continue;
      this.fds[n] = fd;
      this.events[n] = POLLIN;
      this.queueAt[n++] = q;
    }
    const inputAt = this.o.inputFd !== undefined && this.o.inputFd >= 0 && (this.o.wantInput?.() ?? true) ? n : -1;
    if (inputAt >= 0) {
      this.fds[n] = this.o.inputFd!;
      this.events[n] = POLLIN;
      this.queueAt[n++] = -1;
    }
    const controlAt = this.o.controlFd !== undefined && this.o.controlFd >= 0 ? n : -1;
    if (controlAt >= 0) {
      this.fds[n] = this.o.controlFd!;
      this.events[n] = POLLIN;
      this.queueAt[n++] = -1;
    }
    const ready = io.poll(this.fds.subarray(0, n), this.events.subarray(0, n), this.revents.subarray(0, n), timeoutMs);
    if (ready <= 0) return null; // timeout, or EINTR: the caller loops
    let rung = false;
    for (let i = 0; i < n; i++) {
      if (this.revents[i] === 0) continue;
      if (i === controlAt) {
        this.controlReady = true;
      } else if (i === inputAt) {
        this.inputWakes++;
        rung = true;
      } else {
        // Clears the eventfd (nonblocking: -EAGAIN when another reader got there first).
        const v = io.eventfdRead(this.fds[i]!);
        if (v > 0) {
          const q = this.queueAt[i]!;
          this.counts[q] = (this.counts[q] ?? 0) + v;
          rung = true;
        }
      }
    }
    if (rung) this.seqValue = (this.seqValue + 1) | 0;
    if (this.controlReady) return 'stopped';
    return rung ? 'rung' : null;
  }
}
