// Public face of the notification layer: doorbells (ring / wait between two threads over a
// SharedArrayBuffer), the control block that places and stops them, and the lateness recorder.
export { Doorbell, DoorbellStats, seqPassed, DEFAULT_GUARD_US, DEFAULT_SPIN_ITERATIONS } from './doorbell.js';
export type { DoorbellOptions, DoorbellStatsSnapshot, WaitResult, WaitStrategy } from './doorbell.js';
export { DoorbellBlock } from './block.js';
export {
  CACHE_LINE_BYTES,
  CONTROL_STOP_BYTE,
  DOORBELL_SEQ_BYTE,
  DOORBELL_SLEEPERS_BYTE,
  DOORBELL_SLOT_BYTES,
  MAX_DOORBELLS,
  contiguousLayout,
  controlBlockBytes,
  doorbellBlockBytes,
} from './layout.js';
export type { DoorbellBlockLayout } from './layout.js';
export { LatenessRecorder, percentileOfSorted } from './lateness.js';
export type { LatenessSummary } from './lateness.js';
export { DoorbellError } from './errors.js';
export type { DoorbellErrorCode } from './errors.js';
