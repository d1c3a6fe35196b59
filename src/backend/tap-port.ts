// A Linux TAP as a NetPort (Node only): frames cross the fd with their virtio_net_hdr first
// (IFF_VNET_HDR), so the kernel speaks real virtio-net header semantics both ways. When the
// device starts on a driver, negotiated() sets the kernel's vnet header size to the negotiated
// layout (TUNSETVNETHDRSZ) and announces with TUNSETOFFLOAD what the guest accepts on its
// receive queue (GUEST_CSUM → TUN_F_CSUM, GUEST_TSO4/6 → TSO4/6, ...), as QEMU's tap backend
// does. The kernel takes GSO frames and partial checksums written to a vnet-header TAP whatever
// the offload flags say, so the device never segments for a TAP. Non-blocking reads: peekRx
// reads one frame only when the device has room for it; the device loop polls `fd` otherwise.
// Host → guest backpressure is QEMU's: while the guest has receive buffers the device reads the
// TAP frame after frame (a pass fills as many buffers as it may); with none it stops reading
// (the fd leaves the poll set), so frames wait in the kernel's TAP queue, and beyond its
// txqueuelen the kernel drops them — counted by the kernel as the interface's TX drops, which
// `kernelTxDropped` reports (since this port was made). virtq itself drops nothing it read.

import { copyNetHdrOffload, decodeNetHdr, encodeNetHdr, headerLayout, emptyNetHdr, type NetHdrLayout, type VirtioNetHdr } from '../net/header.js';
import { NetError } from '../net/errors.js';
import type { NetPort, PortRxFrame } from '../net/port.js';
import { NetF } from '../net/features.js';
import { readFileSync } from 'node:fs';
import { check, type IoAddon } from './native.js';
import { tunOffloadFlags } from './tap-offload.js';

export interface TapPortStats {
  txFrames: number;
  txBytes: number;
  /** write(2) failures (the frame is dropped; the kernel said why in errno). */
  txWriteErrors: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames read with a header the device cannot decode (counted and skipped). */
  rxBadHeader: number;
  /**
   * Frames for the guest the kernel dropped because its TAP queue was full while the guest had
   * no receive buffers (the interface's tx_dropped since this port was made; updated by
   * refreshKernelDrops()). -1 when the kernel's counter cannot be read.
   */
  kernelTxDropped: number;
}

const HDR_LAYOUT_BYTES: Record<NetHdrLayout, number> = { legacy: 10, 'legacy-mrg': 12, v1: 12, hash: 20 };
const MAX_FRAME_BYTES = 65535 + 64;
/** Frames up to this long are copied byte by byte (no view allocated). */
const SHORT_COPY_BYTES = 256;

export class TapPort implements NetPort {
  readonly acceptsGso = true;
  readonly acceptsPartialCsum = true;
  readonly stats: TapPortStats = { txFrames: 0, txBytes: 0, txWriteErrors: 0, rxFrames: 0, rxBytes: 0, rxBadHeader: 0, kernelTxDropped: 0 };
  /** TUNSETOFFLOAD flags in effect (from the last negotiated()). */
  offloadFlags = 0;
  private layout: NetHdrLayout = 'v1';
  private hdrBytes = 12;
  private readonly txBuf = new Uint8Array(MAX_FRAME_BYTES + 20);
  private readonly rxBuf = new Uint8Array(MAX_FRAME_BYTES + 20);
  private readonly frame: PortRxFrame = { bytes: this.rxBuf, offset: 0, lenBytes: 0, hdr: emptyNetHdr() };
  private pending = false;
  private readonly txHdr: VirtioNetHdr = emptyNetHdr();

  private readonly kernelTxDroppedAtStart: number;

  constructor(
    private readonly io: IoAddon,
    readonly fd: number,
    readonly name = `fd ${fd}`,
  ) {
    this.kernelTxDroppedAtStart = this.readKernelTxDropped();
  }

  /** Updates stats.kernelTxDropped from the kernel's counter of the interface (sysfs). */
  refreshKernelDrops(): number {
    const now = this.readKernelTxDropped();
    this.stats.kernelTxDropped = now < 0 || this.kernelTxDroppedAtStart < 0 ? -1 : now - this.kernelTxDroppedAtStart;
    return this.stats.kernelTxDropped;
  }

  private readKernelTxDropped(): number {
    try {
      return Number(readFileSync(`/sys/class/net/${this.name}/statistics/tx_dropped`, 'utf8').trim());
    } catch {
      return -1; // not an interface name (a bare fd), or no sysfs
    }
  }

  /** The negotiated header layout and the guest's receive offloads, before the first frame. */
  negotiated(features: bigint): void {
    // The TAP never carries the hash report fields: a 20-byte layout is written as v1 (12).
    this.layout = headerLayout(features & ~NetF.HASH_REPORT);
    this.hdrBytes = HDR_LAYOUT_BYTES[this.layout];
    this.offloadFlags = tunOffloadFlags(features);
    check(this.io.setVnetHdrSz(this.fd, this.hdrBytes), `TUNSETVNETHDRSZ ${this.hdrBytes} on ${this.name}`);
    check(this.io.setOffload(this.fd, this.offloadFlags), `TUNSETOFFLOAD 0x${this.offloadFlags.toString(16)} on ${this.name}`);
    this.pending = false;
  }

  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    const hs = this.hdrBytes;
    const out = this.txBuf;
    encodeNetHdr(copyNetHdrOffload(this.txHdr, hdr), this.layout, out, 0); // num_buffers 0: the kernel ignores it on write
    // Short frames (pings, ACKs) byte by byte: a subarray view per frame is an allocation.
    if (lenBytes <= SHORT_COPY_BYTES) {
      for (let i = 0; i < lenBytes; i++) out[hs + i] = frame[offset + i]!;
    } else {
      out.set(frame.subarray(offset, offset + lenBytes), hs);
    }
    const r = this.io.write(this.fd, out, hs + lenBytes);
    if (r !== hs + lenBytes) {
      this.stats.txWriteErrors++;
      return;
    }
    this.stats.txFrames++;
    this.stats.txBytes += lenBytes;
  }

  peekRx(): PortRxFrame | null {
    if (this.pending) return this.frame;
    for (;;) {
      const n = this.io.read(this.fd, this.rxBuf);
      if (n <= 0) return null; // -EAGAIN: nothing queued in the kernel now
      const f = this.frame;
      const h = n >= this.hdrBytes ? decodeNetHdr(this.rxBuf, 0, this.layout, f.hdr) : null;
      if (h === null || h instanceof NetError) {
        this.stats.rxBadHeader++;
        continue;
      }
      f.offset = this.hdrBytes;
      f.lenBytes = n - this.hdrBytes;
      this.pending = true;
      return f;
    }
  }

  consumeRx(): void {
    if (!this.pending) return;
    this.pending = false;
    this.stats.rxFrames++;
    this.stats.rxBytes += this.frame.lenBytes;
  }

  rxReady(): boolean {
    return this.peekRx() !== null;
  }
}
