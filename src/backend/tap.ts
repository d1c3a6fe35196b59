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

/** linux/if_tun.h: one interface, several queue fds (the addon's constants predate it). */
const IFF_MULTI_QUEUE = 0x0100;
/** The kernel's limit on the queues of one TAP (MAX_TAP_QUEUES in drivers/net/tun.c). */
export const MAX_TAP_QUEUES = 256;

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
    return TapDevice.openFlags(name, features, 0);
  }

  /**
   * Opens `queues` queues of one multiqueue TAP (IFF_MULTI_QUEUE): the first TUNSETIFF creates
   * the interface, each later one on the same name attaches another queue; the kernel spreads
   * the frames it sends by flow over the queues and takes frames written to any of them. The
   * interface goes when its last queue closes.
   */
  static openQueues(name: string, features: bigint, queues: number): TapDevice[] {
    if (!Number.isInteger(queues) || queues < 1 || queues > MAX_TAP_QUEUES) throw new RangeError(`${queues} TAP queues: 1..${MAX_TAP_QUEUES}`);
    if (queues === 1) return [TapDevice.open(name, features)];
    const out: TapDevice[] = [];
    try {
      for (let i = 0; i < queues; i++) out.push(TapDevice.openFlags(i === 0 ? name : out[0]!.name, features, IFF_MULTI_QUEUE));
    } catch (e) {
      for (const t of out) t.close();
      throw e;
    }
    return out;
  }

  private static openFlags(name: string, features: bigint, extra: number): TapDevice {
    const io = loadIo();
    const c = io.constants;
    const r = io.tapOpen(name, c.IFF_TAP | c.IFF_NO_PI | c.IFF_VNET_HDR | extra);
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
