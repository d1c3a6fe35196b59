// virtq as a vhost-user-net backend (Node only): startVhostUser() runs the socket server and the
// data path in a worker and returns a handle; the main thread stays free for signals.

import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { loadIo, loadShm } from '../backend/native.js';
import { TapDevice } from '../backend/tap.js';
import { VirtioF } from '../net/features.js';
import type { FrameDeviceStats } from '../peers/frame-device.js';
import type { ResponderStats } from '../peers/responder.js';
import type { BackendStats } from './backend.js';
import type { ServerStats } from './server.js';
import type { VhostWorkerData } from './worker.js';

export { VhostUserError } from './errors.js';
export type { VhostUserErrorCode } from './errors.js';
export { VhostUserBackend, reflectHandler, OFFERED_FEATURES, OFFERED_PROTOCOL_FEATURES } from './backend.js';
export type { VhostOs, FrameHandler } from './backend.js';
export * from './messages.js';

export interface VhostUserOptions {
  socketPath: string;
  /**
   * reflect: every frame back with MACs swapped; responder: answer ARP/ping for `address`;
   * tap: frames to and from a TAP interface (`tapName`, host side `tapAddress`; root).
   */
  backend?: 'reflect' | 'responder' | 'tap';
  tapName?: string;
  /** Host-side address of the TAP with prefix, e.g. 10.78.0.2/24. */
  tapAddress?: string;
  address?: string;
  mac?: string;
  /** Re-check the rings this long after work before sleeping in poll(2) (default 0). */
  spinUs?: number;
  /** Called when a frontend disconnects (error null for a clean close). */
  onDisconnect?: (error: string | null, frames: FrameDeviceStats) => void;
}

export interface VhostUserResult {
  server: ServerStats;
  backend: BackendStats;
  frames: FrameDeviceStats;
  responder: ResponderStats | null;
}

export interface VhostUserHandle {
  stop(): Promise<VhostUserResult>;
}

export async function startVhostUser(o: VhostUserOptions): Promise<VhostUserHandle> {
  loadIo(); // fail here, with the build hint, rather than inside the worker
  loadShm();
  let tap: TapDevice | null = null;
  if (o.backend === 'tap') {
    // VERSION_1 header (12 bytes) until the features are known; no offloads are offered.
    tap = TapDevice.open(o.tapName ?? 'vq0', VirtioF.VERSION_1);
    try {
      if (o.tapAddress !== undefined) execFileSync('ip', ['addr', 'add', o.tapAddress, 'dev', tap.name]);
      execFileSync('ip', ['link', 'set', tap.name, 'up']);
    } catch (e) {
      tap.close();
      throw e;
    }
  }
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const data: VhostWorkerData = {
    socketPath: o.socketPath,
    stop: stop.buffer as SharedArrayBuffer,
    backend: o.backend ?? 'reflect',
    address: o.address ?? '10.78.0.2',
    mac: o.mac ?? '52:54:00:12:34:57',
    spinUs: o.spinUs ?? 0,
    tapFd: tap?.fd ?? -1,
  };
  const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
  let result: VhostUserResult | null = null;
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  const exited = new Promise<void>((resolve, reject) => {
    w.on('error', reject);
    w.on('exit', () => resolve());
  });
  w.on('message', (m: { type: string; error?: string | null; frames?: FrameDeviceStats } & Partial<VhostUserResult>) => {
    if (m.type === 'listening') listening();
    else if (m.type === 'disconnect') o.onDisconnect?.(m.error ?? null, m.frames!);
    else if (m.type === 'done') result = { server: m.server!, backend: m.backend!, frames: m.frames!, responder: m.responder ?? null };
  });
  await Promise.race([ready, exited.then(() => Promise.reject(new Error('vhost-user worker exited before listening')))]);
  return {
    async stop(): Promise<VhostUserResult> {
      Atomics.store(stop, 0, 1); // pairs with the worker's Atomics.load between polls
      try {
        await exited;
      } finally {
        tap?.close();
      }
      if (result === null) throw new Error('vhost-user worker ended without reporting');
      return result;
    },
  };
}
