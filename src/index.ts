// The package's main entry point (`import … from 'virtq'`): the public API of every layer in
// one place. Each layer is also its own subpath (`virtq/virtqueue`, `virtq/memory`, `virtq/net`,
// `virtq/policy`, `virtq/transport`, `virtq/trace`, `virtq/vhost-user`, `virtq/engine`), which a
// browser bundle should prefer: this module pulls in the engine, which is Node-only.

export * from './memory/index.js';
export * from './virtqueue/index.js';
export * from './net/index.js';
export * from './policy/index.js';
export * from './transport/index.js';
export * from './trace/index.js';
export * from './engine/index.js';
// Node-only pieces that the browser-safe layer entries above leave out.
export { startNodeDeviceWorker, type NodeDeviceWorkerOptions } from './transport/node-worker.js';
