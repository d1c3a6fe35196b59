// Public face of virtq/v86: virtq as the network path of a v86 emulator (issue 21).
export { V86NetAdapter, V86_DRIVER_FEATURES } from './adapter.js';
export type { V86Like, V86NetOptions, V86NetStats } from './adapter.js';
export { V86AdapterError } from './errors.js';
export type { V86AdapterErrorCode } from './errors.js';
export { V86VirtioPci } from './pci.js';
export type { V86PciOptions, V86Cpu } from './pci.js';
