// A workload whose host side fails after some traffic, in the way named by params.failMode:
// 'throw' raises an error, 'exit' kills the worker thread outright, 'hang' blocks forever
// ignoring the stop word. The guest side is the
// stream guest, which would wait for completions forever if the engine did not stop it.

import type { SideContext } from '../../src/engine/side.js';
import type { SideStats } from '../../src/engine/types.js';
import { guest as streamGuest } from '../../src/engine/workloads/stream.js';
import { DeviceQueue } from '../../src/virtqueue/index.js';
import { layoutOf } from '../../src/engine/setup.js';

export function guest(ctx: SideContext): SideStats {
  return streamGuest(ctx);
}

export function host(ctx: SideContext): SideStats {
  const q = new DeviceQueue(ctx.mem, layoutOf(ctx.setup.queues[0]!));
  ctx.arriveAndWait();
  let n = 0;
  while (n < 8) {
    const c = q.pop();
    if (c === null) {
      ctx.kick.wait(ctx.kick.seq(), performance.now() + 5);
      continue;
    }
    n++; // never returned: the guest keeps waiting for these buffers
  }
  const mode = ctx.strParam('failMode', 'throw');
  if (mode === 'exit') process.exit(7);
  if (mode === 'hang') {
    // Ignores the stop word: blocks on a word nobody will ever notify.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  throw new Error('host exploded on purpose');
}
