// Node-only worker entry: runs the device loop with the init passed as workerData.
import { workerData } from 'node:worker_threads';
import { runDeviceWorker, type DeviceWorkerInit } from './device-loop.js';

await runDeviceWorker(workerData as DeviceWorkerInit);
