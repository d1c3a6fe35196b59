// The one virtio-net device behind the virtio-mmio transport: the frontend (identity, the
// features NetDevice can honour, struct virtio_net_config from src/net/config.ts) and the backend
// (queues from the transport, negotiated features configuring NetDevice, a NetPort behind it),
// which runs NetDeviceService (src/net/device-service.ts): NetDevice under the policy layer's
// DeviceLoop with the notification policy of a preset (option `preset`, default 'vhost'). That
// loop alone runs the notify cycle and alone waits: on a worker run() sleeps on the channel's kick
// doorbell; inline turn() drives the same loop without blocking (its passes and the re-enable +
// re-check before a sleep). Registered as the device kind 'virtio-net', with the port 'host-stack'
// (the in-memory ARP/ICMP responder and stream sink of src/backend/host-stack.ts, the default) or
// 'loopback' (every guest frame handed back, src/backend/loopback-port.ts), so it runs inline or
// on a worker. Queues: 0 = receiveq, 1 = transmitq (virtio 1.2 §5.1.2).
//
// Save/restore: NetDevice may hold popped rx chains between passes (a mergeable frame waiting
// for more buffers) and the port may have frames ready for the guest. save() quiesces: the held
// chains are given back to the ring untouched (NetDevice.giveBackHeldRx) and the frames the port
// has ready are moved into a replay queue in front of it, which is saved. A port that keeps
// producing output past that queue's capacity (a stream source) makes save() refuse with a typed
// error instead of losing a frame. A ring violation sets DEVICE_NEEDS_RESET (§2.1.2) and stops
// the loop until the driver resets the device.
// Runs in browser Web Workers: no `node:` imports.

import { NET_DEVICE_FEATURES, NetDevice, type NetDeviceStats } from '../net/device.js';
import { NET_CONFIG_BYTES } from '../net/config.js';
import { NetF, VirtioF, type NetFeatureName } from '../net/features.js';
import { emptyNetHdr, type VirtioNetHdr } from '../net/header.js';
import { ipv4FromString, macFromString } from '../net/frames/addr.js';
import { portHasRx, type PortRxFrame, type NetPort } from '../net/port.js';
import { HostStack } from '../backend/host-stack.js';
import { LoopbackPort } from '../backend/loopback-port.js';
import { NetDeviceService } from '../net/device-service.js';
import type { NetControlState } from '../net/control-queue.js';
import { RSS_MAX_INDIRECTION_ENTRIES, RSS_MAX_KEY_BYTES, SUPPORTED_HASH_TYPES } from '../net/rss.js';
import { resolvePolicy } from '../policy/presets.js';
import type { PolicyConfig } from '../policy/config.js';
import type { LoopDoorbell } from '../policy/device-loop.js';
import type { SinkState } from '../net/endpoint.js';
import { Tracer, type TracerSetup } from '../trace/tracer.js';
import type { DeviceVirtqueue } from '../virtqueue/index.js';
import type { DeviceContext, VirtioDeviceBackend, VirtioDeviceKind } from './device.js';
import { NetConfigFrontend } from './net-frontend.js';

export const VIRTIO_NET_RX_QUEUE = 0;
export const VIRTIO_NET_TX_QUEUE = 1;

/**
 * Every feature the NetDevice adapter offers: what NetDevice implements (header validation,
 * software GSO/checksum for a backend without them, mergeable rx, GSO rx) plus the ring features
 * (the packed ring and in-order use on request: VirtioNetOptions.packed / inOrder). Not offered: UFO/USO (NetDevice cannot segment them in software), the control queue, MQ, RSS,
 * hash report, SPEED_DUPLEX.
 */
export const VIRTIO_NET_FEATURES = NET_DEVICE_FEATURES;

/** The in-memory host stack behind the device (plain data: crosses to a worker). */
export interface HostStackBackendOptions {
  type: 'host-stack';
  /** The host's MAC (default 52:54:00:ab:cd:ef). */
  hostMac?: string;
  /** The host's IPv4 address (default 10.0.2.2). */
  hostIp?: string;
  /** The guest's IPv4 address: ARP requests for it and echo requests to it are answered (default 10.0.2.15). */
  guestIp?: string;
  /** Take GSO frames from the guest (default true); false makes NetDevice segment in software. */
  acceptsGso?: boolean;
  /** Take partial checksums (default true); false makes NetDevice complete them. */
  acceptsPartialCsum?: boolean;
  /** Start a stream sink on this TCP port (counts and checks the guest's stream). */
  sinkPort?: number;
  /** Compare every sink payload byte with the stream pattern (default false). */
  sinkVerify?: boolean;
}

/** A port that hands every guest frame back to the guest (plain data: crosses to a worker). */
export interface LoopbackBackendOptions {
  type: 'loopback';
  /** Frames that may wait for rx buffers before more are dropped and counted (default 1024). */
  capacityFrames?: number;
}

/**
 * A Linux TAP interface behind the device (plain data: crosses to a worker). Node only: the
 * device kind 'virtio-net-tap' (virtio-net-tap.ts, imported by the worker as a module) opens it;
 * the browser-safe 'virtio-net' kind refuses it. The TAP is created on the first DRIVER_OK with
 * the negotiated offloads, kept across resets (its addresses and routes stay), and closed when
 * the runner closes.
 */
export interface TapBackendOptions {
  type: 'tap';
  /** The interface name (created if absent; needs CAP_NET_ADMIN). */
  name: string;
  /**
   * A TAP cannot ring the worker's kick doorbell: while the device could take a frame, its
   * sleep ends at least this often (ms, default 1) so the TAP is read.
   */
  pollMs?: number;
}

export interface VirtioNetOptions {
  /**
   * The notification policy the device loop runs under: a preset name (src/policy/presets.ts,
   * e.g. 'vhost', 'rfc-baseline', 'vhost-coalesce'), a JSON policy or a PolicyConfig (default
   * 'vhost'). Its tx mitigation, interrupt rule, rx kick rule, busy polling and rx copy count
   * apply; ring sizes and GSO are what the driver sets up and negotiates through the transport.
   */
  preset?: string | PolicyConfig;
  /** Guest MAC as "52:54:00:12:34:56" (default that). */
  mac?: string;
  /** MTU in config space and NetDevice's frame limit (default 1500). */
  mtu?: number;
  /** QueueNumMax of both queues (default 256). */
  queueSize?: number;
  /** Feature names (NetF keys) not to offer, e.g. ['MRG_RXBUF'] to model an older device. */
  withhold?: NetFeatureName[];
  /** What stands behind the device (default: the host stack with defaults). */
  backend?: HostStackBackendOptions | LoopbackBackendOptions | TapBackendOptions;
  /**
   * Record the device's trace points (tx pop, rx fill, publish, interrupt…) into a TraceSession's
   * device-side buffer: `session.setupFor('host')` (plain data with a SharedArrayBuffer, so it
   * crosses to a worker; docs/tracing.md).
   */
  trace?: TracerSetup;
  /** Frames the save-time replay queue may hold (default 256). */
  replayFrames?: number;
  /**
   * Offer the control queue (VIRTIO_NET_F_CTRL_VQ, virtio 1.2 §5.1.6.5) with the commands the
   * device applies: rx modes and MAC tables (CTRL_RX, CTRL_RX_EXTRA), the VLAN filter
   * (CTRL_VLAN), guest offloads (CTRL_GUEST_OFFLOADS), coalescing (NOTF_COAL). Default false.
   * Not offered: GUEST_ANNOUNCE and CTRL_MAC_ADDR (their config-space changes live in the
   * backend's NetControl, not in this frontend's config bytes).
   */
  controlQueue?: boolean;
  /**
   * Receive/transmit pairs (VIRTIO_NET_F_MQ, needs controlQueue; default 1): max_virtqueue_pairs
   * in config space, queues rx0, tx0, …, rxN-1, txN-1, control (§5.1.2), all pairs in the one
   * device loop over one port steered by flow.
   */
  queuePairs?: number;
  /**
   * Offer receive-side scaling and hash reports (VIRTIO_NET_F_RSS, VIRTIO_NET_F_HASH_REPORT, need
   * controlQueue): the Toeplitz hash over the IPv4/IPv6 TCP/UDP types (no _EX types), a key up to
   * 40 bytes, an indirection table up to 128 entries (src/net/rss.ts). Default false.
   */
  rss?: boolean;
  /** Offer VIRTIO_F_RING_PACKED (§2.8), like QEMU's packed=on (default off, as QEMU's). */
  packed?: boolean;
  /** Offer VIRTIO_F_IN_ORDER (§2.7.9, §2.8.8), like QEMU's in_order=on (default off). */
  inOrder?: boolean;
}

/** What `controlQueue` adds to the offer. */
export const VIRTIO_NET_CTRL_FEATURES: bigint = NetF.CTRL_VQ | NetF.CTRL_RX | NetF.CTRL_RX_EXTRA | NetF.CTRL_VLAN | NetF.CTRL_GUEST_OFFLOADS | NetF.NOTF_COAL;

export type VirtioNetErrorCode = 'save-refused' | 'bad-options';

/** Errors of the adapter (the embedding program's, never the guest's: guest faults are counted). */
export class VirtioNetError extends Error {
  override readonly name = 'VirtioNetError';
  constructor(
    readonly code: VirtioNetErrorCode,
    detail: string,
  ) {
    super(`virtio-net: ${detail}`);
  }
}

const DEFAULT_MAC = '52:54:00:12:34:56';

/** Queue pairs of the options, checked (MQ needs the control queue: §5.1.3.1). */
function pairsOf(o: VirtioNetOptions): number {
  const n = o.queuePairs ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 15) throw new VirtioNetError('bad-options', `queuePairs ${n}: 1..15 (2N + 1 queues fit the transport's 32)`);
  if (n > 1 && o.controlQueue !== true) throw new VirtioNetError('bad-options', 'queuePairs > 1 needs controlQueue (VIRTIO_NET_F_MQ requires VIRTIO_NET_F_CTRL_VQ)');
  return n;
}

/** RSS needs the control queue (§5.1.3.1). */
function rssOf(o: VirtioNetOptions): boolean {
  if (o.rss === true && o.controlQueue !== true) throw new VirtioNetError('bad-options', 'rss needs controlQueue (VIRTIO_NET_F_RSS requires VIRTIO_NET_F_CTRL_VQ)');
  return o.rss === true;
}

function offeredFeatures(o: VirtioNetOptions): bigint {
  let f = VIRTIO_NET_FEATURES | (o.controlQueue === true ? VIRTIO_NET_CTRL_FEATURES : 0n) | (pairsOf(o) > 1 ? NetF.MQ : 0n) | (rssOf(o) ? NetF.RSS | NetF.HASH_REPORT : 0n) | (o.packed === true ? VirtioF.RING_PACKED : 0n) | (o.inOrder === true ? VirtioF.IN_ORDER : 0n);
  for (const name of o.withhold ?? []) {
    const bit = NetF[name];
    if (bit === undefined) throw new VirtioNetError('bad-options', `withhold: no feature '${String(name)}'`);
    f &= ~bit;
  }
  return f;
}

// ---------------------------------------------------------------- frontend

/** Emulator-thread half: device id 1, the offered features, struct virtio_net_config. */
export class VirtioNetFrontend extends NetConfigFrontend {
  constructor(opts: VirtioNetOptions = {}) {
    const pairs = pairsOf(opts);
    super(
      offeredFeatures(opts),
      {
        mac: macFromString(opts.mac ?? DEFAULT_MAC),
        linkUp: true,
        mtu: opts.mtu ?? 1500,
        maxVirtqueuePairs: pairs,
        ...(rssOf(opts) ? { rssMaxKeyBytes: RSS_MAX_KEY_BYTES, rssMaxIndirectionEntries: RSS_MAX_INDIRECTION_ENTRIES, supportedHashTypes: SUPPORTED_HASH_TYPES } : {}),
      },
      opts.queueSize ?? 256,
      NET_CONFIG_BYTES,
      2 * pairs + (opts.controlQueue === true ? 1 : 0),
    );
  }
}

// ---------------------------------------------------------------- replay queue

/** A frame moved out of the backend at save time, as plain data. */
interface SavedFrame {
  hex: string;
  hdr: Omit<VirtioNetHdr, 'numBuffers' | 'hashValue' | 'hashReport'>;
}

function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}
function fromHex(s: string): Uint8Array {
  const out = new Uint8Array(s.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

/**
 * A NetPort that serves saved frames first, then the wrapped port's. Frames from the guest go
 * straight to the wrapped port.
 */
class ReplayPort implements NetPort {
  readonly fifo: SavedFrame[] = [];
  private readonly frame: PortRxFrame = { bytes: new Uint8Array(0), offset: 0, lenBytes: 0, hdr: emptyNetHdr() };
  private framePeeked: SavedFrame | null = null;

  constructor(readonly inner: NetPort) {}

  get acceptsGso(): boolean {
    return this.inner.acceptsGso;
  }
  get acceptsPartialCsum(): boolean {
    return this.inner.acceptsPartialCsum;
  }
  negotiated(features: bigint): void {
    this.inner.negotiated?.(features);
  }
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.inner.send(frame, offset, lenBytes, hdr);
  }
  peekRx(twoPart?: boolean): PortRxFrame | null {
    const head = this.fifo[0];
    if (head === undefined) return this.inner.peekRx(twoPart); // saved frames are whole
    if (this.framePeeked !== head) {
      const bytes = fromHex(head.hex);
      this.frame.bytes = bytes;
      this.frame.offset = 0;
      this.frame.lenBytes = bytes.length;
      Object.assign(this.frame.hdr, head.hdr, { numBuffers: 0, hashValue: 0, hashReport: 0 });
      this.framePeeked = head;
    }
    return this.frame;
  }
  consumeRx(): void {
    if (this.fifo.length > 0) {
      this.fifo.shift();
      this.framePeeked = null;
    } else {
      this.inner.consumeRx();
    }
  }
  rxReady(): boolean {
    return this.fifo.length > 0 || portHasRx(this.inner);
  }

  /** Moves every frame the inner port has ready into the fifo; false when it would exceed `cap`. */
  drainInner(cap: number): boolean {
    for (;;) {
      const f = this.inner.peekRx();
      if (f === null) return true;
      if (this.fifo.length >= cap) return false;
      const h = f.hdr;
      this.fifo.push({
        hex: toHex(f.bytes.subarray(f.offset, f.offset + f.lenBytes)),
        hdr: { flags: h.flags, gsoType: h.gsoType, hdrLen: h.hdrLen, gsoSize: h.gsoSize, csumStart: h.csumStart, csumOffset: h.csumOffset },
      });
      this.inner.consumeRx();
    }
  }
}

// ---------------------------------------------------------------- backend

/**
 * The MTU the data path enforces: config.mtu when the driver negotiated VIRTIO_NET_F_MTU (only
 * then does §5.1.4.2 bind the driver to it, and §5.1.4.1 the device for rx); a driver that did not
 * may send standard 1514-byte frames, so the limit is then never below 1500.
 */
export function effectiveMtu(configMtu: number, features: bigint): number {
  return (features & NetF.MTU) !== 0n ? configMtu : Math.max(configMtu, 1500);
}

/** Builds the NetPort for one activation (it may depend on the negotiated features). */
export type NetPortFactory = (features: bigint) => NetPort;

/** The host stack a 'host-stack' option describes, configured for the negotiated features. */
export function hostStackFactory(guestMac: Uint8Array, mtu: number, o: HostStackBackendOptions): NetPortFactory {
  const hostMac = macFromString(o.hostMac ?? '52:54:00:ab:cd:ef');
  const hostIp = ipv4FromString(o.hostIp ?? '10.0.2.2');
  const guestIp = ipv4FromString(o.guestIp ?? '10.0.2.15');
  return (features) => {
    const s = new HostStack({
      mac: hostMac,
      ip: hostIp,
      peerMac: guestMac,
      peerIp: guestIp,
      mtu: effectiveMtu(mtu, features),
      // What the host stack emits must be what the driver accepted (§5.1.6.4).
      partialCsum: (features & NetF.GUEST_CSUM) !== 0n,
      gso: (features & NetF.GUEST_TSO4) !== 0n,
      acceptsGso: o.acceptsGso ?? true,
      acceptsPartialCsum: o.acceptsPartialCsum ?? true,
    });
    if (o.sinkPort !== undefined) s.endpoint.startSink({ port: o.sinkPort, verify: o.sinkVerify ?? false });
    return s;
  };
}

/** Saved device state (plain, JSON-safe). */
export interface VirtioNetState {
  /** Frames the port had ready for the guest, in order. */
  replay: SavedFrame[];
  /**
   * The rx queue's next avail index once held chains were given back. The transport may snapshot
   * the queues before or after save() (BackendHost does it before): restore() gives back any
   * chains between this index and the restored queue's, so either order resumes the same.
   */
  rxNextAvail: number;
  stats: NetDeviceStats;
  /**
   * The device loop's counters (kicks seen, interrupts, tx timer arms and fires, sleeps…) and
   * the policy it ran under, for diagnostics: not restored (a restored device's loop starts afresh).
   */
  loop?: { policy: string; counters: Record<string, number> };
  /** Host stack counters and sink state (when the port is the host stack). */
  hostStack?: { stats: Record<string, number>; sink: SinkState | null };
  /** What the driver set through the control queue (rx filter, offloads, pairs), with CTRL_VQ. */
  control?: NetControlState;
}

/** Most loop passes one inline turn runs before it hands the CPU back (and asks to be called again at once). */
const MAX_PASSES_PER_TURN = 64;

export class VirtioNetBackend implements VirtioDeviceBackend {
  private ctx: DeviceContext | null = null;
  private rxq: DeviceVirtqueue | null = null;
  private txq: DeviceVirtqueue | null = null;
  private replay: ReplayPort | null = null;
  private serviceValue: NetDeviceService | null = null;
  private reported = false;
  /** The loop is leaving run() (a command waits, or the device broke): its final notifications are not sent. */
  private leaving = false;
  private kicksSeen = 0;
  readonly policy: PolicyConfig;
  private readonly mac: Uint8Array;
  private readonly mtu: number;
  private readonly replayCap: number;
  private readonly factory: NetPortFactory;
  private readonly pairs: number;
  private readonly tracer: Tracer | undefined;
  /** > 0: the loop's sleeps end at least this often (a port that receives by itself, a TAP, on a worker). */
  private readonly portPollMs: number;

  /** `factory` overrides options.backend (an inline device with a port of your own). */
  constructor(opts: VirtioNetOptions = {}, factory?: NetPortFactory) {
    this.mac = macFromString(opts.mac ?? DEFAULT_MAC);
    this.mtu = opts.mtu ?? 1500;
    this.replayCap = opts.replayFrames ?? 256;
    this.pairs = pairsOf(opts);
    this.policy = typeof opts.preset === 'object' ? resolvePolicy(opts.preset) : resolvePolicy(opts.preset ?? 'vhost');
    this.tracer = opts.trace !== undefined ? new Tracer(opts.trace) : undefined;
    const b = opts.backend ?? { type: 'host-stack' };
    this.portPollMs = b.type === 'tap' ? (b.pollMs ?? 1) : 0;
    if (b.type === 'tap' && !(this.portPollMs > 0 && this.portPollMs < Infinity)) throw new VirtioNetError('bad-options', `backend pollMs ${String(this.portPollMs)}: need a number > 0`);
    if (factory) this.factory = factory;
    else if (b.type === 'host-stack') this.factory = hostStackFactory(this.mac, this.mtu, b);
    else if (b.type === 'loopback') this.factory = () => new LoopbackPort(b.capacityFrames);
    else if (b.type === 'tap') throw new VirtioNetError('bad-options', "a 'tap' backend needs Node and the device kind 'virtio-net-tap' (virtio-net-tap.js as a worker module; the v86 adapter picks it for you)");
    else throw new VirtioNetError('bad-options', `unknown backend '${String((b as { type: unknown }).type)}'`);
  }

  /** The running service: NetDevice, its DeviceLoop and port (null before DRIVER_OK and after reset). */
  get service(): NetDeviceService | null {
    return this.serviceValue;
  }
  /** The live NetDevice (null before DRIVER_OK and after reset). */
  get device(): NetDevice | null {
    return this.serviceValue?.device ?? null;
  }
  /** The port behind the device for this activation (a HostStack with the default factory). */
  get port(): NetPort | null {
    return this.replay?.inner ?? null;
  }

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.reported = false;
    this.leaving = false;
    this.rxq = ctx.queues[VIRTIO_NET_RX_QUEUE] ?? null;
    this.txq = ctx.queues[VIRTIO_NET_TX_QUEUE] ?? null;
    this.replay = new ReplayPort(this.factory(ctx.features));
    this.kicksSeen = ctx.kicks(VIRTIO_NET_RX_QUEUE) + ctx.kicks(VIRTIO_NET_TX_QUEUE);
    this.serviceValue = this.rxq && this.txq ? this.newService(ctx, this.rxq, this.txq, this.replay) : null;
  }

  private newService(ctx: DeviceContext, rxq: DeviceVirtqueue, txq: DeviceVirtqueue, port: NetPort): NetDeviceService {
    // The loop's interrupt line: a used-buffer notification for the queue it names (the
    // transport raises USED_BUFFER in InterruptStatus and the line, §4.2.3.4).
    const irq: LoopDoorbell = {
      seq: () => 0,
      ring: (queue?: number) => {
        // run()'s last act is one notification per queue so no driver waits on a deferred one;
        // leaving for a command the same loop resumes afterwards (deferred interrupts and all),
        // so those would only be spurious.
        if (this.leaving) return false;
        ctx.notifyUsed(queue ?? VIRTIO_NET_RX_QUEUE);
        return true;
      },
      wait: () => 'timeout',
      waitUntil: () => 'timeout',
    };
    // §5.1.2: with MQ or RSS the pairs are rx0, tx0, …, and the control queue is 2N; else 2.
    const f = ctx.features;
    const pairs = (f & (NetF.MQ | NetF.RSS)) !== 0n ? this.pairs : 1;
    const ctrlIndex = 2 * pairs;
    const ctrlq = (f & NetF.CTRL_VQ) !== 0n ? (ctx.queues[ctrlIndex] ?? null) : null;
    const extraPairs = [];
    for (let p = 1; p < pairs; p++) {
      const prx = ctx.queues[2 * p] ?? null;
      const ptx = ctx.queues[2 * p + 1] ?? null;
      if (prx === null || ptx === null) break; // a driver that set up fewer pairs uses fewer
      extraPairs.push({ rxq: prx, txq: ptx, rxIndex: 2 * p, txIndex: 2 * p + 1 });
    }
    return new NetDeviceService({
      mem: ctx.mem,
      rxq,
      txq,
      ...(extraPairs.length > 0 ? { extraPairs } : {}),
      ...(ctrlq !== null ? { ctrl: { queue: ctrlq, index: ctrlIndex } } : {}),
      features: ctx.features,
      port,
      policy: this.policy,
      ...(this.tracer !== undefined ? { tracer: this.tracer } : {}),
      kick: this.portPollMs > 0 ? pollingDoorbell(ctx.kick, this.portPollMs) : ctx.kick,
      irq,
      kicks: (q) => ctx.kicks(q),
      onIteration: () => {
        this.leaving = ctx.stopped() || this.failed();
      },
      // Also asked just before the loop sleeps: a queue that broke in the last pass must not
      // leave the device asleep instead of reporting DEVICE_NEEDS_RESET.
      stopped: () => {
        if (!this.leaving && this.failed()) this.leaving = true;
        return this.leaving || ctx.stopped();
      },
      config: { mac: this.mac, mtu: effectiveMtu(this.mtu, ctx.features), linkUp: true },
      rxIndex: VIRTIO_NET_RX_QUEUE,
      txIndex: VIRTIO_NET_TX_QUEUE,
    });
  }

  /** True once a ring violation broke a queue; the first time, asks the transport for a reset (§2.1.2). */
  private failed(): boolean {
    if (this.reported) return true;
    const err = this.serviceValue?.error ?? null;
    if (err === null) return false;
    this.reported = true;
    this.ctx!.needsReset(err);
    return true;
  }

  run(): void {
    const svc = this.serviceValue;
    if (svc === null || this.failed()) return;
    this.leaving = false;
    try {
      svc.run();
    } finally {
      this.leaving = false;
      // The loop returns for a command or a stop: what it traced becomes readable.
      this.tracer?.flush();
    }
    this.failed();
  }

  /** The runner is done with this backend: the last trace records are published. */
  close(): void {
    this.tracer?.flush();
  }

  turn(): number {
    const svc = this.serviceValue;
    const ctx = this.ctx;
    if (svc === null || ctx === null) return Infinity;
    const loop = svc.loop;
    // Notifications since the last turn, for the loop's counters (each queue reads its own count).
    const total = ctx.kicks(VIRTIO_NET_RX_QUEUE) + ctx.kicks(VIRTIO_NET_TX_QUEUE);
    loop.counters.kicksSeen += total - this.kicksSeen;
    this.kicksSeen = total;
    for (let i = 0; i < MAX_PASSES_PER_TURN; i++) {
      if (this.failed() || ctx.stopped()) return Infinity;
      loop.counters.iterations++;
      if (loop.pass(0)) continue;
      // Where run() would sleep: re-enable notifications, full fence, re-check (§2.7.14).
      if (loop.prepareSleep()) {
        loop.counters.recheckHits++;
        continue;
      }
      if (this.failed()) return Infinity;
      return loop.nextDeadline(performance.now() * 1000).deadlineUs / 1000;
    }
    return performance.now(); // work remains: call again as soon as the CPU allows
  }

  deactivate(): void {
    // A reset drops what was in flight (§2.4): held rx chains, frames the port had ready.
    this.ctx = null;
    this.rxq = null;
    this.txq = null;
    this.replay = null;
    this.serviceValue = null;
  }

  save(): VirtioNetState | null {
    const dev = this.device;
    const replay = this.replay;
    if (dev === null || replay === null || this.rxq === null) return null;
    // Quiesce rx: chains NetDevice holds for a frame that did not fit yet go back to the ring
    // untouched; NetDevice pops them again on its next pass, in this run or the restored one.
    dev.giveBackHeldRx();
    if (!replay.drainInner(this.replayCap)) {
      throw new VirtioNetError('save-refused', `the backend has more than ${this.replayCap} frames ready for the guest (a stream source?); save when it is idle`);
    }
    const out: VirtioNetState = {
      replay: replay.fifo.map((f) => ({ hex: f.hex, hdr: { ...f.hdr } })),
      rxNextAvail: this.rxq.nextAvail,
      stats: JSON.parse(JSON.stringify(dev.stats)) as NetDeviceStats,
      loop: { policy: this.policy.name, counters: this.serviceValue!.loop.toExtra() },
    };
    const control = this.serviceValue!.control;
    if (control !== null) out.control = control.save();
    const inner = replay.inner;
    if (inner instanceof HostStack) {
      out.hostStack = { stats: { ...inner.endpoint.stats }, sink: inner.endpoint.sink ? { ...inner.endpoint.sink } : null };
    }
    return out;
  }

  restore(state: unknown): void {
    const s = state as VirtioNetState | null;
    const dev = this.device;
    if (!s || dev === null || this.replay === null || this.rxq === null) return;
    if (typeof s.rxNextAvail === 'number') {
      // Chains the queue snapshot still counts as popped but save() gave back (see rxNextAvail).
      const held = (this.rxq.nextAvail - s.rxNextAvail) & 0xffff;
      if (held > 0 && held <= this.rxq.inFlight) this.rxq.unpop(held);
    }
    if (Array.isArray(s.replay)) for (const f of s.replay) this.replay.fifo.push({ hex: String(f.hex), hdr: { ...f.hdr } });
    if (s.stats) copyStats(dev.stats, s.stats);
    if (s.control) this.serviceValue?.control?.restore(s.control);
    const inner = this.replay.inner;
    if (s.hostStack && inner instanceof HostStack) {
      Object.assign(inner.endpoint.stats, s.hostStack.stats);
      if (s.hostStack.sink) inner.endpoint.sink = { ...s.hostStack.sink };
    }
    // A deferred interrupt (coalescing) of the saved device is not in the snapshot: one
    // notification per queue makes the driver look (a spurious one is harmless, §2.7.7).
    if (this.policy.interrupts.coalesce !== null || this.policy.adaptive !== null) {
      this.ctx?.notifyUsed(VIRTIO_NET_RX_QUEUE);
      this.ctx?.notifyUsed(VIRTIO_NET_TX_QUEUE);
    }
  }
}

/**
 * The kick doorbell with every sleep cut to at most `pollMs`: a port the OS feeds (a TAP) has
 * no way to ring an Atomics doorbell, so the loop wakes this often to look at it. An early
 * 'timeout' only makes the loop run a pass and sleep again (its timers go by the clock).
 */
function pollingDoorbell(kick: LoopDoorbell, pollMs: number): LoopDoorbell {
  return {
    seq: () => kick.seq(),
    ring: (q?: number) => kick.ring(q),
    wait: (seen, deadlineMs = Infinity) => kick.wait(seen, Math.min(deadlineMs, performance.now() + pollMs)),
    waitUntil: (seen, deadlineMs) => {
      const cap = performance.now() + pollMs;
      return deadlineMs <= cap ? kick.waitUntil(seen, deadlineMs) : kick.wait(seen, cap);
    },
  };
}

function copyStats(to: NetDeviceStats, from: NetDeviceStats): void {
  Object.assign(to, from, { txDrops: { ...from.txDrops }, rxDrops: { ...from.rxDrops } });
}

/** The registry entry: 'virtio-net' (NetDevice + DeviceLoop + a port; options are plain data). */
export const virtioNetKind: VirtioDeviceKind<VirtioNetOptions | undefined> = {
  kind: 'virtio-net',
  frontend: (o) => new VirtioNetFrontend(o ?? {}),
  backend: (o) => new VirtioNetBackend(o ?? {}),
};
