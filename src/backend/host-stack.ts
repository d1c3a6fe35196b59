// The in-memory host stack: a NetPort whose far side is a NetEndpoint (ARP and ICMP echo
// responder, pinger, TCP-like stream sink with ACKs, stream source). Frames from the guest are
// handed to the endpoint at once; frames for the guest are built lazily in one staging buffer
// when the device asks (peekRx), so a guest without rx buffers simply leaves the next frame
// unbuilt, like a tap fd nobody reads. Takes GSO frames and partial checksums (a tap with every
// offload on) unless told otherwise. Runs in Web Workers too (no `node:` imports).

import type { PortRxFrame, NetPort } from '../net/port.js';
import { NetEndpoint, type EndpointOptions } from '../net/endpoint.js';
import { MAX_GSO_FRAME_BYTES, emptyNetHdr, type VirtioNetHdr } from '../net/header.js';

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
  private readonly frame: PortRxFrame = { bytes: this.staging, offset: 0, lenBytes: 0, hdr: emptyNetHdr() };
  private pending = false;

  constructor(opts: HostStackOptions) {
    this.endpoint = new NetEndpoint(opts);
    this.acceptsGso = opts.acceptsGso ?? true;
    this.acceptsPartialCsum = opts.acceptsPartialCsum ?? true;
  }

  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.endpoint.input(frame, offset, lenBytes, hdr);
  }

  peekRx(): PortRxFrame | null {
    if (this.pending) return this.frame;
    const n = this.endpoint.nextFrame(this.staging, 0, this.staging.length, this.frame.hdr);
    if (n === 0) return null;
    this.frame.lenBytes = n;
    this.pending = true;
    return this.frame;
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
