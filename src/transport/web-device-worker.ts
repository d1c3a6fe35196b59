// Browser worker entry (a module Worker): the first message is the DeviceWorkerInit; then the
// device loop runs on this worker until the channel is stopped.
import { runDeviceWorker, type DeviceWorkerInit } from './device-loop.js';

interface WorkerScope {
  onmessage: ((e: { data: DeviceWorkerInit }) => void) | null;
  postMessage(v: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e) => {
  scope.onmessage = null;
  runDeviceWorker(e.data).then(
    () => scope.postMessage({ done: true }),
    (err: unknown) => scope.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
};
