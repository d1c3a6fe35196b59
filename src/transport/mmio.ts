// The virtio-mmio transport (virtio 1.2 §4.2, version 2): the register file an emulator maps at
// a guest-physical window through read(offset, size) / write(offset, value, size), the device
// status state machine (§2.1, §3.1.1), feature negotiation with its selectors (§2.2), per-queue
// setup registers, QueueNotify, the interrupt status / acknowledge pair, config generation and
// the device-specific configuration space at 0x100. Device work goes to a DeviceRunner (inline
// or on a worker); this file never touches ring memory.
//
// Guest accesses are untrusted: a wrong width, a misaligned offset, a write to a read-only
// register, queue setup while the queue is ready or after DRIVER_OK, a bad ring address — each
// is ignored (reads return 0), counted under a stable code and reported to an optional hook.
// Nothing a driver writes can make read() or write() throw.
// Runs in browser Web Workers: no `node:` imports.

import { GuestMemoryError, type GuestMemory } from '../memory/index.js';
import { PACKED_EVENT_AREA_BYTES, availRingBytes, descTableBytes, isValidPackedQueueSize, isValidQueueSize, packedRingBytes, ringLayoutOf, usedRingBytes } from '../virtqueue/index.js';
import { VirtioF } from '../net/features.js';
import type { ActivationPlan, BackendSnapshot, QueueConfig, VirtioDeviceFrontend } from './device.js';
import type { DeviceRunner } from './runner.js';
import { DEFAULT_VENDOR_ID, INTERRUPT_MASK, Interrupt, MMIO_CONFIG_OFFSET, MMIO_MAGIC, MMIO_VERSION, READABLE, Reg, Status, WRITABLE } from './regs.js';
import { TransportError } from './errors.js';

const TWO_POW_32 = 0x1_0000_0000;
/** More queues than QueueSel can name in a 32-bit notify mask would not fit DeviceRunner.notify. */
export const MAX_MMIO_QUEUES = 32;

/** Why an access was ignored (stable codes for programs; counted in `issues`). */
export type MmioIssueCode =
  | 'bad-width' // control register access not 32 bits wide (§4.2.2.2), or config access not 1/2/4
  | 'unaligned' // offset not a multiple of the access width
  | 'out-of-range' // no register at this offset, or past the end of the config space
  | 'bad-value' // a written value that is not a number (a bigint, a symbol): the caller's bug, ignored
  | 'read-only' // write to a register of direction R
  | 'write-only' // read of a register of direction W (returns 0)
  | 'queue-not-available' // QueueSel names a queue the device does not have
  | 'queue-locked' // queue setup register written while QueueReady is 1 (§4.2.2.2)
  | 'bad-queue-setup' // QueueReady=1 with a size or ring address the device cannot use
  | 'setup-after-driver-ok' // queue setup after DRIVER_OK (§3.1.1: setup precedes DRIVER_OK)
  | 'status-cleared' // a status write that clears a bit other than by reset (§2.1.2)
  | 'status-order' // a status bit set before the bits §3.1.1 puts before it
  | 'features-locked' // DriverFeatures written after FEATURES_OK (§3.1.1 step 5)
  | 'features-refused' // FEATURES_OK refused: the driver's subset is not acceptable (§2.2.2)
  | 'notify-before-driver-ok' // QueueNotify before DRIVER_OK (§3.1.1)
  | 'notify-bad-queue' // QueueNotify for a queue that does not exist or is not ready
  | 'not-negotiated' // QueueReset without VIRTIO_F_RING_RESET
  | 'config-read-only' // write to a read-only config field
  | 'reset-in-progress' // status written while a reset is still completing on the device thread
  | 'queue-stopped' // QueueReady=0 on a live queue after DRIVER_OK: the device stopped (DEVICE_NEEDS_RESET)
  | 'device-failed'; // the runner could not reach the device (a dead worker): DEVICE_NEEDS_RESET

export interface MmioIssue {
  code: MmioIssueCode;
  offset: number;
  size: number;
  value?: number;
  detail?: string;
}

export interface MmioTransportOptions {
  /** Guest memory (the emulator's RAM): used to validate ring addresses at QueueReady. */
  mem: GuestMemory;
  device: VirtioDeviceFrontend;
  runner: DeviceRunner;
  vendorId?: number;
  /** The interrupt line: called with true when InterruptStatus becomes non-zero, false when it clears. */
  onInterrupt?: (asserted: boolean) => void;
  /** Every ignored access, for logging ("Driver bug:" in v86's terms). */
  onIssue?: (issue: MmioIssue) => void;
}

interface QueueRegs {
  num: number;
  ready: boolean;
  descLo: number;
  descHi: number;
  driverLo: number;
  driverHi: number;
  deviceLo: number;
  deviceHi: number;
}

/** The plain-object snapshot of the whole device (transport registers + backend state). */
export interface MmioSnapshot {
  format: 'virtq-mmio';
  version: 1;
  deviceId: number;
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeaturesHex: string;
  queueSel: number;
  shmSel: number;
  queues: QueueRegs[];
  interruptStatus: number;
  needsReset: boolean;
  configGeneration: number;
  config: unknown;
  backend: BackendSnapshot | null;
}

export class MmioTransport {
  readonly mem: GuestMemory;
  readonly device: VirtioDeviceFrontend;
  readonly runner: DeviceRunner;
  readonly vendorId: number;
  /** Ignored accesses by code. */
  readonly issues: Partial<Record<MmioIssueCode, number>> = {};
  lastIssue: MmioIssue | null = null;
  /** Why FEATURES_OK was last refused, or why a queue could not be made ready. */
  lastRefusal: string | null = null;
  onInterrupt: ((asserted: boolean) => void) | null;
  onIssue: ((issue: MmioIssue) => void) | null;

  private statusValue = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private shmSel = 0;
  private queues: QueueRegs[];
  private generation = 0;
  private lineAsserted = false;
  // Status reads report the pre-reset value until the device thread confirms the reset (§2.4.2:
  // the driver considers a reset complete when it reads status as 0).
  private resetPending = false;
  private statusBeforeReset = 0;

  constructor(opts: MmioTransportOptions) {
    const d = opts.device;
    if (!Number.isInteger(d.deviceId) || d.deviceId <= 0) throw new TransportError('bad-device', `device id ${d.deviceId} (0 is a placeholder, §4.2.2)`);
    if (d.queueMaxSizes.length > MAX_MMIO_QUEUES) throw new TransportError('bad-device', `${d.queueMaxSizes.length} queues, at most ${MAX_MMIO_QUEUES}`);
    for (const m of d.queueMaxSizes) {
      if (!isValidQueueSize(m)) throw new TransportError('bad-device', `queue max size ${m} is not a power of 2 in [1, 32768]`);
    }
    if ((d.offeredFeatures & VirtioF.VERSION_1) === 0n) throw new TransportError('bad-device', 'a version 2 virtio-mmio device must offer VIRTIO_F_VERSION_1');
    this.mem = opts.mem;
    this.device = d;
    this.runner = opts.runner;
    this.vendorId = opts.vendorId ?? DEFAULT_VENDOR_ID;
    this.onInterrupt = opts.onInterrupt ?? null;
    this.onIssue = opts.onIssue ?? null;
    this.queues = d.queueMaxSizes.map((m) => MmioTransport.freshQueue(m));
    this.runner.onSignal = () => this.updateLine();
  }

  private static freshQueue(max: number): QueueRegs {
    // QueueNum starts at the maximum, like PCI's queue_size, for drivers that never write it.
    return { num: max, ready: false, descLo: 0, descHi: 0, driverLo: 0, driverHi: 0, deviceLo: 0, deviceHi: 0 };
  }

  // ---------------------------------------------------------------- public face

  /** Device status as the driver reads it (DEVICE_NEEDS_RESET included). */
  get status(): number {
    if (this.resetPending && !this.completeReset()) return this.statusBeforeReset;
    return this.statusValue | (this.runner.signals.needsReset ? Status.DEVICE_NEEDS_RESET : 0);
  }
  /** The features the driver accepted and the device took at FEATURES_OK (0n before). */
  get negotiatedFeatures(): bigint {
    return this.statusValue & Status.FEATURES_OK ? this.driverFeatures : 0n;
  }
  get configGeneration(): number {
    return this.generation;
  }
  /** The interrupt line's level (InterruptStatus ≠ 0), for emulators that poll. */
  get interruptAsserted(): boolean {
    return this.runner.signals.interruptStatus !== 0;
  }
  /** Total ignored accesses. */
  get issueCount(): number {
    let n = 0;
    for (const v of Object.values(this.issues)) n += v ?? 0;
    return n;
  }

  /** The device changed its configuration space: new generation, and a config interrupt after DRIVER_OK (§2.5.1, §4.2.2). */
  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    if (this.statusValue & Status.DRIVER_OK) {
      this.runner.signals.raise(Interrupt.CONFIG_CHANGE);
      this.updateLine();
    }
  }

  /** Re-reads the ISR and drives the interrupt line (the runner calls it; emulators may too). */
  updateLine(): void {
    const asserted = this.runner.signals.interruptStatus !== 0;
    if (asserted !== this.lineAsserted) {
      this.lineAsserted = asserted;
      this.onInterrupt?.(asserted);
    }
  }

  /** A guest read of `size` bytes at `offset` in the MMIO window. Never throws. */
  read(offset: number, size: number): number {
    if (!Number.isInteger(offset) || offset < 0) return this.issue('out-of-range', offset, size);
    if (offset >= MMIO_CONFIG_OFFSET) return this.readConfig(offset - MMIO_CONFIG_OFFSET, size);
    if (size !== 4) return this.issue('bad-width', offset, size);
    if (offset % 4 !== 0) return this.issue('unaligned', offset, size);
    if (!READABLE.has(offset)) return this.issue(WRITABLE.has(offset) ? 'write-only' : 'out-of-range', offset, size);
    return this.readReg(offset) >>> 0;
  }

  /** A guest write of `size` bytes at `offset` in the MMIO window. Never throws. */
  write(offset: number, value: number, size: number): void {
    if (typeof value !== 'number') {
      // `value >>> 0` would throw a TypeError on a bigint; the contract is to ignore and count.
      this.issue('bad-value', typeof offset === 'number' ? offset : -1, typeof size === 'number' ? size : 0, undefined, `value of type ${typeof value}`);
      return;
    }
    if (!Number.isInteger(offset) || offset < 0) {
      this.issue('out-of-range', offset, size, value);
      return;
    }
    if (offset >= MMIO_CONFIG_OFFSET) {
      this.writeConfig(offset - MMIO_CONFIG_OFFSET, value, size);
      return;
    }
    if (size !== 4) {
      this.issue('bad-width', offset, size, value);
      return;
    }
    if (offset % 4 !== 0) {
      this.issue('unaligned', offset, size, value);
      return;
    }
    if (!WRITABLE.has(offset)) {
      this.issue(READABLE.has(offset) ? 'read-only' : 'out-of-range', offset, size, value);
      return;
    }
    this.writeReg(offset, value >>> 0);
  }

  /**
   * The whole device as a plain object (JSON-safe). Call it while the guest CPU is stopped. With
   * a worker runner it waits for the device thread to finish its current pass. The backend then
   * stays paused so nothing changes after the snapshot: call resume() to go on, or close the
   * runner when the snapshot is moving elsewhere.
   */
  async save(): Promise<MmioSnapshot> {
    const live = (this.statusValue & Status.DRIVER_OK) !== 0 && !this.runner.signals.needsReset;
    const backend = live ? await this.runner.save() : null;
    return {
      format: 'virtq-mmio',
      version: 1,
      deviceId: this.device.deviceId,
      status: this.statusValue,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeaturesHex: '0x' + this.driverFeatures.toString(16),
      queueSel: this.queueSel,
      shmSel: this.shmSel,
      queues: this.queues.map((q) => ({ ...q })),
      interruptStatus: this.runner.signals.interruptStatus,
      needsReset: this.runner.signals.needsReset,
      configGeneration: this.generation,
      config: this.device.saveConfig ? this.device.saveConfig() : null,
      backend,
    };
  }

  /** Ends the pause that save() started. */
  resume(): void {
    this.runner.resume();
  }

  /**
   * A transport rebuilt from a snapshot around a fresh runner and frontend of the same device
   * kind, on the same guest memory contents. Resumes the backend when the snapshot was live.
   */
  static restore(snapshot: MmioSnapshot, opts: MmioTransportOptions): MmioTransport {
    if (snapshot.format !== 'virtq-mmio' || snapshot.version !== 1) throw new TransportError('bad-snapshot', `unknown snapshot format ${String(snapshot.format)} v${String(snapshot.version)}`);
    if (snapshot.deviceId !== opts.device.deviceId) throw new TransportError('bad-snapshot', `snapshot is of device id ${snapshot.deviceId}, not ${opts.device.deviceId}`);
    if (snapshot.queues.length !== opts.device.queueMaxSizes.length) throw new TransportError('bad-snapshot', `snapshot has ${snapshot.queues.length} queues, device ${opts.device.queueMaxSizes.length}`);
    const t = new MmioTransport(opts);
    t.statusValue = snapshot.status;
    t.deviceFeaturesSel = snapshot.deviceFeaturesSel;
    t.driverFeaturesSel = snapshot.driverFeaturesSel;
    t.driverFeatures = BigInt(snapshot.driverFeaturesHex);
    t.queueSel = snapshot.queueSel;
    t.shmSel = snapshot.shmSel;
    t.queues = snapshot.queues.map((q) => ({ ...q }));
    t.generation = snapshot.configGeneration;
    if (snapshot.config !== null && opts.device.restoreConfig) opts.device.restoreConfig(snapshot.config);
    t.runner.signals.set(snapshot.interruptStatus, snapshot.needsReset);
    if ((snapshot.status & Status.DRIVER_OK) !== 0 && !snapshot.needsReset) {
      const plan = t.activationPlan();
      if (snapshot.backend) plan.restore = snapshot.backend;
      t.runner.activate(plan);
    }
    t.updateLine();
    return t;
  }

  // ---------------------------------------------------------------- registers

  private readReg(offset: number): number {
    const q = this.queues[this.queueSel];
    switch (offset) {
      case Reg.MagicValue:
        return MMIO_MAGIC;
      case Reg.Version:
        return MMIO_VERSION;
      case Reg.DeviceID:
        return this.device.deviceId;
      case Reg.VendorID:
        return this.vendorId;
      case Reg.DeviceFeatures:
        // Bits sel·32 … sel·32+31 (§4.2.2); selectors past the offered bits read 0.
        return this.deviceFeaturesSel > 8 ? 0 : Number((this.device.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case Reg.QueueNumMax:
        return q === undefined ? 0 : this.device.queueMaxSizes[this.queueSel]!; // 0: queue not available
      case Reg.QueueReady:
        return q?.ready ? 1 : 0;
      case Reg.InterruptStatus:
        return this.runner.signals.interruptStatus & INTERRUPT_MASK;
      case Reg.Status:
        return this.status;
      case Reg.SHMLenLow:
      case Reg.SHMLenHigh:
      case Reg.SHMBaseLow:
      case Reg.SHMBaseHigh:
        // No shared memory regions: length -1 and base all-ones for every id (§4.2.2).
        return 0xffff_ffff;
      case Reg.QueueReset:
        // VIRTIO_F_RING_RESET is never offered; the register reads 0.
        return 0;
      case Reg.ConfigGeneration:
        return this.generation;
      default:
        return 0;
    }
  }

  private writeReg(offset: number, value: number): void {
    switch (offset) {
      case Reg.DeviceFeaturesSel:
        this.deviceFeaturesSel = value;
        return;
      case Reg.DriverFeaturesSel:
        this.driverFeaturesSel = value;
        return;
      case Reg.DriverFeatures:
        this.writeDriverFeatures(value);
        return;
      case Reg.QueueSel:
        this.queueSel = value;
        return;
      case Reg.QueueNum:
      case Reg.QueueDescLow:
      case Reg.QueueDescHigh:
      case Reg.QueueDriverLow:
      case Reg.QueueDriverHigh:
      case Reg.QueueDeviceLow:
      case Reg.QueueDeviceHigh:
        this.writeQueueSetup(offset, value);
        return;
      case Reg.QueueReady:
        this.writeQueueReady(value);
        return;
      case Reg.QueueNotify:
        this.writeNotify(value);
        return;
      case Reg.InterruptACK:
        // Undefined bits are ignored (§4.2.2.2 says the driver must not set them).
        this.runner.signals.ack(value & INTERRUPT_MASK);
        this.updateLine();
        return;
      case Reg.Status:
        this.writeStatus(value);
        return;
      case Reg.SHMSel:
        this.shmSel = value;
        return;
      case Reg.QueueReset:
        this.issue('not-negotiated', offset, 4, value, 'VIRTIO_F_RING_RESET is not offered');
        return;
    }
  }

  private writeDriverFeatures(value: number): void {
    if (this.statusValue & Status.FEATURES_OK) {
      this.issue('features-locked', Reg.DriverFeatures, 4, value, 'DriverFeatures written after FEATURES_OK');
      return;
    }
    if (this.driverFeaturesSel > 8) return; // no feature bits that high exist; nothing to keep
    const shift = BigInt(32 * this.driverFeaturesSel);
    const mask = 0xffff_ffffn << shift;
    this.driverFeatures = (this.driverFeatures & ~mask) | (BigInt(value >>> 0) << shift);
  }

  private selectedQueue(offset: number, value: number): QueueRegs | null {
    const q = this.queues[this.queueSel];
    if (q === undefined) {
      this.issue('queue-not-available', offset, 4, value, `QueueSel ${this.queueSel}, device has ${this.queues.length} queues`);
      return null;
    }
    return q;
  }

  private writeQueueSetup(offset: number, value: number): void {
    const q = this.selectedQueue(offset, value);
    if (q === null) return;
    if (this.statusValue & Status.DRIVER_OK) {
      this.issue('setup-after-driver-ok', offset, 4, value, `queue ${this.queueSel}`);
      return;
    }
    if (q.ready) {
      this.issue('queue-locked', offset, 4, value, `queue ${this.queueSel} is ready`);
      return;
    }
    switch (offset) {
      case Reg.QueueNum:
        q.num = value;
        return;
      case Reg.QueueDescLow:
        q.descLo = value;
        return;
      case Reg.QueueDescHigh:
        q.descHi = value;
        return;
      case Reg.QueueDriverLow:
        q.driverLo = value;
        return;
      case Reg.QueueDriverHigh:
        q.driverHi = value;
        return;
      case Reg.QueueDeviceLow:
        q.deviceLo = value;
        return;
      case Reg.QueueDeviceHigh:
        q.deviceHi = value;
        return;
    }
  }

  private writeQueueReady(value: number): void {
    const q = this.selectedQueue(Reg.QueueReady, value);
    if (q === null) return;
    if (this.statusValue & Status.DRIVER_OK) {
      if ((value & 1) === 0 && q.ready) {
        this.stopQueueAfterDriverOk(q);
        return;
      }
      this.issue('setup-after-driver-ok', Reg.QueueReady, 4, value, `queue ${this.queueSel}`);
      return;
    }
    if ((value & 1) === 0) {
      q.ready = false;
      return;
    }
    if (q.ready) return;
    const why = this.queueProblem(this.queueSel, q);
    if (why !== null) {
      this.lastRefusal = why;
      this.issue('bad-queue-setup', Reg.QueueReady, 4, value, why);
      return; // QueueReady keeps reading 0: the driver's read-back shows the refusal
    }
    q.ready = true;
  }

  /**
   * QueueReady=0 written to a live queue after DRIVER_OK. §4.2.2: "Reading from this register
   * returns the last value written to it", and a driver tears a queue down by writing 0 and
   * reading it back (Linux's vm_del_vq warns if it still reads 1): so the queue reads 0, its
   * notifications are refused, and the device stops consuming it before the write returns —
   * runner.reset() returns once the backend no longer touches guest memory (a worker acks it).
   * The net device serves its queues as one unit (no VIRTIO_F_RING_RESET, §2.6.1), so it stops
   * whole and sets DEVICE_NEEDS_RESET with a configuration change notification (§2.1.2): the
   * driver resets it before using it again. Counted as 'queue-stopped'.
   */
  private stopQueueAfterDriverOk(q: QueueRegs): void {
    q.ready = false;
    const why = `queue ${this.queueSel} made not ready (QueueReady=0) after DRIVER_OK: the device stopped and needs a reset`;
    this.issue('queue-stopped', Reg.QueueReady, 4, 0, why);
    if (this.runner.signals.needsReset) return; // already stopped
    this.callRunner(Reg.QueueReady, () => {
      if (!this.runner.reset()) throw new TransportError('worker-failed', 'the device did not acknowledge the stop in time');
    });
    this.runner.signals.setNeedsReset();
    this.updateLine();
  }

  /** Why the device cannot run queue `index` as configured, or null (§2.7 sizes and alignment). */
  private queueProblem(index: number, q: QueueRegs): string | null {
    const max = this.device.queueMaxSizes[index]!;
    // VIRTIO_F_RING_PACKED (negotiated at FEATURES_OK, before any QueueReady): the areas are the
    // descriptor ring and the two event suppression structures, and any size fits (§2.8).
    const packed = (this.driverFeatures & VirtioF.RING_PACKED) !== 0n;
    if (packed) {
      if (!isValidPackedQueueSize(q.num) || q.num > max) return `queue ${index}: packed size ${q.num} is not in [1, QueueNumMax ${max}]`;
    } else if (!isValidQueueSize(q.num) || q.num > max) return `queue ${index}: size ${q.num} is not a power of 2 in [1, QueueNumMax ${max}]`;
    const areas: [string, number, number, number][] = packed
      ? [
          ['descriptor ring', q.descLo, q.descHi, packedRingBytes(q.num)],
          ['driver event suppression area', q.driverLo, q.driverHi, PACKED_EVENT_AREA_BYTES],
          ['device event suppression area', q.deviceLo, q.deviceHi, PACKED_EVENT_AREA_BYTES],
        ]
      : [
          ['descriptor area', q.descLo, q.descHi, descTableBytes(q.num)],
          ['driver area', q.driverLo, q.driverHi, availRingBytes(q.num)],
          ['device area', q.deviceLo, q.deviceHi, usedRingBytes(q.num)],
        ];
    const addrs: number[] = [];
    for (const [name, lo, hi, bytes] of areas) {
      if (hi >= 0x20_0000) return `queue ${index}: ${name} address beyond 2^53`;
      const addr = hi * TWO_POW_32 + lo;
      try {
        // The device keeps one view per area: the area must lie in one buffer (it may cross a
        // boundary between adjacent regions of that buffer). Refused here, not at DRIVER_OK.
        this.mem.bytes(addr, bytes);
      } catch (e) {
        return `queue ${index}: ${name} [0x${addr.toString(16)}, +${bytes}) ${e instanceof GuestMemoryError && e.code === 'split-view' ? 'spans two regions backed by different buffers (one view per ring area)' : 'is not in guest memory'}`;
      }
      addrs.push(addr);
    }
    try {
      ringLayoutOf(packed ? 'packed' : 'split', q.num, addrs[0]!, addrs[1]!, addrs[2]!, index);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    return null;
  }

  private writeNotify(value: number): void {
    // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index (§4.2.3.3).
    const index = value & 0xffff;
    if ((this.statusValue & Status.DRIVER_OK) === 0) {
      this.issue('notify-before-driver-ok', Reg.QueueNotify, 4, value);
      return;
    }
    const q = this.queues[index];
    if (q === undefined || !q.ready) {
      this.issue('notify-bad-queue', Reg.QueueNotify, 4, value, `queue ${index} ${q === undefined ? 'does not exist' : 'is not ready'}`);
      return;
    }
    if (this.runner.signals.needsReset) return; // the device stopped; the driver must reset it
    this.callRunner(Reg.QueueNotify, () => this.runner.notify(index));
  }

  private writeStatus(value: number): void {
    if (this.resetPending && !this.completeReset()) {
      this.issue('reset-in-progress', Reg.Status, 4, value);
      return;
    }
    if (value === 0) {
      this.reset();
      return;
    }
    const old = this.statusValue;
    const v = value & 0xff & ~Status.DEVICE_NEEDS_RESET; // NEEDS_RESET is the device's to set
    if (old & ~v) {
      this.issue('status-cleared', Reg.Status, 4, value, `0x${old.toString(16)} → 0x${v.toString(16)}: only a reset clears status bits (§2.1.2)`);
      return;
    }
    const added = v & ~old;
    // §3.1.1: ACKNOWLEDGE, then DRIVER, then FEATURES_OK, then DRIVER_OK (FAILED any time).
    const order: [number, number][] = [
      [Status.DRIVER, Status.ACKNOWLEDGE],
      [Status.FEATURES_OK, Status.DRIVER],
      [Status.DRIVER_OK, Status.FEATURES_OK],
    ];
    for (const [bit, needs] of order) {
      if (added & bit && !(v & needs)) {
        this.issue('status-order', Reg.Status, 4, value, `status bit 0x${bit.toString(16)} set before 0x${needs.toString(16)}`);
        return;
      }
    }
    let next = v;
    if (added & Status.FEATURES_OK) {
      const why = this.featuresProblem(this.driverFeatures);
      if (why !== null) {
        // The device refuses by leaving FEATURES_OK clear; the driver re-reads status (§3.1.1 step 6).
        next &= ~(Status.FEATURES_OK | Status.DRIVER_OK);
        this.lastRefusal = why;
        this.issue('features-refused', Reg.Status, 4, value, why);
      }
    }
    this.statusValue = next;
    if (next & Status.DRIVER_OK && !(old & Status.DRIVER_OK)) this.callRunner(Reg.Status, () => this.runner.activate(this.activationPlan()));
  }

  /** Runs a runner operation; a failure (a worker that died or stopped answering) marks the device broken instead of throwing into the emulator. */
  private callRunner(offset: number, op: () => void): boolean {
    try {
      op();
      return true;
    } catch (e) {
      this.issue('device-failed', offset, 4, undefined, e instanceof Error ? e.message : String(e));
      this.runner.signals.setNeedsReset();
      this.updateLine();
      return false;
    }
  }

  private featuresProblem(accepted: bigint): string | null {
    const extra = accepted & ~this.device.offeredFeatures;
    if (extra !== 0n) return `driver accepted features the device did not offer (0x${extra.toString(16)}), §2.2.1`;
    if ((accepted & VirtioF.VERSION_1) === 0n) return 'driver did not accept VIRTIO_F_VERSION_1, which a version 2 device requires (§6.1)';
    return this.device.checkFeatures(accepted);
  }

  private activationPlan(): ActivationPlan {
    const queues: (QueueConfig | null)[] = this.queues.map((q, index) =>
      q.ready
        ? { index, size: q.num, descAddr: q.descHi * TWO_POW_32 + q.descLo, driverAddr: q.driverHi * TWO_POW_32 + q.driverLo, deviceAddr: q.deviceHi * TWO_POW_32 + q.deviceLo }
        : null,
    );
    return { featuresHex: '0x' + this.driverFeatures.toString(16), queues };
  }

  /** Device reset (§2.4, §4.2.2.1): status, features, queues and InterruptStatus back to 0. */
  private reset(): void {
    const before = this.status;
    let done = false;
    this.callRunner(Reg.Status, () => {
      done = this.runner.reset();
    });
    this.statusValue = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.shmSel = 0;
    this.queues = this.device.queueMaxSizes.map((m) => MmioTransport.freshQueue(m));
    this.device.resetConfig?.();
    this.runner.signals.clear();
    this.updateLine();
    if (!done) {
      this.resetPending = true;
      this.statusBeforeReset = before;
    }
  }

  private completeReset(): boolean {
    if (!this.runner.resetDone()) return false;
    this.resetPending = false;
    // Anything the device thread raised while stopping belongs to the old incarnation.
    this.runner.signals.clear();
    this.updateLine();
    return true;
  }

  // ---------------------------------------------------------------- config space

  private configAccess(offset: number, size: number, value?: number): boolean {
    const abs = offset + MMIO_CONFIG_OFFSET;
    if (size !== 1 && size !== 2 && size !== 4) {
      this.issue('bad-width', abs, size, value);
      return false;
    }
    if (offset % size !== 0) {
      this.issue('unaligned', abs, size, value);
      return false;
    }
    if (offset + size > this.device.configBytes) {
      this.issue('out-of-range', abs, size, value, `config space is ${this.device.configBytes} bytes`);
      return false;
    }
    return true;
  }

  private readConfig(offset: number, size: number): number {
    if (!this.configAccess(offset, size)) return 0;
    return this.device.readConfig(offset, size as 1 | 2 | 4) >>> 0;
  }

  private writeConfig(offset: number, value: number, size: number): void {
    if (!this.configAccess(offset, size, value)) return;
    if (!this.device.writeConfig(offset, value >>> 0, size as 1 | 2 | 4)) {
      this.issue('config-read-only', offset + MMIO_CONFIG_OFFSET, size, value);
    }
  }

  private issue(code: MmioIssueCode, offset: number, size: number, value?: number, detail?: string): 0 {
    this.issues[code] = (this.issues[code] ?? 0) + 1;
    const rec: MmioIssue = { code, offset, size };
    if (value !== undefined) rec.value = value;
    if (detail !== undefined) rec.detail = detail;
    this.lastIssue = rec;
    this.onIssue?.(rec);
    return 0;
  }
}
