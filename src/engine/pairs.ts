// N queue pairs in one process: one Engine per pair, each with its own guest RAM, rings,
// doorbells and its own guest and host worker (one device processor per pair, as vhost runs one
// thread per virtqueue pair), started together, stopped together (a duration timed from the
// moment every pair passed its start barrier, or the first failure), and reported pair by pair.
// The pairs share nothing on the data path, which is what multiqueue buys: each pair's
// processors scale with cores until the cores run out. The device-level multiqueue (pairs sharing
// one NetPort, steering, VQ_PAIRS_SET) is NetDeviceService's (src/net), exercised by vhost-user.

import { Engine, type EngineOptions, type EngineResult } from './engine.js';

/** Word 0 of each engine's control block counts the sides that passed the start barrier (side.ts). */
const CTRL_READY = 0;
/** Most queue pairs one run starts (2 threads each). */
export const MAX_ENGINE_PAIRS = 16;

export interface PairsResult {
  /** One result per pair, pair 0 first. */
  pairs: EngineResult[];
  /** From start until every pair passed its start barrier, ms (NaN if one never did). */
  startupMs: number;
}

/**
 * Runs `options` on `pairs` independent queue pairs at once. With `stopAfterReadyMs`, every pair
 * stops that long after the last pair passed its start barrier. A failing pair stops the others
 * and its error is thrown (after every pair ended).
 */
export async function runEnginePairs(options: EngineOptions, pairs: number, stopAfterReadyMs?: number): Promise<PairsResult> {
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > MAX_ENGINE_PAIRS) throw new RangeError(`queue pairs must be an integer in 1..${MAX_ENGINE_PAIRS} (got ${pairs})`);
  const t0 = performance.now();
  const engines = Array.from({ length: pairs }, (_, i) => Engine.start({ ...options, params: { ...(options.params ?? {}), pair: i } }));
  const stopAll = (): void => {
    for (const e of engines) e.stop();
  };
  let readyAt = NaN;
  let timer: NodeJS.Timeout | undefined;
  const words = engines.map((e) => new Int32Array(e.setup.controlSab));
  // Polls from the main thread (no Atomics.wait here): 2 ms granularity is plenty for seconds.
  const poll = setInterval(() => {
    // Pairs with each side's Atomics.add in SideContext.arriveAndWait.
    if (words.every((w) => Atomics.load(w, CTRL_READY) >= 2)) {
      clearInterval(poll);
      readyAt = performance.now();
      if (stopAfterReadyMs !== undefined) timer = setTimeout(stopAll, stopAfterReadyMs);
    }
  }, 2);
  // A failing pair stops the others, so none waits for a duration it no longer needs.
  const guarded = engines.map((e) => e.done.catch((err: unknown) => (stopAll(), Promise.reject(err))));
  try {
    const settled = await Promise.allSettled(guarded);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return { pairs: settled.map((s) => (s as PromiseFulfilledResult<EngineResult>).value), startupMs: readyAt - t0 };
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
}
