// Public face of the virtqueue layer: split (§2.7) and packed (§2.8) rings behind one contract.
export { DeviceQueue, DEVICE_QUEUE_STATE_WORDS } from './device-queue.js';
export type { DeviceQueueOptions, DeviceQueueState } from './device-queue.js';
export { DriverQueue } from './driver-queue.js';
export type { DriverQueueOptions, Segment, UsedElem } from './driver-queue.js';
export { DescriptorChain, readFromChain, readChainInto, writeToChain, writeChainFrom, writeChainsFrom } from './chain.js';
export { SplitLayout, isValidQueueSize, descTableBytes, availRingBytes, usedRingBytes, MAX_QUEUE_SIZE, LEGACY_QUEUE_ALIGN } from './layout.js';
export {
  SplitRing,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
} from './split-ring.js';
export { needEvent, u16Distance, u16Add } from './u16.js';
export { VirtqueueError } from './errors.js';
export type { VirtqueueErrorCode, VirtqueueErrorContext } from './errors.js';
export { PackedDeviceQueue } from './packed-device-queue.js';
export type { PackedDeviceQueueOptions } from './packed-device-queue.js';
export { PackedDriverQueue } from './packed-driver-queue.js';
export type { PackedDriverQueueOptions } from './packed-driver-queue.js';
export {
  PackedLayout,
  isValidPackedQueueSize,
  packedRingBytes,
  packedAdvance,
  packedRetreat,
  packedDistance,
  packedLinear,
  packedNeedEvent,
  PACKED_START,
  PACKED_MAX_QUEUE_SIZE,
  WRAP_BIT,
  EVENT_AREA_BYTES as PACKED_EVENT_AREA_BYTES,
} from './packed-layout.js';
export {
  PackedRing,
  PACKED_DESC_F_NEXT,
  PACKED_DESC_F_WRITE,
  PACKED_DESC_F_INDIRECT,
  PACKED_DESC_F_AVAIL,
  PACKED_DESC_F_USED,
  RING_EVENT_FLAGS_ENABLE,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_DESC,
} from './packed-ring.js';
export { openDeviceQueue, openDriverQueue, ringLayoutOf, compactRingLayout, compactRingBytes } from './queue.js';
export type { DeviceVirtqueue, DriverVirtqueue, DeviceVirtqueueOptions, RingKind, RingLayout } from './queue.js';
