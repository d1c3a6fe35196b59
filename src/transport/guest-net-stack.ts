// The Linux-order MMIO guest driver (GuestNetDriver) extended with what a guest needs to talk to
// the full virtio-net device: transmit buffers big enough for GSO frames (its own pool, up to
// 64 KiB + header) with any virtio_net_hdr the guest wants to send (NEEDS_CSUM, gso_type,
// gso_size, hdr_len), and a guest network stack on top (NetEndpoint: ARP, ICMP echo with a reply
// callback, stream source/sink) pumped through the driver. The probe, negotiation, queue setup,
// rx path and interrupt handling are GuestNetDriver's, unchanged.
// Runs in browser Web Workers: no `node:` imports.

import { Arena, BufferPool, type GuestMemory } from '../memory/index.js';
import { NetEndpoint, type EndpointOptions } from '../net/endpoint.js';
import { encodeNetHdr, emptyNetHdr, type VirtioNetHdr } from '../net/header.js';
import { GuestNetDriver, type GuestNetOptions, type MmioBus } from './guest-net-driver.js';

const NET_HDR_BYTES = 12; // VERSION_1 without HASH_REPORT (§5.1.6)

export interface GuestNetStackOptions extends GuestNetOptions {
  /** A guest memory area, apart from the driver's arena, for the transmit buffers. */
  txArenaBase: number;
  txArenaBytes: number;
  /** Bytes of each transmit buffer, header included (default 65536 + 64: one GSO frame). */
  txBufBytes?: number;
  /** The guest's network stack (its MAC is overwritten with the one read from config space). */
  endpoint?: Omit<EndpointOptions, 'mac'>;
}

export class GuestNetStackDriver extends GuestNetDriver {
  endpoint: NetEndpoint | null = null;
  /** Frames the endpoint built that are waiting for a transmit buffer. */
  private pending: { buf: Uint8Array; len: number; hdr: VirtioNetHdr } | null = null;
  private bigPool: BufferPool | null = null;
  private readonly txBufBytes: number;
  private readonly hdrOut = new Uint8Array(NET_HDR_BYTES);
  private readonly scratch: Uint8Array;
  private readonly rxHdr = emptyNetHdr();

  constructor(
    bus: MmioBus,
    mem: GuestMemory,
    readonly stackOpts: GuestNetStackOptions,
  ) {
    super(bus, mem, stackOpts);
    this.txBufBytes = stackOpts.txBufBytes ?? 65536 + 64;
    this.scratch = new Uint8Array(this.txBufBytes);
  }

  override init(): bigint {
    const f = super.init();
    const arena = new Arena(this.mem, this.stackOpts.txArenaBase, this.stackOpts.txArenaBytes);
    const stride = Math.ceil(this.txBufBytes / 64) * 64;
    const count = Math.min(this.tx!.size, Math.floor((this.stackOpts.txArenaBytes - 64) / stride));
    this.bigPool = new BufferPool(arena, this.txBufBytes, count, 64);
    this.pending = null;
    if (this.stackOpts.endpoint) {
      this.endpoint = new NetEndpoint({ ...this.stackOpts.endpoint, mac: Uint8Array.from(this.mac) });
    }
    return f;
  }

  override send(frame: Uint8Array, kick = true, csum?: { start: number; offset: number }): boolean {
    const hdr = emptyNetHdr();
    if (csum) {
      hdr.flags = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
      hdr.csumStart = csum.start;
      hdr.csumOffset = csum.offset;
    }
    return this.sendWithHeader(frame, 0, frame.length, hdr, kick);
  }

  /**
   * Queues `frame[offset…offset+len)` behind `hdr` (num_buffers is written as 0, §5.1.6.2) as one
   * two-descriptor chain (header, frame); false when no buffer or ring slot is free or the frame is too big.
   */
  sendWithHeader(frame: Uint8Array, offset: number, len: number, hdr: Readonly<VirtioNetHdr>, kick = true): boolean {
    const tx = this.tx!;
    const pool = this.bigPool!;
    this.reapTx();
    if (pool.available === 0 || tx.numFree < 2 || len + NET_HDR_BYTES > this.txBufBytes) return false;
    const addr = pool.get();
    encodeNetHdr({ ...hdr, numBuffers: 0 }, 'v1', this.hdrOut);
    this.mem.copyIn(addr, this.hdrOut);
    this.mem.copyIn(addr + NET_HDR_BYTES, frame.subarray(offset, offset + len));
    // A zero-length descriptor is a ring violation for the device's virtqueue layer: an empty
    // frame goes as the header alone.
    tx.add(len > 0 ? [{ addr, len: NET_HDR_BYTES }, { addr: addr + NET_HDR_BYTES, len }] : [{ addr, len: NET_HDR_BYTES }], [], addr);
    this.stats.txFrames++;
    if (kick) this.flushTx();
    return true;
  }

  override reapTx(): number {
    const tx = this.tx!;
    let n = 0;
    let u;
    while ((u = tx.reap()) !== null) {
      this.bigPool!.put(u.token);
      n++;
    }
    return n;
  }

  /**
   * One turn of the guest's network loop: acknowledge the interrupt, hand received frames to the
   * endpoint, post rx buffers, send what the endpoint has to say, kick once. Returns frames moved.
   */
  pumpStack(): number {
    const ep = this.endpoint;
    if (ep === null) throw new Error('guest-net-stack: no endpoint configured');
    this.acknowledgeInterrupt();
    let moved = this.receive((f) => {
      this.rxHdr.flags = this.lastRxFlags;
      ep.input(f, 0, f.length, this.rxHdr);
    });
    this.refillRx();
    for (;;) {
      if (this.pending === null) {
        const hdr = emptyNetHdr();
        const len = ep.nextFrame(this.scratch, 0, this.scratch.length - NET_HDR_BYTES, hdr);
        if (len === 0) break;
        this.pending = { buf: this.scratch, len, hdr };
      }
      if (!this.sendWithHeader(this.pending.buf, 0, this.pending.len, this.pending.hdr, false)) break;
      this.pending = null;
      moved++;
    }
    this.flushTx();
    return moved;
  }
}
