// Public face of the transport layer: virtio-mmio, the device contract, runners (inline and
// worker), the LoopbackNet device and the MMIO guest driver used by the examples.
export { MmioTransport, MAX_MMIO_QUEUES } from './mmio.js';
export type { MmioIssue, MmioIssueCode, MmioSnapshot, MmioTransportOptions } from './mmio.js';
export { Reg, Status, Interrupt, DeviceId, describeStatus, MMIO_MAGIC, MMIO_VERSION, MMIO_CONFIG_OFFSET, MMIO_WINDOW_BYTES, DEFAULT_VENDOR_ID } from './regs.js';
export { DeviceSignals } from './device.js';
export type { VirtioDeviceFrontend, VirtioDeviceBackend, VirtioDeviceKind, DeviceContext, ActivationPlan, BackendSnapshot, QueueConfig } from './device.js';
export { BackendHost } from './backend-host.js';
export { InlineRunner } from './runner.js';
export type { DeviceRunner } from './runner.js';
export { WorkerRunner } from './worker-runner.js';
export type { DeviceWorkerHandle, WorkerRunnerOptions } from './worker-runner.js';
export { DeviceChannel } from './channel.js';
export { runDeviceWorker } from './device-loop.js';
export type { DeviceWorkerInit } from './device-loop.js';
export { registerDeviceKind, deviceKind } from './registry.js';
export { LoopbackNetFrontend, LoopbackNetBackend, loopbackNetKind, LOOPBACK_NET_FEATURES, RX_QUEUE, TX_QUEUE } from './loopback-net.js';
export type { LoopbackNetOptions, LoopbackNetStats } from './loopback-net.js';
export { GuestNetDriver, GuestProbeError, makeSeqFrame, checkSeqFrame } from './guest-net-driver.js';
export type { MmioBus, GuestNetOptions } from './guest-net-driver.js';
export { TransportError } from './errors.js';
export type { TransportErrorCode } from './errors.js';
export { startWebDeviceWorker } from './web-worker.js';
export type { WebDeviceWorkerOptions } from './web-worker.js';
