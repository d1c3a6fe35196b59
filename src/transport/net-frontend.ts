// The emulator-thread half every virtio-net device model shares: device id 1, the offered
// features, and struct virtio_net_config (virtio 1.2 §5.1.4) as config space — read-only for a
// 1.x driver, with the link state the embedder may flip and that save/restore carries. Runs in
// browser Web Workers: no `node:` imports.

import { NetConfigOffset, NetStatus, encodeNetConfig, type NetConfig } from '../net/config.js';
import { negotiate } from '../net/features.js';
import type { VirtioDeviceFrontend } from './device.js';
import { DeviceId } from './regs.js';

export class NetConfigFrontend implements VirtioDeviceFrontend {
  readonly deviceId = DeviceId.NET;
  readonly queueMaxSizes: readonly number[];
  readonly configBytes: number;
  private readonly config: Uint8Array;
  private readonly view: DataView;

  /**
   * `queueSize` is QueueNumMax of every queue; `queueCount` how many queues the device has (2: one
   * receive/transmit pair; 2N + 1 with N pairs and a control queue, virtio 1.2 §5.1.2).
   */
  constructor(
    readonly offeredFeatures: bigint,
    config: Readonly<NetConfig>,
    queueSize: number,
    /** Bytes of struct virtio_net_config exposed (a device may expose a prefix, §5.1.4). */
    configBytes?: number,
    queueCount = 2,
  ) {
    this.config = encodeNetConfig(config);
    this.configBytes = configBytes ?? this.config.length;
    this.view = new DataView(this.config.buffer, this.config.byteOffset, this.config.byteLength);
    this.queueMaxSizes = new Array<number>(queueCount).fill(queueSize);
  }

  /** FEATURES_OK check: the §5.1.3.1 dependencies (e.g. HOST_TSO4 needs CSUM). */
  checkFeatures(accepted: bigint): string | null {
    const r = negotiate(this.offeredFeatures, accepted);
    return r.ok ? null : r.error.message;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.config[offset]!;
    if (size === 2) return this.view.getUint16(offset, true);
    return this.view.getUint32(offset, true);
  }

  writeConfig(): boolean {
    return false; // every virtio_net_config field is read-only for a 1.x driver (§5.1.4)
  }

  /** Link state in config.status; the caller then calls transport.configChanged(). */
  setLinkUp(up: boolean): void {
    this.view.setUint16(NetConfigOffset.STATUS, up ? NetStatus.LINK_UP : 0, true);
  }

  saveConfig(): unknown {
    return { status: this.view.getUint16(NetConfigOffset.STATUS, true) };
  }

  restoreConfig(state: unknown): void {
    const s = state as { status?: unknown } | null;
    if (s && typeof s.status === 'number') this.view.setUint16(NetConfigOffset.STATUS, s.status & 0xffff, true);
  }
}
