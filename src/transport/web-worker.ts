// Browser: spawns a device backend on a module Web Worker and returns its runner (the browser
// counterpart of node-worker.ts). Works from a page or from another worker; needs
// cross-origin isolation (COOP/COEP) for SharedArrayBuffer.

import type { GuestMemory } from '../memory/index.js';
import type { WaitStrategy } from '../notify/index.js';
import { DeviceChannel } from './channel.js';
import type { DeviceWorkerInit } from './device-loop.js';
import { WorkerRunner, type WorkerRunnerOptions } from './worker-runner.js';

interface WebWorker {
  postMessage(v: unknown): void;
  terminate(): void;
  addEventListener(type: 'message' | 'error', fn: (e: { data?: unknown; message?: string }) => void): void;
}
type WebWorkerCtor = new (url: URL | string, opts: { type: 'module' }) => WebWorker;

export interface WebDeviceWorkerOptions extends WorkerRunnerOptions {
  mem: GuestMemory;
  kind: string;
  options?: unknown;
  modules?: string[];
  wait?: WaitStrategy;
  payloadBytes?: number;
  /** URL of web-device-worker.js (default: next to this module). */
  workerUrl?: URL | string;
}

export async function startWebDeviceWorker(o: WebDeviceWorkerOptions, onError?: (message: string) => void): Promise<WorkerRunner> {
  const Ctor = (globalThis as unknown as { Worker?: WebWorkerCtor }).Worker;
  if (Ctor === undefined) throw new Error('no Web Worker constructor in this context');
  const channel = DeviceChannel.allocate(o.payloadBytes);
  const init: DeviceWorkerInit = { channel: channel.sab, memory: o.mem.toSpecs(), kind: o.kind, options: o.options, modules: o.modules ?? [], wait: o.wait ?? 'block' };
  const worker = new Ctor(o.workerUrl ?? new URL('./web-device-worker.js', import.meta.url), { type: 'module' });
  worker.addEventListener('error', (e) => onError?.(e.message ?? 'device worker error'));
  worker.addEventListener('message', (e) => {
    const d = e.data as { error?: string } | undefined;
    if (d?.error) onError?.(d.error);
  });
  worker.postMessage(init);
  const runner = new WorkerRunner(channel, worker, o);
  await runner.ready();
  return runner;
}
