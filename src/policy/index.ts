// Public face of the policy layer: configs and presets, the hook interfaces, the built-in
// modules (pure state machines over an injected clock), and the device/driver loop runners that
// any workload drives with its own queue callbacks. Browser-safe (no node: imports).

export { PolicyError } from './errors.js';
export type { PolicyErrorCode } from './errors.js';
export { FakeClock, performanceClock } from './clock.js';
export type { Clock } from './clock.js';
export { validatePolicy, mergeConfig, cloneConfig, driverTxBatch, NO_COSTS } from './config.js';
export { CostPayer } from './costs.js';
export type {
  CostConfig,
  PolicyConfig,
  TxMitigationConfig,
  InterruptConfig,
  InterruptMode,
  CoalesceConfig,
  RxKickMode,
  BusyPollConfig,
  DataPathConfig,
  AdaptiveConfig,
  AdaptiveProfile,
} from './config.js';
export { PRESETS, RFC_ROWS, RFC_ROW_LABELS, rfcRowAlone, listPresets, resolvePolicy } from './presets.js';
export type { TxAction, TxAfterFlush, TxMitigationHooks, IrqDecision, InterruptHooks, RxKickHooks } from './hooks.js';
export { TxBh, TxTimer, TxCounters, createTxMitigation } from './tx-mitigation.js';
export { InterruptPolicy, InterruptCounters, RxKickPolicy } from './interrupts.js';
export { BusyPoll } from './busy-poll.js';
export { Dim } from './dim.js';
export type { DimState, DimCompare } from './dim.js';
export { AdaptivePolicy } from './adaptive.js';
export { BigLock, BIG_LOCK_WORDS, bigLockFor } from './lock.js';
export { FlushSizes } from './counters.js';
export { DeviceLoop, DeviceLoopCounters } from './device-loop.js';
export type { DeviceLoopOptions, DeviceQueueCallbacks, DeviceModules, LoopDoorbell } from './device-loop.js';
export { DriverLoop, DriverLoopCounters } from './driver-loop.js';
export type { DriverLoopOptions, DriverQueueCallbacks } from './driver-loop.js';
export { policyQueues, policyArenaBytes, packetLayout } from './plan.js';
export type { PacketLayout, PolicyQueueRequest } from './plan.js';
