// The guest side of a virtio-net device behind virtio-mmio, for examples, tests and the browser
// page: what a guest kernel's virtio_mmio driver does through the register window, and nothing of
// the data path. Owns the driver initialisation of virtio 1.2 §3.1.1 in the order Linux uses
// (probe §4.2.3.1.1: magic, version, device id; reset; ACKNOWLEDGE; DRIVER; the 64 feature bits
// through the selectors; FEATURES_OK and its read-back; config fields under ConfigGeneration
// §2.5.1; queue setup §4.2.3.2; DRIVER_OK), QueueNotify kicks, and the interrupt handler's
// InterruptStatus / InterruptACK (§4.2.3.4). The data path is NetDriver's (src/net/driver.ts)
// over the two DriverQueues set up here, the network stack NetEndpoint's (src/net/endpoint.ts);
// step() is one turn of the guest's softirq: take the interrupt, poll rx, reap tx, send what the
// stack has, kick. Also the sequence-numbered test frames of the loopback examples.
// Runs in browser Web Workers: no `node:` imports.

import { ControlDriver, type ControlReply } from '../net/control-driver.js';
import type { ControlCommand } from '../net/control.js';
import { Arena, type GuestMemory } from '../memory/index.js';
import { compactRingBytes, compactRingLayout, openDriverQueue, type DriverVirtqueue } from '../virtqueue/index.js';
import { NetF, VirtioF } from '../net/features.js';
import { NET_DEVICE_FEATURES } from '../net/device.js';
import { NetDriver, type NetDriverOptions, type ReceiveCallback } from '../net/driver.js';
import { NetEndpoint, type EndpointOptions } from '../net/endpoint.js';
import { emptyNetHdr, type VirtioNetHdr } from '../net/header.js';
import { NetConfigOffset } from '../net/config.js';
import { Interrupt, MMIO_CONFIG_OFFSET, MMIO_MAGIC, MMIO_VERSION, Reg, Status } from './regs.js';

/** What the guest needs of the bus: loads and stores in the device's register window. */
export interface MmioBus {
  read(offset: number, size: number): number;
  write(offset: number, value: number, size: number): void;
}

export type MmioGuestErrorCode = 'no-device' | 'bad-version' | 'placeholder' | 'features-refused' | 'queue-unavailable' | 'not-initialised';

/** The device did not pass the probe or refused the driver's setup. */
export class MmioGuestError extends Error {
  override readonly name = 'MmioGuestError';
  constructor(
    readonly code: MmioGuestErrorCode,
    detail: string,
  ) {
    super(`virtio-mmio guest: ${detail}`);
  }
}

/**
 * What the guest asks for by default: every feature NetDevice honours, on the split ring (ask
 * for VIRTIO_F_RING_PACKED / VIRTIO_F_IN_ORDER with wantFeatures).
 */
export const GUEST_NET_FEATURES = NET_DEVICE_FEATURES;

export interface MmioNetGuestOptions {
  /** Guest memory the driver owns for rings and buffers. */
  arenaBase: number;
  arenaBytes: number;
  /** Queue size to ask for (capped at QueueNumMax). Default 256. */
  queueSize?: number;
  /** Features the driver would like (intersected with the offer). Default GUEST_NET_FEATURES. */
  wantFeatures?: bigint;
  /** NetDriver settings (buffer modes, counts, tx layout, NAPI budget). */
  driver?: Omit<NetDriverOptions, 'mem' | 'arena' | 'features' | 'rxq' | 'txq' | 'mtu' | 'onReceive'>;
  /** A network stack on top (its MAC is the one read from config space; its MTU defaults to config.mtu). */
  endpoint?: Omit<EndpointOptions, 'mac' | 'mtu'> & { mtu?: number };
  /** Frames received when there is no endpoint (views valid during the call). */
  onReceive?: ReceiveCallback;
}

/** Segments per indirect table: a GSO frame in page-sized pieces plus its header. */
const INDIRECT_SEGMENTS = 20;

export class MmioNetGuest {
  features = 0n;
  mac: Uint8Array = new Uint8Array(6);
  mtu = 1500;
  driver: NetDriver | null = null;
  endpoint: NetEndpoint | null = null;
  /** Register accesses made (tests count them). */
  accesses = 0;
  readonly stats = { kicks: 0, interrupts: 0, configInterrupts: 0 };
  /** The control queue's driver, when CTRL_VQ was negotiated (after init()). */
  control: ControlDriver | null = null;
  /** The control queue's index (2N with MQ, else 2: virtio 1.2 §5.1.2). */
  controlIndex = -1;
  private readonly scratch = new Uint8Array(65600);
  private readonly outHdr: VirtioNetHdr = emptyNetHdr();
  /** A frame the endpoint built that found no tx buffer yet. */
  private pendingLen = 0;

  constructor(
    /** Replaceable: a restored device is a new transport in front of the same guest. */
    public bus: MmioBus,
    readonly mem: GuestMemory,
    readonly opts: MmioNetGuestOptions,
  ) {}

  private r(off: number): number {
    this.accesses++;
    return this.bus.read(off, 4) >>> 0;
  }
  private w(off: number, v: number): void {
    this.accesses++;
    this.bus.write(off, v >>> 0, 4);
  }

  /** The NetDriver after init() (throws before). */
  get net(): NetDriver {
    if (this.driver === null) throw new MmioGuestError('not-initialised', 'init() has not run');
    return this.driver;
  }

  /** §4.2.3.1.1: magic, version, then device id (0 = placeholder, stop). Returns the device id. */
  probe(): number {
    if (this.r(Reg.MagicValue) !== MMIO_MAGIC) throw new MmioGuestError('no-device', 'no virtio magic');
    const version = this.r(Reg.Version);
    if (version !== MMIO_VERSION) throw new MmioGuestError('bad-version', `version ${version}, need 2`);
    const id = this.r(Reg.DeviceID);
    if (id === 0) throw new MmioGuestError('placeholder', 'device id 0 (placeholder)');
    return id;
  }

  /** Writes 0 to Status and polls until it reads 0 (§2.4.2: the device thread may still be finishing). */
  reset(): void {
    this.w(Reg.Status, 0);
    for (let i = 0; i < 1_000_000 && this.r(Reg.Status) !== 0; i++) {
      // A real driver would msleep(1) here.
    }
    this.driver = null;
    this.endpoint = null;
    this.control = null;
    this.controlIndex = -1;
    this.pendingLen = 0;
  }

  private addStatus(bits: number): void {
    this.w(Reg.Status, this.r(Reg.Status) | bits);
  }

  /** The whole §3.1.1 sequence up to and including DRIVER_OK; returns the negotiated features. */
  init(): bigint {
    this.probe();
    this.reset();
    this.addStatus(Status.ACKNOWLEDGE);
    this.addStatus(Status.DRIVER);
    let offered = 0n;
    for (let sel = 0; sel < 2; sel++) {
      this.w(Reg.DeviceFeaturesSel, sel);
      offered |= BigInt(this.r(Reg.DeviceFeatures)) << BigInt(32 * sel);
    }
    const accept = offered & (this.opts.wantFeatures ?? GUEST_NET_FEATURES);
    for (let sel = 0; sel < 2; sel++) {
      this.w(Reg.DriverFeaturesSel, sel);
      this.w(Reg.DriverFeatures, Number((accept >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    this.addStatus(Status.FEATURES_OK);
    if ((this.r(Reg.Status) & Status.FEATURES_OK) === 0) {
      this.addStatus(Status.FAILED);
      throw new MmioGuestError('features-refused', `device refused features 0x${accept.toString(16)}`);
    }
    this.features = accept;
    this.readConfig();
    const o = this.opts;
    const arena = new Arena(this.mem, o.arenaBase, o.arenaBytes);
    const rxq = this.setupQueue(0, arena);
    const txq = this.setupQueue(1, arena);
    if ((accept & NetF.CTRL_VQ) !== 0n) {
      // Only pair 0 carries data here; with MQ the control queue still sits after every pair.
      const pairs = (accept & (NetF.MQ | NetF.RSS)) !== 0n ? this.bus.read(MMIO_CONFIG_OFFSET + NetConfigOffset.MAX_VIRTQUEUE_PAIRS, 2) : 1;
      this.controlIndex = 2 * pairs;
      this.control = new ControlDriver(this.mem, arena, this.setupQueue(this.controlIndex, arena));
    }
    const left = o.arenaBytes - arena.usedBytes;
    const ep = o.endpoint !== undefined ? new NetEndpoint({ ...o.endpoint, mac: this.mac, mtu: o.endpoint.mtu ?? this.mtu }) : null;
    this.endpoint = ep;
    this.driver = new NetDriver({
      rxMemoryBytes: Math.floor(left * 0.45),
      txMemoryBytes: Math.floor(left * 0.45),
      ...o.driver,
      mem: this.mem,
      arena,
      features: accept,
      rxq,
      txq,
      mtu: this.mtu,
      onReceive: ep !== null ? (b, off, len, hdr) => ep.input(b, off, len, hdr) : (o.onReceive ?? (() => {})),
    });
    this.addStatus(Status.DRIVER_OK);
    return accept;
  }

  /** MAC and MTU read until ConfigGeneration is stable (§2.5.1, §5.1.4). */
  readConfig(): void {
    for (;;) {
      const gen = this.r(Reg.ConfigGeneration);
      const mac = new Uint8Array(6);
      for (let i = 0; i < 6; i++) mac[i] = this.bus.read(MMIO_CONFIG_OFFSET + NetConfigOffset.MAC + i, 1);
      const mtu = this.features & NetF.MTU ? this.bus.read(MMIO_CONFIG_OFFSET + NetConfigOffset.MTU, 2) : 1500;
      if (this.r(Reg.ConfigGeneration) === gen) {
        this.mac = mac;
        this.mtu = mtu;
        return;
      }
    }
  }

  /** config.status & LINK_UP (§5.1.4). */
  linkUp(): boolean {
    return (this.bus.read(MMIO_CONFIG_OFFSET + NetConfigOffset.STATUS, 2) & 1) !== 0;
  }

  private setupQueue(index: number, arena: Arena): DriverVirtqueue<number> {
    this.w(Reg.QueueSel, index);
    if (this.r(Reg.QueueReady) !== 0) throw new MmioGuestError('queue-unavailable', `queue ${index} already in use`);
    const max = this.r(Reg.QueueNumMax);
    if (max === 0) throw new MmioGuestError('queue-unavailable', `queue ${index} not available`);
    const size = Math.min(max, this.opts.queueSize ?? 256);
    const ring = (this.features & VirtioF.RING_PACKED) !== 0n ? 'packed' : 'split';
    const base = arena.alloc(compactRingBytes(ring, size), 4096);
    this.mem.fill(base, compactRingBytes(ring, size), 0);
    const layout = compactRingLayout(ring, size, base, index);
    const indirect = (this.features & VirtioF.INDIRECT_DESC) !== 0n;
    const indirectArea = indirect ? arena.alloc(size * INDIRECT_SEGMENTS * 16, 16) : undefined;
    this.w(Reg.QueueNum, size);
    const hi = (a: number): number => Math.floor(a / 0x1_0000_0000);
    this.w(Reg.QueueDescLow, layout.descAddr >>> 0);
    this.w(Reg.QueueDescHigh, hi(layout.descAddr));
    this.w(Reg.QueueDriverLow, layout.availAddr >>> 0);
    this.w(Reg.QueueDriverHigh, hi(layout.availAddr));
    this.w(Reg.QueueDeviceLow, layout.usedAddr >>> 0);
    this.w(Reg.QueueDeviceHigh, hi(layout.usedAddr));
    this.w(Reg.QueueReady, 1);
    if (this.r(Reg.QueueReady) !== 1) throw new MmioGuestError('queue-unavailable', `queue ${index} refused its setup`);
    return openDriverQueue<number>(this.mem, layout, {
      index,
      inOrder: (this.features & VirtioF.IN_ORDER) !== 0n,
      eventIdx: (this.features & VirtioF.EVENT_IDX) !== 0n,
      indirect,
      ...(indirectArea !== undefined ? { indirectArea, indirectMaxSegments: INDIRECT_SEGMENTS } : {}),
    });
  }

  /** Sends a control command (virtio 1.2 §5.1.6.5) and kicks the control queue when the device wants it. */
  sendControl(cmd: ControlCommand | Uint8Array): void {
    if (this.control === null) throw new MmioGuestError('not-initialised', 'no control queue (VIRTIO_NET_F_CTRL_VQ not negotiated)');
    if (this.control.send(cmd)) this.kick(this.controlIndex);
  }

  /** The outstanding control command's reply once the device used it, else null. */
  pollControl(): ControlReply | null {
    return this.control?.poll() ?? null;
  }

  /** QueueNotify: an available-buffer notification for `queue` (§4.2.3.3). */
  kick(queue: number): void {
    this.stats.kicks++;
    this.w(Reg.QueueNotify, queue);
  }

  /** Posts free rx buffers and publishes them, kicking when the device wants it; returns how many. */
  refillRx(): number {
    const d = this.net;
    const n = d.fillRx();
    if (d.flushRx()) this.kick(0);
    return n;
  }

  /** Copies a frame into a tx buffer (no kick: flushTx publishes and kicks); false when busy. */
  send(frame: Uint8Array, hdr: Readonly<VirtioNetHdr> = emptyNetHdr()): boolean {
    const d = this.net;
    d.reapTx();
    return d.transmit(frame, 0, frame.length, hdr);
  }

  /** Publishes queued tx chains (NetDriver records the traced publish point) and kicks when the device wants it. */
  flushTx(): void {
    const d = this.net;
    if (d.publishTx() === 0 || !d.txq.kickNeeded()) return;
    const tr = this.opts.driver?.tracer;
    if (tr !== undefined && tr.enabled) tr.kick(d.txq.index); // before the ring, as NetDriverService records it
    this.kick(1);
  }

  /** Receives what the device used (NetDriver.pollRx until drained, refilling), then publishes the refill. */
  receive(): number {
    const d = this.net;
    let n = 0;
    for (;;) {
      const got = d.pollRx();
      n += got;
      if (got < d.napiBudget) break;
    }
    if (d.flushRx()) this.kick(0);
    return n;
  }

  /** Interrupt handler top half: read InterruptStatus, acknowledge it (§4.2.3.4). Returns the bits. */
  acknowledgeInterrupt(): number {
    const isr = this.r(Reg.InterruptStatus);
    if (isr !== 0) {
      this.w(Reg.InterruptACK, isr);
      this.stats.interrupts++;
      if (isr & Interrupt.CONFIG_CHANGE) this.stats.configInterrupts++;
    }
    return isr;
  }

  /**
   * One turn of the guest's network softirq: acknowledge the interrupt, receive (frames go to the
   * endpoint or onReceive), reap tx, send what the endpoint has to say, kick. Returns frames moved.
   */
  step(): number {
    const d = this.net;
    this.acknowledgeInterrupt();
    let moved = this.receive();
    d.reapTx();
    const ep = this.endpoint;
    if (ep !== null) {
      for (;;) {
        if (this.pendingLen === 0) this.pendingLen = ep.nextFrame(this.scratch, 0, Math.min(this.scratch.length, d.maxTxFrameBytes), this.outHdr);
        if (this.pendingLen === 0) break;
        if (!d.transmit(this.scratch, 0, this.pendingLen, this.outHdr)) break;
        this.pendingLen = 0;
        moved++;
      }
    }
    this.flushTx();
    return moved;
  }

  /** Device status as read from the register. */
  status(): number {
    return this.r(Reg.Status);
  }
}

/** A test frame: Ethernet to/from `mac`, EtherType 0x88b5 (local experimental), then seq, length and a pattern. */
export function makeSeqFrame(mac: ArrayLike<number>, seq: number, lenBytes: number, out?: Uint8Array): Uint8Array {
  const f = out ?? new Uint8Array(lenBytes);
  for (let i = 0; i < 6; i++) {
    f[i] = mac[i]!;
    f[6 + i] = mac[i]!;
  }
  f[12] = 0x88;
  f[13] = 0xb5;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  v.setUint32(14, seq >>> 0, true);
  v.setUint32(18, lenBytes, true);
  for (let i = 22; i < lenBytes; i++) f[i] = (seq * 31 + i) & 0xff;
  return f;
}

/** Checks `bytes[offset…offset+len)` made by makeSeqFrame; returns its sequence number or a reason string. */
export function checkSeqFrame(bytes: Uint8Array, offset = 0, len = bytes.length - offset): number | string {
  if (len < 22) return `frame of ${len} bytes is too short`;
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, len);
  const seq = v.getUint32(14, true);
  const want = v.getUint32(18, true);
  if (want !== len) return `frame ${seq}: length ${len}, header says ${want}`;
  for (let i = 22; i < len; i++) if (bytes[offset + i] !== ((seq * 31 + i) & 0xff)) return `frame ${seq}: byte ${i} corrupted`;
  return seq;
}
