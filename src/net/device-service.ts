// The one virtio-net device data path as a running service: NetDevice (header validation,
// offloads, mergeable rx, counted drops) on a receive and a transmit DeviceQueue, a NetPort
// behind it, and the policy layer's DeviceLoop in front of it, which alone runs the notify
// cycle (disable → drain → publish → re-enable → fence → re-check → sleep, virtio 1.2 §2.7.14),
// the tx mitigation timers, interrupt rules, rx kick suppression, busy polling and the QEMU-2008
// global lock. Every transport hosts this same service: the engine's worker pair (Atomics
// doorbells), virtio-mmio in an emulator, vhost-user for QEMU and DPDK and the TAP demo (fd
// doorbells: eventfd kicks and calls, a TAP fd). Only the doorbells and the port differ.
// Queue 0 is rx, queue 1 tx (§5.1.2), unless the transport says otherwise.
//
// Tracing (opts.tracer: a NetObserver, src/net/observer.ts, such as the Tracer; docs/tracing.md
// "virtio-net"): every guest → host frame on the tx queue is a traced packet; NetDevice records
// pop, done and drops, this service the loop-level points of the tx queue (used, interrupt, device
// wake) and the policy events (notifications on/off per queue, tx timer armed/fired). Untraced,
// the callbacks are the plain ones.
// Runs in Web Workers too: no `node:` imports.

import type { GuestMemory } from '../memory/index.js';
import type { DeviceVirtqueue } from '../virtqueue/index.js';
import { DeviceLoop, type LoopDoorbell } from '../policy/device-loop.js';
import type { PolicyConfig } from '../policy/config.js';
import type { BigLock } from '../policy/lock.js';
import { NetDevice } from './device.js';
import type { NetConfig } from './config.js';
import type { NetObserver } from './observer.js';
import { NetF, VirtioF } from './features.js';
import { ForwardingPort, portHasRx, type NetPort, type PortRxFrame } from './port.js';

/** Largest GSO frame (virtio 1.2 §5.1.6.2: 65535 + headers), for descriptor counts. */
const MAX_GSO_FRAME_BYTES = 65589;
const PAGE = 4096;

export interface NetDeviceServiceOptions {
  mem: GuestMemory;
  rxq: DeviceVirtqueue;
  txq: DeviceVirtqueue;
  /** The negotiated feature set (after FEATURES_OK / SET_FEATURES). */
  features: bigint;
  port: NetPort;
  policy: PolicyConfig;
  /** Driver → device doorbell (the service sleeps on it). */
  kick: LoopDoorbell;
  /** Device → driver doorbell (ring(queue) raises that queue's interrupt). */
  irq: LoopDoorbell;
  stopped(): boolean;
  /**
   * Kicks addressed to a queue so far (cumulative), when the transport says which queue a kick
   * is for (QueueNotify, a per-queue kick eventfd); without it every kick counts for both queues.
   */
  kicks?(queue: number): number;
  /** The global lock, when policy.dataPath.lock is not 'none'. */
  lock?: BigLock | null;
  /** Device config (MAC, MTU, link) for config space and the frame limit. */
  config?: Partial<NetConfig>;
  /**
   * Descriptors the driver uses per tx frame (1 = `[hdr+frame]` or an indirect table), for the
   * tx mitigation's ring-full heuristic (ring size / this = packets the ring holds). Default 1.
   */
  txDescsPerFrame?: number;
  /** The observer of the data path (a Tracer); absent or disabled = untraced. */
  tracer?: NetObserver;
  /** Runs at the top of every loop iteration (a workload's window, a stop check). */
  onIteration?(): void;
  /** A workload's own wake-up time (µs on the loop's clock, Infinity = none). */
  deadlineUs?(): number;
  /** Virtio queue indices (default rx 0, tx 1). */
  rxIndex?: number;
  txIndex?: number;
}

/**
 * A port wrapper that brackets each read from the port (peekRx: the host stack builds the next
 * frame, a TAP is read) with the loop's lock drop, for the 'dropped' global-lock model.
 */
class LockDroppingReads extends ForwardingPort {
  constructor(
    inner: NetPort,
    private readonly begin: () => void,
    private readonly end: () => void,
  ) {
    super(inner);
  }
  override peekRx(): PortRxFrame | null {
    this.begin();
    try {
      return this.inner.peekRx();
    } finally {
      this.end();
    }
  }
}

/** Descriptors one tx frame takes for a driver of the given layout (1 with indirect tables). */
export function txDescsPerFrame(layout: 'inline' | 'header-apart' | 'pages', features: bigint, mtu: number): number {
  const maxFrame = (features & NetF.HOST_TSO4) !== 0n ? MAX_GSO_FRAME_BYTES : mtu + 18;
  const n = layout === 'inline' ? 1 : layout === 'header-apart' ? 2 : 1 + Math.ceil(maxFrame / PAGE);
  return n > 1 && (features & VirtioF.INDIRECT_DESC) !== 0n ? 1 : n;
}

export class NetDeviceService {
  readonly device: NetDevice;
  readonly loop: DeviceLoop;
  /** The port as the device sees it (wrapped when the policy drops the lock around reads). */
  readonly port: NetPort;
  readonly rxq: DeviceVirtqueue;
  readonly txq: DeviceVirtqueue;

  constructor(o: NetDeviceServiceOptions) {
    const { rxq, txq, policy } = o;
    const rxIndex = o.rxIndex ?? 0;
    const txIndex = o.txIndex ?? 1;
    this.rxq = rxq;
    this.txq = txq;
    let loop: DeviceLoop | null = null;
    this.port = policy.dataPath.lock === 'dropped' ? new LockDroppingReads(o.port, () => loop!.beginBackendRead(), () => loop!.endBackendRead()) : o.port;
    o.port.negotiated?.(o.features);
    this.device = new NetDevice({
      mem: o.mem,
      rxq,
      txq,
      features: o.features,
      port: this.port,
      ...(o.config !== undefined ? { config: o.config } : {}),
      // Two copies host → guest (2008: tap read into a staging buffer, then into the guest).
      rxStaging: policy.dataPath.copies === 2,
      ...(o.tracer !== undefined ? { tracer: o.tracer } : {}),
    });
    const dev = this.device;
    const port = this.port;
    const stats = dev.stats;
    const txCap = Math.max(1, Math.floor(txq.size / Math.max(1, o.txDescsPerFrame ?? 1)));
    const tr = o.tracer;
    const tracing = tr !== undefined && tr.enabled;
    // tx publish: the batch's used point (before the used.idx store) when traced.
    let txUsedPublished = txq.nextUsed;
    const txPublish =
      tracing && tr !== undefined
        ? (): number => {
            const entries = (txq.nextUsed - txUsedPublished) & 0xffff;
            if (entries > 0) tr.used(entries, txIndex);
            txUsedPublished = txq.nextUsed;
            return txq.publishUsed();
          }
        : (): number => txq.publishUsed();
    const kicksOn = (q: DeviceVirtqueue, index: number, on: boolean): void => {
      if (tr !== undefined && q.notificationsEnabled !== on) tr.notifications(on, index);
    };
    const kicks = o.kicks;
    // The loop reads ring state between drains; a driver that breaks a ring there (an avail.idx
    // jump) is recorded like one found while draining, and the broken queue reads as idle.
    const guard = <T>(q: DeviceVirtqueue, f: () => T, idle: T): (() => T) => () => {
      if (q.broken) return idle;
      try {
        return f();
      } catch (e) {
        dev.queueFailed(e, q);
        return idle;
      }
    };
    loop = new DeviceLoop({
      policy,
      kick: o.kick,
      irq: o.irq,
      lock: o.lock ?? null,
      stopped: o.stopped,
      packets: () => stats.txFrames + stats.rxFrames,
      bytes: () => stats.txBytes + stats.rxBytes,
      ...(o.onIteration !== undefined ? { onIteration: o.onIteration } : {}),
      ...(o.deadlineUs !== undefined ? { deadlineUs: o.deadlineUs } : {}),
      ...(tracing && tr !== undefined
        ? {
            // Loop positions: 0 = the tx queue, 1 = the rx queue (the order of `queues` below).
            beforeInterrupt: (pos: number) => {
              if (pos === 0) tr.interrupt(txIndex);
            },
            afterWake: () => tr.deviceWake(),
            onTimerArmed: (pos: number, inUs: number) => tr.timerArmed(inUs * 1000, pos === 1 ? rxIndex : txIndex),
            onTimerFired: (pos: number, latenessUs: number) => tr.timerFired(latenessUs * 1000, pos === 1 ? rxIndex : txIndex),
          }
        : {}),
      queues: [
        {
          role: 'tx',
          queueIndex: txIndex,
          capacityPackets: txCap,
          drain: (budget) => dev.processTx(budget),
          publish: guard(txq, txPublish, 0),
          needsNotification: guard(txq, () => txq.needsNotification(), false),
          pending: guard(txq, () => txq.pending(), 0),
          inFlight: () => txq.inFlight,
          disableKicks: guard(txq, tracing ? () => (kicksOn(txq, txIndex, false), txq.disableNotification()) : () => txq.disableNotification(), undefined),
          enableKicks: guard(txq, tracing ? () => (kicksOn(txq, txIndex, true), txq.enableNotification()) : () => txq.enableNotification(), false),
          ...(kicks !== undefined ? { kicks: () => kicks(txIndex) } : {}),
        },
        {
          role: 'rx',
          queueIndex: rxIndex,
          capacityPackets: rxq.size,
          drain: (budget) => dev.fillRx(budget),
          publish: guard(rxq, () => rxq.publishUsed(), 0),
          needsNotification: guard(rxq, () => rxq.needsNotification(), false),
          pending: guard(rxq, () => rxq.pending(), 0),
          inFlight: () => rxq.inFlight,
          disableKicks: guard(rxq, tracing ? () => (kicksOn(rxq, rxIndex, false), rxq.disableNotification()) : () => rxq.disableNotification(), undefined),
          enableKicks: guard(rxq, tracing ? () => (kicksOn(rxq, rxIndex, true), rxq.enableNotification()) : () => rxq.enableNotification(), false),
          backendReadable: () => portHasRx(port),
          ...(kicks !== undefined ? { kicks: () => kicks(rxIndex) } : {}),
        },
      ],
    });
    this.loop = loop;
  }

  /** Runs the policy's device loop over both queues until stopped() (or every queue is done). */
  run(): void {
    this.loop.run();
  }

  /**
   * True when the device can take a frame from the port now (rx buffers posted and not yet
   * popped): an fd doorbell polls the port's fd only then, so a TAP with frames and no buffers
   * does not spin; the rx kick that posts buffers wakes the loop instead.
   */
  wantsPortInput(): boolean {
    if (this.rxq.broken) return false;
    try {
      return this.rxq.pending() > 0;
    } catch (e) {
      this.device.queueFailed(e, this.rxq);
      return false;
    }
  }

  /** The ring violation that broke a queue, as a sentence, or null. */
  get failure(): string | null {
    return this.device.error ? `device needs reset: ${this.device.error.message}` : null;
  }

  /** Device and loop counters as plain numbers (`dev.` prefix for the device's). */
  extra(out: Record<string, number> = {}): Record<string, number> {
    Object.assign(out, this.device.flatStats('dev.'));
    this.loop.toExtra(out);
    return out;
  }
}
