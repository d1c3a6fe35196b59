// The vhost-user-net backend's state machine (vhost-user protocol, "Front-end message types"):
// features and protocol features, owner, the memory table (each region mmapped and placed into
// one GuestMemory, replaced whole on every SET_MEM_TABLE, also while rings run), and per ring
// num/addr/base/kick/call/err/enable. Ring addresses arrive as frontend virtual addresses and are
// translated to guest physical addresses through the table. This file is the protocol only:
// once the receive and transmit rings are started and enabled, their DeviceQueues go to the one
// virtio-net data path, NetDeviceService (NetDevice + the policy's DeviceLoop + a NetPort), with
// a doorbell made of the rings' kick and call fds (the caller's, see VhostDoorbell). Stopping a
// ring folds that service's counters into the totals and ends it; GET_VRING_BASE returns where
// the device will resume (virtio 1.2 §2.7: the next available index it has not consumed).
// Operating-system access (mmap, close, eventfd writes) is injected, so the whole state machine
// is unit-tested with a fake; runs in Web Workers too (no `node:` imports).

import { GuestMemory } from '../memory/index.js';
import { NetF, VirtioF, negotiateDropDependents } from '../net/features.js';
import { NET_DEVICE_FEATURES, NET_DEVICE_UFO_FEATURES } from '../net/device.js';
import type { NetConfig } from '../net/config.js';
import type { NetPort } from '../net/port.js';
import { NetDeviceService } from '../net/device-service.js';
import { BIG_LOCK_WORDS, bigLockFor, resolvePolicy, type BigLock, type LoopDoorbell, type PolicyConfig } from '../policy/index.js';
import type { WaitResult } from '../notify/doorbell.js';
import type { NetObserver } from '../net/observer.js';
import type { DeviceVirtqueue } from '../virtqueue/index.js';
import { checkVringBase, checkVringNum, lostPackedPosition, openVring, vringBase } from './vring.js';
import { VhostUserError } from './errors.js';
import { ProtocolF, Req, VHOST_USER_F_PROTOCOL_FEATURES, requestName, statePayload, u64Payload, type MemRegionDesc, type Message, type VringAddr } from './messages.js';

/** What the backend needs from the operating system. */
export interface VhostOs {
  /** Size in bytes of the file behind `fd` (fstat), to refuse regions beyond its end. */
  fileSize(fd: number): number;
  mmapShared(fd: number, lengthBytes: number, offsetBytes: number): SharedArrayBuffer;
  /**
   * Releases a mapping made by mmapShared now, not when its SharedArrayBuffer is collected (on
   * Node: ShmAddon.releaseShared, which leaves a harmless placeholder for stale views).
   */
  unmap(buffer: SharedArrayBuffer): void;
  close(fd: number): void;
  /** Signals an eventfd (a call: used buffers for the driver; an err: a broken ring). */
  signal(fd: number): void;
}

/** The rings' fds by virtio queue index (-1: none), read on every use (the frontend may replace them). */
export interface VhostRingFds {
  kickFds(): readonly number[];
  callFds(): readonly number[];
}

/**
 * The doorbell the device loop waits on and rings: on Node an FdDoorbell over the kick and call
 * eventfds, the port's fd and the connection (src/backend/fd-doorbell.ts, wired in server.ts).
 */
export interface VhostDoorbell extends LoopDoorbell {
  /** Kicks seen on queue `queue`'s kick fd so far (cumulative). */
  count(queue: number): number;
  /**
   * True when the device loop should return now: control input waits on the connection, or the
   * server stops. Looked at every loop iteration, so it must be cheap.
   */
  interrupted(): boolean;
}

/**
 * The doorbell used when the caller gives none (tests, embedders that poll): rings write the
 * call fds through the OS; waiting ends the run at once, so run() drains until idle and returns.
 */
class OsDoorbell implements VhostDoorbell {
  constructor(
    private readonly os: VhostOs,
    private readonly fds: VhostRingFds,
  ) {}
  seq(): number {
    return 0;
  }
  count(): number {
    return 0;
  }
  interrupted(): boolean {
    return false;
  }
  ring(queue?: number): boolean {
    const calls = this.fds.callFds();
    let rang = false;
    for (let q = 0; q < calls.length; q++) {
      if ((queue === undefined || q === queue) && calls[q]! >= 0) {
        this.os.signal(calls[q]!);
        rang = true;
      }
    }
    return rang;
  }
  wait(): WaitResult {
    return 'stopped';
  }
  waitUntil(): WaitResult {
    return 'stopped';
  }
}

/** Queues of one receive/transmit pair (receive 2p, transmit 2p + 1: virtio 1.2 §5.1.2). */
export const NUM_QUEUES = 2;
/** Most queue pairs a backend serves (--queues); vring indices are 8 bits on the wire. */
export const MAX_QUEUE_PAIRS = 64;
const PAGE = 4096;
const LOCK_THREAD_ID = 1;

/**
 * Device features offered (virtio 1.2 §5.1.3, §6): split or packed ring (VIRTIO_F_RING_PACKED)
 * with event idx, indirect tables and in-order use (VIRTIO_F_IN_ORDER), the checksum and TCP segmentation offloads both ways with ECN, mergeable receive
 * buffers, and the config-space features the frontend emulates (MTU, STATUS, MAC: QEMU and
 * virtio_user serve config space themselves). NetDevice honours every one: it validates each tx
 * header, and segments or completes checksums in software when the port cannot take a frame.
 */
export const OFFERED_FEATURES = NET_DEVICE_FEATURES | VirtioF.RING_PACKED | VirtioF.IN_ORDER | VHOST_USER_F_PROTOCOL_FEATURES;
/**
 * UDP fragmentation offload both ways, offered only when the port takes UDP GSO frames (a TAP):
 * NetDevice segments only TCP in software (§5.1.6.2), so a UFO frame for another port would be dropped.
 */
export const UFO_FEATURES = NET_DEVICE_UFO_FEATURES;
export const OFFERED_PROTOCOL_FEATURES = (1n << BigInt(ProtocolF.MQ)) | (1n << BigInt(ProtocolF.REPLY_ACK));

/**
 * Multiqueue (virtio 1.2 §5.1.5, §5.1.6.5.5), offered with more than one pair. The frontend
 * serves the control queue itself (QEMU's virtio-net, DPDK virtio_user's in-process cq) and
 * turns VQ_PAIRS_SET into SET_VRING_ENABLE per ring; CTRL_VQ is offered with MQ only because MQ
 * requires it (§5.1.3.1) and a device must not offer one without the other (§2.2.2).
 */
export const MQ_FEATURES = NetF.MQ | NetF.CTRL_VQ;

/** The features this backend offers for a port (UFO_FEATURES only when `ufo`, MQ_FEATURES with several pairs). */
export function offeredFeatures(ufo: boolean, queuePairs = 1): bigint {
  return OFFERED_FEATURES | (ufo ? UFO_FEATURES : 0n) | (queuePairs > 1 ? MQ_FEATURES : 0n);
}

interface Vring {
  num: number;
  addr: VringAddr | null;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  enabled: boolean;
  queue: DeviceVirtqueue | null;
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
  /** Times the data path (NetDeviceService) was built on a started, enabled ring pair. */
  serviceStarts: number;
  calls: number;
  /**
   * Chains the driver had made available but the device had not consumed when the ring was
   * stopped (GET_VRING_BASE), on transmit (odd) and receive (even) queues (virtio 1.2 §5.1.2).
   * They are not lost — the returned base resumes there, as vhost does — but a frontend that
   * exits right after stopping counts them as sent.
   */
  txLeftInRingAtStop: number;
  rxLeftInRingAtStop: number;
  /** Memory-table regions mapped and released (every mapping is released: on replacement, reset, error). */
  regionsMapped: number;
  regionsUnmapped: number;
  /** Packed rings started at their first position over a ring an earlier device used (lostPackedPosition). */
  lostPackedPositions: number;
}

/** The data path's frame counters (NetDevice's), summed over every service so far. */
export interface FrameStats {
  /** Frames from the driver handed to the port (after software segmentation, if any). */
  txFrames: number;
  txBytes: number;
  /** Frames from the driver dropped (bad header, bad frame), by NetDevice's rules. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames for the driver dropped (too long, no room, offload not negotiated). */
  rxDropped: number;
  /** Ring violations (each breaks its queue: DEVICE_NEEDS_RESET). */
  queueErrors: number;
}

export interface VhostBackendOptions {
  /** What stands behind the device: host stack, reflect, TAP, a pcap tee around one of them. */
  port: NetPort;
  /** The notification policy the device loop runs (default: the 'vhost' preset). */
  policy?: PolicyConfig;
  tracer?: NetObserver;
  /** MAC and MTU for the device's frame limits (config space itself is the frontend's). */
  config?: Partial<NetConfig>;
  /** Offer UFO both ways (the port takes UDP GSO frames: a TAP). Default false. */
  ufo?: boolean;
  /**
   * Receive/transmit queue pairs served (VHOST_USER_PROTOCOL_F_MQ, GET_QUEUE_NUM; default 1).
   * Every enabled pair runs in this thread's one device loop over one steered port.
   */
  queuePairs?: number;
  /** Said when a started ring looks wrong in a way the protocol cannot refuse (lostPackedPosition). */
  onWarning?: (message: string) => void;
}

export class VhostUserBackend {
  readonly mem = new GuestMemory();
  readonly stats: BackendStats = { messages: 0, memTables: 0, ringStarts: 0, serviceStarts: 0, calls: 0, txLeftInRingAtStop: 0, rxLeftInRingAtStop: 0, regionsMapped: 0, regionsUnmapped: 0, lostPackedPositions: 0 };
  readonly port: NetPort;
  readonly offered: bigint;
  private policy: PolicyConfig;
  private lock: BigLock | null;
  private features = 0n;
  private featuresSet = false;
  private featuresDropped = 0n;
  private protocolFeatures = 0n;
  private owner = false;
  /** SET_OWNER arrived: the frontend finished its opening handshake (QEMU and DPDK send it first). */
  get hasOwner(): boolean {
    return this.owner;
  }
  private userRegions: UserRegion[] = [];
  /** Queue pairs served and their rings (2 per pair). */
  readonly queuePairs: number;
  private readonly numQueues: number;
  private readonly vrings: Vring[];
  /** The mappings behind `mem`'s current table, released when the table is replaced or dropped. */
  private mappings: SharedArrayBuffer[] = [];
  private svc: NetDeviceService | null = null;
  /** Pairs the running service serves (0: none). */
  private svcPairs = 0;
  /** Counters of the services that ended (device and loop, flat). */
  private readonly totals: Record<string, number> = {};
  private doorbell: VhostDoorbell;
  // Filled in place on each call (a doorbell asks before every poll): no allocation per sleep.
  private readonly kickByQueue: number[];
  private readonly callByQueue: number[];
  private readonly ringFds: VhostRingFds = {
    kickFds: () => {
      for (let i = 0; i < this.numQueues; i++) this.kickByQueue[i] = this.vrings[i]!.queue !== null ? this.vrings[i]!.kickFd : -1;
      return this.kickByQueue;
    },
    callFds: () => {
      for (let i = 0; i < this.numQueues; i++) this.callByQueue[i] = this.vrings[i]!.callFd;
      return this.callByQueue;
    },
  };

  constructor(
    private readonly os: VhostOs,
    private readonly o: VhostBackendOptions,
  ) {
    this.port = o.port;
    const pairs = o.queuePairs ?? 1;
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > MAX_QUEUE_PAIRS) throw new VhostUserError('bad-queue', `${pairs} queue pairs: 1..${MAX_QUEUE_PAIRS} allowed`);
    this.queuePairs = pairs;
    this.numQueues = NUM_QUEUES * pairs;
    this.vrings = Array.from({ length: this.numQueues }, newVring);
    this.kickByQueue = new Array<number>(this.numQueues).fill(-1);
    this.callByQueue = new Array<number>(this.numQueues).fill(-1);
    this.offered = offeredFeatures(o.ufo ?? false, pairs);
    this.policy = o.policy ?? resolvePolicy('vhost');
    this.lock = lockFor(this.policy);
    this.doorbell = new OsDoorbell(os, this.ringFds);
  }

  /** The notification policy the data path runs (the latest setPolicy, else the option's). */
  get currentPolicy(): PolicyConfig {
    return this.policy;
  }

  /**
   * Runs `policy` from now on (a study switching presets between cells while one guest stays
   * booted): the running data path ends as a disconnect would end it (used entries published,
   * held rx chains given back) and a new one starts at once over the same rings with the new
   * policy. Its counters carry on in the totals. Features and ring sizes were negotiated with the
   * frontend and stay.
   */
  setPolicy(policy: PolicyConfig): void {
    this.endService();
    this.policy = policy;
    this.lock = lockFor(policy);
    this.updateService();
  }

  /** The rings' fds by queue index (kick fds only of started rings), for the caller's doorbell. */
  get fds(): VhostRingFds {
    return this.ringFds;
  }

  /** Uses `db` for the next services (a connection's fd doorbell); null: back to the OS default. */
  setDoorbell(db: VhostDoorbell | null): void {
    this.endService();
    this.doorbell = db ?? new OsDoorbell(this.os, this.ringFds);
  }

  /** The running data path, or null while the rx/tx pair is not started and enabled. */
  get service(): NetDeviceService | null {
    return this.svc;
  }

  /** The features the frontend set (SET_FEATURES). */
  get negotiatedFeatures(): bigint {
    return this.features;
  }
  /**
   * Set features the data path does not use because a feature they require (virtio 1.2
   * §5.1.3.1) was not set with them (0n for a consistent set).
   */
  get unusedFeatures(): bigint {
    return this.featuresDropped;
  }
  get replyAck(): boolean {
    return (this.protocolFeatures & (1n << BigInt(ProtocolF.REPLY_ACK))) !== 0n;
  }

  /** Device and loop counters (NetDeviceService.extra), summed over every service so far. */
  get counters(): Record<string, number> {
    const out: Record<string, number> = { ...this.totals };
    if (this.svc !== null) addInto(out, this.svc.extra());
    return out;
  }

  /** The device's frame counters summed over every service so far. */
  get frameStats(): FrameStats {
    const c = this.counters;
    const n = (k: string): number => c[`dev.${k}`] ?? 0;
    return {
      txFrames: n('txFrames'),
      txBytes: n('txBytes'),
      txDropped: n('txDropped'),
      rxFrames: n('rxFrames'),
      rxBytes: n('rxBytes'),
      rxDropped: n('rxDropped'),
      queueErrors: n('queueErrors'),
    };
  }

  /** Kick fds of started rings, for the caller's poll set. */
  kickFds(): number[] {
    return this.vrings.filter((v) => v.queue !== null && v.kickFd >= 0).map((v) => v.kickFd);
  }

  /**
   * Runs the data path until the doorbell interrupts it (control input, stop) or, with the
   * default doorbell, until idle. Returns false when there is no data path to run.
   */
  run(): boolean {
    const s = this.svc;
    if (s === null) return false;
    s.run();
    return true;
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
        return u64Payload(this.offered);
      case Req.SET_FEATURES: {
        const v = (msg as { value: bigint }).value;
        if (v & ~this.offered) throw new VhostUserError('bad-state', `SET_FEATURES 0x${v.toString(16)} includes bits never offered (0x${(v & ~this.offered).toString(16)})`);
        if (this.ringsRunning() && v !== this.features) throw new VhostUserError('bad-state', 'SET_FEATURES changed the features while rings run');
        // The dependency rules (virtio 1.2 §5.1.3.1) do not gate SET_FEATURES: real frontends
        // hand over sets that break them — QEMU masks this offer with its device properties
        // (`guest_csum=off` leaves GUEST_TSO4 offered) and Linux's virtio_net accepts what it is
        // offered — and vhost-net, DPDK's vhost library and rust-vmm's backends take such a set
        // as it comes. So does this backend; its data path runs on the consistent part
        // (negotiateDropDependents): an offload whose requirement is missing is not used (no GSO
        // frame toward a guest without GUEST_CSUM; a TSO frame from a driver without CSUM is
        // dropped and counted). The frontend serves the control queue itself and may leave
        // CTRL_VQ out of what it hands the backend (DPDK virtio_user strips it): MQ's
        // requirement is met on its side.
        this.featuresDropped = negotiateDropDependents(this.offered, (v & NetF.MQ) !== 0n ? v | NetF.CTRL_VQ : v).dropped;
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
        return u64Payload(BigInt(this.queuePairs)); // receive/transmit pairs (the protocol's "queues")
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
        checkVringNum(this.features, index, num);
        if (v.queue !== null) throw new VhostUserError('bad-state', `SET_VRING_NUM: queue ${index} is running`);
        v.num = num;
        return null;
      }
      case Req.SET_VRING_BASE: {
        const { index, num } = msg as { index: number; num: number };
        const v = this.vring(index, name);
        checkVringBase(this.features, index, num);
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
          const base = this.resumeIndex(v.queue);
          this.stopRing(a.index);
          v.base = base;
          this.maybeStart(a.index);
        }
        return null;
      }
      case Req.GET_VRING_BASE: {
        const { index } = msg as { index: number };
        const v = this.vring(index, name);
        // Ends the data path first: its last used entries are published and the driver told.
        this.endService();
        const base = v.queue !== null ? this.resumeIndex(v.queue) : v.base;
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
        this.updateService();
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
    if (v === undefined) throw new VhostUserError('bad-queue', `${name}: queue index ${index} out of range (this device has ${this.numQueues} queues: ${this.queuePairs} pair${this.queuePairs > 1 ? 's' : ''}; start with more queue pairs to serve more)`);
    return v;
  }

  private setMemTable(regions: readonly MemRegionDesc[], fds: readonly number[], used: Set<number>): void {
    const specs = [];
    const user: UserRegion[] = [];
    const mapped: SharedArrayBuffer[] = [];
    try {
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
        mapped.push(sab);
        this.stats.regionsMapped++;
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
      // Checked before anything is torn down, so a refused table leaves the running one intact.
      new GuestMemory(specs);
    } catch (e) {
      // A refused table releases what it mapped; the current table stays as it was.
      this.release(mapped, []);
      if (e instanceof VhostUserError) throw e;
      throw new VhostUserError('bad-memory', `SET_MEM_TABLE: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    // Every view into the old mappings is dropped before they are released: the data path ends
    // (its used entries published, held rx chains given back) and each running ring's
    // DeviceQueue — with its cached ring views — is discarded and rebuilt on the new table at
    // its resume index, as after GET_VRING_BASE. The device loop runs on this thread and has
    // returned (messages are handled between two runs), so nothing touches a view meanwhile.
    for (let i = 0; i < this.numQueues; i++) {
      const v = this.vrings[i]!;
      if (v.queue === null) continue;
      this.endService();
      v.base = this.resumeIndex(v.queue);
      this.stopRing(i);
    }
    const old = this.mappings;
    this.mem.setRegions(specs);
    this.mappings = mapped;
    this.userRegions = user;
    this.release(old, mapped);
    this.stats.memTables++;
    // The mappings hold the memory; the fds are not needed any more (closed by handle()).
    void used;
    for (let i = 0; i < this.numQueues; i++) if (this.vrings[i]!.queue === null) this.maybeStart(i);
  }

  /** Releases `buffers` now (munmap through the OS), except any that `keep` still uses. */
  private release(buffers: readonly SharedArrayBuffer[], keep: readonly SharedArrayBuffer[]): void {
    for (const b of buffers) {
      if (keep.includes(b)) continue;
      this.os.unmap(b);
      this.stats.regionsUnmapped++;
    }
  }

  /** Frontend virtual address → guest physical address of `[uva, uva+len)`. */
  private toGuest(uva: number, len: number, what: string, index: number): number {
    for (const r of this.userRegions) {
      if (uva >= r.userAddr && uva + len <= r.userAddr + r.sizeBytes) return r.guestAddr + (uva - r.userAddr);
    }
    const start = this.userRegions.find((r) => uva >= r.userAddr && uva < r.userAddr + r.sizeBytes);
    if (start !== undefined) {
      // Contiguous guest memory may be split across regions, but each region is its own mmap:
      // no single view covers the area, so the ring is refused here, before it runs.
      throw new VhostUserError('bad-queue', `queue ${index}: ${what} [0x${uva.toString(16)}, +${len}) crosses the end of the memory region at 0x${start.userAddr.toString(16)} (+${start.sizeBytes}); regions are mapped separately, so a ring area must lie in one`);
    }
    throw new VhostUserError('bad-queue', `queue ${index}: ${what} [0x${uva.toString(16)}, +${len}) lies outside every memory region`);
  }


  private maybeStart(index: number): void {
    const v = this.vrings[index]!;
    if (v.queue !== null || v.kickFd < 0 || v.addr === null || v.num === 0 || this.userRegions.length === 0) return;
    if (!this.featuresSet) this.features = 0n;
    // Resume where GET_VRING_BASE / SET_VRING_BASE left the ring (split or packed: ./vring.ts).
    const a = v.addr;
    const q = openVring(this.mem, this.features, { index, num: v.num, base: v.base, descUser: a.descUser, availUser: a.availUser, usedUser: a.usedUser }, (uva, len, what) => this.toGuest(uva, len, what, index));
    v.queue = q;
    this.stats.ringStarts++;
    const lost = lostPackedPosition(q);
    if (lost !== null) {
      this.stats.lostPackedPositions++;
      this.o.onWarning?.(`queue ${index}: ${lost}`);
    }
    this.updateService();
  }

  private ringsRunning(): boolean {
    return this.vrings.some((v) => v.queue !== null);
  }

  /**
   * Where the driver resumes the ring: the next available index the device has not consumed.
   * Rx chains the device popped and holds for a frame (mergeable buffers still being gathered)
   * were never used, so they count as not consumed (NetDevice holds only the latest pops).
   */
  private resumeIndex(q: DeviceVirtqueue): number {
    if (q.kind === 'packed') this.endService(); // held rx chains go back to the ring first
    return vringBase(q);
  }

  /**
   * Pairs ready to run: the leading pairs whose two rings are started and enabled (the frontend
   * enables pairs 0…n-1 for VQ_PAIRS_SET n, virtio 1.2 §5.1.6.5.5).
   */
  private readyPairs(): number {
    let n = 0;
    while (n < this.queuePairs) {
      const rx = this.vrings[2 * n]!;
      const tx = this.vrings[2 * n + 1]!;
      if (rx.queue === null || tx.queue === null || !rx.enabled || !tx.enabled) break;
      n++;
    }
    return n;
  }

  /**
   * Starts the data path over the ready pairs; ends it when pair 0 is not ready, and restarts it
   * when the set of ready pairs changed (a pair enabled or disabled).
   */
  private updateService(): void {
    const pairs = this.readyPairs();
    if (pairs !== this.svcPairs) this.endService();
    if (pairs === 0 || this.svc !== null) return;
    const rx = this.vrings[0]!;
    const tx = this.vrings[1]!;
    const db = this.doorbell;
    const stats = this.stats;
    // Interrupts: the loop rings a queue's call fd; counted here for the reports.
    const irq: LoopDoorbell = {
      seq: () => db.seq(),
      ring: (queue?: number) => {
        const rang = db.ring(queue);
        if (rang) stats.calls++;
        return rang;
      },
      wait: (seen, deadlineMs) => db.wait(seen, deadlineMs),
      waitUntil: (seen, deadlineMs) => db.waitUntil(seen, deadlineMs),
    };
    let svc: NetDeviceService | null = null;
    svc = new NetDeviceService({
      mem: this.mem,
      rxq: rx.queue!,
      txq: tx.queue!,
      extraPairs: Array.from({ length: pairs - 1 }, (_, k) => ({ rxq: this.vrings[2 * k + 2]!.queue!, txq: this.vrings[2 * k + 3]!.queue!, rxIndex: 2 * k + 2, txIndex: 2 * k + 3 })),
      // The protocol's own bit (30) is not a device feature.
      features: this.features & ~VHOST_USER_F_PROTOCOL_FEATURES & ~this.featuresDropped,
      port: this.port,
      policy: this.policy,
      kick: db,
      irq,
      lock: this.lock,
      // A broken ring ends the run too: the caller signals the err fds and closes the connection.
      stopped: () => db.interrupted() || (svc !== null && svc.error !== null),
      kicks: (queue) => db.count(queue),
      ...(this.o.config !== undefined ? { config: this.o.config } : {}),
      ...(this.o.tracer !== undefined ? { tracer: this.o.tracer } : {}),
    });
    this.svc = svc;
    this.svcPairs = pairs;
    this.stats.serviceStarts++;
  }

  /**
   * Ends the data path: its used entries are published (DeviceLoop.run already ends with a
   * publish and a call per queue; this publish only covers a caller that never ran it), rx
   * chains it held unused are given back (DeviceQueue.unpop) so the ring resumes before them,
   * and its counters join the totals.
   */
  private endService(): void {
    const s = this.svc;
    if (s === null) return;
    this.svc = null;
    this.svcPairs = 0;
    for (const q of s.queues) {
      if (q.broken) continue;
      q.publishUsed();
      if (q.inFlight > 0) q.unpop(q.inFlight);
    }
    addInto(this.totals, s.extra());
  }

  private stopRing(index: number): void {
    const v = this.vrings[index]!;
    if (v.queue === null) return;
    this.endService();
    v.queue = null;
  }

  /** Back to the state of a fresh connection: rings stopped, fds closed, memory dropped. */
  reset(): void {
    this.endService();
    for (let i = 0; i < this.numQueues; i++) {
      this.stopRing(i);
      const v = this.vrings[i]!;
      for (const fd of [v.kickFd, v.callFd, v.errFd]) if (fd >= 0) this.os.close(fd);
      this.vrings[i] = newVring();
    }
    this.features = 0n;
    this.featuresSet = false;
    this.featuresDropped = 0n;
    this.protocolFeatures = 0n;
    this.owner = false;
    this.userRegions = [];
    // Rings and the data path are gone above: no view into the mappings is left.
    this.mem.setRegions([]);
    const old = this.mappings;
    this.mappings = [];
    this.release(old, []);
  }

  /** Signals every ring's err fd (a ring was found broken). */
  signalErrors(): void {
    for (const v of this.vrings) if (v.errFd >= 0) this.os.signal(v.errFd);
  }
}

/**
 * The QEMU-2008 global lock for presets with dataPath.lock 'held'/'dropped': only the backend's
 * thread takes it — the frontend's vcpus live in another process and never contend — so it costs
 * what the 2008 I/O thread paid uncontended. Private words, zeroed (the Mutex's idle state).
 */
function lockFor(policy: PolicyConfig): BigLock | null {
  return bigLockFor(policy.dataPath, new Int32Array(new SharedArrayBuffer(BIG_LOCK_WORDS * 4)), LOCK_THREAD_ID);
}

/** Adds every counter of `from` into `into` (missing ones start at 0). */
function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
