// A minimal vhost-user *frontend* (Node only): virtq's driver side hands its rings to an
// external vhost-user device backend (DPDK's net_vhost, a C implementation nobody on the project
// wrote). Guest memory is a memfd mapped into a SharedArrayBuffer and announced with
// SET_MEM_TABLE (frontend virtual address = UVA_BASE + guest address); each ring gets a kick
// and a call eventfd. The caller then runs its driver on `memory`, ringing `kickFds` and
// sleeping on `callFds` (an FdDoorbell, so virtq's one DriverLoop waits as with any peer).

import { check, loadIo, loadShm, releaseMapping, type IoAddon } from '../backend/native.js';
import { GuestMemory } from '../memory/index.js';
import { PACKED_START, PackedLayout, type RingLayout } from '../virtqueue/index.js';
import { VhostUserError } from './errors.js';
import {
  Flags,
  HEADER_BYTES,
  Req,
  VHOST_USER_F_PROTOCOL_FEATURES,
  addrPayload,
  decodeHeader,
  encodeMessage,
  memTablePayload,
  requestName,
  statePayload,
  u64Payload,
} from './messages.js';

/** Where the frontend claims to have guest memory mapped (any consistent value works). */
export const UVA_BASE = 0x7e00_0000_0000;

export class VhostUserFrontend {
  readonly memory: GuestMemory;
  private readonly io: IoAddon;
  private readonly out = new Uint8Array(HEADER_BYTES + 512);
  private readonly inBuf = new Uint8Array(HEADER_BYTES + 512);
  private readonly kicks: number[] = [];
  private readonly calls: number[] = [];
  /** What the backend offered (GET_FEATURES); `features` is what setup() then set (offered ∩ wanted). */
  offeredFeatures = 0n;
  features = 0n;

  private constructor(
    private readonly sock: number,
    private readonly memfd: number,
    readonly memoryBytes: number,
  ) {
    this.io = loadIo();
    this.mapping = loadShm().mmapShared(memfd, memoryBytes, 0);
    this.memory = new GuestMemory([{ guestAddr: 0, buffer: this.mapping }]);
  }

  private mapping: SharedArrayBuffer | null;

  /** Connects (retrying while the backend starts) and creates `memoryBytes` of shared memory. */
  static async connect(path: string, memoryBytes: number, timeoutMs = 10_000): Promise<VhostUserFrontend> {
    const io = loadIo();
    const deadline = Date.now() + timeoutMs;
    let fd = io.unixConnect(path);
    while (fd < 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      fd = io.unixConnect(path);
    }
    check(fd, `connect to ${path}`);
    io.setNonblock(fd);
    const memfd = check(io.memfd('virtq-guest', memoryBytes), 'memfd_create');
    return new VhostUserFrontend(fd, memfd, memoryBytes);
  }

  private send(req: number, payload: Uint8Array, fds: number[] = []): void {
    const n = encodeMessage(this.out, req, Flags.VERSION, payload);
    const r = this.io.sendMsg(this.sock, this.out, n, new Int32Array(fds));
    if (r !== n) throw new VhostUserError('closed', `${requestName(req)}: sendmsg returned ${r}`);
  }

  private reply(req: number): Uint8Array {
    const fds = new Int32Array([this.sock]);
    const ev = new Int32Array([this.io.constants.POLLIN]);
    const rev = new Int32Array(1);
    if (this.io.poll(fds, ev, rev, 5000) <= 0) throw new VhostUserError('timeout', `${requestName(req)}: no reply in 5 s`);
    const r = this.io.recvMsg(this.sock, this.inBuf, new Int32Array(4));
    if (typeof r === 'number' || r.bytes < HEADER_BYTES) throw new VhostUserError('closed', `${requestName(req)}: no reply (${JSON.stringify(r)})`);
    const h = decodeHeader(this.inBuf, r.bytes);
    if (h.request !== req || (h.flags & Flags.REPLY) === 0 || r.bytes < HEADER_BYTES + h.size) {
      throw new VhostUserError('bad-state', `${requestName(req)}: unexpected reply ${requestName(h.request)} flags 0x${h.flags.toString(16)}`);
    }
    return this.inBuf.slice(HEADER_BYTES, HEADER_BYTES + h.size);
  }

  private getU64(req: number): bigint {
    this.send(req, new Uint8Array(0));
    return new DataView(this.reply(req).buffer).getBigUint64(0, true);
  }

  /** GET_FEATURES, SET_FEATURES(offered ∩ wanted), protocol features 0, SET_OWNER, SET_MEM_TABLE. */
  setup(wanted: bigint): bigint {
    const offered = (this.offeredFeatures = this.getU64(Req.GET_FEATURES));
    this.features = offered & wanted;
    if (this.features & VHOST_USER_F_PROTOCOL_FEATURES) {
      this.getU64(Req.GET_PROTOCOL_FEATURES);
      this.send(Req.SET_PROTOCOL_FEATURES, u64Payload(0n)); // no REPLY_ACK: no acks to wait for
    }
    this.send(Req.SET_OWNER, new Uint8Array(0));
    this.send(Req.SET_FEATURES, u64Payload(this.features));
    this.send(Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: this.memoryBytes, userAddr: UVA_BASE, mmapOffset: 0 }]), [this.memfd]);
    return this.features;
  }

  /** Hands ring `index` (laid out at guest addresses) to the backend and enables it. */
  startRing(index: number, layout: RingLayout): void {
    // Rings not (yet) started read as -1, which a doorbell skips (never a hole that reads as fd 0).
    while (this.kicks.length < index) this.kicks.push(-1);
    while (this.calls.length < index) this.calls.push(-1);
    const kick = check(this.io.eventfd(0, true), 'eventfd');
    const call = check(this.io.eventfd(0, true), 'eventfd');
    this.kicks[index] = kick;
    this.calls[index] = call;
    this.send(Req.SET_VRING_NUM, statePayload(index, layout.size));
    // Packed: position 0 with the wrap counter 1 (bit 15, vhost-user "Ring states"; §2.8.1).
    this.send(Req.SET_VRING_BASE, statePayload(index, layout instanceof PackedLayout ? PACKED_START : 0));
    this.send(Req.SET_VRING_ADDR, addrPayload({ index, flags: 0, descUser: UVA_BASE + layout.descAddr, usedUser: UVA_BASE + layout.usedAddr, availUser: UVA_BASE + layout.availAddr, logGuest: 0 }));
    this.send(Req.SET_VRING_KICK, u64Payload(BigInt(index)), [kick]);
    this.send(Req.SET_VRING_CALL, u64Payload(BigInt(index)), [call]);
    if (this.features & VHOST_USER_F_PROTOCOL_FEATURES) this.send(Req.SET_VRING_ENABLE, statePayload(index, 1));
  }

  /** Kick eventfds by ring index (the driver writes them), -1 for a ring not started. */
  get kickFds(): readonly number[] {
    return this.kicks;
  }

  /** Call eventfds by ring index (the backend writes them; the driver sleeps on them), -1 for a ring not started. */
  get callFds(): readonly number[] {
    return this.calls;
  }

  kick(index: number): void {
    this.io.eventfdWrite(this.kicks[index]!, 1);
  }

  /** Stops ring `index`; returns the backend's next available index (GET_VRING_BASE). */
  stopRing(index: number): number {
    this.send(Req.GET_VRING_BASE, statePayload(index, 0));
    return new DataView(this.reply(Req.GET_VRING_BASE).buffer).getUint32(4, true);
  }

  /**
   * Closes the connection and every fd, and releases the guest memory mapping now: `memory`
   * becomes empty (an access is a GuestMemoryError), and a view the caller still holds (its
   * DriverQueues') reads zeros, never freed memory. Idempotent.
   */
  close(): void {
    if (this.mapping === null) return;
    this.io.close(this.sock);
    this.io.close(this.memfd);
    for (const fd of [...this.kicks, ...this.calls]) if (fd >= 0) this.io.close(fd);
    this.memory.setRegions([]);
    releaseMapping(loadShm(), this.mapping);
    this.mapping = null;
  }
}
