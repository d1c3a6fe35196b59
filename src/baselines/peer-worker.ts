// Generic worker entry of the peer baselines: imports the case module named in workerData,
// runs the named entry with a PeerWorkerContext, and posts its report (or its error) to the main
// thread. Case-specific code lives in the case modules, so a case added later (the virtq ring)
// needs no change here.

import { parentPort, workerData } from 'node:worker_threads';
import {
  PeerWorkerContext,
  type PeerWorkerData,
  type PeerWorkerEntry,
  type PeerWorkerMessage,
} from './control.js';

function post(message: PeerWorkerMessage): void {
  parentPort?.postMessage(message);
}

async function main(): Promise<void> {
  const data = workerData as PeerWorkerData;
  const mod = (await import(data.moduleUrl)) as Record<string, unknown>;
  const entry = mod[data.entry];
  if (typeof entry !== 'function') {
    throw new Error(`${data.caseName}: module ${data.moduleUrl} exports no worker entry "${data.entry}"`);
  }
  const ctx = new PeerWorkerContext(data, () => post({ type: 'ready' }));
  const report = await (entry as PeerWorkerEntry)(ctx);
  post({ type: 'report', report });
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err);
  post({ type: 'error', message });
});
