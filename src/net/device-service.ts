// The one virtio-net device data path as a running service: NetDevice (header validation,
// offloads, mergeable rx, counted drops) on a receive and a transmit DeviceVirtqueue, a NetPort
// behind it, and the policy layer's DeviceLoop in front of it, which alone runs the notify
// cycle (disable → drain → publish → re-enable → fence → re-check → sleep, virtio 1.2 §2.7.14),
// the tx mitigation timers, interrupt rules, rx kick suppression, busy polling and the QEMU-2008
// global lock. Every transport hosts this same service: the engine's worker pair (Atomics
// doorbells), virtio-mmio in an emulator, vhost-user for QEMU and DPDK and the TAP demo (fd
// doorbells: eventfd kicks and calls, a TAP fd). Only the doorbells and the port differ.
// Queue 0 is rx, queue 1 tx (§5.1.2), unless the transport says otherwise. With more queue pairs
// (VIRTIO_NET_F_MQ) there is one NetDevice per pair, all in this one loop, sharing the port
// through PortSteering (steering.ts); with a control queue (VIRTIO_NET_F_CTRL_VQ) the loop also
// answers it (ControlQueue, control-queue.ts) and the devices share its NetControl (rx filter,
// guest offloads, config); NOTF_COAL reaches the loop's interrupt policies (DeviceLoop.setCoalesce).
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
import { NetDevice, deviceConfig } from './device.js';
import type { NetConfig } from './config.js';
import type { NetObserver } from './observer.js';
import { NetF, VirtioF } from './features.js';
import { ForwardingPort, portHasRx, type NetPort, type PortRxFrame } from './port.js';
import { ControlQueue, NetControl } from './control-queue.js';
import { GUEST_OFFLOAD_MASK } from './control.js';
import { PortSteering } from './steering.js';
import { createTxMitigation } from '../policy/tx-mitigation.js';
import { InterruptPolicy } from '../policy/interrupts.js';
import type { DeviceQueueCallbacks } from '../policy/device-loop.js';

/** Largest GSO frame (virtio 1.2 §5.1.6.2: 65535 + headers), for descriptor counts. */
const MAX_GSO_FRAME_BYTES = 65589;
const PAGE = 4096;
/** Work units (chains + software segments) one tx drain call may spend. */
const TX_DRAIN_WORK = 1024;

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
  /** Queue pairs 1…N-1 (VIRTIO_NET_F_MQ); pair 0 is rxq/txq. They share the port (PortSteering). */
  extraPairs?: readonly NetQueuePair[];
  /** The control queue (VIRTIO_NET_F_CTRL_VQ) and its virtio index (2N with N pairs, §5.1.2). */
  ctrl?: { queue: DeviceVirtqueue; index: number };
  /** The control state to use (default: a new one when `ctrl` is given, max pairs = the pairs here). */
  control?: NetControl;
}

/**
 * A port wrapper for the QEMU-2008 tap read: brackets each read from the port (peekRx: the host
 * stack builds the next frame, a TAP is read) with the loop's lock drop (the 'dropped' global-lock
 * model), and pays the read's modelled copy (costs.backendReadKiBUs) once per frame inside it.
 */
class ModelledBackendReads extends ForwardingPort {
  /** The frame the last peek returned has paid its read (a frame may be peeked again before it is consumed). */
  private paid = false;
  constructor(
    inner: NetPort,
    private readonly begin: () => void,
    private readonly end: () => void,
    /** Pays the modelled read of a frame of this many bytes (costs.backendReadKiBUs). */
    private readonly read: (bytes: number) => void,
  ) {
    super(inner);
  }
  override peekRx(): PortRxFrame | null {
    this.begin();
    try {
      // Whole frames: the 2008 tap read copied the whole frame into QEMU's buffer inside this
      // bracket (the copy the lock drop overlaps), so the model keeps that copy here rather than
      // taking a two-part frame whose payload would be copied later, under the lock.
      const f = this.inner.peekRx();
      if (f !== null && !this.paid) {
        this.paid = true;
        this.read(f.lenBytes);
      }
      return f;
    } finally {
      this.end();
    }
  }
  override consumeRx(): void {
    this.paid = false;
    this.inner.consumeRx();
  }
}

/** Descriptors one tx frame takes for a driver of the given layout (1 with indirect tables). */
export function txDescsPerFrame(layout: 'inline' | 'header-apart' | 'pages', features: bigint, mtu: number): number {
  const maxFrame = (features & NetF.HOST_TSO4) !== 0n ? MAX_GSO_FRAME_BYTES : mtu + 18;
  const n = layout === 'inline' ? 1 : layout === 'header-apart' ? 2 : 1 + Math.ceil(maxFrame / PAGE);
  return n > 1 && (features & VirtioF.INDIRECT_DESC) !== 0n ? 1 : n;
}

/** One more receive/transmit pair (VIRTIO_NET_F_MQ): its queues and virtio indices (rx 2N, tx 2N+1, §5.1.2). */
export interface NetQueuePair {
  rxq: DeviceVirtqueue;
  txq: DeviceVirtqueue;
  rxIndex: number;
  txIndex: number;
}

export class NetDeviceService {
  /** Pair 0's device. */
  readonly device: NetDevice;
  /** One NetDevice per queue pair (pair 0 first). */
  readonly devices: NetDevice[];
  readonly loop: DeviceLoop;
  /** The port as pair 0's device sees it (wrapped when the policy drops the lock around reads). */
  readonly port: NetPort;
  readonly rxq: DeviceVirtqueue;
  readonly txq: DeviceVirtqueue;
  /** The control state (CTRL_VQ), or null without a control queue. */
  readonly control: NetControl | null;
  readonly ctrl: ControlQueue | null;
  /** The port split over the pairs (null with one pair). */
  readonly steering: PortSteering | null;
  private readonly allQueues: DeviceVirtqueue[];

  constructor(o: NetDeviceServiceOptions) {
    const { policy } = o;
    const pairs: NetQueuePair[] = [{ rxq: o.rxq, txq: o.txq, rxIndex: o.rxIndex ?? 0, txIndex: o.txIndex ?? 1 }, ...(o.extraPairs ?? [])];
    this.rxq = o.rxq;
    this.txq = o.txq;
    let loop: DeviceLoop | null = null;
    // The 2008 tap read: the global lock dropped around it (the "drop mutex" row) and its copy
    // paid inside it (costs.backendReadKiBUs), so a held lock makes the guest's exits wait for it.
    const modelledReads = policy.dataPath.lock === 'dropped' || (policy.costs?.backendReadKiBUs ?? 0) > 0;
    const port = modelledReads
      ? new ModelledBackendReads(o.port, () => loop!.beginBackendRead(), () => loop!.endBackendRead(), (bytes) => loop!.cost.backendRead(bytes))
      : o.port;
    this.steering = pairs.length > 1 ? new PortSteering(port, pairs.length) : null;
    // With a control queue the driver starts on pair 0 and asks for more (VQ_PAIRS_SET,
    // §5.1.6.5.5); without one the transport enables exactly the pairs it hands over.
    this.steering?.setActivePairs(o.ctrl !== undefined ? 1 : pairs.length);
    const ports = this.steering !== null ? this.steering.views : [port];
    this.port = ports[0]!;
    o.port.negotiated?.(o.features);
    const control =
      o.control ??
      (o.ctrl !== undefined
        ? new NetControl({ features: o.features, config: deviceConfig(o.config), maxPairs: pairs.length })
        : null);
    this.control = control;
    this.devices = pairs.map(
      (p, i) =>
        new NetDevice({
          mem: o.mem,
          rxq: p.rxq,
          txq: p.txq,
          features: o.features,
          port: ports[i]!,
          ...(o.config !== undefined ? { config: o.config } : {}),
          ...(control !== null ? { control } : {}),
          // Two copies host → guest (2008: tap read into a staging buffer, then into the guest).
          rxStaging: policy.dataPath.copies === 2,
          ...(o.tracer !== undefined ? { tracer: o.tracer } : {}),
        }),
    );
    this.device = this.devices[0]!;
    this.ctrl = o.ctrl !== undefined && control !== null ? new ControlQueue(o.mem, o.ctrl.queue, control) : null;
    this.allQueues = [...pairs.flatMap((p) => [p.rxq, p.txq]), ...(this.ctrl !== null ? [this.ctrl.queue] : [])];
    const devs = this.devices;
    const tr = o.tracer;
    const tracing = tr !== undefined && tr.enabled;
    const kicksOn = (q: DeviceVirtqueue, index: number, on: boolean): void => {
      if (tr !== undefined && q.notificationsEnabled !== on) tr.notifications(on, index);
    };
    const kicks = o.kicks;
    // The loop reads ring state between drains; a driver that breaks a ring there (an avail.idx
    // jump) is recorded like one found while draining, and the broken queue reads as idle.
    const guard = <T>(dev: { queueFailed(e: unknown, q?: DeviceVirtqueue): void }, q: DeviceVirtqueue, f: () => T, idle: T): (() => T) => () => {
      if (q.broken) return idle;
      try {
        return f();
      } catch (e) {
        dev.queueFailed(e, q);
        return idle;
      }
    };
    const ringCallbacks = (dev: { queueFailed(e: unknown, q?: DeviceVirtqueue): void }, q: DeviceVirtqueue, index: number) => ({
      queueIndex: index,
      needsNotification: guard(dev, q, () => q.needsNotification(), false),
      pending: guard(dev, q, () => q.pending(), 0),
      inFlight: () => q.inFlight,
      disableKicks: guard(dev, q, tracing ? () => (kicksOn(q, index, false), q.disableNotification()) : () => q.disableNotification(), undefined),
      enableKicks: guard(dev, q, tracing ? () => (kicksOn(q, index, true), q.enableNotification()) : () => q.enableNotification(), false),
      ...(kicks !== undefined ? { kicks: () => kicks(index) } : {}),
    });
    // Loop positions: pair p's tx queue at 2p, its rx queue at 2p + 1, the control queue last.
    const queues: DeviceQueueCallbacks[] = [];
    const positionIndex: number[] = [];
    pairs.forEach((p, i) => {
      const dev = devs[i]!;
      const { txq, rxq, txIndex, rxIndex } = p;
      const txCap = Math.max(1, Math.floor(txq.size / Math.max(1, o.txDescsPerFrame ?? 1)));
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
      const rxPort = ports[i]!;
      const devStats = dev.stats;
      // Bounded work per drain call: chains one at a time once they turn into software segments,
      // stopping when chains + segments reach TX_DRAIN_WORK (a 64 KiB GSO chain cut into 48-byte
      // segments is ~1400 frames of work); the loop's pass budget bounds the calls (DeviceLoop
      // passWorkBudget). Plain chains still go in one call.
      const drainTx = (budget: number): number => {
        const seg0 = devStats.txSwSegments;
        let n = dev.processTx(1);
        if (n === 0 || n >= budget) return n;
        if (devStats.txSwSegments === seg0) return n + dev.processTx(budget - n);
        while (n < budget && n + devStats.txSwSegments - seg0 < TX_DRAIN_WORK) {
          if (dev.processTx(1) === 0) break;
          n++;
        }
        return n;
      };
      queues.push(
        {
          role: 'tx',
          capacityPackets: txCap,
          drain: drainTx,
          // Software segments count as work: a pass over GSO chains cut small stays bounded.
          work: () => devStats.txSwSegments,
          publish: guard(dev, txq, txPublish, 0),
          ...ringCallbacks(dev, txq, txIndex),
        },
        {
          role: 'rx',
          capacityPackets: rxq.size,
          // The publish batch bounds used buffers as well as frames (vhost-net counts heads).
          drain: (budget) => dev.fillRx(budget, budget),
          publish: guard(dev, rxq, () => rxq.publishUsed(), 0),
          backendReadable: () => portHasRx(rxPort),
          ...ringCallbacks(dev, rxq, rxIndex),
        },
      );
      positionIndex.push(txIndex, rxIndex);
    });
    const ctrl = this.ctrl;
    const ctrlPos = queues.length;
    if (ctrl !== null) {
      const cq = ctrl.queue;
      queues.push({ role: 'tx', capacityPackets: cq.size, drain: (budget) => ctrl.process(budget), publish: guard(ctrl, cq, () => cq.publishUsed(), 0), ...ringCallbacks(ctrl, cq, o.ctrl!.index) });
      positionIndex.push(o.ctrl!.index);
    }
    const stats = devs.map((d) => d.stats);
    loop = new DeviceLoop({
      policy,
      kick: o.kick,
      irq: o.irq,
      lock: o.lock ?? null,
      stopped: o.stopped,
      packets: () => {
        let n = 0;
        for (const s of stats) n += s.txFrames + s.rxFrames;
        return n;
      },
      bytes: () => {
        let n = 0;
        for (const s of stats) n += s.txBytes + s.rxBytes;
        return n;
      },
      ...(o.onIteration !== undefined ? { onIteration: o.onIteration } : {}),
      ...(o.deadlineUs !== undefined ? { deadlineUs: o.deadlineUs } : {}),
      // The control queue answers at once, whatever the data queues' policy: no tx timer and no
      // coalescing delay an ack (Linux spins on it, virtio_net.c virtnet_send_command).
      ...(ctrl !== null
        ? {
            modules: {
              tx: (pos: number, cap: number) => createTxMitigation(pos === ctrlPos ? { kind: 'bh', burst: Infinity } : policy.tx, cap),
              interrupts: (pos: number) => new InterruptPolicy(pos === ctrlPos ? { ...policy.interrupts, coalesce: null } : policy.interrupts),
            },
          }
        : {}),
      ...(tracing && tr !== undefined
        ? {
            beforeInterrupt: (pos: number) => {
              if (pos % 2 === 0 && pos < ctrlPos) tr.interrupt(positionIndex[pos]!);
            },
            afterWake: () => tr.deviceWake(),
            onTimerArmed: (pos: number, inUs: number) => tr.timerArmed(inUs * 1000, positionIndex[pos]!),
            onTimerFired: (pos: number, latenessUs: number) => tr.timerFired(latenessUs * 1000, positionIndex[pos]!),
          }
        : {}),
      queues,
    });
    this.loop = loop;
    if (control !== null) {
      const l = loop;
      control.onCoalesce = (direction, maxPackets, maxUsecs) => {
        // NOTF_COAL TX_SET / RX_SET apply to every queue of that direction (not the control queue).
        for (let pos = 0; pos < ctrlPos; pos++) if ((pos % 2 === 0) === (direction === 'tx')) l.setCoalesce(pos, maxPackets, maxUsecs);
      };
      control.onPairs = (n) => this.steering?.setActivePairs(n);
      control.onRss = (c) => this.steering?.setRss(c);
      control.onOffloads = (offloads) => {
        // A port that announces the guest's receive offloads (a TAP's TUNSETOFFLOAD) follows them.
        o.port.negotiated?.((o.features & ~GUEST_OFFLOAD_MASK) | offloads);
      };
    }
  }

  /** Runs the policy's device loop over every queue until stopped() (or every queue is done). */
  run(): void {
    this.loop.run();
  }

  /**
   * True when the device can take a frame from the port now (rx buffers posted and not yet
   * popped): an fd doorbell polls the port's fd only then, so a TAP with frames and no buffers
   * does not spin; the rx kick that posts buffers wakes the loop instead.
   */
  wantsPortInput(): boolean {
    const active = this.steering?.activePairs ?? 1;
    // A frame already read and steered waits for its own pair: only that pair's buffers count.
    const head = this.steering?.headPairKnown ?? -1;
    for (let i = head >= 0 ? head : 0; i < (head >= 0 ? head + 1 : active); i++) {
      const d = this.devices[i]!;
      const q = d.rxQueue;
      if (q.broken) continue;
      try {
        if (q.pending() > 0) return true;
      } catch (e) {
        d.queueFailed(e, q);
      }
    }
    return false;
  }

  /** The first ring violation (a data queue's or the control queue's), or null. */
  get error(): Error | null {
    // Indexed: the loop asks every iteration, an iterator would be an object each time.
    const devices = this.devices;
    for (let i = 0; i < devices.length; i++) if (devices[i]!.error !== null) return devices[i]!.error;
    return this.ctrl?.error ?? null;
  }

  /** The ring violation that broke a queue, as a sentence, or null. */
  get failure(): string | null {
    const e = this.error;
    return e !== null ? `device needs reset: ${e.message}` : null;
  }

  /** Every queue of the service: each pair's rx and tx, then the control queue. */
  get queues(): readonly DeviceVirtqueue[] {
    return this.allQueues;
  }

  /**
   * Device and loop counters as plain numbers: `dev.` the devices' summed over the pairs, with
   * MQ `pair<i>.` each pair's frames and bytes, with a control queue `ctl.` its counters.
   */
  extra(out: Record<string, number> = {}): Record<string, number> {
    if (this.devices.length === 1) Object.assign(out, this.device.flatStats('dev.'));
    else {
      this.devices.forEach((d, i) => {
        for (const [k, v] of Object.entries(d.flatStats('dev.'))) out[k] = (out[k] ?? 0) + v;
        const s = d.stats;
        out[`pair${i}.txFrames`] = s.txFrames;
        out[`pair${i}.rxFrames`] = s.rxFrames;
        out[`pair${i}.txBytes`] = s.txBytes;
        out[`pair${i}.rxBytes`] = s.rxBytes;
      });
    }
    if (this.control !== null) Object.assign(out, this.control.flatStats('ctl.'));
    this.loop.toExtra(out);
    return out;
  }
}
