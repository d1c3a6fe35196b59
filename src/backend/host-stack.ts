// The in-memory host stack: a NetPort whose far side is a NetEndpoint (ARP and ICMP echo
// responder, pinger, TCP-like stream sink with ACKs, stream source). Frames from the guest are
// handed to the endpoint at once; frames for the guest are built lazily in one staging buffer
// when the device asks (peekRx), so a guest without rx buffers simply leaves the next frame
// unbuilt, like a tap fd nobody reads. A device that takes two-part frames (peekRx(true)) gets a
// stream frame's headers from the staging buffer and its payload straight from the source's
// buffer: the payload is copied once, into guest memory, instead of twice. Takes GSO frames and partial checksums (a tap with every
// offload on) unless told otherwise. Runs in Web Workers too (no `node:` imports).

import type { PortRxFrame, PortRxTail, NetPort } from '../net/port.js';
import { copyBytes } from '../memory/copy.js';
import { NetEndpoint, type EndpointOptions } from '../net/endpoint.js';
import { MAX_GSO_FRAME_BYTES, emptyNetHdr, headerSize, type VirtioNetHdr } from '../net/header.js';

export interface HostStackOptions extends EndpointOptions {
  /** Accept GSO frames from the guest (default true); false makes the device segment. */
  acceptsGso?: boolean;
  /** Accept partial checksums from the guest (default true); false makes the device finish them. */
  acceptsPartialCsum?: boolean;
}

export class HostStack implements NetPort {
  readonly endpoint: NetEndpoint;
  readonly acceptsGso: boolean;
  readonly acceptsPartialCsum: boolean;
  onRxReady?: (() => void) | undefined;
  private readonly staging = new Uint8Array(MAX_GSO_FRAME_BYTES + 64);
  private readonly tail: PortRxTail = { bytes: this.staging, offset: 0, lenBytes: 0 };
  private readonly frame: PortRxFrame = { bytes: this.staging, offset: 0, lenBytes: 0, hdr: emptyNetHdr(), tail: null };
  private pending = false;
  // Where in the staging buffer frames are built: at the alignment (mod 8) the device will copy
  // them to, the virtio_net_hdr's length into an rx buffer, so that copy moves 8 bytes at a time
  // (see BOUNCE_MIN_BYTES in src/memory/copy.ts).
  private buildOffset = 4;

  constructor(opts: HostStackOptions) {
    this.endpoint = new NetEndpoint(opts);
    this.acceptsGso = opts.acceptsGso ?? true;
    this.acceptsPartialCsum = opts.acceptsPartialCsum ?? true;
  }

  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.endpoint.input(frame, offset, lenBytes, hdr);
  }

  negotiated(features: bigint): void {
    // Takes effect from the next frame built (a pending one keeps its place).
    this.buildOffset = headerSize(features) & 7;
  }

  peekRx(twoPart = false): PortRxFrame | null {
    const f = this.frame;
    if (this.pending) {
      // Built in two parts for a caller that took them, now peeked by one that does not: join
      // them in the staging buffer (it has room for the largest frame).
      if (f.tail !== null && !twoPart) {
        const t = this.tail;
        copyBytes(this.staging, f.offset + f.lenBytes - t.lenBytes, t.bytes, t.offset, t.lenBytes);
        f.tail = null;
      }
      return f;
    }
    const at = this.buildOffset;
    const t = this.tail;
    t.lenBytes = 0;
    const n = this.endpoint.nextFrame(this.staging, at, this.staging.length - at, f.hdr, twoPart ? t : undefined);
    if (n === 0) return null;
    f.offset = at;
    f.lenBytes = n;
    f.tail = t.lenBytes > 0 ? t : null;
    this.pending = true;
    return f;
  }

  consumeRx(): void {
    this.pending = false;
  }

  /** True when a frame for the guest is built or could be built now. */
  get hasRx(): boolean {
    return this.pending || this.endpoint.hasOutput;
  }

  rxReady(): boolean {
    return this.pending || this.endpoint.hasOutput;
  }
}
