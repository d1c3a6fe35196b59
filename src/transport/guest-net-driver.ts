// A guest-side virtio-net driver that reaches its device only through MMIO register reads and
// writes, in the order Linux's virtio_mmio + virtio_net drivers use: probe (magic, version,
// device id), reset, ACKNOWLEDGE, DRIVER, read the 64 feature bits through the selector, write
// the accepted subset, FEATURES_OK and its read-back, config reads under ConfigGeneration, queue
// setup (QueueSel, QueueReady read, QueueNumMax, QueueNum, the three area addresses, QueueReady),
// DRIVER_OK; then traffic with QueueNotify kicks and InterruptStatus / InterruptACK; then reset.
// For the embedding example, the tests and the browser page: it is what the device sees of a
// real guest. Rings go through DriverQueue. Runs in browser Web Workers: no `node:` imports.

import { Arena, BufferPool, type GuestMemory } from '../memory/index.js';
import { DriverQueue, SplitLayout } from '../virtqueue/index.js';
import { NetF, VirtioF } from '../net/features.js';
import { decodeNetHdr, emptyNetHdr, encodeNetHdr } from '../net/header.js';
import { MMIO_CONFIG_OFFSET, MMIO_MAGIC, MMIO_VERSION, Reg, Status } from './regs.js';

/** What the driver needs of the bus: 32-bit (and config-width) loads and stores in the window. */
export interface MmioBus {
  read(offset: number, size: number): number;
  write(offset: number, value: number, size: number): void;
}

export class GuestProbeError extends Error {
  override readonly name = 'GuestProbeError';
  constructor(readonly code: 'no-device' | 'bad-version' | 'placeholder' | 'features-refused' | 'queue-unavailable', detail: string) {
    super(`virtio-mmio guest: ${detail}`);
  }
}

export interface GuestNetOptions {
  /** Guest memory area the driver owns for rings and buffers. */
  arenaBase: number;
  arenaBytes: number;
  /** Queue size to ask for (capped at QueueNumMax). Default 256. */
  queueSize?: number;
  /** Features the driver would like (intersected with the offer). Default: everything LoopbackNet offers. */
  wantFeatures?: bigint;
  /** Bytes of each rx buffer (header included). Default 1526 (12 + 1514). */
  rxBufBytes?: number;
}

const NET_HDR_BYTES = 12;
const TX_BUF_BYTES = 2048;

export class GuestNetDriver {
  features = 0n;
  mac: number[] = [];
  mtu = 0;
  rx: DriverQueue<number> | null = null;
  tx: DriverQueue<number> | null = null;
  private rxPool: BufferPool | null = null;
  private txPool: BufferPool | null = null;
  private readonly rxBufBytes: number;
  private readonly hdr = emptyNetHdr();
  private readonly hdrBytes = new Uint8Array(NET_HDR_BYTES);
  /** virtio_net_hdr.flags of the last frame receive() handed out. */
  lastRxFlags = 0;
  /** Register accesses made, for tests that count them. */
  accesses = 0;
  readonly stats = { kicks: 0, interrupts: 0, configInterrupts: 0, rxFrames: 0, txFrames: 0, rxShort: 0 };

  constructor(
    /** Replaceable: a restored device is a new transport on the same guest. */
    public bus: MmioBus,
    readonly mem: GuestMemory,
    readonly opts: GuestNetOptions,
  ) {
    this.rxBufBytes = opts.rxBufBytes ?? 1526;
  }

  private r(off: number): number {
    this.accesses++;
    return this.bus.read(off, 4) >>> 0;
  }
  private w(off: number, v: number): void {
    this.accesses++;
    this.bus.write(off, v >>> 0, 4);
  }

  /** §4.2.3.1.1: magic, version, then device id (0 = placeholder, stop). Returns the device id. */
  probe(): number {
    if (this.r(Reg.MagicValue) !== MMIO_MAGIC) throw new GuestProbeError('no-device', 'no virtio magic');
    const version = this.r(Reg.Version);
    if (version !== MMIO_VERSION) throw new GuestProbeError('bad-version', `version ${version}, need 2`);
    const id = this.r(Reg.DeviceID);
    if (id === 0) throw new GuestProbeError('placeholder', 'device id 0 (placeholder)');
    return id;
  }

  /** Writes 0 to Status and waits (polls) until it reads 0 (§2.4.2). */
  reset(): void {
    this.w(Reg.Status, 0);
    for (let i = 0; i < 1_000_000 && this.r(Reg.Status) !== 0; i++) {
      // The device thread finishes its pass; a real driver would msleep(1) here.
    }
    this.rx = null;
    this.tx = null;
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
    const want = this.opts.wantFeatures ?? (VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VirtioF.INDIRECT_DESC | NetF.MAC | NetF.STATUS | NetF.MTU | NetF.MRG_RXBUF | NetF.CSUM | NetF.GUEST_CSUM);
    const accept = offered & want;
    for (let sel = 0; sel < 2; sel++) {
      this.w(Reg.DriverFeaturesSel, sel);
      this.w(Reg.DriverFeatures, Number((accept >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    this.addStatus(Status.FEATURES_OK);
    if ((this.r(Reg.Status) & Status.FEATURES_OK) === 0) {
      this.addStatus(Status.FAILED);
      throw new GuestProbeError('features-refused', `device refused features 0x${accept.toString(16)}`);
    }
    this.features = accept;
    this.readConfig();
    const arena = new Arena(this.mem, this.opts.arenaBase, this.opts.arenaBytes);
    this.rx = this.setupQueue(0, arena);
    this.tx = this.setupQueue(1, arena);
    this.rxPool = new BufferPool(arena, this.rxBufBytes, this.rx.size, 64);
    this.txPool = new BufferPool(arena, TX_BUF_BYTES, this.tx.size, 64);
    this.addStatus(Status.DRIVER_OK);
    return accept;
  }

  /** Config fields read until ConfigGeneration is stable (§2.5.1 / §4.2.2). */
  readConfig(): void {
    for (;;) {
      const gen = this.r(Reg.ConfigGeneration);
      const mac: number[] = [];
      for (let i = 0; i < 6; i++) mac.push(this.bus.read(MMIO_CONFIG_OFFSET + i, 1));
      const mtu = this.features & NetF.MTU ? this.bus.read(MMIO_CONFIG_OFFSET + 10, 2) : 1500;
      if (this.r(Reg.ConfigGeneration) === gen) {
        this.mac = mac;
        this.mtu = mtu;
        return;
      }
    }
  }

  /** config.status & LINK_UP (§5.1.4). */
  linkUp(): boolean {
    return (this.bus.read(MMIO_CONFIG_OFFSET + 6, 2) & 1) !== 0;
  }

  private setupQueue(index: number, arena: Arena): DriverQueue<number> {
    this.w(Reg.QueueSel, index);
    if (this.r(Reg.QueueReady) !== 0) throw new GuestProbeError('queue-unavailable', `queue ${index} already in use`);
    const max = this.r(Reg.QueueNumMax);
    if (max === 0) throw new GuestProbeError('queue-unavailable', `queue ${index} not available`);
    const size = Math.min(max, this.opts.queueSize ?? 256);
    const base = arena.alloc(SplitLayout.packedBytes(size), 4096);
    this.mem.fill(base, SplitLayout.packedBytes(size), 0);
    const layout = SplitLayout.packedAt(size, base, index);
    const indirect = (this.features & VirtioF.INDIRECT_DESC) !== 0n;
    const indirectArea = indirect ? arena.alloc(size * 4 * 16, 16) : undefined;
    this.w(Reg.QueueNum, size);
    const hi = (a: number): number => Math.floor(a / 0x1_0000_0000);
    this.w(Reg.QueueDescLow, layout.descAddr >>> 0);
    this.w(Reg.QueueDescHigh, hi(layout.descAddr));
    this.w(Reg.QueueDriverLow, layout.availAddr >>> 0);
    this.w(Reg.QueueDriverHigh, hi(layout.availAddr));
    this.w(Reg.QueueDeviceLow, layout.usedAddr >>> 0);
    this.w(Reg.QueueDeviceHigh, hi(layout.usedAddr));
    this.w(Reg.QueueReady, 1);
    if (this.r(Reg.QueueReady) !== 1) throw new GuestProbeError('queue-unavailable', `queue ${index} refused its setup`);
    return new DriverQueue<number>(this.mem, layout, {
      index,
      eventIdx: (this.features & VirtioF.EVENT_IDX) !== 0n,
      indirect,
      ...(indirectArea !== undefined ? { indirectArea, indirectMaxSegments: 4 } : {}),
    });
  }

  private kick(index: number, q: DriverQueue<number>): void {
    if (q.publish() > 0 && q.kickNeeded()) {
      this.stats.kicks++;
      this.w(Reg.QueueNotify, index);
    }
  }

  /** Posts empty rx buffers until the pool or the ring is exhausted; kicks once. */
  refillRx(max = Infinity): number {
    const rx = this.rx!;
    const pool = this.rxPool!;
    let n = 0;
    while (n < max && pool.available > 0 && rx.numFree > 0) {
      const addr = pool.get();
      rx.add1(addr, this.rxBufBytes, true, addr);
      n++;
    }
    if (n > 0) this.kick(0, rx);
    return n;
  }

  /**
   * Queues one frame (header + frame in two descriptors) for transmit; false when out of space.
   * `csum` asks the device to finish a partial checksum (NEEDS_CSUM, needs VIRTIO_NET_F_CSUM).
   */
  send(frame: Uint8Array, kick = true, csum?: { start: number; offset: number }): boolean {
    const tx = this.tx!;
    const pool = this.txPool!;
    this.reapTx();
    if (pool.available === 0 || tx.numFree < 2 || frame.length + NET_HDR_BYTES > TX_BUF_BYTES) return false;
    const addr = pool.get();
    const hdr = this.hdr;
    hdr.flags = csum ? 1 : 0; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    hdr.csumStart = csum?.start ?? 0;
    hdr.csumOffset = csum?.offset ?? 0;
    hdr.gsoType = 0;
    hdr.numBuffers = 0;
    encodeNetHdr(hdr, 'v1', this.hdrBytes);
    this.mem.copyIn(addr, this.hdrBytes);
    this.mem.copyIn(addr + NET_HDR_BYTES, frame);
    tx.add([{ addr, len: NET_HDR_BYTES }, { addr: addr + NET_HDR_BYTES, len: frame.length }], [], addr);
    this.stats.txFrames++;
    if (kick) this.kick(1, tx);
    return true;
  }

  /** Kicks the tx queue after a batch of send(..., false). */
  flushTx(): void {
    this.kick(1, this.tx!);
  }

  /** Returns transmitted buffers to the pool. */
  reapTx(): number {
    const tx = this.tx!;
    let n = 0;
    let u;
    while ((u = tx.reap()) !== null) {
      this.txPool!.put(u.token);
      n++;
    }
    return n;
  }

  /**
   * Hands each received frame to `onFrame` (a view valid during the call) and recycles its
   * buffers; merges MRG_RXBUF frames spread over num_buffers chains. Returns frames received.
   */
  receive(onFrame: (frame: Uint8Array) => void): number {
    const rx = this.rx!;
    let frames = 0;
    let u;
    while ((u = rx.reap()) !== null) {
      const addr = u.token;
      const len = u.len;
      if (len < NET_HDR_BYTES) {
        // Linux: "rx error: len too short"; the buffer goes back to the pool.
        this.rxPool!.put(addr);
        this.stats.rxShort++;
        continue;
      }
      this.mem.copyOut(addr, this.hdrBytes);
      const hdr = decodeNetHdr(this.hdrBytes, 0, 'v1', this.hdr);
      this.lastRxFlags = hdr instanceof Error ? 0 : hdr.flags;
      const nbuf = hdr instanceof Error ? 1 : Math.max(1, hdr.numBuffers);
      if (nbuf === 1) {
        onFrame(this.mem.bytes(addr + NET_HDR_BYTES, len - NET_HDR_BYTES));
        this.rxPool!.put(addr);
      } else {
        const parts: Uint8Array[] = [this.mem.bytes(addr + NET_HDR_BYTES, len - NET_HDR_BYTES).slice()];
        this.rxPool!.put(addr);
        for (let i = 1; i < nbuf; i++) {
          const v = rx.reap();
          if (v === null) break; // the device publishes a frame's buffers together
          parts.push(this.mem.bytes(v.token, v.len).slice());
          this.rxPool!.put(v.token);
        }
        let total = 0;
        for (const p of parts) total += p.length;
        const whole = new Uint8Array(total);
        let o = 0;
        for (const p of parts) {
          whole.set(p, o);
          o += p.length;
        }
        onFrame(whole);
      }
      frames++;
      this.stats.rxFrames++;
    }
    return frames;
  }

  /** Interrupt handler top half: read InterruptStatus, acknowledge it (§4.2.3.4). Returns the bits. */
  acknowledgeInterrupt(): number {
    const isr = this.r(Reg.InterruptStatus);
    if (isr !== 0) {
      this.w(Reg.InterruptACK, isr);
      this.stats.interrupts++;
      if (isr & 2) this.stats.configInterrupts++;
    }
    return isr;
  }

  /** Device status as read from the register. */
  status(): number {
    return this.r(Reg.Status);
  }
}

/** A test frame: Ethernet to/from `mac`, EtherType 0x88b5 (local experimental), then seq, length and a pattern. */
export function makeSeqFrame(mac: readonly number[], seq: number, lenBytes: number, out?: Uint8Array): Uint8Array {
  const f = out ?? new Uint8Array(lenBytes);
  f.set(mac, 0);
  f.set(mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  v.setUint32(14, seq >>> 0, true);
  v.setUint32(18, lenBytes, true);
  for (let i = 22; i < lenBytes; i++) f[i] = (seq * 31 + i) & 0xff;
  return f;
}

/** Checks a frame made by makeSeqFrame; returns its sequence number or a reason string. */
export function checkSeqFrame(f: Uint8Array): number | string {
  if (f.length < 22) return `frame of ${f.length} bytes is too short`;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const seq = v.getUint32(14, true);
  const len = v.getUint32(18, true);
  if (len !== f.length) return `frame ${seq}: length ${f.length}, header says ${len}`;
  for (let i = 22; i < len; i++) if (f[i] !== ((seq * 31 + i) & 0xff)) return `frame ${seq}: byte ${i} corrupted`;
  return seq;
}
