// Device kinds by name, so a worker can rebuild a device's backend (and the emulator thread its
// frontend) from plain data. The one virtio-net device ('virtio-net', virtio-net.ts: NetDevice
// under the DeviceLoop, with a host-stack or loopback port) is registered here; more kinds can
// come from other modules (pass their URLs in the worker init's `modules`).
// Runs in browser Web Workers: no `node:` imports.

import type { VirtioDeviceKind } from './device.js';
import { TransportError } from './errors.js';
import { virtioNetKind } from './virtio-net.js';

const kinds = new Map<string, VirtioDeviceKind<unknown>>();

export function registerDeviceKind<O>(kind: VirtioDeviceKind<O>): void {
  kinds.set(kind.kind, kind as VirtioDeviceKind<unknown>);
}

export function deviceKind(name: string): VirtioDeviceKind<unknown> {
  const k = kinds.get(name);
  if (k === undefined) throw new TransportError('unknown-kind', `no device kind '${name}' (registered: ${[...kinds.keys()].join(', ')})`);
  return k;
}

registerDeviceKind(virtioNetKind);
