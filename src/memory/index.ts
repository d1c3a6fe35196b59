// Public face of the guest-memory layer.
export { GuestMemory, addrFromParts } from './guest-memory.js';
export type { RegionSpec, MemoryRegion } from './guest-memory.js';
export { GuestMemoryError, hexAddr } from './errors.js';
export type { GuestMemoryErrorCode } from './errors.js';
export { Arena, BufferPool, type PoolOrder } from './arena.js';
export { copyBytes, COPY_LOOP_MAX_BYTES, BOUNCE_MIN_BYTES, SubarrayCache } from './copy.js';
