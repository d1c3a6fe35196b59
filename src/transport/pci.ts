// The virtio-pci modern transport (virtio 1.2 §4.1) for an emulator's PCI bus: a type-0 PCI
// configuration header (vendor 0x1AF4, device 0x1040 + device id, §4.1.2) with a capability list
// of the four virtio structures (§4.1.4: common configuration, notifications, ISR status and the
// device-specific configuration), all in one BAR, and that BAR's register file through
// read(offset, size) / write(offset, value, size). Interrupts are INTx (no MSI-X capability:
// config_msix_vector and queue_msix_vector read VIRTIO_MSI_NO_VECTOR, §4.1.5.1.2), raised and
// lowered through onInterrupt; reading the ISR status clears it and lowers the line (§4.1.4.5).
//
// The device state machine is not repeated here: every access to the common configuration is
// translated into the equivalent virtio-mmio register access (§4.2.2) of an MmioTransport, which
// owns status, feature negotiation, queue setup and activation, notifications, reset, the
// interrupt status and config generation — one home for those rules, two register layouts. What
// PCI adds and MMIO lacks (read-back of selectors, driver features and queue addresses,
// num_queues, queue_notify_off, 8- and 16-bit fields) is kept in shadows here.
// BAR layout (one I/O or memory BAR of BAR_BYTES):
//   0x000 common configuration (struct virtio_pci_common_cfg, 0x3c bytes, §4.1.4.3)
//   0x040 notifications: queue n at 0x040 + n × NOTIFY_MULTIPLIER (§4.1.4.4)
//   0x080 ISR status (one byte, §4.1.4.5)
//   0x100 device-specific configuration (§4.1.4.6)
// Guest accesses never throw: a wrong width or an offset outside every structure is ignored
// (reads return 0) and counted in `issues`. Runs in browser Web Workers: no `node:` imports.

import type { VirtioDeviceFrontend } from './device.js';
import type { MmioTransport } from './mmio.js';
import { MMIO_CONFIG_OFFSET, Reg } from './regs.js';
import { TransportError } from './errors.js';

export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Size of the BAR holding the four structures (a power of two, as a BAR must be). */
export const PCI_BAR_BYTES = 0x200;
export const PciBarOffset = { COMMON: 0x000, NOTIFY: 0x040, ISR: 0x080, DEVICE: 0x100 } as const;
/** Bytes between two queues' notification addresses (queue_notify_off × this, §4.1.4.4). */
export const NOTIFY_MULTIPLIER = 4;
const COMMON_BYTES = 0x3c;
const NO_VECTOR = 0xffff;

/** virtio_pci_cap cfg_type values (§4.1.4). */
export const PciCapType = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI: 5 } as const;

/** struct virtio_pci_common_cfg field offsets (§4.1.4.3). */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  QUEUE_NOTIFY_DATA: 0x38,
  QUEUE_RESET: 0x3a,
} as const;

/** Widths of the common configuration's fields (a driver accesses each with its own width, §4.1.3.1). */
const FIELD_WIDTH = new Map<number, number>([
  [0x00, 4], [0x04, 4], [0x08, 4], [0x0c, 4], [0x10, 2], [0x12, 2], [0x14, 1], [0x15, 1], [0x16, 2], [0x18, 2], [0x1a, 2], [0x1c, 2], [0x1e, 2],
  [0x20, 4], [0x24, 4], [0x28, 4], [0x2c, 4], [0x30, 4], [0x34, 4], [0x38, 2], [0x3a, 2],
]);
/** Queue address halves: common-cfg offset → the MMIO register it maps to. */
const QUEUE_ADDR_REG = new Map<number, number>([
  [0x20, Reg.QueueDescLow], [0x24, Reg.QueueDescHigh], [0x28, Reg.QueueDriverLow], [0x2c, Reg.QueueDriverHigh], [0x30, Reg.QueueDeviceLow], [0x34, Reg.QueueDeviceHigh],
]);

export type PciIssueCode = 'bad-width' | 'out-of-range' | 'read-only';

export interface VirtioPciOptions {
  /** PCI subsystem id (default: the device id, as for transitional devices; §4.1.2.1 leaves it free). */
  subsystemId?: number;
  /** PCI class code (default: 0x020000 network controller for device id 1, else 0xff0000). */
  classCode?: number;
  /** The BAR's initial base as the embedder maps it (an I/O port base has bit 0 set in the BAR). */
  barBase: number;
  /** The BAR is in I/O space (default true: emulators like v86 map only I/O BARs). */
  io?: boolean;
  /** BAR number (0–5) that holds the structures (default 0). */
  bar?: number;
  /** INTx pin: 1 = INTA (default). */
  interruptPin?: number;
}

/**
 * A virtio device behind virtio-pci modern: the PCI header with its capabilities (configSpace),
 * and the BAR's registers, translated onto an MmioTransport that owns the device's state.
 */
export class VirtioPciTransport {
  readonly issues: Partial<Record<PciIssueCode, number>> = {};
  /** The interrupt line (INTx): true when the ISR status became non-zero, false when reading it cleared it. */
  onInterrupt: ((asserted: boolean) => void) | null = null;
  private deviceFeatureSel = 0;
  private driverFeatureSel = 0;
  private readonly driverFeatures = [0, 0, 0, 0];
  private queueSel = 0;
  private readonly queueSize: number[];
  private readonly queueAddr: number[][];
  private readonly queueVector: number[];
  private configVector = NO_VECTOR;
  private line = false;
  private readonly device: VirtioDeviceFrontend;

  constructor(
    /** The state machine (status, features, queues, notify, ISR) this transport presents over PCI. */
    readonly mmio: MmioTransport,
    private readonly opts: VirtioPciOptions,
  ) {
    this.device = mmio.device;
    const n = this.device.queueMaxSizes.length;
    this.queueSize = [...this.device.queueMaxSizes];
    this.queueAddr = Array.from({ length: n }, () => [0, 0, 0, 0, 0, 0]);
    this.queueVector = new Array<number>(n).fill(NO_VECTOR);
    if (this.device.configBytes > PCI_BAR_BYTES - PciBarOffset.DEVICE) throw new TransportError('bad-device', `config space of ${this.device.configBytes} bytes does not fit the BAR`);
    const bar = opts.bar ?? 0;
    if (!Number.isInteger(bar) || bar < 0 || bar > 5) throw new TransportError('bad-device', `BAR ${bar}: 0–5`);
    // The MMIO transport's line follows InterruptStatus; PCI INTx is level-triggered the same way.
    mmio.onInterrupt = (asserted) => {
      if (asserted !== this.line) {
        this.line = asserted;
        this.onInterrupt?.(asserted);
      }
    };
  }

  /** PCI device id: 0x1040 + the virtio device id (modern-only, §4.1.2). */
  get pciDeviceId(): number {
    return 0x1040 + this.device.deviceId;
  }

  /**
   * The 256-byte PCI configuration space: header (§4.1.2), the BAR, INTx pin, and the capability
   * list at 0x40 with virtio_pci_cap for common, notify (+ notify_off_multiplier), ISR and device
   * configuration (§4.1.4). The embedder's PCI bus serves it (and handles BAR sizing writes).
   */
  configSpace(): Uint8Array {
    const s = new Uint8Array(256);
    const v = new DataView(s.buffer);
    const o = this.opts;
    v.setUint16(0x00, VIRTIO_PCI_VENDOR_ID, true);
    v.setUint16(0x02, this.pciDeviceId, true);
    v.setUint16(0x04, 0x0007, true); // command: I/O, memory, bus master
    v.setUint16(0x06, 0x0010, true); // status: capability list present
    s[0x08] = 0x01; // revision id ≥ 1: a modern-only device (§4.1.2.1)
    const cls = o.classCode ?? (this.device.deviceId === 1 ? 0x020000 : 0xff0000);
    s[0x09] = cls & 0xff;
    s[0x0a] = (cls >> 8) & 0xff;
    s[0x0b] = (cls >> 16) & 0xff;
    const io = o.io ?? true;
    const bar = o.bar ?? 0;
    v.setUint32(0x10 + 4 * bar, io ? (o.barBase & ~3) | 1 : o.barBase & ~0xf, true);
    v.setUint16(0x2c, VIRTIO_PCI_VENDOR_ID, true);
    v.setUint16(0x2e, o.subsystemId ?? this.device.deviceId, true);
    s[0x34] = 0x40; // capabilities pointer
    s[0x3d] = o.interruptPin ?? 1;
    const caps: [number, number, number, number][] = [
      [PciCapType.COMMON, PciBarOffset.COMMON, COMMON_BYTES, 16],
      [PciCapType.NOTIFY, PciBarOffset.NOTIFY, Math.max(2, this.device.queueMaxSizes.length * NOTIFY_MULTIPLIER), 20],
      [PciCapType.ISR, PciBarOffset.ISR, 1, 16],
      [PciCapType.DEVICE, PciBarOffset.DEVICE, Math.max(1, this.device.configBytes), 16],
    ];
    let at = 0x40;
    caps.forEach(([type, offset, length, capLen], i) => {
      const next = i + 1 < caps.length ? at + capLen : 0;
      s[at] = 0x09; // PCI_CAP_ID_VNDR
      s[at + 1] = next;
      s[at + 2] = capLen;
      s[at + 3] = type;
      s[at + 4] = bar;
      v.setUint32(at + 8, offset, true);
      v.setUint32(at + 12, length, true);
      if (type === PciCapType.NOTIFY) v.setUint32(at + 16, NOTIFY_MULTIPLIER, true); // notify_off_multiplier
      at += capLen;
    });
    return s;
  }

  private issue(code: PciIssueCode): void {
    this.issues[code] = (this.issues[code] ?? 0) + 1;
  }

  /** A load of `size` bytes at `offset` in the BAR. */
  read(offset: number, size: number): number {
    if (offset >= PciBarOffset.DEVICE && offset < PciBarOffset.DEVICE + this.device.configBytes) {
      return this.mmio.read(MMIO_CONFIG_OFFSET + offset - PciBarOffset.DEVICE, size);
    }
    if (offset === PciBarOffset.ISR) {
      if (size !== 1) return (this.issue('bad-width'), 0);
      // §4.1.4.5.1: reading the ISR status resets it (and lowers the INTx line).
      const isr = this.mmio.read(Reg.InterruptStatus, 4);
      if (isr !== 0) this.mmio.write(Reg.InterruptACK, isr, 4);
      return isr & 0xff;
    }
    if (offset >= PciBarOffset.NOTIFY && offset < PciBarOffset.ISR) return 0;
    if (offset >= COMMON_BYTES || FIELD_WIDTH.get(offset) !== size) {
      // A 64-bit field read as one u32 at its base offset is fine; anything else is ignored.
      this.issue(offset >= COMMON_BYTES ? 'out-of-range' : 'bad-width');
      return 0;
    }
    const q = this.queueSel;
    const nq = this.device.queueMaxSizes.length;
    switch (offset) {
      case CommonCfg.DEVICE_FEATURE_SELECT:
        return this.deviceFeatureSel;
      case CommonCfg.DEVICE_FEATURE:
        return this.deviceFeatureSel < 2 ? this.mmio.read(Reg.DeviceFeatures, 4) : 0;
      case CommonCfg.DRIVER_FEATURE_SELECT:
        return this.driverFeatureSel;
      case CommonCfg.DRIVER_FEATURE:
        return this.driverFeatures[this.driverFeatureSel] ?? 0;
      case CommonCfg.CONFIG_MSIX_VECTOR:
        return this.configVector;
      case CommonCfg.NUM_QUEUES:
        return nq;
      case CommonCfg.DEVICE_STATUS:
        return this.mmio.read(Reg.Status, 4) & 0xff;
      case CommonCfg.CONFIG_GENERATION:
        return this.mmio.read(Reg.ConfigGeneration, 4) & 0xff;
      case CommonCfg.QUEUE_SELECT:
        return q;
      case CommonCfg.QUEUE_SIZE:
        return q < nq ? this.queueSize[q]! : 0; // 0: the queue is unavailable (§4.1.4.3.2)
      case CommonCfg.QUEUE_MSIX_VECTOR:
        return q < nq ? this.queueVector[q]! : NO_VECTOR;
      case CommonCfg.QUEUE_ENABLE:
        return q < nq ? this.mmio.read(Reg.QueueReady, 4) & 1 : 0;
      case CommonCfg.QUEUE_NOTIFY_OFF:
        return q;
      case CommonCfg.QUEUE_NOTIFY_DATA:
        return q;
      case CommonCfg.QUEUE_RESET:
        return q < nq ? this.mmio.read(Reg.QueueReset, 4) & 1 : 0;
    }
    const half = QUEUE_ADDR_REG.has(offset) ? (offset - CommonCfg.QUEUE_DESC) >> 2 : -1;
    return half >= 0 && q < nq ? this.queueAddr[q]![half]! : 0;
  }

  /** A store of `size` bytes at `offset` in the BAR. */
  write(offset: number, value: number, size: number): void {
    if (offset >= PciBarOffset.DEVICE && offset < PciBarOffset.DEVICE + this.device.configBytes) {
      this.mmio.write(MMIO_CONFIG_OFFSET + offset - PciBarOffset.DEVICE, value, size);
      return;
    }
    if (offset >= PciBarOffset.NOTIFY && offset < PciBarOffset.ISR) {
      // §4.1.4.4: the queue is named by the address (queue_notify_off × multiplier); the value
      // is the queue index too (without VIRTIO_F_NOTIFICATION_DATA, §4.1.5.2).
      const q = (offset - PciBarOffset.NOTIFY) / NOTIFY_MULTIPLIER;
      if (!Number.isInteger(q)) return this.issue('out-of-range');
      this.mmio.write(Reg.QueueNotify, q, 4);
      return;
    }
    if (offset === PciBarOffset.ISR) return this.issue('read-only');
    if (offset >= COMMON_BYTES) return this.issue('out-of-range');
    if (FIELD_WIDTH.get(offset) !== size) return this.issue('bad-width');
    const v = value >>> 0;
    const q = this.queueSel;
    const nq = this.device.queueMaxSizes.length;
    switch (offset) {
      case CommonCfg.DEVICE_FEATURE_SELECT:
        this.deviceFeatureSel = v;
        this.mmio.write(Reg.DeviceFeaturesSel, v, 4);
        return;
      case CommonCfg.DRIVER_FEATURE_SELECT:
        this.driverFeatureSel = v;
        this.mmio.write(Reg.DriverFeaturesSel, v, 4);
        return;
      case CommonCfg.DRIVER_FEATURE:
        if (this.driverFeatureSel < this.driverFeatures.length) this.driverFeatures[this.driverFeatureSel] = v;
        this.mmio.write(Reg.DriverFeatures, v, 4);
        return;
      case CommonCfg.CONFIG_MSIX_VECTOR:
        this.configVector = NO_VECTOR; // no MSI-X: every vector reads back as NO_VECTOR (§4.1.5.1.2)
        return;
      case CommonCfg.DEVICE_STATUS:
        this.mmio.write(Reg.Status, v & 0xff, 4);
        if ((v & 0xff) === 0) this.resetShadows();
        return;
      case CommonCfg.QUEUE_SELECT:
        this.queueSel = v & 0xffff;
        this.mmio.write(Reg.QueueSel, this.queueSel, 4);
        return;
      case CommonCfg.QUEUE_SIZE:
        if (q < nq) {
          this.queueSize[q] = v & 0xffff;
          this.mmio.write(Reg.QueueNum, v & 0xffff, 4);
        }
        return;
      case CommonCfg.QUEUE_MSIX_VECTOR:
        if (q < nq) this.queueVector[q] = NO_VECTOR;
        return;
      case CommonCfg.QUEUE_ENABLE:
        // §4.1.4.3.2: the driver writes 1 only; the MMIO side checks the queue (sizes, addresses).
        // The size goes over first: a PCI driver that keeps the maximum never writes queue_size.
        if (q < nq) {
          if (v & 1) this.mmio.write(Reg.QueueNum, this.queueSize[q]!, 4);
          this.mmio.write(Reg.QueueReady, v & 1, 4);
        }
        return;
      case CommonCfg.QUEUE_RESET:
        if (q < nq) this.mmio.write(Reg.QueueReset, v & 1, 4);
        return;
      case CommonCfg.DEVICE_FEATURE:
      case CommonCfg.NUM_QUEUES:
      case CommonCfg.CONFIG_GENERATION:
      case CommonCfg.QUEUE_NOTIFY_OFF:
      case CommonCfg.QUEUE_NOTIFY_DATA:
        return this.issue('read-only');
    }
    const reg = QUEUE_ADDR_REG.get(offset);
    if (reg !== undefined && q < nq) {
      this.queueAddr[q]![(offset - CommonCfg.QUEUE_DESC) >> 2] = v;
      this.mmio.write(reg, v, 4);
    }
  }

  private resetShadows(): void {
    // §4.1.4.3: a reset returns the queue sizes to their maxima and the selectors to 0.
    this.deviceFeatureSel = 0;
    this.driverFeatureSel = 0;
    this.driverFeatures.fill(0);
    this.queueSel = 0;
    this.device.queueMaxSizes.forEach((m, i) => (this.queueSize[i] = m));
    for (const a of this.queueAddr) a.fill(0);
  }
}
