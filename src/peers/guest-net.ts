// The driver side of a virtio-net pair of queues for real-peer demos: keeps the receive queue
// filled with buffers, hands each received frame (after its virtio_net_hdr) to a Responder and
// transmits the replies. A stand-in for the full NetDriver being built elsewhere; it uses only
// DriverQueue. Knows nothing of fds or threads (the caller kicks and waits); runs in Web Workers.

import type { GuestMemory } from '../memory/index.js';
import { DriverQueue, SplitLayout } from '../virtqueue/index.js';
import type { Responder } from './responder.js';
import { NetHdrFlags } from '../net/header.js';

export interface GuestNetPlan {
  queueSize: number;
  bufBytes: number;
  hdrBytes: number;
  eventIdx: boolean;
  /** Guest addresses: rx ring, tx ring (SplitLayout.packedAt), rx buffers, tx buffers. */
  rxRing: number;
  txRing: number;
  rxBufs: number;
  txBufs: number;
  /** Bytes of guest memory the plan needs from address 0. */
  totalBytes: number;
}

/** Lays out two rings and 2 × queueSize buffers from guest address 0. */
export function planGuestNet(queueSize: number, bufBytes: number, hdrBytes: number, eventIdx: boolean): GuestNetPlan {
  const ringBytes = SplitLayout.packedBytes(queueSize);
  const rxRing = 0;
  const txRing = ringBytes;
  const rxBufs = 2 * ringBytes;
  const txBufs = rxBufs + queueSize * bufBytes;
  return { queueSize, bufBytes, hdrBytes, eventIdx, rxRing, txRing, rxBufs, txBufs, totalBytes: txBufs + queueSize * bufBytes };
}

export interface GuestNetStats {
  rxFrames: number;
  txFrames: number;
  /** Replies not sent because every tx buffer was in flight. */
  txDropNoBuffer: number;
  /** Received frames whose virtio_net_hdr had NEEDS_CSUM (the device left the checksum to us, §5.1.6.4). */
  rxNeedsCsum: number;
}

export class GuestNet {
  readonly rxq: DriverQueue<number>;
  readonly txq: DriverQueue<number>;
  readonly stats: GuestNetStats = { rxFrames: 0, txFrames: 0, txDropNoBuffer: 0, rxNeedsCsum: 0 };
  private readonly freeTx: number[] = [];
  private readonly frame: Uint8Array;
  private readonly reply: Uint8Array;

  constructor(
    readonly mem: GuestMemory,
    readonly plan: GuestNetPlan,
    readonly responder: Responder,
  ) {
    const q = plan.queueSize;
    this.rxq = new DriverQueue<number>(mem, SplitLayout.packedAt(q, plan.rxRing, 0), { index: 0, eventIdx: plan.eventIdx });
    this.txq = new DriverQueue<number>(mem, SplitLayout.packedAt(q, plan.txRing, 1), { index: 1, eventIdx: plan.eventIdx });
    for (let i = q - 1; i >= 0; i--) this.freeTx.push(i);
    this.frame = new Uint8Array(plan.bufBytes);
    this.reply = new Uint8Array(plan.bufBytes);
  }

  /** Posts every receive buffer (call once before the device starts). */
  fillRx(): void {
    for (let i = 0; i < this.plan.queueSize; i++) this.postRx(i);
    this.rxq.publish();
  }

  private postRx(i: number): void {
    this.rxq.add([], [{ addr: this.plan.rxBufs + i * this.plan.bufBytes, len: this.plan.bufBytes }], i);
  }

  /**
   * Reaps completed transmits and received frames, answers them, reposts receive buffers.
   * Returns which queues need a kick (the caller rings the doorbell).
   */
  service(): { kickRx: boolean; kickTx: boolean; work: number } {
    let work = 0;
    for (let u = this.txq.reap(); u !== null; u = this.txq.reap()) {
      this.freeTx.push(u.token);
      work++;
    }
    const hdr = this.plan.hdrBytes;
    let reposted = 0;
    let sent = 0;
    for (let u = this.rxq.reap(); u !== null; u = this.rxq.reap()) {
      const i = u.token;
      const len = Math.min(u.len, this.plan.bufBytes);
      work++;
      if (len > hdr) {
        this.stats.rxFrames++;
        this.mem.copyOut(this.plan.rxBufs + i * this.plan.bufBytes, this.frame.subarray(0, len));
        if ((this.frame[0]! & NetHdrFlags.NEEDS_CSUM) !== 0) this.stats.rxNeedsCsum++;
        const n = this.responder.respond(this.frame.subarray(hdr, len), len - hdr, this.reply.subarray(hdr));
        if (n > 0) {
          const slot = this.freeTx.pop();
          if (slot === undefined) this.stats.txDropNoBuffer++;
          else {
            this.reply.fill(0, 0, hdr); // no offloads requested: flags 0, gso NONE
            const addr = this.plan.txBufs + slot * this.plan.bufBytes;
            this.mem.copyIn(addr, this.reply.subarray(0, hdr + n));
            this.txq.add([{ addr, len: hdr + n }], [], slot);
            sent++;
          }
        }
      }
      this.postRx(i);
      reposted++;
    }
    if (reposted > 0) this.rxq.publish();
    if (sent > 0) {
      this.txq.publish();
      this.stats.txFrames += sent;
    }
    return { kickRx: reposted > 0 && this.rxq.kickNeeded(), kickTx: sent > 0 && this.txq.kickNeeded(), work };
  }

  /** Re-enables used-buffer notifications; true when work arrived meanwhile (do not sleep). */
  armInterrupts(): boolean {
    const a = this.rxq.enableInterrupts();
    const b = this.txq.enableInterrupts();
    return a || b;
  }
}
