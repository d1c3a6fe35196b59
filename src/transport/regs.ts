// virtio-mmio register map (virtio 1.2 §4.2.2, version 2, no legacy registers), device status
// bits (§2.1) and interrupt status bits (§4.2.2). Constants only: the register file's behaviour
// lives in mmio.ts.

/** "virt" read as a little-endian u32 (§4.2.2: MagicValue). */
export const MMIO_MAGIC = 0x74726976;
/** Version 2: the virtio 1.x (non-legacy) register layout (§4.2.2). */
export const MMIO_VERSION = 2;
/** Device-specific configuration space starts here (§4.2.2: Config, 0x100+). */
export const MMIO_CONFIG_OFFSET = 0x100;
/** Size of the window this transport decodes before the config space's own end. */
export const MMIO_WINDOW_BYTES = 0x200;

/** Register offsets and their direction (R = read-only, W = write-only, RW), §4.2.2 table. */
export const Reg = {
  MagicValue: 0x000, // R
  Version: 0x004, // R
  DeviceID: 0x008, // R
  VendorID: 0x00c, // R
  DeviceFeatures: 0x010, // R
  DeviceFeaturesSel: 0x014, // W
  DriverFeatures: 0x020, // W
  DriverFeaturesSel: 0x024, // W
  QueueSel: 0x030, // W
  QueueNumMax: 0x034, // R
  QueueNum: 0x038, // W
  QueueReady: 0x044, // RW
  QueueNotify: 0x050, // W
  InterruptStatus: 0x060, // R
  InterruptACK: 0x064, // W
  Status: 0x070, // RW
  QueueDescLow: 0x080, // W
  QueueDescHigh: 0x084, // W
  QueueDriverLow: 0x090, // W
  QueueDriverHigh: 0x094, // W
  QueueDeviceLow: 0x0a0, // W
  QueueDeviceHigh: 0x0a4, // W
  SHMSel: 0x0ac, // W
  SHMLenLow: 0x0b0, // R
  SHMLenHigh: 0x0b4, // R
  SHMBaseLow: 0x0b8, // R
  SHMBaseHigh: 0x0bc, // R
  QueueReset: 0x0c0, // RW, only with VIRTIO_F_RING_RESET
  ConfigGeneration: 0x0fc, // R
} as const;

export type RegName = keyof typeof Reg;

/** Registers the driver may read. */
export const READABLE: ReadonlySet<number> = new Set<number>([
  Reg.MagicValue, Reg.Version, Reg.DeviceID, Reg.VendorID, Reg.DeviceFeatures, Reg.QueueNumMax,
  Reg.QueueReady, Reg.InterruptStatus, Reg.Status, Reg.SHMLenLow, Reg.SHMLenHigh, Reg.SHMBaseLow,
  Reg.SHMBaseHigh, Reg.QueueReset, Reg.ConfigGeneration,
]);

/** Registers the driver may write. */
export const WRITABLE: ReadonlySet<number> = new Set<number>([
  Reg.DeviceFeaturesSel, Reg.DriverFeatures, Reg.DriverFeaturesSel, Reg.QueueSel, Reg.QueueNum,
  Reg.QueueReady, Reg.QueueNotify, Reg.InterruptACK, Reg.Status, Reg.QueueDescLow, Reg.QueueDescHigh,
  Reg.QueueDriverLow, Reg.QueueDriverHigh, Reg.QueueDeviceLow, Reg.QueueDeviceHigh, Reg.SHMSel,
  Reg.QueueReset,
]);

/** Device status bits (virtio 1.2 §2.1). */
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** InterruptStatus / InterruptACK bits (§4.2.2). */
export const Interrupt = {
  USED_BUFFER: 1,
  CONFIG_CHANGE: 2,
} as const;
export const INTERRUPT_MASK = Interrupt.USED_BUFFER | Interrupt.CONFIG_CHANGE;

/** Virtio device IDs used here (virtio 1.2 §5). */
export const DeviceId = {
  NET: 1,
  CONSOLE: 3,
} as const;

/** Vendor ID this transport reports unless told otherwise ("VIRQ" as a LE u32). */
export const DEFAULT_VENDOR_ID = 0x51524956;

/** "ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK" for logs. */
export function describeStatus(status: number): string {
  if (status === 0) return '0 (reset)';
  const names = Object.entries(Status).filter(([, bit]) => status & bit).map(([n]) => n);
  return names.join('|');
}
