// virtio-net as a library (`virtq/net`): feature bits, the virtio_net_hdr codec, the one device
// data path (NetDevice, NetDeviceService), the one driver (NetDriver, NetDriverService), the one
// host stack (NetEndpoint), the port contract (NetPort), the observer contract tracing plugs into,
// frame builders/parsers, checksums and software GSO. Runs in Web Workers too: no `node:` imports.

export * from './features.js';
export * from './header.js';
export * from './config.js';
export * from './errors.js';
export * from './checksum.js';
export * from './gso.js';
export * from './observer.js';
export * from './port.js';
export * from './device.js';
export * from './device-service.js';
export * from './driver.js';
export * from './driver-service.js';
export * from './endpoint.js';
export * from './frames/index.js';
export * from './control.js';
export * from './control-queue.js';
export * from './rx-filter.js';
export * from './steering.js';
export * from './control-driver.js';
export * from './rss.js';
