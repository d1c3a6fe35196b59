// The `reflect` port: every frame the guest sends comes back to it with the Ethernet source and
// destination swapped and its virtio_net_hdr offload info (NEEDS_CSUM offsets, GSO type and
// size) preserved — DPDK's macswap as a NetPort, for forwarding tests against real drivers.
// Frames wait in a fixed ring of slots until the guest has rx buffers; a full ring drops and
// counts (never blocks the device). Slot buffers grow to the largest frame seen and are reused,
// so the steady state allocates nothing. A frame goes back as it came only where the guest
// accepts it on receive: GSO frames only when every GSO type the guest may send has its GUEST_*
// counterpart (else the device segments them in software before send), partial checksums only
// with GUEST_CSUM (else the device completes them). Runs in Web Workers too (no `node:` imports).

import type { NetPort, PortRxFrame } from '../net/port.js';
import { NetF } from '../net/features.js';
import { copyNetHdrOffload, emptyNetHdr, type VirtioNetHdr } from '../net/header.js';

export interface ReflectPortStats {
  /** Frames taken from the guest and queued to go back. */
  reflected: number;
  /** Frames dropped because every slot was waiting for rx buffers. */
  dropsFull: number;
  /** Frames too short to carry two MAC addresses (dropped). */
  dropsShort: number;
}

interface Slot {
  frame: PortRxFrame;
}

const ETH_ADDRS_BYTES = 12;
/** Frames up to this long are copied byte by byte (no view allocated). */
const SHORT_COPY_BYTES = 256;

export class ReflectPort implements NetPort {
  acceptsGso = false;
  acceptsPartialCsum = false;
  readonly stats: ReflectPortStats = { reflected: 0, dropsFull: 0, dropsShort: 0 };
  private readonly slots: Slot[];
  private head = 0; // next slot peekRx returns
  private count = 0;

  /** `slots`: frames that may wait for rx buffers at once (default 1024). */
  constructor(slots = 1024) {
    this.slots = Array.from({ length: slots }, () => ({ frame: { bytes: new Uint8Array(2048), offset: 0, lenBytes: 0, hdr: emptyNetHdr() } }));
  }

  negotiated(features: bigint): void {
    const has = (f: bigint): boolean => (features & f) !== 0n;
    // A GSO type the guest may send (HOST_*) must be one it takes back (GUEST_*), §5.1.6.2.
    const gsoBack =
      (!has(NetF.HOST_TSO4) || has(NetF.GUEST_TSO4)) &&
      (!has(NetF.HOST_TSO6) || has(NetF.GUEST_TSO6)) &&
      (!has(NetF.HOST_ECN) || has(NetF.GUEST_ECN)) &&
      (!has(NetF.HOST_UFO) || has(NetF.GUEST_UFO)) &&
      (!has(NetF.HOST_USO) || (has(NetF.GUEST_USO4) && has(NetF.GUEST_USO6)));
    this.acceptsGso = gsoBack;
    this.acceptsPartialCsum = has(NetF.GUEST_CSUM);
    this.head = 0;
    this.count = 0;
  }

  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    if (lenBytes < ETH_ADDRS_BYTES) {
      this.stats.dropsShort++;
      return;
    }
    if (this.count === this.slots.length) {
      this.stats.dropsFull++;
      return;
    }
    const f = this.slots[(this.head + this.count) % this.slots.length]!.frame;
    if (f.bytes.length < lenBytes) f.bytes = new Uint8Array(Math.max(lenBytes, 2 * f.bytes.length));
    const b = f.bytes;
    // Byte loops for the addresses and short payloads: a subarray view per copy is an allocation
    // per frame, which at DPDK's 64 B packet rates costs more than the copy itself.
    for (let i = 0; i < 6; i++) {
      b[i] = frame[offset + 6 + i]!;
      b[6 + i] = frame[offset + i]!;
    }
    if (lenBytes <= SHORT_COPY_BYTES) {
      for (let i = ETH_ADDRS_BYTES; i < lenBytes; i++) b[i] = frame[offset + i]!;
    } else {
      b.set(frame.subarray(offset + ETH_ADDRS_BYTES, offset + lenBytes), ETH_ADDRS_BYTES);
    }
    f.lenBytes = lenBytes;
    copyNetHdrOffload(f.hdr, hdr);
    this.count++;
    this.stats.reflected++;
  }

  peekRx(): PortRxFrame | null {
    return this.count > 0 ? this.slots[this.head]!.frame : null;
  }

  consumeRx(): void {
    if (this.count === 0) return;
    this.head = (this.head + 1) % this.slots.length;
    this.count--;
  }

  rxReady(): boolean {
    return this.count > 0;
  }
}
