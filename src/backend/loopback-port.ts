// A NetPort that hands every frame the guest sends back to the guest: a cable from the NIC to
// itself, for examples and tests of a transport (the frames travel through the whole NetDevice
// both ways). Frames keep their offload header; the port takes GSO frames and partial checksums
// only when the guest accepted them on receive (GUEST_TSO4/6, GUEST_CSUM), so NetDevice
// segments or completes on transmit whatever the guest could not take back. Frames wait in a
// bounded queue until the guest posts rx buffers; past `capacityFrames` they are dropped and
// counted. Runs in Web Workers too (no `node:` imports).

import type { NetPort, PortRxFrame } from '../net/port.js';
import { NetF } from '../net/features.js';
import { emptyNetHdr, type VirtioNetHdr } from '../net/header.js';

export interface LoopbackPortStats {
  /** Frames taken from the guest, handed back, and dropped because the queue was full. */
  framesIn: number;
  framesOut: number;
  drops: number;
}

export class LoopbackPort implements NetPort {
  acceptsGso = false;
  acceptsPartialCsum = false;
  readonly stats: LoopbackPortStats = { framesIn: 0, framesOut: 0, drops: 0 };
  private readonly queue: PortRxFrame[] = [];

  constructor(readonly capacityFrames = 1024) {}

  negotiated(features: bigint): void {
    this.acceptsGso = (features & NetF.GUEST_TSO4) !== 0n && (features & NetF.GUEST_TSO6) !== 0n && (features & NetF.GUEST_ECN) !== 0n;
    this.acceptsPartialCsum = (features & NetF.GUEST_CSUM) !== 0n;
  }

  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    if (this.queue.length >= this.capacityFrames) {
      this.stats.drops++;
      return;
    }
    this.stats.framesIn++;
    // The view is valid only during the call: keep a copy.
    this.queue.push({ bytes: frame.slice(offset, offset + lenBytes), offset: 0, lenBytes, hdr: { ...emptyNetHdr(), ...hdr, numBuffers: 0 } });
  }

  peekRx(): PortRxFrame | null {
    return this.queue[0] ?? null;
  }

  consumeRx(): void {
    if (this.queue.shift() !== undefined) this.stats.framesOut++;
  }

  rxReady(): boolean {
    return this.queue.length > 0;
  }
}
