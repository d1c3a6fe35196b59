// Node only: the device kind 'virtio-net-tap' — the one virtio-net device ('virtio-net': NetDevice
// under the DeviceLoop) with a Linux TAP behind it, for a device worker (import this module in
// the worker: DeviceWorkerInit.modules, or V86NetOptions, which does it for a 'tap' backend).
// The TAP opens on the first DRIVER_OK with the negotiated header layout and offloads, stays
// open across resets (a reset re-negotiates on the same fd, so the interface keeps its addresses
// and routes, as QEMU's tap backend does), and closes when the runner closes. A TAP cannot ring
// the worker's Atomics kick doorbell, so the device loop's sleeps are cut to `pollMs` (the
// option's) to read it.

import { TapDevice } from '../backend/tap.js';
import { TapPort } from '../backend/tap-port.js';
import { loadIo } from '../backend/native.js';
import { registerDeviceKind } from './registry.js';
import { VirtioNetBackend, VirtioNetError, VirtioNetFrontend, type TapBackendOptions, type VirtioNetOptions } from './virtio-net.js';
import type { VirtioDeviceKind } from './device.js';

export const VIRTIO_NET_TAP_KIND = 'virtio-net-tap';

/** VirtioNetBackend whose port is one TAP for the backend's life. */
export class TapNetBackend extends VirtioNetBackend {
  private tap: TapDevice | null = null;
  private tapPort: TapPort | null = null;

  constructor(opts: VirtioNetOptions) {
    const b = opts.backend;
    if (b?.type !== 'tap' || typeof b.name !== 'string' || b.name.length === 0 || b.name.length > 15) {
      throw new VirtioNetError('bad-options', `the '${VIRTIO_NET_TAP_KIND}' kind needs backend { type: 'tap', name } with an interface name of 1..15 characters`);
    }
    const name = (b as TapBackendOptions).name;
    super(opts, (features) => {
      if (this.tap === null) {
        this.tap = TapDevice.open(name, features);
        this.tapPort = new TapPort(loadIo(), this.tap.fd, this.tap.name);
      }
      // Every activation: the header layout and offloads this driver negotiated (TUNSETVNETHDRSZ,
      // TUNSETOFFLOAD).
      this.tapPort!.negotiated(features);
      return this.tapPort!;
    });
  }

  /** The TAP's interface name once open (the kernel may have completed a pattern like vq%d). */
  get tapName(): string | null {
    return this.tap?.name ?? null;
  }

  override close(): void {
    super.close();
    this.tap?.close();
    this.tap = null;
    this.tapPort = null;
  }
}

export const virtioNetTapKind: VirtioDeviceKind<VirtioNetOptions> = {
  kind: VIRTIO_NET_TAP_KIND,
  frontend: (o) => new VirtioNetFrontend(o),
  backend: (o) => new TapNetBackend(o),
};

registerDeviceKind(virtioNetTapKind);
