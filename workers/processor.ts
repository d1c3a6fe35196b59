// Worker entry point for a guest or host processor. As a piscina task file its default export
// runs one side to completion and resolves with that side's stats; started as a plain
// worker_threads Worker (workerData.virtqPlainTask) it does the same and posts the result.
// A throw becomes the task's rejection (piscina) or an 'error' event (plain worker); the side's
// loop never outlives the engine because every wait also watches the stop word.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SideContext } from '../src/engine/side.js';
import { loadWorkload } from '../src/engine/workloads/index.js';
import type { ProcessorTask, SideStats } from '../src/engine/types.js';

export default async function runProcessor(task: ProcessorTask): Promise<SideStats> {
  const workload = await loadWorkload(task.workload);
  const ctx = new SideContext(task);
  ctx.log.debug({ workload: task.workload, wait: task.wait, params: task.params, traced: ctx.tracer.enabled }, 'side starting');
  try {
    const stats = task.role === 'guest' ? await workload.guest(ctx) : await workload.host(ctx);
    stats.extra.readyEpochMs = ctx.readyEpochMs;
    ctx.log.debug({ packets: stats.packets, errors: stats.errors, firstError: stats.firstError }, 'side stopped');
    return stats;
  } catch (e) {
    ctx.tracer.flush();
    ctx.log.error({ err: e }, 'side failed');
    // Wake the peer: a side that fails must not leave the other blocked on a doorbell.
    ctx.block.stop();
    throw e;
  }
}

const plain = (workerData as { virtqPlainTask?: ProcessorTask } | null)?.virtqPlainTask;
if (!isMainThread && plain !== undefined && parentPort !== null) {
  const port = parentPort;
  runProcessor(plain).then((stats) => port.postMessage({ ok: true, stats }));
}
