// Raw Atomics ping-pong between two workers: the wake-up floor every notification policy is
// measured against (limits-measured.md §2). The pinger bumps one shared Int32 to an odd value and
// waits for the ponger's even answer; RTT is timed in the pinger with performance.now() into an
// HDR histogram (ns), only during the measured window. Strategies: `wait` blocks in Atomics.wait,
// `spin<N>+wait` polls N times first, `spin` only polls (and never notifies).
//
// Main-thread runner and both worker entries live here (see peer-worker.ts).

import * as hdr from 'hdr-histogram-js';
import { CTL_PHASE, PHASE_MEASURE, PHASE_STOP, WAIT_TIMEOUT_MS, type PeerWorkerContext, type WorkerReport } from './control.js';
import { runWorkerPair } from './harness.js';
import type { KickStrategy, LatencyRunContext, PingPongResult } from './types.js';

export const ATOMICS_PINGPONG_CASE = 'atomics-pingpong';
/** Index of the ping-pong word; alone on its line in its own buffer. */
const WORD = 0;
/** How often a pure-spin loop looks at the phase word, so it can leave after the stop. */
const PHASE_POLL_MASK = 1023;

interface PingPongParams {
  strategy: KickStrategy;
  /** 0: no cap. */
  maxRtts: number;
  word: SharedArrayBuffer;
}

/** One ping-pong run; RTTs are recorded only inside the measured window. */
export async function runAtomicsPingPong(ctx: LatencyRunContext): Promise<PingPongResult> {
  const word = new SharedArrayBuffer(64);
  const params: PingPongParams = { strategy: ctx.strategy, maxRtts: ctx.maxRtts ?? 0, word };
  const outcome = await runWorkerPair({
    caseName: `${ATOMICS_PINGPONG_CASE}/${ctx.strategy.name}`,
    moduleUrl: import.meta.url,
    producer: { entry: 'pingPongPinger', params },
    consumer: { entry: 'pingPongPonger', params },
    warmupMs: ctx.warmupMs,
    durationMs: ctx.durationMs,
    wakeOnStop: [{ words: new Int32Array(word), index: WORD }],
  });
  const lat = outcome.producer.latency;
  const result: PingPongResult = {
    name: ATOMICS_PINGPONG_CASE,
    strategy: ctx.strategy.name,
    rtts: lat?.rtts ?? 0,
    p50Us: (lat?.p50Ns ?? 0) / 1000,
    p99Us: (lat?.p99Ns ?? 0) / 1000,
    maxUs: (lat?.maxNs ?? 0) / 1000,
    meanUs: (lat?.meanNs ?? 0) / 1000,
  };
  if (!outcome.consumer.verified) result.error = outcome.consumer.firstError ?? 'ponger saw an unexpected value';
  return result;
}

/** Worker entry: sends pings, times each round trip. */
export function pingPongPinger(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as PingPongParams;
  const w = new Int32Array(p.word);
  const ctl = ctx.ctl;
  const spinIters = p.strategy.spinIters;
  const canSleep = p.strategy.canSleep;
  const maxRtts = p.maxRtts;
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

  let v = 0;
  let rtts = 0;
  let pings = 0;
  let notifies = 0;
  let sleeps = 0;
  let seen = ctx.waitForStart();
  outer: while (seen !== PHASE_STOP) {
    if (maxRtts > 0 && rtts >= maxRtts) {
      ctx.sleepWhilePhase(seen); // done recording: idle until the stop
      seen = ctx.onPhase(ctx.phase(), pings, notifies, sleeps);
      continue;
    }
    const odd = (v + 1) | 0;
    const want = (v + 2) | 0;
    const t0Ms = performance.now();
    // Pairs with the ponger's Atomics.load of WORD (and its Atomics.wait on the old value).
    Atomics.store(w, WORD, odd);
    if (canSleep) {
      Atomics.notify(w, WORD, 1); // wakes the ponger's Atomics.wait on its last answer
      notifies++;
    }
    let got = Atomics.load(w, WORD); // pairs with the ponger's store of the answer
    for (let i = 0; got !== want && i < spinIters; i++) {
      got = Atomics.load(w, WORD); // as above
      // Pairs with the main thread's phase store; a pure spin must still leave after the stop.
      if ((i & PHASE_POLL_MASK) === PHASE_POLL_MASK && Atomics.load(ctl, CTL_PHASE) === PHASE_STOP) break outer;
    }
    while (got !== want) {
      sleeps++;
      // Sleeps only while the word still holds our ping; the ponger's notify (or the main
      // thread's after the stop) wakes us, the timeout bounds a lost wake-up.
      Atomics.wait(w, WORD, odd, WAIT_TIMEOUT_MS);
      got = Atomics.load(w, WORD); // pairs with the ponger's store of the answer
      if (got !== want && Atomics.load(ctl, CTL_PHASE) === PHASE_STOP) break outer; // main's phase store
    }
    const t1Ms = performance.now();
    v = want;
    pings++;
    if (seen === PHASE_MEASURE) {
      hist.recordValue(Math.max(1, Math.round((t1Ms - t0Ms) * 1e6)));
      rtts++;
    }
    const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
    if (phase !== seen) seen = ctx.onPhase(phase, pings, notifies, sleeps);
  }
  return ctx.report({
    packets: pings,
    notifies,
    sleeps,
    verified: true,
    errors: 0,
    latency: {
      rtts,
      // An HDR percentile is its bucket's highest equivalent value: never above the largest sample.
      p50Ns: rtts > 0 ? Math.min(hist.maxValue, hist.getValueAtPercentile(50)) : 0,
      p99Ns: rtts > 0 ? Math.min(hist.maxValue, hist.getValueAtPercentile(99)) : 0,
      maxNs: rtts > 0 ? hist.maxValue : 0,
      meanNs: rtts > 0 ? hist.mean : 0,
    },
  });
}

/** Worker entry: answers every odd value with the next even one. */
export function pingPongPonger(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as PingPongParams;
  const w = new Int32Array(p.word);
  const ctl = ctx.ctl;
  const spinIters = p.strategy.spinIters;
  const canSleep = p.strategy.canSleep;

  let last = 0; // the even value we wrote last
  let pongs = 0;
  let notifies = 0;
  let sleeps = 0;
  let errors = 0;
  let firstError: string | undefined;
  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    let got = Atomics.load(w, WORD); // pairs with the pinger's store of the ping
    for (let i = 0; got === last && i < spinIters; i++) {
      got = Atomics.load(w, WORD); // as above
      // Pairs with the main thread's phase store; a pure spin must still leave after the stop.
      if ((i & PHASE_POLL_MASK) === PHASE_POLL_MASK && Atomics.load(ctl, CTL_PHASE) !== seen) break;
    }
    if (got === last) {
      if (canSleep) {
        sleeps++;
        // Sleeps only while the word still holds our last answer; woken by the pinger's notify.
        Atomics.wait(w, WORD, last, WAIT_TIMEOUT_MS);
      }
      const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
      if (phase !== seen) seen = ctx.onPhase(phase, pongs, notifies, sleeps);
      continue;
    }
    if (got !== ((last + 1) | 0) && errors++ === 0) {
      firstError = `atomics-pingpong: ponger saw ${got} after answering ${last}`;
    }
    last = (got + 1) | 0;
    // Pairs with the pinger's Atomics.load of WORD (and its Atomics.wait on the ping).
    Atomics.store(w, WORD, last);
    if (canSleep) {
      Atomics.notify(w, WORD, 1); // wakes the pinger's Atomics.wait on its ping
      notifies++;
    }
    pongs++;
    const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
    if (phase !== seen) seen = ctx.onPhase(phase, pongs, notifies, sleeps);
  }
  const outcome = { packets: pongs, notifies, sleeps, verified: errors === 0, errors };
  return ctx.report(firstError !== undefined ? { ...outcome, firstError } : outcome);
}
