// Worker side of the cross-thread doorbell tests (test/notify.test.ts). One role per spawn,
// chosen by workerData; every role ends with one { kind: 'done' } message. Owns no assertions:
// it reports what it saw and the main thread judges. Does nothing when loaded outside a worker
// (the test runner may pick it up as a file).

import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { DoorbellBlock, type DoorbellOptions, type DoorbellStatsSnapshot, type WaitResult } from '../../src/notify/index.js';

export type NotifyWorkerJob =
  | {
      role: 'pingpong';
      /** 'first' rings, then waits; 'second' waits, then rings. */
      side: 'first' | 'second';
      rounds: number;
      ringIndex: number;
      waitIndex: number;
      options: DoorbellOptions;
    }
  | { role: 'wait'; index: number; options: DoorbellOptions }
  | { role: 'wait-async'; index: number; keepAlive: boolean }
  | { role: 'ring'; index: number; delayMs: number }
  | { role: 'stop'; delayMs: number };

export interface NotifyWorkerData {
  sab: SharedArrayBuffer;
  controlByteOffset: number;
  job: NotifyWorkerJob;
}

export type NotifyWorkerMessage =
  | { kind: 'waiting' }
  | {
      kind: 'done';
      /** The last wait's result (or 'rung' for roles that do not wait). */
      result: WaitResult;
      /** pingpong: rounds completed; first failure described in `error`. */
      rounds: number;
      error: string | null;
      /** performance.timeOrigin + performance.now() when the role finished waiting. */
      epochMs: number;
      stats: DoorbellStatsSnapshot;
      peerStats: DoorbellStatsSnapshot | null;
    };

function post(msg: NotifyWorkerMessage): void {
  parentPort!.postMessage(msg);
}

function epochNowMs(): number {
  return performance.timeOrigin + performance.now();
}

async function run(data: NotifyWorkerData): Promise<void> {
  const block = DoorbellBlock.open(data.sab, data.controlByteOffset);
  const job = data.job;
  switch (job.role) {
    case 'pingpong': {
      const ringer = block.doorbell(job.ringIndex, job.options);
      const waiter = block.doorbell(job.waitIndex, job.options);
      // Not waiter.seq(): the peer may already have rung by now. A `seen` read after the peer can
      // ring would swallow that ring and both sides would wait for ever.
      let seen = 0;
      let error: string | null = null;
      let result: WaitResult = 'rung';
      let round = 0;
      for (; round < job.rounds; round++) {
        if (job.side === 'first') ringer.ring();
        result = waiter.wait(seen);
        if (result !== 'rung') {
          error = `round ${round}: wait returned '${result}' (seen ${seen}, seq ${waiter.seq()})`;
          break;
        }
        if (waiter.lastSeq !== ((seen + 1) | 0)) {
          error = `round ${round}: sequence jumped from ${seen} to ${waiter.lastSeq}`;
          break;
        }
        seen = waiter.lastSeq;
        if (job.side === 'second') ringer.ring();
      }
      post({
        kind: 'done',
        result,
        rounds: round,
        error,
        epochMs: epochNowMs(),
        stats: waiter.stats.snapshot(),
        peerStats: ringer.stats.snapshot(),
      });
      return;
    }
    case 'wait': {
      const db = block.doorbell(job.index, job.options);
      const seen = db.seq();
      post({ kind: 'waiting' });
      const result = db.wait(seen);
      const epochMs = epochNowMs();
      post({ kind: 'done', result, rounds: 1, error: null, epochMs, stats: db.stats.snapshot(), peerStats: null });
      return;
    }
    case 'wait-async': {
      const db = block.doorbell(job.index, { keepAlive: job.keepAlive });
      const seen = db.seq();
      post({ kind: 'waiting' });
      // Top-level of the worker's only task: nothing else keeps its event loop alive.
      const result = await db.waitAsync(seen);
      const epochMs = epochNowMs();
      post({ kind: 'done', result, rounds: 1, error: null, epochMs, stats: db.stats.snapshot(), peerStats: null });
      return;
    }
    case 'ring': {
      const db = block.doorbell(job.index);
      await sleep(job.delayMs);
      db.ring();
      post({ kind: 'done', result: 'rung', rounds: 1, error: null, epochMs: epochNowMs(), stats: db.stats.snapshot(), peerStats: null });
      return;
    }
    case 'stop': {
      await sleep(job.delayMs);
      const epochMs = epochNowMs();
      block.stop();
      const stats = block.doorbell(0).stats.snapshot();
      post({ kind: 'done', result: 'stopped', rounds: 0, error: null, epochMs, stats, peerStats: null });
      return;
    }
  }
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'job' in workerData) {
  await run(workerData as NotifyWorkerData);
}
