// The device side of a virtio-net pair of queues reduced to frames: pops transmitted chains into
// a caller's buffer (virtio_net_hdr included) and delivers received frames into receive chains,
// with VIRTIO_NET_F_MRG_RXBUF merging across chains (virtio 1.2 §5.1.6.4). Used by the TAP and
// vhost-user backends while the full NetDevice is built elsewhere: this is the one seam to swap.
// Knows nothing of fds or threads; runs in Web Workers too.

import type { GuestMemory } from '../memory/index.js';
import { DescriptorChain, readFromChain, writeToChain, type DeviceQueue } from '../virtqueue/index.js';

export interface FrameDeviceOptions {
  /** virtio_net_hdr bytes for the negotiated layout (10, 12 or 20). */
  hdrBytes: number;
  /** VIRTIO_NET_F_MRG_RXBUF negotiated: a frame may span several receive chains. */
  mergeable: boolean;
}

export interface FrameDeviceStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Transmitted chains with fewer readable bytes than a header, or larger than the buffer. */
  txDropMalformed: number;
  /** Frames larger than the receive chains can hold (without MRG_RXBUF: larger than one chain). */
  rxDropTooBig: number;
}

export type RxResult = 'ok' | 'no-buffer' | 'too-big';

export class FrameDevice {
  readonly stats: FrameDeviceStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropMalformed: 0, rxDropTooBig: 0 };
  private readonly txChain = new DescriptorChain();
  // Receive chains popped but not filled (a merge that ran out of chains); used first next time.
  private held: DescriptorChain[] = [];
  private readonly spare: DescriptorChain[] = [];
  private readonly numBuf = new Uint8Array(2);

  constructor(
    readonly mem: GuestMemory,
    readonly rx: DeviceQueue,
    readonly tx: DeviceQueue,
    readonly opts: FrameDeviceOptions,
  ) {}

  /**
   * Pops one transmitted chain and copies its readable bytes (header + frame) into `buf`;
   * returns the byte count, -1 when the tx ring is empty, or 0 for a malformed chain (returned
   * to the driver and counted). The chain is completed at once (used len 0, §5.1.6.2).
   * Throws VirtqueueError when the driver broke the ring.
   */
  popTx(buf: Uint8Array): number {
    const c = this.tx.pop(this.txChain);
    if (c === null) return -1;
    const n = c.readableBytes;
    let got = 0;
    if (n >= this.opts.hdrBytes && n <= buf.length) got = readFromChain(this.mem, c, buf);
    this.tx.addUsed(c.head, 0);
    if (got === 0) {
      this.stats.txDropMalformed++;
      return 0;
    }
    this.stats.txFrames++;
    this.stats.txBytes += got - this.opts.hdrBytes;
    return got;
  }

  /** Whether at least one receive chain is waiting (held or available). */
  rxReady(): boolean {
    return this.held.length > 0 || this.rx.pending() > 0;
  }

  /**
   * Delivers `frame[0, lenBytes)` (virtio_net_hdr first; its num_buffers is filled in here) into
   * receive chains. 'no-buffer' consumes nothing: the caller may retry after the next kick.
   */
  pushRx(frame: Uint8Array, lenBytes: number): RxResult {
    const chains: DescriptorChain[] = [];
    let room = 0;
    while (room < lenBytes) {
      if (!this.opts.mergeable && chains.length === 1) break;
      const c = this.nextRxChain();
      if (c === null) break;
      chains.push(c);
      room += c.writableBytes;
    }
    if (room < lenBytes) {
      const tooBig = chains.length > 0 && !this.opts.mergeable;
      // Keep the chains for the next frame rather than completing them empty.
      this.held = chains.concat(this.held);
      if (tooBig) {
        this.stats.rxDropTooBig++;
        return 'too-big';
      }
      return 'no-buffer';
    }
    if (this.opts.hdrBytes >= 12) {
      // num_buffers (le16 at offset 10): chains this frame spans (§5.1.6.4); 1 without MRG_RXBUF.
      frame[10] = chains.length & 0xff;
      frame[11] = chains.length >> 8;
    }
    let off = 0;
    for (const c of chains) {
      const n = Math.min(c.writableBytes, lenBytes - off);
      if (n > 0) writeToChain(this.mem, c, frame.subarray(off, off + n));
      this.rx.addUsed(c.head, n);
      off += n;
      this.spare.push(c);
    }
    this.stats.rxFrames++;
    this.stats.rxBytes += lenBytes - this.opts.hdrBytes;
    return 'ok';
  }

  /** Publishes used entries on both queues; says which queues the driver wants interrupted for. */
  flush(): { rx: boolean; tx: boolean } {
    const rxn = this.rx.publishUsed();
    const txn = this.tx.publishUsed();
    return { rx: rxn > 0 && this.rx.needsNotification(), tx: txn > 0 && this.tx.needsNotification() };
  }

  private nextRxChain(): DescriptorChain | null {
    const h = this.held.shift();
    if (h !== undefined) return h;
    const c = this.rx.pop(this.spare.pop() ?? new DescriptorChain());
    if (c === null) return null;
    if (c.writableBytes < this.opts.hdrBytes || c.readableCount !== 0) {
      // A receive chain must be device-writable only (§2.7.4) and hold at least the header.
      this.rx.addUsed(c.head, 0);
      return this.nextRxChain();
    }
    return c;
  }
}
