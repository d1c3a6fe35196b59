// The vhost-user-net backend's state machine (vhost-user protocol, "Front-end message types"):
// features and protocol features, owner, the memory table (each region mmapped and placed into
// one GuestMemory, replaced whole on every SET_MEM_TABLE, also while rings run), and per ring
// num/addr/base/kick/call/err/enable. Ring addresses arrive as frontend virtual addresses and are
// translated to guest physical addresses through the table, so the data path is virtq's own
// DeviceQueue on the frontend's memory (FrameDevice: the seam where NetDevice plugs in later).
// Operating-system access (mmap, close, eventfd writes) is injected, so the whole state machine
// is unit-tested with a fake; runs in Web Workers too (no `node:` imports).

import { GuestMemory } from '../memory/index.js';
import { NetF, VirtioF } from '../net/features.js';
import { headerSize } from '../net/header.js';
import { DeviceQueue, SplitLayout, availRingBytes, descTableBytes, isValidQueueSize, usedRingBytes } from '../virtqueue/index.js';
import { FrameDevice, type FrameDeviceStats } from '../peers/frame-device.js';
import { VhostUserError } from './errors.js';
import { ProtocolF, Req, VHOST_USER_F_PROTOCOL_FEATURES, requestName, statePayload, u64Payload, type MemRegionDesc, type Message, type VringAddr } from './messages.js';

/** What the backend needs from the operating system. */
export interface VhostOs {
  /** Size in bytes of the file behind `fd` (fstat), to refuse regions beyond its end. */
  fileSize(fd: number): number;
  mmapShared(fd: number, lengthBytes: number, offsetBytes: number): SharedArrayBuffer;
  close(fd: number): void;
  /** Signals an eventfd (a call: used buffers for the driver). */
  signal(fd: number): void;
}

/**
 * What the device does with a transmitted frame: writes a frame to deliver back to the driver
 * into `out` (virtio_net_hdr first) and returns its length, or 0 for none.
 */
export type FrameHandler = (frame: Uint8Array, lenBytes: number, out: Uint8Array, hdrBytes: number) => number;

/**
 * A frame endpoint behind the device (a TAP): frames the driver transmits go to send(); frames
 * from receive() go to the driver. Both carry the virtio_net_hdr first.
 */
export interface FramePort {
  /** The fd to poll for input (POLLIN means receive() has frames). */
  readonly fd: number;
  /** Returns false when the frame was dropped (counted by the backend). */
  send(frame: Uint8Array, lenBytes: number): boolean;
  /** One frame into buf: its length, or 0 when none is ready. */
  receive(buf: Uint8Array): number;
  /** The negotiated virtio_net_hdr size, when the rings start. */
  setHeaderBytes(bytes: number): void;
}

export const NUM_QUEUES = 2; // one receive (0) + one transmit (1) queue
const PAGE = 4096;

/** Device features offered (virtio 1.2 §5.1.3, §6): split ring, no offloads, no config space. */
export const OFFERED_FEATURES =
  VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VirtioF.INDIRECT_DESC | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES;
export const OFFERED_PROTOCOL_FEATURES = (1n << BigInt(ProtocolF.MQ)) | (1n << BigInt(ProtocolF.REPLY_ACK));

interface Vring {
  num: number;
  addr: VringAddr | null;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  enabled: boolean;
  queue: DeviceQueue | null;
}

function newVring(): Vring {
  return { num: 0, addr: null, base: 0, kickFd: -1, callFd: -1, errFd: -1, enabled: false, queue: null };
}

interface UserRegion {
  userAddr: number;
  sizeBytes: number;
  guestAddr: number;
}

export interface BackendStats {
  messages: number;
  memTables: number;
  ringStarts: number;
  calls: number;
  /** Transmitted frames the port refused (a TAP write error). */
  portTxDrop: number;
  /**
   * Chains the driver had made available but the device had not popped when the ring was
   * stopped (GET_VRING_BASE), on transmit (odd) and receive (even) queues (virtio 1.2 §5.1.2).
   * They are not lost — the returned base resumes there, as vhost does — but a frontend that
   * exits right after stopping counts them as sent.
   */
  txLeftInRingAtStop: number;
  rxLeftInRingAtStop: number;
}

export class VhostUserBackend {
  readonly mem = new GuestMemory();
  readonly stats: BackendStats = { messages: 0, memTables: 0, ringStarts: 0, calls: 0, portTxDrop: 0, txLeftInRingAtStop: 0, rxLeftInRingAtStop: 0 };
  private features = 0n;
  private featuresSet = false;
  private protocolFeatures = 0n;
  private owner = false;
  private userRegions: UserRegion[] = [];
  private readonly vrings: Vring[] = [newVring(), newVring()];
  private device: FrameDevice | null = null;
  private deviceStatsTotal: FrameDeviceStats | null = null;

  private readonly txBuf = new Uint8Array(65536 + 64);
  private readonly outBuf = new Uint8Array(65536 + 64);
  private pendingLen = 0; // a reply that found no receive buffer yet
  /** Transmitted chains the last service() call handled. */
  lastWork = 0;

  constructor(
    private readonly os: VhostOs,
    private readonly handler: FrameHandler,
    private readonly port: FramePort | null = null,
  ) {}

  /** Whether the port's fd should be polled (rings running and no frame waiting for buffers). */
  wantsPortInput(): boolean {
    return this.port !== null && this.device !== null && this.pendingLen === 0;
  }

  get negotiatedFeatures(): bigint {
    return this.features;
  }
  get replyAck(): boolean {
    return (this.protocolFeatures & (1n << BigInt(ProtocolF.REPLY_ACK))) !== 0n;
  }
  /** Frame counters of the data path, summed over every ring start so far. */
  get frameStats(): FrameDeviceStats {
    const t = this.deviceStatsTotal ?? { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropMalformed: 0, rxDropTooBig: 0 };
    const d = this.device?.stats;
    if (!d) return { ...t };
    return {
      txFrames: t.txFrames + d.txFrames,
      txBytes: t.txBytes + d.txBytes,
      rxFrames: t.rxFrames + d.rxFrames,
      rxBytes: t.rxBytes + d.rxBytes,
      txDropMalformed: t.txDropMalformed + d.txDropMalformed,
      rxDropTooBig: t.rxDropTooBig + d.rxDropTooBig,
    };
  }

  /** Kick fds of started rings, for the caller's poll set. */
  kickFds(): number[] {
    return this.vrings.filter((v) => v.queue !== null && v.kickFd >= 0).map((v) => v.kickFd);
  }

  /**
   * Applies one decoded message with the fds that came with it (the backend takes ownership of
   * them all). Returns the reply payload for requests that have one, else null. Throws
   * VhostUserError when the frontend broke the protocol (the caller closes the connection).
   */
  handle(msg: Message, fds: readonly number[]): Uint8Array | null {
    this.stats.messages++;
    const used = new Set<number>();
    try {
      return this.apply(msg, fds, used);
    } finally {
      for (const fd of fds) if (!used.has(fd)) this.os.close(fd);
    }
  }

  private apply(msg: Message, fds: readonly number[], used: Set<number>): Uint8Array | null {
    const name = requestName(msg.request);
    const wantFds = (n: number): void => {
      if (fds.length !== n) throw new VhostUserError('bad-fds', `${name}: ${fds.length} file descriptors attached, expected ${n}`);
    };
    if (msg.kind !== 'mem' && msg.kind !== 'fd') wantFds(0);
    switch (msg.request) {
      case Req.GET_FEATURES:
        return u64Payload(OFFERED_FEATURES);
      case Req.SET_FEATURES: {
        const v = (msg as { value: bigint }).value;
        if (v & ~OFFERED_FEATURES) throw new VhostUserError('bad-state', `SET_FEATURES 0x${v.toString(16)} includes bits never offered (0x${(v & ~OFFERED_FEATURES).toString(16)})`);
        if (this.device !== null && v !== this.features) throw new VhostUserError('bad-state', 'SET_FEATURES changed the features while rings run');
        this.features = v;
        this.featuresSet = true;
        return null;
      }
      case Req.GET_PROTOCOL_FEATURES:
        return u64Payload(OFFERED_PROTOCOL_FEATURES);
      case Req.SET_PROTOCOL_FEATURES: {
        const v = (msg as { value: bigint }).value;
        this.protocolFeatures = v & OFFERED_PROTOCOL_FEATURES;
        return null;
      }
      case Req.SET_OWNER:
        this.owner = true;
        return null;
      case Req.RESET_OWNER:
        this.reset();
        return null;
      case Req.GET_QUEUE_NUM:
        return u64Payload(1n); // one receive/transmit pair
      case Req.SET_LOG_BASE:
      case Req.SET_LOG_FD:
        throw new VhostUserError('unsupported', `${name}: dirty logging (VHOST_F_LOG_ALL) was never offered`);
      case Req.SET_MEM_TABLE:
        wantFds((msg as { regions: MemRegionDesc[] }).regions.length);
        this.setMemTable((msg as { regions: MemRegionDesc[] }).regions, fds, used);
        return null;
      case Req.SET_VRING_NUM: {
        const { index, num } = msg as { index: number; num: number };
        const v = this.vring(index, name);
        if (!isValidQueueSize(num)) throw new VhostUserError('bad-queue', `SET_VRING_NUM: queue ${index} size ${num} is not a power of 2 in 1..32768`);
        if (v.queue !== null) throw new VhostUserError('bad-state', `SET_VRING_NUM: queue ${index} is running`);
        v.num = num;
        return null;
      }
      case Req.SET_VRING_BASE: {
        const { index, num } = msg as { index: number; num: number };
        const v = this.vring(index, name);
        if (num > 0xffff) throw new VhostUserError('bad-queue', `SET_VRING_BASE: queue ${index} base ${num} exceeds 16 bits`);
        if (v.queue !== null) throw new VhostUserError('bad-state', `SET_VRING_BASE: queue ${index} is running`);
        v.base = num;
        return null;
      }
      case Req.SET_VRING_ADDR: {
        const a = (msg as { addr: VringAddr }).addr;
        const v = this.vring(a.index, name);
        v.addr = a;
        if (v.queue !== null) {
          // Address change on a running ring (QEMU does this on some resets): restart it there.
          const base = v.queue.nextAvail;
          this.stopRing(a.index);
          v.base = base;
          this.maybeStart(a.index);
        }
        return null;
      }
      case Req.GET_VRING_BASE: {
        const { index } = msg as { index: number };
        const v = this.vring(index, name);
        const base = v.queue !== null ? v.queue.nextAvail : v.base;
        // virtio-net: even queues receive, odd queues transmit (virtio 1.2 §5.1.2).
        if (v.queue !== null && !v.queue.broken) {
          let left = 0;
          try {
            left = v.queue.pending();
          } catch {
            // A ring the driver broke just now: nothing trustworthy to count.
          }
          if (index % 2 === 1) this.stats.txLeftInRingAtStop += left;
          else this.stats.rxLeftInRingAtStop += left;
        }
        this.stopRing(index);
        if (v.kickFd >= 0) this.os.close(v.kickFd);
        v.kickFd = -1;
        v.base = base;
        return statePayload(index, base);
      }
      case Req.SET_VRING_KICK:
      case Req.SET_VRING_CALL:
      case Req.SET_VRING_ERR: {
        const { index, noFd } = msg as { index: number; noFd: boolean };
        const v = this.vring(index, name);
        wantFds(noFd ? 0 : 1);
        const fd = noFd ? -1 : fds[0]!;
        if (fd >= 0) used.add(fd);
        if (msg.request === Req.SET_VRING_KICK) {
          if (noFd) throw new VhostUserError('unsupported', `SET_VRING_KICK: queue ${index} without a kick fd (polling mode) is not supported`);
          this.stopRing(index);
          if (v.kickFd >= 0) this.os.close(v.kickFd);
          v.kickFd = fd;
          // Without PROTOCOL_FEATURES a ring is enabled as soon as it has a kick fd.
          if ((this.features & VHOST_USER_F_PROTOCOL_FEATURES) === 0n) v.enabled = true;
          this.maybeStart(index);
        } else if (msg.request === Req.SET_VRING_CALL) {
          if (v.callFd >= 0) this.os.close(v.callFd);
          v.callFd = fd;
        } else {
          if (v.errFd >= 0) this.os.close(v.errFd);
          v.errFd = fd;
        }
        return null;
      }
      case Req.SET_VRING_ENABLE: {
        const { index, num } = msg as { index: number; num: number };
        const v = this.vring(index, name);
        v.enabled = num !== 0;
        return null;
      }
      case Req.NET_SET_MTU:
      case Req.SEND_RARP:
        return null;
      default:
        throw new VhostUserError('unknown-request', `${name} is not implemented by this backend`);
    }
  }

  private vring(index: number, name: string): Vring {
    const v = this.vrings[index];
    if (v === undefined) throw new VhostUserError('bad-queue', `${name}: queue index ${index} out of range (this device has ${NUM_QUEUES} queues)`);
    return v;
  }

  private setMemTable(regions: readonly MemRegionDesc[], fds: readonly number[], used: Set<number>): void {
    const specs = [];
    const user: UserRegion[] = [];
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i]!;
      const fd = fds[i]!;
      if (r.sizeBytes === 0) throw new VhostUserError('bad-memory', `SET_MEM_TABLE: region ${i} is empty`);
      const fileBytes = this.os.fileSize(fd);
      if (r.mmapOffset + r.sizeBytes > fileBytes) {
        // Touching a mapping beyond the end of its file raises SIGBUS: refuse up front.
        throw new VhostUserError('bad-memory', `SET_MEM_TABLE: region ${i} [offset ${r.mmapOffset}, +${r.sizeBytes}) exceeds its file of ${fileBytes} bytes`);
      }
      const pageOff = r.mmapOffset - (r.mmapOffset % PAGE);
      const inPage = r.mmapOffset - pageOff;
      let sab: SharedArrayBuffer;
      try {
        sab = this.os.mmapShared(fd, r.sizeBytes + inPage, pageOff);
      } catch (e) {
        throw new VhostUserError('bad-memory', `SET_MEM_TABLE: region ${i} could not be mapped (${String(e)})`, { cause: e });
      }
      specs.push({ guestAddr: r.guestAddr, buffer: sab, byteOffset: inPage, length: r.sizeBytes });
      user.push({ userAddr: r.userAddr, sizeBytes: r.sizeBytes, guestAddr: r.guestAddr });
    }
    for (let i = 0; i < user.length; i++) {
      for (let j = i + 1; j < user.length; j++) {
        const a = user[i]!;
        const b = user[j]!;
        if (a.userAddr < b.userAddr + b.sizeBytes && b.userAddr < a.userAddr + a.sizeBytes) {
          throw new VhostUserError('bad-memory', `SET_MEM_TABLE: regions ${i} and ${j} overlap in the frontend's address space`);
        }
      }
    }
    try {
      // Replaces the table in place: running DeviceQueues see the new generation (§ GuestMemory).
      this.mem.setRegions(specs);
    } catch (e) {
      throw new VhostUserError('bad-memory', `SET_MEM_TABLE: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    this.userRegions = user;
    this.stats.memTables++;
    // The mappings hold the memory; the fds are not needed any more (closed by handle()).
    void used;
    for (let i = 0; i < NUM_QUEUES; i++) if (this.vrings[i]!.queue === null) this.maybeStart(i);
  }

  /** Frontend virtual address → guest physical address of `[uva, uva+len)`. */
  private toGuest(uva: number, len: number, what: string, index: number): number {
    for (const r of this.userRegions) {
      if (uva >= r.userAddr && uva + len <= r.userAddr + r.sizeBytes) return r.guestAddr + (uva - r.userAddr);
    }
    throw new VhostUserError('bad-queue', `queue ${index}: ${what} [0x${uva.toString(16)}, +${len}) lies outside every memory region`);
  }

  private maybeStart(index: number): void {
    const v = this.vrings[index]!;
    if (v.queue !== null || v.kickFd < 0 || v.addr === null || v.num === 0 || this.userRegions.length === 0) return;
    const n = v.num;
    const desc = this.toGuest(v.addr.descUser, descTableBytes(n), 'descriptor table', index);
    const avail = this.toGuest(v.addr.availUser, availRingBytes(n), 'driver area', index);
    const usedArea = this.toGuest(v.addr.usedUser, usedRingBytes(n), 'device area', index);
    let layout: SplitLayout;
    try {
      layout = SplitLayout.modern(n, desc, avail, usedArea, index);
    } catch (e) {
      throw new VhostUserError('bad-queue', `queue ${index}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const q = new DeviceQueue(this.mem, layout, {
      index,
      eventIdx: (this.features & VirtioF.EVENT_IDX) !== 0n,
      indirect: (this.features & VirtioF.INDIRECT_DESC) !== 0n,
    });
    // Resume where GET_VRING_BASE / SET_VRING_BASE left the ring (both indices: nothing in flight).
    q.restore({ ...q.snapshot(), nextAvail: v.base, nextUsed: v.base, signalledUsedValid: false, inFlight: 0, broken: false });
    v.queue = q;
    this.stats.ringStarts++;
    const rx = this.vrings[0]!.queue;
    const tx = this.vrings[1]!.queue;
    if (rx !== null && tx !== null) {
      if (!this.featuresSet) this.features = 0n;
      this.device = new FrameDevice(this.mem, rx, tx, {
        hdrBytes: headerSize(this.features),
        mergeable: (this.features & NetF.MRG_RXBUF) !== 0n,
      });
      this.port?.setHeaderBytes(headerSize(this.features));
    }
  }

  private stopRing(index: number): void {
    const v = this.vrings[index]!;
    if (v.queue === null) return;
    v.queue = null;
    if (this.device !== null) {
      const t = this.frameStats;
      this.deviceStatsTotal = t;
      this.device = null;
    }
    this.pendingLen = 0;
  }

  /** Back to the state of a fresh connection: rings stopped, fds closed, memory dropped. */
  reset(): void {
    for (let i = 0; i < NUM_QUEUES; i++) {
      this.stopRing(i);
      const v = this.vrings[i]!;
      for (const fd of [v.kickFd, v.callFd, v.errFd]) if (fd >= 0) this.os.close(fd);
      this.vrings[i] = newVring();
    }
    this.features = 0n;
    this.featuresSet = false;
    this.protocolFeatures = 0n;
    this.owner = false;
    this.userRegions = [];
    this.mem.setRegions([]);
  }

  /**
   * Runs the data path: transmitted frames through the handler, answers into the receive queue,
   * interrupts through the call fds. Processes at most `budget` frames; returns true when work
   * is left (call again without sleeping). A VirtqueueError (a driver that broke its ring)
   * propagates: the caller treats it like a protocol error.
   */
  service(budget = 256): boolean {
    const dev = this.device;
    this.lastWork = 0;
    if (dev === null || !this.vrings[0]!.enabled || !this.vrings[1]!.enabled) return false;
    if (this.port !== null) return this.servicePort(dev, this.port, budget);
    const hdr = dev.opts.hdrBytes;
    let done = 0;
    let more = false;
    while (done < budget) {
      if (this.pendingLen > 0) {
        if (dev.pushRx(this.outBuf, this.pendingLen) === 'no-buffer') break;
        this.pendingLen = 0;
      }
      if (!dev.rxReady()) break; // backpressure: leave transmits queued until buffers arrive
      const n = dev.popTx(this.txBuf);
      if (n < 0) break;
      done++;
      if (n === 0) continue;
      const r = this.handler(this.txBuf, n, this.outBuf, hdr);
      if (r > 0) this.pendingLen = r;
    }
    if (done >= budget) more = true;
    this.lastWork = done;
    const f = dev.flush();
    if (f.rx) this.call(0);
    if (f.tx) this.call(1);
    if (more) return true;
    // Before sleeping, re-arm kicks on both queues and re-check (DeviceQueue.enableNotification).
    // Receive kicks are wanted only while stalled for lack of receive buffers.
    const rxq = this.vrings[0]!.queue!;
    const txq = this.vrings[1]!.queue!;
    const txMore = txq.enableNotification();
    const stalled = this.pendingLen > 0 || txMore;
    if (!stalled) {
      rxq.disableNotification();
      return false;
    }
    const rxMore = rxq.enableNotification();
    return rxMore || dev.rxReady();
  }

  private servicePort(dev: FrameDevice, port: FramePort, budget: number): boolean {
    let tx = 0;
    for (; tx < budget; tx++) {
      const n = dev.popTx(this.txBuf);
      if (n < 0) break;
      if (n > 0 && !port.send(this.txBuf, n)) this.stats.portTxDrop++;
    }
    let rx = 0;
    for (; rx < budget; rx++) {
      if (this.pendingLen === 0) {
        const n = port.receive(this.outBuf);
        if (n <= 0) break;
        this.pendingLen = n;
      }
      if (dev.pushRx(this.outBuf, this.pendingLen) === 'no-buffer') break;
      this.pendingLen = 0;
    }
    this.lastWork = tx + rx;
    const f = dev.flush();
    if (f.rx) this.call(0);
    if (f.tx) this.call(1);
    if (tx >= budget || rx >= budget) return true;
    const rxq = this.vrings[0]!.queue!;
    const txMore = this.vrings[1]!.queue!.enableNotification();
    if (this.pendingLen > 0) return rxq.enableNotification() || txMore; // stalled: want rx kicks
    rxq.disableNotification();
    return txMore;
  }

  /** Signals every ring's err fd (a ring was found broken). */
  signalErrors(): void {
    for (const v of this.vrings) if (v.errFd >= 0) this.os.signal(v.errFd);
  }

  private call(index: number): void {
    const fd = this.vrings[index]!.callFd;
    if (fd >= 0) {
      this.os.signal(fd);
      this.stats.calls++;
    }
  }
}

/** The `reflect` handler: every frame back with its MAC addresses swapped (header zeroed). */
export const reflectHandler: FrameHandler = (frame, len, out, hdr) => {
  if (len < hdr + 12) return 0;
  out.set(frame.subarray(0, len));
  out.fill(0, 0, hdr);
  for (let i = 0; i < 6; i++) {
    out[hdr + i] = frame[hdr + 6 + i]!;
    out[hdr + 6 + i] = frame[hdr + i]!;
  }
  return len;
};
