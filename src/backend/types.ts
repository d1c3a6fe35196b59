// The interface between a virtio-net device (NetDevice) and what stands behind it on the host
// ("the tap"): frames leaving the guest go to `send`, frames for the guest are pulled with
// `peekRx`/`consumeRx` so that a frame the guest has no buffers for stays in the backend (the
// tap fd is simply not read while the rx ring is empty, as QEMU does). Every frame travels with
// its virtio_net_hdr offload info (virtio 1.2 §5.1.6): NEEDS_CSUM with csum_start/offset for a
// partial checksum, gso_type/gso_size for a GSO frame. A backend says whether it takes GSO frames
// and partial checksums; the device segments or completes checksums in software otherwise.
// Runs in Web Workers too: no `node:` imports.

import type { VirtioNetHdr } from '../net/header.js';

/** A frame offered to the guest: `bytes[offset…offset+lenBytes)`, valid until consumeRx(). */
export interface BackendRxFrame {
  bytes: Uint8Array;
  offset: number;
  lenBytes: number;
  /** Offload info for the guest (flags, gso_type, gso_size, csum_start/offset; num_buffers ignored). */
  hdr: VirtioNetHdr;
}

export interface NetBackend {
  /** Takes TCP/UDP GSO frames (a tap with TUNSETOFFLOAD TSO4/TSO6); else the device segments. */
  readonly acceptsGso: boolean;
  /** Takes NEEDS_CSUM frames with a partial checksum (TUN_F_CSUM); else the device completes it. */
  readonly acceptsPartialCsum: boolean;
  /**
   * A frame from the guest. `frame[offset…offset+lenBytes)` is valid only during the call (it may
   * be a view of guest memory or device scratch): copy what you keep.
   */
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void;
  /** The next frame for the guest without taking it, or null when none is ready. */
  peekRx(): BackendRxFrame | null;
  /** Takes the frame the last peekRx returned (delivered to the guest or dropped by the device). */
  consumeRx(): void;
  /** Optional readiness callback: called when a frame becomes ready after peekRx returned null. */
  onRxReady?: (() => void) | undefined;
}
