// What the virtio-net data path reports to whoever watches it: the observer interface that
// NetDevice, NetDriver and NetDeviceService call, the points of the guest's driver loop around
// NetDriver (publish, kick, driver wake, ring full), and their vocabulary (drop reasons, "no
// packet identity"). The tracer (src/trace/tracer.ts) implements it; net never imports trace.
// No observer (NET_OBSERVER_OFF, `enabled: false`) is the untraced baseline: the data path
// caches `enabled` in a boolean and makes no observer call at all when it is false, so there is
// no separate untraced copy of any loop. Plain data and types only: runs in a browser Web Worker.
//
// Identities and points are those of docs/tracing.md "virtio-net": a tx frame's identity is its
// avail ring position counted from 0, the same on both sides.

/** Packet identity of a point that has none (host → guest frames, lost identities). */
export const NO_ID = 0xffff_ffff;

/** Drop reasons, by code (a trace stores the index). Append only. */
export const DROP_REASONS = ['other', 'ring-full', 'no-buffer', 'bad-header', 'too-long', 'too-short', 'checksum', 'backend', 'queue-broken', 'stopped', 'filtered'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Errors the data path reports. `identity`: a side's frame count disagreed with the ring position it counts (tracing of that queue stops). */
export type NetObserverError = 'identity';

/**
 * The points the virtio-net data path reports, guest → host → guest. Every method is called
 * only when `enabled` was true at construction; `queue` is the virtio queue index.
 */
export interface NetObserver {
  /** False: no method is ever called (the untraced baseline). Read once, at construction. */
  readonly enabled: boolean;
  // ---- driver (NetDriver), tx ----
  /** The time of an `add` for the frame `seq`, if it is kept (a negative number if not); recorded later by addAt. */
  addTime(seq: number): number;
  /** Records the `add` of frame `seq` at `tNs` (from addTime). */
  addAt(seq: number, tNs: number, queue?: number): void;
  /** The driver reaped frame `seq`'s used entry; `fetch` = the queue's used-index fetch count. */
  reap(seq: number, lenBytes: number, queue?: number, fetch?: number): void;
  // ---- driver loop (the guest side's DriverLoop around NetDriver), tx ----
  /** The driver publishes `entries` new avail entries (before the avail.idx store). */
  publish(entries: number, queue?: number): void;
  /** The driver rings the device's doorbell for the batch just published (before the ring). */
  kick(queue?: number): void;
  /** The driver returned from a doorbell wait. */
  driverWake(queue?: number, slept?: boolean): void;
  /** No free tx descriptor or buffer; `inFlight` = entries outstanding. */
  ringFull(inFlight: number, queue?: number): void;
  // ---- device (NetDevice), tx ----
  /** The device popped frame `seq`'s chain; `fetch` = the queue's avail-index fetch count. Returns whether it is kept. */
  pop(seq: number, queue?: number, fetch?: number): boolean;
  /** The port took frame `seq` (or it was dropped). */
  done(seq: number, lenBytes: number, queue?: number): void;
  /** A frame was dropped (seq = NO_ID when it has no identity). */
  drop(reason: DropReason, seq?: number, queue?: number): void;
  /** A data-path error (seq = NO_ID when no frame is concerned). */
  error(code: NetObserverError, seq?: number, queue?: number): void;
  // ---- device loop (NetDeviceService) ----
  /** The device publishes `entries` used entries (before the used.idx store). */
  used(entries: number, queue?: number): void;
  /** The device rings the driver's doorbell (before the ring). */
  interrupt(queue?: number): void;
  /** The device returned from a doorbell wait. */
  deviceWake(queue?: number, slept?: boolean): void;
  /** A tx mitigation timer was armed for `intervalNs`. */
  timerArmed(intervalNs: number, queue?: number): void;
  /** A tx mitigation timer fired `latenessNs` late. */
  timerFired(latenessNs: number, queue?: number): void;
  /** Notifications (kicks or interrupts) of a queue were turned on or off. */
  notifications(enabled: boolean, queue?: number): void;
}

const nothing = (): void => undefined;

/** No observer: the untraced data path. Its methods do nothing and are never called. */
export const NET_OBSERVER_OFF: NetObserver = Object.freeze({
  enabled: false,
  addTime: () => -1,
  addAt: nothing,
  reap: nothing,
  publish: nothing,
  kick: nothing,
  driverWake: nothing,
  ringFull: nothing,
  pop: () => false,
  done: nothing,
  drop: nothing,
  error: nothing,
  used: nothing,
  interrupt: nothing,
  deviceWake: nothing,
  timerArmed: nothing,
  timerFired: nothing,
  notifications: nothing,
});
