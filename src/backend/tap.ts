// TAP backend (Node only): a Linux TAP interface opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, the
// kernel's vnet header size set to the negotiated virtio_net_hdr layout (TUNSETVNETHDRSZ) and
// the offloads the guest accepts announced with TUNSETOFFLOAD. Frames cross it with their
// virtio_net_hdr, so the kernel speaks real virtio-net header semantics.
//
// runTapDemo() wires a TAP to virtq's own guest: guest worker (DriverQueue, answers ARP/ICMP)
// → rings in a SharedArrayBuffer → host worker (DeviceQueue via FrameDevice) → TAP fd. Kicks
// and interrupts are eventfds, so the host worker sleeps in poll(2) on the TAP and the kick at
// once; the main thread never blocks and keeps handling signals.

import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { headerSize } from '../net/header.js';
import { NetF, VirtioF } from '../net/features.js';
import { check, loadIo, NativeAddonError, type IoAddon } from './native.js';
import { tunOffloadFlags } from './tap-offload.js';
import type { FrameDeviceStats } from '../peers/frame-device.js';
import { planGuestNet, type GuestNetStats } from '../peers/guest-net.js';
import type { ResponderStats } from '../peers/responder.js';

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

export interface TapDemoOptions {
  name: string;
  /** Host-side address with prefix, e.g. 10.77.0.1/24 (set with `ip`); omit to leave it down. */
  address?: string;
  /** The address virtq's guest answers for. */
  guestAddress: string;
  guestMac?: string;
  queueSize?: number;
  /** Announce GUEST_CSUM (and so TUN_F_CSUM). Default true. */
  offload?: boolean;
}

export interface TapDemoStats {
  device: FrameDeviceStats & { tapWriteErrors: number; tapRxDropNoBuffer: number; calls: number };
  guest: GuestNetStats & { kicks: number };
  responder: ResponderStats;
}

export interface TapDemo {
  readonly name: string;
  readonly features: bigint;
  readonly hdrBytes: number;
  readonly offloadFlags: number;
  /** Stops both workers, closes the TAP and eventfds; resolves with the counters. */
  stop(): Promise<TapDemoStats>;
}

/** The feature set the demo's guest accepts. */
export function tapDemoFeatures(offload: boolean): bigint {
  return VirtioF.VERSION_1 | VirtioF.EVENT_IDX | (offload ? NetF.GUEST_CSUM : 0n);
}

export async function runTapDemo(o: TapDemoOptions): Promise<TapDemo> {
  const io = loadIo();
  const features = tapDemoFeatures(o.offload ?? true);
  const tap = TapDevice.open(o.name, features);
  const kickFd = check(io.eventfd(0, true), 'eventfd');
  const callFd = check(io.eventfd(0, true), 'eventfd');
  try {
    if (o.address !== undefined) {
      execFileSync('ip', ['addr', 'add', o.address, 'dev', tap.name]);
    }
    execFileSync('ip', ['link', 'set', tap.name, 'up']);
  } catch (e) {
    tap.close();
    io.close(kickFd);
    io.close(callFd);
    throw e;
  }
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const common = {
    stop: stop.buffer,
    kickFd,
    callFd,
    features,
    queueSize: o.queueSize ?? 256,
    guestAddress: o.guestAddress,
    guestMac: o.guestMac ?? '52:54:00:12:34:56',
  };
  const plan = planGuestNet(common.queueSize, 2048, tap.hdrBytes, true);
  const memory = new SharedArrayBuffer(plan.totalBytes);
  const url = new URL('./tap-worker.js', import.meta.url);
  const guestReady = new Int32Array(new SharedArrayBuffer(4));
  const guest = new Worker(url, { workerData: { ...common, role: 'guest', memory, plan, ready: guestReady.buffer } });
  const host = new Worker(url, { workerData: { ...common, role: 'host', memory, plan, tapFd: tap.fd } });
  const results = new Map<string, unknown>();
  const done = (w: Worker, role: string): Promise<void> =>
    new Promise((resolve, reject) => {
      w.on('message', (m: unknown) => results.set(role, m));
      w.on('error', reject);
      w.on('exit', () => resolve());
    });
  const finished = Promise.all([done(guest, 'guest'), done(host, 'host')]);
  finished.catch(() => {
    Atomics.store(stop, 0, 1); // one side failed: stop the other (pairs with the workers' loads)
  });
  return {
    name: tap.name,
    features,
    hdrBytes: tap.hdrBytes,
    offloadFlags: tap.offloadFlags,
    async stop(): Promise<TapDemoStats> {
      Atomics.store(stop, 0, 1); // pairs with Atomics.load in both worker loops
      io.eventfdWrite(kickFd, 1);
      io.eventfdWrite(callFd, 1);
      try {
        await finished;
      } finally {
        tap.close();
        io.close(kickFd);
        io.close(callFd);
      }
      const h = results.get('host') as { device: TapDemoStats['device'] };
      const g = results.get('guest') as { guest: TapDemoStats['guest']; responder: ResponderStats };
      return { device: h.device, guest: g.guest, responder: g.responder };
    },
  };
}
