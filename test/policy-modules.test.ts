// The policy state machines driven by a fake clock (no sleeps): tx timer fire / rearm / ring-full
// heuristic / flush-now, bh bursts, the interrupt rules (legacy per buffer, notify-on-empty,
// coalescing by packets and by time), rx kicks, the busy-poll budget, the DIM walk and the
// adaptive policy that applies its profiles.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AdaptivePolicy,
  BusyPoll,
  Dim,
  FakeClock,
  InterruptPolicy,
  PRESETS,
  RxKickPolicy,
  TxBh,
  TxTimer,
  type InterruptConfig,
} from '../src/policy/index.js';

const timerCfg = (over: Partial<ConstructorParameters<typeof TxTimer>[0]> = {}): ConstructorParameters<typeof TxTimer>[0] => ({
  kind: 'timer',
  intervalUs: 50,
  rearmOnKick: true,
  kickWhileArmed: 'ringFullHeuristic',
  ringFullPending: 64,
  burst: Infinity,
  minRearmUs: 0,
  fireOnAnyWakeup: false,
  ...over,
});

test('a kick arms the tx timer with kicks suppressed, and it fires at its deadline, not before', () => {
  const clock = new FakeClock(1000);
  const t = new TxTimer(timerCfg(), 64);
  assert.equal(t.onKick(clock.nowUs(), 3), 'defer');
  assert.equal(t.kicksSuppressed, true);
  assert.equal(t.deadlineUs(), 1050);
  assert.equal(t.onTimer(clock.advance(49)), 'defer');
  assert.equal(t.onTimer(clock.advance(3)), 'flush');
  assert.equal(t.kicksSuppressed, false);
  assert.equal(t.counters.timerFires, 1);
  assert.equal(t.lateness.percentile(50), 2000, 'lateness of 2 µs recorded in ns');
  assert.equal(t.deadlineUs(), Infinity);
});

test('with rearm on kick, every kick while armed pushes the deadline out', () => {
  const clock = new FakeClock(0);
  const t = new TxTimer(timerCfg(), 64);
  t.onKick(0, 1);
  assert.equal(t.onKick(clock.advance(30), 2), 'defer');
  assert.equal(t.deadlineUs(), 80);
  assert.equal(t.counters.timerRearms, 1);
  assert.equal(t.onTimer(clock.set(60)), 'defer', 'the old deadline no longer fires');
});

test('without rearm a kick while armed leaves the deadline alone', () => {
  const t = new TxTimer(timerCfg({ rearmOnKick: false }), 64);
  t.onKick(0, 1);
  assert.equal(t.onKick(30, 2), 'defer');
  assert.equal(t.deadlineUs(), 50);
});

test('the ring-full heuristic flushes a kick while armed only when pending reaches N', () => {
  const t = new TxTimer(timerCfg({ ringFullPending: 64 }), 64);
  t.onKick(0, 10);
  assert.equal(t.onKick(10, 63), 'defer', '63 pending is not full');
  assert.equal(t.onKick(20, 64), 'flush', '64 pending is the guest saying the ring is full');
  assert.equal(t.counters.kickFlushes, 1);
  assert.equal(t.kicksSuppressed, false);
});

test('ringFullPending 0 means the ring capacity in packets, and N is capped by it', () => {
  const auto = new TxTimer(timerCfg({ ringFullPending: 0 }), 12);
  auto.onKick(0, 1);
  assert.equal(auto.onKick(1, 12), 'flush');
  const capped = new TxTimer(timerCfg({ ringFullPending: 64 }), 20);
  capped.onKick(0, 1);
  assert.equal(capped.onKick(1, 20), 'flush', 'a 64 threshold on a 20-packet ring would never fire');
});

test('flush-now: any kick while armed flushes at once (the RFC no-ring-full row)', () => {
  const t = new TxTimer(timerCfg({ kickWhileArmed: 'flushNow', rearmOnKick: false }), 64);
  assert.equal(t.onKick(0, 1), 'defer');
  assert.equal(t.onKick(5, 2), 'flush');
  assert.equal(t.onKick(6, 1), 'defer', 'idle again: the next kick re-arms');
});

test('a timer interval of 0 flushes on every kick without arming', () => {
  const t = new TxTimer(timerCfg({ intervalUs: 0 }), 64);
  assert.equal(t.onKick(0, 1), 'flush');
  assert.equal(t.kicksSuppressed, false);
  assert.equal(t.counters.timerArms, 0);
});

test('a timer flush that fills its burst with more pending re-arms and keeps kicks off', () => {
  const t = new TxTimer(timerCfg({ burst: 8 }), 64);
  t.onKick(0, 20);
  t.onTimer(50);
  assert.equal(t.afterFlush(51, 8, 12), 'defer');
  assert.equal(t.kicksSuppressed, true);
  assert.equal(t.deadlineUs(), 101);
  assert.equal(t.afterFlush(102, 4, 0), 'idle');
});

test('the kvm-71 baseline timer is 2 ns with a 250 µs coarse alarm floor', () => {
  const base = PRESETS['rfc-baseline']!;
  assert.equal(base.tx.kind, 'timer');
  const t = new TxTimer(base.tx as ConstructorParameters<typeof TxTimer>[0], 64);
  assert.equal(t.precise, false);
  assert.equal(t.sleepFloorUs(), 250);
  t.onKick(100, 1);
  assert.equal(t.onTimer(100.001), 'defer');
  assert.equal(t.onTimer(100.01), 'flush', 'any later wake-up finds the 2 ns timer expired');
});

test('bh flushes on a kick, runs again after a full burst, and goes idle after a short one', () => {
  const b = new TxBh({ burst: 4 });
  assert.equal(b.onKick(0, 9), 'flush');
  assert.equal(b.kicksSuppressed, true);
  assert.equal(b.afterFlush(1, 4, 5), 'again');
  assert.equal(b.kicksSuppressed, true);
  assert.equal(b.afterFlush(2, 3, 0), 'idle');
  assert.equal(b.kicksSuppressed, false);
  assert.equal(b.counters.bursts, 1);
});

const irqCfg = (over: Partial<InterruptConfig> = {}): InterruptConfig => ({ mode: 'flags', coalesce: null, publishBatch: 1, driverEnable: 'immediate', ...over });

test('legacy per-buffer rule forces an interrupt whenever the avail ring is empty', () => {
  const p = new InterruptPolicy(irqCfg({ mode: 'legacyPerBuffer' }));
  assert.equal(p.needsRingState, true);
  assert.equal(p.afterPublish(0, 1, 0, 5), 'force', 'empty avail ring, even with chains in flight');
  assert.equal(p.afterPublish(0, 1, 3, 0), 'check');
});

test('notify-on-empty forces only when nothing is available and nothing is in flight', () => {
  const p = new InterruptPolicy(irqCfg({ mode: 'notifyOnEmpty' }));
  assert.equal(p.afterPublish(0, 1, 0, 2), 'check', 'chains still in flight: not empty');
  assert.equal(p.afterPublish(0, 1, 1, 0), 'check');
  assert.equal(p.afterPublish(0, 1, 0, 0), 'force');
  assert.equal(p.counters.forced, 1);
});

test('event idx and flags defer to the queue suppression check', () => {
  for (const mode of ['flags', 'eventIdx'] as const) {
    const p = new InterruptPolicy(irqCfg({ mode }));
    assert.equal(p.needsRingState, false);
    assert.equal(p.afterPublish(0, 1, 0, 0), 'check');
  }
});

test('coalescing notifies after max packets', () => {
  const p = new InterruptPolicy(irqCfg({ mode: 'eventIdx', coalesce: { maxPackets: 4, maxUsecs: 1000 } }));
  assert.equal(p.afterPublish(0, 1, 9, 0), 'defer');
  assert.equal(p.afterPublish(1, 2, 9, 0), 'defer');
  assert.equal(p.deadlineUs(), 1000, 'counting started at the first packet');
  assert.equal(p.afterPublish(2, 1, 9, 0), 'check');
  assert.equal(p.counters.coalescePacketFires, 1);
  assert.equal(p.deadlineUs(), Infinity);
});

test('coalescing notifies after max µs through the deadline even if no packet follows', () => {
  const clock = new FakeClock(500);
  const p = new InterruptPolicy(irqCfg({ coalesce: { maxPackets: 100, maxUsecs: 64 } }));
  assert.equal(p.afterPublish(clock.nowUs(), 1, 9, 0), 'defer');
  assert.equal(p.deadlineUs(), 564);
  assert.equal(p.onDeadline(clock.advance(63)), 'defer');
  assert.equal(p.onDeadline(clock.advance(1)), 'check');
  assert.equal(p.counters.coalesceTimeFires, 1);
});

test('coalescing with either parameter 0 lets every packet through', () => {
  for (const c of [{ maxPackets: 0, maxUsecs: 50 }, { maxPackets: 8, maxUsecs: 0 }]) {
    const p = new InterruptPolicy(irqCfg({ coalesce: c }));
    assert.equal(p.afterPublish(0, 1, 1, 0), 'check');
  }
});

test('new coalescing parameters that are already met notify at once', () => {
  const p = new InterruptPolicy(irqCfg({ coalesce: { maxPackets: 100, maxUsecs: 1000 } }));
  p.afterPublish(0, 10, 1, 0);
  assert.equal(p.setCoalesce(5, 200, 1000), 'defer');
  assert.equal(p.setCoalesce(6, 8, 1000), 'check');
});

test('rx kicks: always wants kicks; only-when-starved wants them only with no buffers left', () => {
  const a = new RxKickPolicy('always');
  assert.equal(a.wantKicks(10), true);
  const s = new RxKickPolicy('onlyWhenStarved');
  assert.equal(s.wantKicks(10), false);
  assert.equal(s.wantKicks(0), true);
  assert.equal(s.suppressed, 1);
});

test('busy polling spins for its budget and counts hits, misses and time', () => {
  const clock = new FakeClock(0);
  const b = new BusyPoll(50);
  b.begin(clock.nowUs());
  assert.equal(b.keepSpinning(clock.advance(49)), true);
  assert.equal(b.keepSpinning(clock.advance(1)), false);
  b.end(clock.nowUs(), false);
  b.begin(clock.nowUs());
  b.end(clock.advance(10), true);
  assert.deepEqual([b.hits, b.misses, b.spentUs], [1, 1, 60]);
  assert.equal(new BusyPoll(0).enabled, false);
});

// DIM: feed samples of chosen rates directly to decide().
const rates = (bpms: number, ppms = 1, epms = 1): { bpms: number; ppms: number; epms: number } => ({ bpms, ppms, epms });

test('DIM leaves its parking spot when the rates change and walks right from profile 0', () => {
  const d = new Dim(5, 0);
  assert.equal(d.state, 'parkingOnTop');
  assert.equal(d.decide(rates(100)), true, 'first sample differs from the zero reference');
  assert.equal(d.state, 'goingRight');
  assert.equal(d.profileIx, 1);
});

test('DIM keeps walking while better, turns when worse, and parks on top after one step back', () => {
  const d = new Dim(5, 0);
  d.decide(rates(100)); // → 1, going right
  d.decide(rates(200)); // better → 2
  assert.equal(d.profileIx, 2);
  d.decide(rates(300)); // better → 3
  assert.equal(d.profileIx, 3);
  d.decide(rates(200)); // worse: turn left, one step back → 2
  assert.equal(d.state, 'goingLeft');
  assert.equal(d.profileIx, 2);
  d.decide(rates(300)); // better again going left → but on top pattern (stepsRight > 1, stepsLeft == 1): park
  assert.equal(d.state, 'parkingOnTop');
  assert.equal(d.profileIx, 2);
  assert.equal(d.decide(rates(305)), false, 'within 10 %: stays parked');
  assert.equal(d.decide(rates(400)), true, 'a significant change leaves the parking spot');
});

test('DIM treats differences within the threshold as the same and compares packets, then events', () => {
  const d = new Dim(5, 1, 64, 10);
  assert.equal(d.compare(rates(105), rates(100)), 'same');
  assert.equal(d.compare(rates(111), rates(100)), 'better');
  assert.equal(d.compare(rates(100, 50), rates(100, 100)), 'worse');
  assert.equal(d.compare(rates(100, 100, 50), rates(100, 100, 100)), 'better', 'fewer events per ms is better');
});

test('DIM parks at an edge and parks tired after twice the profile count of steps', () => {
  const d = new Dim(3, 0);
  d.decide(rates(100)); // → 1
  d.decide(rates(200)); // → 2
  d.decide(rates(300)); // at the right edge: park
  assert.equal(d.state, 'parkingOnTop');
  assert.equal(d.profileIx, 2);
  // Samples that never differ make the walk turn at every step until it is tired.
  const t = new Dim(5, 2);
  t.decide(rates(100)); // leaves parking going left → 1
  let decisions = 1;
  while (t.state !== 'parkingTired' && decisions < 50) {
    t.decide(rates(100));
    decisions++;
  }
  assert.equal(t.state, 'parkingTired');
  assert.equal(decisions, 11, '2 × 5 steps, then the tired park');
  for (let i = 0; i < 4; i++) t.decide(rates(100));
  assert.equal(t.state, 'parkingTired');
  t.decide(rates(100));
  assert.notEqual(t.state, 'parkingTired', 'after 5 samples it leaves the tired park');
});

const NET_DIM_SAMPLING = { minSampleUs: 0, parkExitSamples: 1, tieToLower: false };

test('DIM with a minimum sample time waits for both the events and the time', () => {
  const d = new Dim(5, 0, 64, 10, 20_000);
  d.update(0, 0, 0, 0);
  assert.equal(d.update(1000, 100, 150_000, 640), false, '640 events but only 1 ms');
  assert.equal(d.samples, 0);
  assert.equal(d.update(20_000, 2000, 3_000_000, 700), true, '20 ms: one sample, the walk leaves parking');
  assert.equal(d.samples, 1);
});

test('DIM with parkExitSamples 2 leaves its parking spot only after two samples that differ the same way', () => {
  const d = new Dim(5, 2, 64, 10, 0, 2);
  d.decide(rates(100)); // differs from the zero reference: one vote
  assert.equal(d.state, 'parkingOnTop');
  assert.equal(d.decide(rates(100)), true, 'a second "better" than the zero reference: leaves, going left');
  assert.equal(d.state, 'goingLeft');
  const p = new Dim(5, 0, 64, 10, 0, 2);
  p.decide(rates(100));
  p.decide(rates(100)); // → 1
  p.decide(rates(50)); // worse going right: turn, step left → 0
  p.decide(rates(100)); // better going left, at the edge: parked on 0 with 100 as the reference
  assert.deepEqual([p.profileIx, p.state], [0, 'parkingOnTop']);
  // High, low, high...: never two the same way in a row.
  for (const r of [150, 50, 150, 50, 150, 50]) assert.equal(p.decide(rates(r)), false, `sample ${r}: stays parked`);
  assert.equal(p.state, 'parkingOnTop');
  assert.equal(p.decide(rates(50)), true, 'two low samples in a row: leaves (going right from 0)');
  assert.equal(p.state, 'goingRight');
});

test('DIM with tieToLower takes back a step to more delay that is not better, and keeps a step to less delay that is not worse', () => {
  const d = new Dim(5, 0, 64, 10, 0, 1, true);
  d.decide(rates(100)); // leaves parking → 1
  assert.equal(d.profileIx, 1);
  assert.equal(d.decide(rates(104)), true, 'same throughput with more delay: back to 0');
  assert.deepEqual([d.profileIx, d.state], [0, 'parkingOnTop']);
  // The reference stays the profile-0 sample (100): 104 is "same", so the walk stays parked.
  assert.equal(d.decide(rates(104)), false);
  // Going right while better, then a tie: one step back.
  const r = new Dim(5, 0, 64, 10, 0, 1, true);
  r.decide(rates(100)); // → 1
  r.decide(rates(200)); // better → 2
  r.decide(rates(300)); // better → 3
  assert.equal(r.decide(rates(310)), true);
  assert.deepEqual([r.profileIx, r.state], [2, 'parkingOnTop']);
  // Going left: a tie walks on toward less delay, a worse sample steps back and parks.
  const l = new Dim(5, 4, 64, 10, 0, 1, true);
  l.decide(rates(100)); // leaves parking going left → 3
  assert.equal(l.state, 'goingLeft');
  l.decide(rates(102)); // same with less delay: on → 2
  assert.equal(l.profileIx, 2);
  l.decide(rates(80)); // worse: back to 3, parked
  assert.deepEqual([l.profileIx, l.state], [3, 'parkingOnTop']);
});

test('DIM (property): any sample sequence, any knob setting, keeps the walk on a profile and reports exactly its moves', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 6 }),
      fc.integer({ min: 1, max: 3 }),
      fc.boolean(),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 200 }),
      (count, exitSamples, tie, samples) => {
        const d = new Dim(count, 0, 64, 10, 0, exitSamples, tie);
        for (const [b, p, e] of samples) {
          const before = d.profileIx;
          const changed = d.decide(rates(b, p, e));
          assert.ok(Number.isInteger(d.profileIx) && d.profileIx >= 0 && d.profileIx < count, `profile ${d.profileIx} of ${count}`);
          assert.equal(changed, d.profileIx !== before);
          assert.ok(Math.abs(d.profileIx - before) <= 1, 'one step at a time');
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('DIM samples only every nevents events and reports rate-based decisions', () => {
  const d = new Dim(5, 0, 64, 10);
  assert.equal(d.update(0, 0, 0, 0), false);
  assert.equal(d.update(1000, 100, 150_000, 63), false, 'not enough events yet');
  assert.equal(d.samples, 0);
  assert.equal(d.update(1000, 100, 150_000, 64), true);
  assert.equal(d.samples, 1);
});

test('the adaptive policy applies each profile to the tx timer and the coalescing it drives', () => {
  // net_dim's sampling (events alone, one sample to leave parking): the walk moves on the first sample.
  const cfg = { ...PRESETS.adaptive!.adaptive!, ...NET_DIM_SAMPLING };
  const a = new AdaptivePolicy(cfg);
  const t = new TxTimer(timerCfg({ intervalUs: 0 }), 64);
  const irq = new InterruptPolicy(irqCfg({ mode: 'eventIdx' }));
  a.apply(0, [t], [irq]);
  assert.equal(t.interval, 0);
  assert.equal(irq.afterPublish(0, 1, 1, 0), 'check', 'profile 0: no coalescing');
  // One sample with traffic moves the walk right (from the zero reference) to profile 1.
  a.update(0, 0, 0, 0);
  assert.equal(a.update(1000, 1000, 1_500_000, 64), true);
  a.apply(1000, [t], [irq]);
  assert.equal(t.interval, cfg.profiles[1]!.txTimerUs);
  assert.equal(irq.afterPublish(1001, 1, 1, 0), 'defer', 'profile 1 coalesces');
  assert.ok(a.meanProfileIx(2000) > 0);
});

test('the adaptive batching guard parks the walk at no delay when flushes batch fewer packets than asked', () => {
  const cfg = { ...PRESETS.adaptive!.adaptive!, ...NET_DIM_SAMPLING, minPacketsPerFlush: 2 };
  const a = new AdaptivePolicy(cfg);
  a.update(0, 0, 0, 0, 0);
  // A streaming sample (64 packets per flush) walks right.
  assert.equal(a.update(1000, 64 * 64, 64 * 64 * 1500, 64, 64), true);
  assert.equal(a.dim.profileIx, 1);
  // A sample with better byte rates (DIM would walk on) but one packet per flush: parked at 0.
  const s2 = { packets: 64 * 64 + 64, bytes: 64 * 64 * 1500 + 10_000_000, events: 128, flushes: 64 + 64 };
  assert.equal(a.update(2000, s2.packets, s2.bytes, s2.events, s2.flushes), true);
  assert.equal(a.dim.profileIx, 0);
  assert.equal(a.dim.state, 'parkingOnTop');
  assert.equal(a.guardParks, 1);
  // Plain DIM (guard off) would have kept walking.
  const plain = new AdaptivePolicy({ ...cfg, minPacketsPerFlush: 0 });
  plain.update(0, 0, 0, 0, 0);
  plain.update(1000, 64 * 64, 64 * 64 * 1500, 64, 64);
  plain.update(2000, s2.packets, s2.bytes, s2.events, s2.flushes);
  assert.equal(plain.dim.profileIx, 2);
  assert.equal(plain.guardParks, 0);
});
