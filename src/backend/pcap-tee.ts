// A NetPort that records every frame passing through another port into a classic pcap
// capture (Ethernet link type), both directions, then forwards it unchanged. Frames carrying a
// partial checksum (NEEDS_CSUM) are recorded with the checksum completed on a copy, and GSO
// frames optionally as the MSS segments a wire would carry, so standard tools (tshark) decode
// the capture without checksum findings. Runs anywhere the PcapWriter's sink runs.

import { ForwardingPort, type PortRxFrame, type NetPort } from '../net/port.js';
import type { PcapWriter } from './pcap.js';
import { NetHdrFlags, GsoType, MAX_GSO_FRAME_BYTES, type VirtioNetHdr } from '../net/header.js';
import { applyNeedsCsum, gsoSegmentTcp } from '../net/gso.js';
import { NetError } from '../net/errors.js';

export interface PcapTeeOptions {
  /** Record GSO frames as their MSS segments (default false: one large frame, as tcpdump on a tap). */
  segmentGso?: boolean;
  /** Timestamp source in ns since the Unix epoch (default performance clock). */
  nowNs?: () => number;
}

export class PcapTeePort extends ForwardingPort {
  onRxReady?: (() => void) | undefined;
  /** Frames recorded (segments count one each), and frames that could not be segmented. */
  recorded = 0;
  recordErrors = 0;
  private readonly copy = new Uint8Array(MAX_GSO_FRAME_BYTES + 64);
  private readonly seg = new Uint8Array(MAX_GSO_FRAME_BYTES + 64);
  private readonly segmentGso: boolean;
  private readonly nowNs: () => number;
  private lastPeeked: PortRxFrame | null = null;

  constructor(
    inner: NetPort,
    readonly writer: PcapWriter,
    opts: PcapTeeOptions = {},
  ) {
    super(inner);
    this.segmentGso = opts.segmentGso ?? false;
    this.nowNs = opts.nowNs ?? ((): number => Math.round((performance.timeOrigin + performance.now()) * 1e6));
  }

  override send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.record(frame, offset, lenBytes, hdr);
    this.inner.send(frame, offset, lenBytes, hdr);
  }

  override peekRx(): PortRxFrame | null {
    const f = this.inner.peekRx();
    this.lastPeeked = f;
    return f;
  }

  override consumeRx(): void {
    const f = this.lastPeeked;
    // Recorded when taken, so a frame peeked twice (no rx buffers yet) appears once.
    if (f !== null) this.record(f.bytes, f.offset, f.lenBytes, f.hdr);
    this.lastPeeked = null;
    this.inner.consumeRx();
  }

  private record(frame: Uint8Array, offset: number, len: number, hdr: Readonly<VirtioNetHdr>): void {
    const ts = this.nowNs();
    const isGso = (hdr.gsoType & ~GsoType.ECN) !== GsoType.NONE;
    if (isGso && this.segmentGso) {
      const r = gsoSegmentTcp(frame, offset, len, hdr, this.seg, (buf, n) => {
        this.writer.writePacket(ts, buf, 0, n);
        this.recorded++;
      });
      if (r instanceof NetError) this.recordErrors++;
      return;
    }
    if (hdr.flags & NetHdrFlags.NEEDS_CSUM && len <= this.copy.length) {
      this.copy.set(frame.subarray(offset, offset + len));
      if (applyNeedsCsum(this.copy, hdr.csumStart, hdr.csumOffset, len) !== null) this.recordErrors++;
      this.writer.writePacket(ts, this.copy, 0, len);
    } else {
      this.writer.writePacket(ts, frame, offset, len);
    }
    this.recorded++;
  }
}
