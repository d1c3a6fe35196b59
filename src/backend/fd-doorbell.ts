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
//
// Shared words (FdSharedWords, when the peer is another of our threads, as in the TAP demo):
// the Atomics Doorbell's protocol (src/notify/doorbell.ts) with poll(2) as the sleep, so a wait
// can spin on memory first and a ring costs a syscall only when the peer really sleeps:
//   ringer: Atomics.add(peer seq, 1); if (Atomics.load(peer sleeping) !== 0) eventfd write
//   waiter: spin on own seq; Atomics.store(own sleeping, 1); re-check own seq; poll; store 0
// Both are SeqCst on the same two words (Dekker): either the ringer's load of sleeping comes
// after the waiter's store (the ringer writes the eventfd, which stays readable until read) or
// the waiter's re-check comes after the ringer's add (the waiter does not poll).

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
  /** Sequence and sleeping words shared with a peer thread of ours (see the header). */
  shared?: FdSharedWords;
}

/**
 * Int32 words in a SharedArrayBuffer that two FdDoorbells of one process share, one per
 * direction's sequence and one per waiter's "asleep in poll" flag. `waitSeq`/`waitSleeping` are
 * this side's (the peer's ring bumps waitSeq; this side sets waitSleeping around its poll);
 * `ringSeq`/`ringSleeping` are the peer's.
 */
export interface FdSharedWords {
  words: Int32Array;
  waitSeq: number;
  waitSleeping: number;
  ringSeq: number;
  ringSleeping: number;
  /**
   * µs to poll waitSeq before sleeping in poll(2) (the Atomics Doorbell's hybrid strategy, with a
   * time budget: the peer's answer may include a trip through the kernel; 0: poll at once). A
   * side whose wait also covers an input fd (a TAP) should not spin here: the input is only seen
   * by poll(2) (its loop's busy poll reads the port instead).
   */
  spinUs: number;
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

  /** Rings that wrote no eventfd because the peer was not asleep (shared words only). */
  ringsWithoutWrite = 0;
  /** Waits that ended while spinning on the shared sequence, before any poll(2). */
  spinWakes = 0;
  private readonly shared: FdSharedWords | null;

  constructor(private readonly o: FdDoorbellOptions) {
    const sh = o.shared ?? null;
    if (sh !== null) {
      const n = sh.words.length;
      for (const [k, v] of [['waitSeq', sh.waitSeq], ['waitSleeping', sh.waitSleeping], ['ringSeq', sh.ringSeq], ['ringSleeping', sh.ringSleeping]] as const) {
        if (!Number.isInteger(v) || v < 0 || v >= n) throw new RangeError(`FdDoorbell shared.${k} ${v} is not a word of the ${n}-word array`);
      }
      if (!(sh.words.buffer instanceof SharedArrayBuffer)) throw new TypeError('FdDoorbell shared.words must be over a SharedArrayBuffer');
      if (!(sh.spinUs >= 0 && sh.spinUs < Infinity)) throw new RangeError(`FdDoorbell shared.spinUs ${sh.spinUs} must be finite and ≥ 0`);
    }
    this.shared = sh;
  }

  seq(): number {
    const sh = this.shared;
    if (sh === null) return this.seqValue;
    // Acquire: pairs with the peer's Atomics.add in ring(); what it published before is visible.
    return (this.seqValue + Atomics.load(sh.words, sh.waitSeq)) | 0;
  }

  /** Writes counted on queue `queue`'s wait fd so far (its kicks, for a device loop). */
  count(queue: number): number {
    return this.counts[queue] ?? 0;
  }

  ring(queue?: number): boolean {
    const sh = this.shared;
    if (sh !== null) {
      // SeqCst add, then load (Dekker with the waiter's store of sleeping, then load of seq).
      Atomics.add(sh.words, sh.ringSeq, 1);
      if (Atomics.load(sh.words, sh.ringSleeping) === 0) {
        this.ringsWithoutWrite++;
        return true;
      }
    }
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
    if (this.shared !== null && this.spin(seen, deadlineMs ?? Infinity)) return 'rung';
    const idle = this.o.idlePollMs ?? 100;
    this.declareAsleep(true);
    try {
      for (;;) {
        if (this.seq() !== seen) return 'rung';
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
    } finally {
      this.declareAsleep(false);
    }
  }

  /** Like wait(), but meets the deadline precisely: poll(2) to within a millisecond, then spin. */
  waitUntil(seen: number, deadlineMs: number): WaitResult {
    if (this.shared !== null && this.spin(seen, deadlineMs)) return 'rung';
    this.declareAsleep(true);
    try {
      for (;;) {
        if (this.seq() !== seen) return 'rung';
        if (this.controlReady || this.o.stopped()) return 'stopped';
        const left = deadlineMs - performance.now();
        if (left <= 0) return 'timeout';
        const r = this.pollOnce(left > 1.5 ? Math.min(this.o.idlePollMs ?? 100, Math.floor(left - 1)) : 0);
        if (r !== null) return r;
      }
    } finally {
      this.declareAsleep(false);
    }
  }

  /**
   * Shared words: polls the shared sequence for up to spinUs (the clock and the stop check every
   * 64 polls); true when it moved past `seen`. A deadline or a stop ends the spin early and the
   * caller's poll loop reports it.
   */
  private spin(seen: number, deadlineMs: number): boolean {
    const sh = this.shared!;
    if (sh.spinUs === 0) return false;
    const endMs = Math.min(deadlineMs, performance.now() + sh.spinUs / 1000);
    for (let i = 1; ; i++) {
      // Pairs with the peer's Atomics.add in ring().
      if (((this.seqValue + Atomics.load(sh.words, sh.waitSeq)) | 0) !== seen) {
        this.spinWakes++;
        return true;
      }
      if ((i & 63) === 0 && (this.controlReady || this.o.stopped() || performance.now() >= endMs)) return false;
    }
  }

  /** Shared words: this side's sleeping flag, set before the re-check that precedes poll(2). */
  private declareAsleep(on: boolean): void {
    const sh = this.shared;
    // SeqCst store, then the caller's load of seq (Dekker with the peer's add, then load, in ring()).
    if (sh !== null) Atomics.store(sh.words, sh.waitSleeping, on ? 1 : 0);
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
          // With shared words the peer's ring already moved the shared sequence.
          if (this.shared === null) rung = true;
        }
      }
    }
    if (rung) this.seqValue = (this.seqValue + 1) | 0;
    if (this.controlReady) return 'stopped';
    return rung ? 'rung' : null;
  }
}
