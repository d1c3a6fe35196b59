// Public face of the engine (Node-only: worker_threads, piscina).
export { Engine, EngineError } from './engine.js';
export { runTraced } from './run-traced.js';
export { runEnginePairs, MAX_ENGINE_PAIRS } from './pairs.js';
export type { PairsResult } from './pairs.js';
export type { EngineOptions, EngineResult, Runner } from './engine.js';
export { SideContext } from './side.js';
export { planSharedSetup, layoutOf, openMemory, openDoorbells } from './setup.js';
export type { QueueRequest } from './setup.js';
export { loadWorkload, builtInWorkloads } from './workloads/index.js';
export type { Workload } from './workloads/index.js';
export * from './types.js';
export { threadCpuNs, threadCpuSource, threadCpuIsProcessWide } from './thread-cpu.js';
