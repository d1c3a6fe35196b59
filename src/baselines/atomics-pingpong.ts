// Raw Atomics ping-pong between two workers: the wake-up floor every notification policy is
// measured against (limits-measured.md §2). The pinger bumps one shared Int32 to an odd value and
// waits for the ponger's even answer; RTT is timed in the pinger with performance.now() into an
// HDR histogram (ns), only during the measured window. Strategies: `wait` blocks in Atomics.wait,
// `spin<N>+wait` polls N times first, `spin` only polls (and never notifies).
//
// Two variants move, with no ring code at all, the cache lines a ring's lone round trip has to
// move, so a ring's ping-pong can be set against the floor its layout allows:
//   atomics-pingpong-2lines  a 64 B message line (the pinger writes its first word, the sequence,
//                            as virtq-pingpong's guest does; the ponger copies all 16 words out and
//                            checks the first, as its device does) and the one shared word: the
//                            packed ring's lines (§2.8: the payload, and the descriptor both sides
//                            write).
//   atomics-pingpong-3lines  the message line, a request word and an answer word on lines of
//                            their own: the split ring's lines (§2.7: the payload, avail.idx which
//                            only the driver writes, used.idx which only the device writes).
//
// Main-thread runner and both worker entries live here (see peer-worker.ts).

import * as hdr from 'hdr-histogram-js';
import { CTL_PHASE, PHASE_MEASURE, PHASE_STOP, WAIT_TIMEOUT_MS, type PeerWorkerContext, type WorkerReport } from './control.js';
import { runWorkerPair } from './harness.js';
import type { KickStrategy, LatencyRunContext, PingPongResult } from './types.js';

export const ATOMICS_PINGPONG_CASE = 'atomics-pingpong';
export const ATOMICS_PINGPONG_2LINES_CASE = 'atomics-pingpong-2lines';
export const ATOMICS_PINGPONG_3LINES_CASE = 'atomics-pingpong-3lines';
/** Which lines a round trip moves (see the file comment). */
export type PingPongLines = 1 | 2 | 3;
/**
 * Int32 indices of the request word, the answer word and the message, each on a line of its own
 * with an untouched line between (no adjacent-line prefetch pairs them).
 */
const REQ = 16;
const ANS_APART = 48;
const MSG = 80;
const MSG_WORDS = 16;
const BUFFER_BYTES = 128 * 4;
/** How often a pure-spin loop looks at the phase word, so it can leave after the stop. */
const PHASE_POLL_MASK = 1023;

interface PingPongParams {
  strategy: KickStrategy;
  /** 0: no cap. */
  maxRtts: number;
  word: SharedArrayBuffer;
  lines: PingPongLines;
}

const caseOf = (lines: PingPongLines): string => (lines === 1 ? ATOMICS_PINGPONG_CASE : lines === 2 ? ATOMICS_PINGPONG_2LINES_CASE : ATOMICS_PINGPONG_3LINES_CASE);
/** The answer's word: the request's own word unless the answer has a line of its own. */
const ansOf = (lines: PingPongLines): number => (lines === 3 ? ANS_APART : REQ);

/** One ping-pong run; RTTs are recorded only inside the measured window. */
export async function runAtomicsPingPong(ctx: LatencyRunContext, lines: PingPongLines = 1): Promise<PingPongResult> {
  const word = new SharedArrayBuffer(BUFFER_BYTES);
  const params: PingPongParams = { strategy: ctx.strategy, maxRtts: ctx.maxRtts ?? 0, word, lines };
  const name = caseOf(lines);
  const words = new Int32Array(word);
  const outcome = await runWorkerPair({
    caseName: `${name}/${ctx.strategy.name}`,
    moduleUrl: import.meta.url,
    producer: { entry: 'pingPongPinger', params },
    consumer: { entry: 'pingPongPonger', params },
    warmupMs: ctx.warmupMs,
    durationMs: ctx.durationMs,
    wakeOnStop: lines === 3 ? [{ words, index: REQ }, { words, index: ANS_APART }] : [{ words, index: REQ }],
  });
  const lat = outcome.producer.latency;
  const result: PingPongResult = {
    name,
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
  const ans = ansOf(p.lines);
  const withMessage = p.lines > 1;
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
    // What the answer word holds until the ponger answers: our ping (one shared word) or its
    // last answer (a word of its own).
    const unanswered = ans === REQ ? odd : v;
    const t0Ms = performance.now();
    // A plain store, made visible by the Atomics.store of the request below (release).
    if (withMessage) w[MSG] = odd;
    // Pairs with the ponger's Atomics.load of REQ (and its Atomics.wait on the old value).
    Atomics.store(w, REQ, odd);
    if (canSleep) {
      Atomics.notify(w, REQ, 1); // wakes the ponger's Atomics.wait on the idle request word
      notifies++;
    }
    let got = Atomics.load(w, ans); // pairs with the ponger's store of the answer
    for (let i = 0; got !== want && i < spinIters; i++) {
      got = Atomics.load(w, ans); // as above
      // Pairs with the main thread's phase store; a pure spin must still leave after the stop.
      if ((i & PHASE_POLL_MASK) === PHASE_POLL_MASK && Atomics.load(ctl, CTL_PHASE) === PHASE_STOP) break outer;
    }
    while (got !== want) {
      sleeps++;
      // Sleeps only while the answer word is still unanswered; the ponger's notify (or the main
      // thread's after the stop) wakes us, the timeout bounds a lost wake-up.
      Atomics.wait(w, ans, unanswered, WAIT_TIMEOUT_MS);
      got = Atomics.load(w, ans); // pairs with the ponger's store of the answer
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

/** Worker entry: answers every odd ping with the next even value (and checks the message). */
export function pingPongPonger(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as PingPongParams;
  const w = new Int32Array(p.word);
  const ans = ansOf(p.lines);
  const withMessage = p.lines > 1;
  const ctl = ctx.ctl;
  const spinIters = p.strategy.spinIters;
  const canSleep = p.strategy.canSleep;

  const copy = new Int32Array(MSG_WORDS);
  const message = w.subarray(MSG, MSG + MSG_WORDS);
  let last = 0; // the even value we wrote last
  let idle = 0; // what the request word holds while no ping waits: our answer (one word) or the last ping
  let pongs = 0;
  let notifies = 0;
  let sleeps = 0;
  let errors = 0;
  let firstError: string | undefined;
  const fail = (why: string): void => {
    if (errors++ === 0) firstError = `${caseOf(p.lines)}: ${why}`;
  };
  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    let got = Atomics.load(w, REQ); // pairs with the pinger's store of the ping
    for (let i = 0; got === idle && i < spinIters; i++) {
      got = Atomics.load(w, REQ); // as above
      // Pairs with the main thread's phase store; a pure spin must still leave after the stop.
      if ((i & PHASE_POLL_MASK) === PHASE_POLL_MASK && Atomics.load(ctl, CTL_PHASE) !== seen) break;
    }
    if (got === idle) {
      if (canSleep) {
        sleeps++;
        // Sleeps only while the request word is still idle; woken by the pinger's notify.
        Atomics.wait(w, REQ, idle, WAIT_TIMEOUT_MS);
      }
      const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
      if (phase !== seen) seen = ctx.onPhase(phase, pongs, notifies, sleeps);
      continue;
    }
    if (got !== ((last + 1) | 0)) fail(`ponger saw ${got} after answering ${last}`);
    if (withMessage) {
      // Plain loads after the acquire load of REQ above: the pinger's message store is visible.
      copy.set(message); // one memcpy of the line, as the device's readFromChain does
      if (copy[0] !== got) fail(`the message held ${copy[0]} with ping ${got}`);
    }
    last = (got + 1) | 0;
    idle = ans === REQ ? last : got;
    // Pairs with the pinger's Atomics.load of the answer word (and its Atomics.wait on it).
    Atomics.store(w, ans, last);
    if (canSleep) {
      Atomics.notify(w, ans, 1); // wakes the pinger's Atomics.wait on the unanswered word
      notifies++;
    }
    pongs++;
    const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
    if (phase !== seen) seen = ctx.onPhase(phase, pongs, notifies, sleeps);
  }
  const outcome = { packets: pongs, notifies, sleeps, verified: errors === 0, errors };
  return ctx.report(firstError !== undefined ? { ...outcome, firstError } : outcome);
}
