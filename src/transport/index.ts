// Public face of the transport layer: virtio-mmio, the device contract, runners (inline and
// worker), the one virtio-net device kind and the MMIO guest glue (register-level init, then
// NetDriver + NetEndpoint) used by the examples.
export { MmioTransport, MAX_MMIO_QUEUES } from './mmio.js';
export type { MmioIssue, MmioIssueCode, MmioSnapshot, MmioTransportOptions } from './mmio.js';
export { Reg, Status, Interrupt, DeviceId, describeStatus, MMIO_MAGIC, MMIO_VERSION, MMIO_CONFIG_OFFSET, MMIO_WINDOW_BYTES, DEFAULT_VENDOR_ID } from './regs.js';
export { DeviceSignals } from './device.js';
export type { VirtioDeviceFrontend, VirtioDeviceBackend, VirtioDeviceKind, DeviceContext, DeviceDrive, ActivationPlan, BackendSnapshot, QueueConfig } from './device.js';
export { BackendHost } from './backend-host.js';
export { InlineRunner } from './runner.js';
export type { DeviceRunner, InlineRunnerOptions } from './runner.js';
export { WorkerRunner } from './worker-runner.js';
export type { DeviceWorkerHandle, WorkerRunnerOptions } from './worker-runner.js';
export { DeviceChannel } from './channel.js';
export { runDeviceWorker } from './device-loop.js';
export type { DeviceWorkerInit } from './device-loop.js';
export { registerDeviceKind, deviceKind } from './registry.js';
export { VirtioNetFrontend, VirtioNetBackend, VirtioNetError, virtioNetKind, VIRTIO_NET_FEATURES, VIRTIO_NET_CTRL_FEATURES, VIRTIO_NET_RX_QUEUE, VIRTIO_NET_TX_QUEUE, effectiveMtu, hostStackFactory } from './virtio-net.js';
export type { VirtioNetOptions, VirtioNetState, HostStackBackendOptions, LoopbackBackendOptions, TapBackendOptions, NetPortFactory } from './virtio-net.js';
// The TAP kind is Node only: 'virtq/transport/tap' (virtio-net-tap.ts), not re-exported here.
export { MmioNetGuest, MmioGuestError, GUEST_NET_FEATURES, makeSeqFrame, checkSeqFrame } from './mmio-guest.js';
export type { MmioBus, MmioNetGuestOptions, MmioGuestErrorCode } from './mmio-guest.js';
export { TransportError } from './errors.js';
export type { TransportErrorCode } from './errors.js';
export { startWebDeviceWorker } from './web-worker.js';
export type { WebDeviceWorkerOptions } from './web-worker.js';
export { VirtioPciTransport, VIRTIO_PCI_VENDOR_ID, PCI_BAR_BYTES, PciBarOffset, PciCapType, CommonCfg, NOTIFY_MULTIPLIER } from './pci.js';
export type { VirtioPciOptions, PciIssueCode } from './pci.js';
