// Public face of the split-virtqueue layer.
export { DeviceQueue, DEVICE_QUEUE_STATE_WORDS } from './device-queue.js';
export type { DeviceQueueOptions, DeviceQueueState } from './device-queue.js';
export { DriverQueue } from './driver-queue.js';
export type { DriverQueueOptions, Segment, UsedElem } from './driver-queue.js';
export { DescriptorChain, readFromChain, writeToChain } from './chain.js';
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
