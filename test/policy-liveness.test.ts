// Liveness and safety of every policy on a real split ring, single-threaded and deterministic
// (test/support/policy-sim.ts): under random interleavings of driver and device steps and random
// time jumps, no packet is lost, duplicated or reordered, and no published buffer is left
// un-signalled while the driver waits (that would be a deadlock the simulation detects). Also
// the race-closing re-check, the 3/4 delayed enable, notify-on-empty and recv NO_NOTIFY, step by step.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PRESETS, resolvePolicy, validatePolicy, type PolicyConfig } from '../src/policy/index.js';
import { PolicySim } from './support/policy-sim.js';

const presetNames = Object.keys(PRESETS);

/** A random but valid custom policy built on a random preset. */
const customPolicy: fc.Arbitrary<PolicyConfig> = fc
  .record({
    base: fc.constantFrom(...presetNames),
    tx: fc.oneof(
      fc.record({ kind: fc.constant('bh' as const), burst: fc.integer({ min: 1, max: 64 }) }),
      fc.record({
        kind: fc.constant('timer' as const),
        intervalUs: fc.integer({ min: 0, max: 300 }),
        rearmOnKick: fc.boolean(),
        kickWhileArmed: fc.constantFrom('ringFullHeuristic' as const, 'flushNow' as const),
        ringFullPending: fc.integer({ min: 0, max: 80 }),
        burst: fc.integer({ min: 1, max: 64 }),
        minRearmUs: fc.constantFrom(0, 250),
        fireOnAnyWakeup: fc.boolean(),
        kicksDuringFlush: fc.boolean(),
      }),
    ),
    mode: fc.constantFrom('legacyPerBuffer' as const, 'notifyOnEmpty' as const, 'flags' as const, 'eventIdx' as const),
    coalesce: fc.option(fc.record({ maxPackets: fc.integer({ min: 0, max: 40 }), maxUsecs: fc.integer({ min: 0, max: 200 }) }), { nil: null }),
    publishBatch: fc.integer({ min: 1, max: 32 }),
    delayed: fc.boolean(),
    rxKicks: fc.constantFrom('always' as const, 'onlyWhenStarved' as const),
    ring: fc.constantFrom(4, 8, 16, 128),
    headerSeparate: fc.boolean(),
  })
  .map((r) =>
    validatePolicy({
      ...resolvePolicy(r.base),
      name: 'random',
      tx: r.tx,
      interrupts: { mode: r.mode, coalesce: r.coalesce, publishBatch: r.publishBatch, driverEnable: r.delayed && r.mode === 'eventIdx' ? 'delayed' : 'immediate' },
      rxKicks: r.rxKicks,
      dataPath: { ...resolvePolicy(r.base).dataPath, txRingSize: r.ring, rxRingSize: r.ring, headerSeparate: r.headerSeparate, gso: false },
    }),
  );

const schedule = fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 300 })), { maxLength: 200 });

function interleave(sim: PolicySim, steps: [number, number][]): void {
  for (const [op, arg] of steps) {
    sim.driverPoll();
    if (op === 0) sim.driverSend(1 + (arg % 16));
    else if (op === 1) sim.driverReap();
    else if (op === 2) sim.deviceStep(arg % 2 === 0 ? () => sim.driverSend(1 + (arg % 5)) : null);
    else if (op === 3) sim.clock.advance(arg);
    else sim.driverWait();
  }
}

for (const direction of ['g2h', 'h2g'] as const) {
  test(`${direction}: every preset delivers every packet once, in order, and never leaves one un-signalled`, () => {
    fc.assert(
      fc.property(fc.constantFrom(...presetNames), schedule, (name, steps) => {
        const sim = new PolicySim(resolvePolicy(name), direction, 300);
        interleave(sim, steps);
        const r = sim.finish();
        assert.equal(r.deadlock, null, `${name}: ${r.deadlock}`);
        assert.deepEqual(r.errors, []);
        assert.equal(r.delivered, 300);
        assert.equal(r.reaped, 300);
      }),
      { numRuns: 120 },
    );
  });

  test(`${direction}: random custom policies keep the same guarantees`, () => {
    fc.assert(
      fc.property(customPolicy, schedule, (policy, steps) => {
        const sim = new PolicySim(policy, direction, 200);
        interleave(sim, steps);
        const r = sim.finish();
        assert.equal(r.deadlock, null, `${JSON.stringify(policy)}: ${r.deadlock}`);
        assert.deepEqual(r.errors, []);
        assert.equal(r.delivered, 200);
        assert.equal(r.reaped, 200);
      }),
      { numRuns: 250 },
    );
  });
}

test('the re-check after re-enabling kicks finds a chain published while kicks were off', () => {
  const sim = new PolicySim(resolvePolicy({ base: 'vhost', interrupts: { mode: 'flags', driverEnable: 'immediate' } }), 'g2h', 100);
  sim.driverSend(3);
  assert.equal(sim.kick.rings, 1);
  assert.equal(sim.loop.pass(1), true, 'the bh flushes the three');
  assert.equal(sim.loop.pass(0), false, 'nothing left; kicks are still off from the flush');
  sim.driverSend(2);
  assert.equal(sim.kick.rings, 1, 'the driver saw NO_NOTIFY and did not kick');
  assert.equal(sim.loop.prepareSleep(), true, 'enable + fence + re-check finds the two: the device must not sleep');
  assert.equal(sim.loop.pass(0), true);
  assert.equal(sim.delivered, 5);
});

test('delayed enable asks for the interrupt after 3/4 of the outstanding buffers', () => {
  const sim = new PolicySim(resolvePolicy({ base: 'vhost', interrupts: { publishBatch: 1 }, dataPath: { txRingSize: 8 } }), 'g2h', 9);
  // The first decision after reset always notifies (no signalled_used yet): get it out of the way.
  sim.driverSend(1);
  sim.deviceStep();
  sim.driverReap();
  const ringsBefore = sim.irq.rings;
  let usedAtIrq = -1;
  sim.irq.onRing = () => {
    if (usedAtIrq < 0) usedAtIrq = sim.dev.nextUsed;
  };
  sim.driverSend(8);
  sim.driverWait();
  assert.equal(sim.drvWaiting, true);
  sim.deviceStep();
  assert.equal(sim.delivered, 9);
  assert.equal(usedAtIrq, 1 + 7, 'used_event = last_used + 6 (3/4 of 8): the interrupt comes with the 7th buffer');
  assert.equal(sim.irq.rings - ringsBefore, 1, 'one interrupt for eight buffers');
});

test('notify-on-empty sends one interrupt per drain where the legacy rule sends one per buffer', () => {
  const run = (mode: 'legacyPerBuffer' | 'notifyOnEmpty'): number => {
    const sim = new PolicySim(resolvePolicy({ base: 'rfc-baseline', interrupts: { mode }, tx: { intervalUs: 0 } }), 'g2h', 32);
    sim.driverSend(32); // interrupts stay disabled: only forced ones get through
    sim.deviceStep();
    assert.equal(sim.delivered, 32);
    return sim.irq.rings;
  };
  // Legacy: every used buffer published while the avail ring is empty interrupts (the drained
  // tail of each flush); notify-on-empty waits until nothing is in flight either: the same here
  // per buffer, but only once per drain when several chains are popped before they are used.
  const legacy = run('legacyPerBuffer');
  const onEmpty = run('notifyOnEmpty');
  assert.ok(legacy >= 1 && onEmpty >= 1);
  assert.ok(onEmpty <= legacy, `notify-on-empty ${onEmpty} ≤ legacy ${legacy}`);
});

test('recv NO_NOTIFY suppresses refill kicks while the device still has rx buffers', () => {
  const run = (rxKicks: 'always' | 'onlyWhenStarved'): { kicks: number; suppressed: number } => {
    const sim = new PolicySim(resolvePolicy({ base: 'rfc-baseline', rxKicks, dataPath: { rxRingSize: 32, headerSeparate: false } }), 'h2g', 400);
    // A device slower than the guest: it fills 4 buffers per step; the guest refills after each.
    for (let i = 0; i < 200 && sim.reaped < 400; i++) {
      sim.loop.pass(1);
      sim.driverReap();
      sim.driverSend(0);
    }
    return { kicks: sim.kick.rings, suppressed: sim.kicksSuppressed };
  };
  const always = run('always');
  const starved = run('onlyWhenStarved');
  assert.equal(always.suppressed, 0, 'always: the device never sets NO_NOTIFY on rx');
  assert.ok(starved.kicks < always.kicks, `only-when-starved kicks ${starved.kicks} < always ${always.kicks}`);
});

test("kvm-71's order: with tx.kicksDuringFlush a timer's flush runs with kicks on, without it with kicks off", () => {
  for (const on of [true, false]) {
    const sim = new PolicySim(resolvePolicy({ base: 'rfc-timer-50us', tx: { kicksDuringFlush: on } }), 'g2h', 8);
    sim.driverSend(4); // the first frame kicks
    sim.deviceStep(); // the kick arms the timer (kicks off)
    assert.equal(sim.kicksOnAtDrain.length, 0, 'nothing flushed before the timer');
    sim.clock.advance(60);
    sim.deviceStep(); // the timer fires and flushes
    assert.ok(sim.kicksOnAtDrain.length > 0, 'the timer flushed');
    assert.ok(sim.kicksOnAtDrain.every((k) => k === on), `kicks during the flush: ${sim.kicksOnAtDrain.join(',')} (want ${on})`);
    const r = sim.finish();
    assert.equal(r.deadlock, null);
    assert.deepEqual(r.errors, []);
    assert.equal(r.delivered, 8);
  }
});

test("with kvm-71's synchronous kicks (kicksDuringFlush) kicks that piled up stand for one: the second does not meet the armed timer as a forced kick", () => {
  for (const sync of [true, false]) {
    const sim = new PolicySim(resolvePolicy({ base: 'rfc-no-ring-full', tx: { kicksDuringFlush: sync } }), 'g2h', 6);
    sim.driverSend(1); // kicks on: the first frame kicks
    sim.driverSend(1); // the device has not looked yet: kicks still on, a second kick
    assert.equal(sim.kick.rings, 2, 'two kicks sent');
    sim.deviceStep();
    if (sync) assert.equal(sim.kicksOnAtDrain.length, 0, 'both kicks stand for one: the timer is armed, nothing flushed yet');
    else assert.ok(sim.kicksOnAtDrain.length > 0, 'the second kick met the armed timer: flushNow flushed at once');
    sim.clock.advance(200);
    const r = sim.finish();
    assert.equal(r.deadlock, null);
    assert.deepEqual(r.errors, []);
    assert.equal(r.delivered, 6);
  }
});
