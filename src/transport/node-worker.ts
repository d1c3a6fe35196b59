// Node-only: spawns a device backend on a worker_threads Worker and returns its runner. The one
// file under src/transport/ that imports `node:`; browsers use web-device-worker.ts instead.

import { Worker } from 'node:worker_threads';
import type { GuestMemory } from '../memory/index.js';
import type { WaitStrategy } from '../notify/index.js';
import { DeviceChannel } from './channel.js';
import type { DeviceWorkerInit } from './device-loop.js';
import { WorkerRunner, type WorkerRunnerOptions } from './worker-runner.js';

export interface NodeDeviceWorkerOptions extends WorkerRunnerOptions {
  mem: GuestMemory;
  kind: string;
  options?: unknown;
  modules?: string[];
  wait?: WaitStrategy;
  payloadBytes?: number;
}

/** Starts the device worker and resolves when its loop runs. Surface worker errors with `onError`. */
export async function startNodeDeviceWorker(o: NodeDeviceWorkerOptions, onError?: (e: Error) => void): Promise<WorkerRunner> {
  const channel = DeviceChannel.allocate(o.payloadBytes);
  const init: DeviceWorkerInit = { channel: channel.sab, memory: o.mem.toSpecs(), kind: o.kind, options: o.options, modules: o.modules ?? [], wait: o.wait ?? 'block' };
  const worker = new Worker(new URL('./node-device-worker.js', import.meta.url), { workerData: init });
  worker.on('error', (e) => onError?.(e));
  const runner = new WorkerRunner(channel, worker, o);
  await Promise.race([
    runner.ready(),
    new Promise<never>((_, reject) => worker.once('error', reject)),
  ]);
  return runner;
}
