// The one contract between a virtio-net device (NetDevice) and what stands behind it on the host
// ("the tap"): the in-memory host stack, a reflector, a real TAP, a pcap tee around another
// port, a loopback, or a user's own. Frames leaving the guest go to `send`; frames for the guest
// are pulled with `peekRx`/`consumeRx`, so a frame the guest has no buffers for stays in the
// port (a tap fd is simply not read while the rx ring is empty, as QEMU does). Every frame
// travels with its virtio_net_hdr offload info (virtio 1.2 §5.1.6): NEEDS_CSUM with
// csum_start/offset for a partial checksum, gso_type/gso_size for a GSO frame. A port says
// whether it takes GSO frames and partial checksums; the device segments or completes
// checksums in software otherwise. A port fed by the operating system (a TAP) exposes the fd to
// poll, so the device loop can sleep on it together with the kicks.
// Runs in Web Workers too: no `node:` imports.

import type { VirtioNetHdr } from './header.js';

/**
 * A frame offered to the guest, valid until consumeRx(): `bytes[offset…offset+lenBytes)`, or —
 * only when the caller asked for it (peekRx(true)) and `tail` is set — in two parts: the head
 * `bytes[offset…offset+lenBytes−tail.lenBytes)` (the protocol headers) followed by
 * `tail.bytes[tail.offset…tail.offset+tail.lenBytes)` (the payload), so a port whose payload
 * already sits in a buffer of its own need not copy it behind the headers first (as vhost-net
 * copies an skb's head and page frags straight into the guest's buffers).
 */
export interface PortRxFrame {
  bytes: Uint8Array;
  offset: number;
  /** The whole frame's length, head and tail together. */
  lenBytes: number;
  /** Offload info for the guest (flags, gso_type, gso_size, csum_start/offset; num_buffers ignored). */
  hdr: VirtioNetHdr;
  /** The payload apart from the head; null or absent for a frame in one piece. */
  tail?: PortRxTail | null;
}

/** The second part of a two-part frame (PortRxFrame.tail): `bytes[offset…offset+lenBytes)`. */
export interface PortRxTail {
  bytes: Uint8Array;
  offset: number;
  lenBytes: number;
}

export interface NetPort {
  /** Takes TCP/UDP GSO frames (a TAP, the host stack); else the device segments TCP in software. */
  readonly acceptsGso: boolean;
  /** Takes NEEDS_CSUM frames with a partial checksum; else the device completes it. */
  readonly acceptsPartialCsum: boolean;
  /**
   * A frame from the guest. `frame[offset…offset+lenBytes)` is valid only during the call (it may
   * be a view of guest memory or device scratch): copy what you keep.
   */
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void;
  /**
   * The next frame for the guest without taking it, or null when none is ready. With
   * `twoPart` the caller takes a frame in two parts (PortRxFrame.tail); without it a port
   * returns the frame in one piece, so a reader that knows nothing of tails never sees one.
   */
  peekRx(twoPart?: boolean): PortRxFrame | null;
  /** Takes the frame the last peekRx returned (delivered to the guest or dropped by the device). */
  consumeRx(): void;
  /** Cheap readiness test (no read): true when peekRx may return a frame. Default: peekRx() !== null. */
  rxReady?(): boolean;
  /**
   * The fd that becomes readable when peekRx may return a frame (a TAP), for the device loop's
   * poll set; absent for ports that live in memory (their readiness is hasRx/peekRx).
   */
  readonly fd?: number;
  /**
   * Told the negotiated features when the device starts on a driver, before any frame: a TAP
   * sets its vnet header size and TUNSETOFFLOAD from what the guest accepts.
   */
  negotiated?(features: bigint): void;
  /** Optional readiness callback: called when a frame becomes ready after peekRx returned null. */
  onRxReady?: (() => void) | undefined;
}

/** Whether the port has a frame for the guest (rxReady when it has one, else a peek). */
export function portHasRx(p: NetPort): boolean {
  return p.rxReady !== undefined ? p.rxReady() : p.peekRx() !== null;
}

/**
 * A port in front of another that forwards everything to it: the base of wrappers (a pcap tee,
 * the lock drop around reads), which override only what they add. Offloads and the fd are asked
 * of the inner port each time, since a port may decide them in negotiated().
 */
export class ForwardingPort implements NetPort {
  constructor(readonly inner: NetPort) {}
  get acceptsGso(): boolean {
    return this.inner.acceptsGso;
  }
  get acceptsPartialCsum(): boolean {
    return this.inner.acceptsPartialCsum;
  }
  get fd(): number | undefined {
    return this.inner.fd;
  }
  negotiated(features: bigint): void {
    this.inner.negotiated?.(features);
  }
  rxReady(): boolean {
    return portHasRx(this.inner);
  }
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.inner.send(frame, offset, lenBytes, hdr);
  }
  peekRx(twoPart?: boolean): PortRxFrame | null {
    return this.inner.peekRx(twoPart);
  }
  consumeRx(): void {
    this.inner.consumeRx();
  }
}
