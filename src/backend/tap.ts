// TAP backend (Node only): a Linux TAP interface opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, the
// kernel's vnet header size set to the negotiated virtio_net_hdr layout (TUNSETVNETHDRSZ) and
// the offloads the guest accepts announced with TUNSETOFFLOAD. Frames cross it with their
// virtio_net_hdr, so the kernel speaks real virtio-net header semantics.
//
// TapDevice opens one; TapPort (tap-port.ts) is the NetPort over it; the TAP demo that puts
// virtq's own guest behind one is engine/tap-demo.ts.

import { headerSize } from '../net/header.js';
import { check, loadIo, NativeAddonError, type IoAddon } from './native.js';
import { tunOffloadFlags } from './tap-offload.js';

export class TapDevice {
  private constructor(
    private readonly io: IoAddon,
    readonly fd: number,
    readonly name: string,
    readonly hdrBytes: number,
    readonly offloadFlags: number,
  ) {}

  /** Opens (creates) a non-persistent TAP; it disappears when closed. Needs CAP_NET_ADMIN. */
  static open(name: string, features: bigint): TapDevice {
    const io = loadIo();
    const c = io.constants;
    const r = io.tapOpen(name, c.IFF_TAP | c.IFF_NO_PI | c.IFF_VNET_HDR);
    if (typeof r === 'number') {
      throw new NativeAddonError('syscall', `TUNSETIFF ${name} failed: errno ${-r}${-r === 1 ? ' (EPERM: needs root or CAP_NET_ADMIN)' : ''}`, -r);
    }
    const hdrBytes = headerSize(features);
    const flags = tunOffloadFlags(features);
    try {
      check(io.setVnetHdrSz(r.fd, hdrBytes), `TUNSETVNETHDRSZ ${hdrBytes} on ${r.name}`);
      check(io.setOffload(r.fd, flags), `TUNSETOFFLOAD 0x${flags.toString(16)} on ${r.name}`);
    } catch (e) {
      io.close(r.fd);
      throw e;
    }
    return new TapDevice(io, r.fd, r.name, hdrBytes, flags);
  }

  close(): void {
    this.io.close(this.fd);
  }
}
