// The model's 2008 costs (PolicyConfig.costs, docs/study.md "The model's costs"): validation
// names the bad field; every RFC row (cumulative and alone) pays the documented defaults and no
// modern preset pays any; a user's JSON can ask "what if" with other costs; CostPayer spends the
// time on the calling thread and counts it (under a fake clock too: a cost is real time).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CostPayer, FakeClock, NO_COSTS, PRESETS, PolicyError, RFC_ROWS, resolvePolicy, rfcRowAlone, performanceClock } from '../src/policy/index.js';

/** A clock that moves 0.01 µs per read (so a spin ends) and jumps only when told: exact amounts under any load. */
class SteppingClock extends FakeClock {
  override nowUs(): number {
    return this.advance(0.01);
  }
}

const RFC_2008 = { exitUs: 7, irqInjectUs: 7, syscallUs: 1, guestPacketUs: 0, guestRxPacketUs: 4, guestTxKiBUs: 1.8, guestRxKiBUs: 1.1, backendReadKiBUs: 0.18, timerFireUs: 30, absorbOwnWork: true };

test('every RFC row pays the 2008 costs derived in docs/study.md, alone or cumulative; the modern presets pay none', () => {
  for (const name of RFC_ROWS) {
    assert.deepEqual(PRESETS[name]!.costs, RFC_2008, name);
    assert.deepEqual(rfcRowAlone(name).costs, RFC_2008, `${name}-alone`);
  }
  for (const [name, c] of Object.entries(PRESETS)) if (!RFC_ROWS.includes(name)) assert.equal(c.costs, undefined, name);
});

test('costs: a what-if over a preset keeps the other costs; a partial costs object fills 0; bad values are refused naming the field', () => {
  const w = resolvePolicy({ base: 'rfc-timer-50us', costs: { exitUs: 0.5 } });
  assert.deepEqual(w.costs, { ...RFC_2008, exitUs: 0.5 });
  assert.deepEqual(resolvePolicy({ base: 'vhost', costs: { syscallUs: 2 } }).costs, { ...NO_COSTS, syscallUs: 2 });
  for (const [costs, field] of [
    [{ exitUs: -1 }, 'costs.exitUs'],
    [{ irqInjectUs: 'fast' }, 'costs.irqInjectUs'],
    [{ syscallUs: 20_000 }, 'costs.syscallUs'],
    [{ guestPacketUs: Number.NaN }, 'costs.guestPacketUs'],
    [{ guestTxKiBUs: -0.5 }, 'costs.guestTxKiBUs'],
    [{ guestRxKiBUs: '1' }, 'costs.guestRxKiBUs'],
    [{ backendReadKiBUs: 1e6 }, 'costs.backendReadKiBUs'],
    [{ vmexitUs: 1 }, 'costs'],
    [7, 'costs'],
  ] as const) {
    assert.throws(
      () => resolvePolicy({ base: 'vhost', costs } as Record<string, unknown>),
      (e: unknown) => e instanceof PolicyError && e.field.startsWith(field),
      JSON.stringify(costs),
    );
  }
});

test('CostPayer spends at least the asked time per event and counts it; nothing when the costs are 0', () => {
  const p = new CostPayer({ exitUs: 200, irqInjectUs: 100, syscallUs: 50, guestPacketUs: 25 }, performanceClock);
  const t0 = performance.now();
  p.exit();
  p.irqInject();
  p.syscall(2);
  p.guestPacket(3, 'tx');
  p.guestPacket(1, 'rx');
  const spentUs = (performance.now() - t0) * 1000;
  assert.ok(spentUs >= 200 + 100 + 100 + 100 - 1, `spent ${spentUs} µs`);
  const out: Record<string, number> = {};
  p.toExtra(out);
  assert.equal(out.costExits, 1);
  assert.equal(out.costInjections, 1);
  assert.equal(out.costSyscalls, 2);
  assert.equal(out.costGuestPackets, 4);
  assert.ok(out.costExitUs! >= 200 && out.costSyscallUs! >= 100 && out.costGuestPacketUs! >= 100);
  const none = new CostPayer(undefined, new FakeClock());
  fc.assert(
    fc.property(fc.nat(1000), (n) => {
      none.exit();
      none.syscall(n);
      none.guestPacket(n, 'tx');
      none.guestPacket(n, 'rx');
      return true;
    }),
  );
  const o2: Record<string, number> = {};
  none.toExtra(o2);
  assert.deepEqual(o2, {}, 'no cost counters without costs');
});

test('guestRxPacketUs prices received frames apart from sent ones: absent = guestPacketUs, 0 = free, kept by validation even at 0', () => {
  // On the real clock only "at least the asked time" holds (a pre-empted spin runs long); the
  // amounts themselves are checked on a clock that moves 0.01 µs per read.
  const real = new CostPayer({ ...NO_COSTS, guestPacketUs: 10, guestRxPacketUs: 200 }, performanceClock);
  const t0 = performance.now();
  real.guestPacket(1, 'rx');
  const rxUs = (performance.now() - t0) * 1000;
  assert.ok(rxUs >= 199, `an rx frame took ${rxUs} µs, asked 200`);
  const stepping = new SteppingClock();
  const split = new CostPayer({ ...NO_COSTS, guestPacketUs: 10, guestRxPacketUs: 200 }, stepping);
  split.guestPacket(1, 'rx');
  const rxSpun = split.guestPacketUs;
  assert.ok(rxSpun >= 200 && rxSpun < 200.1, `an rx frame spun ${rxSpun} µs, asked 200`);
  split.guestPacket(1, 'tx');
  const txSpun = split.guestPacketUs - rxSpun;
  assert.ok(txSpun >= 10 && txSpun < 10.1, `a tx frame spun ${txSpun} µs, asked 10`);
  const freeRx = new CostPayer({ ...NO_COSTS, guestPacketUs: 50, guestRxPacketUs: 0 }, performanceClock);
  freeRx.guestPacket(1000, 'rx');
  const o: Record<string, number> = {};
  freeRx.toExtra(o);
  assert.equal(o.costGuestPackets, 0, 'received frames are free at guestRxPacketUs 0');
  const onlyRx = new CostPayer({ ...NO_COSTS, guestRxPacketUs: 1 }, performanceClock);
  assert.ok(onlyRx.any, 'a receive-only cost still counts as a cost');
  assert.equal(resolvePolicy({ base: 'vhost', costs: { guestRxPacketUs: 0 } }).costs?.guestRxPacketUs, 0);
  assert.equal(resolvePolicy({ base: 'vhost', costs: { guestPacketUs: 1 } }).costs?.guestRxPacketUs, undefined);
  assert.throws(
    () => resolvePolicy({ base: 'vhost', costs: { guestRxPacketUs: -1 } }),
    (e: unknown) => e instanceof PolicyError && e.field === 'costs.guestRxPacketUs',
  );
});

test('absorbOwnWork: the thread\'s own work since beginOwnWork counts toward the stack and syscall costs; lock waits and other costs do not', () => {
  // A clock that moves 0.01 µs per read (so a spin ends) and jumps when the "work" below is
  // done: the amounts are exact, whatever the machine's load (a pre-empted thread on the real
  // clock turns a pause between two steps into own work).
  const clock = new SteppingClock();
  const busy = (us: number): void => void clock.advance(us);
  // Own work longer than the cost: nothing more is spun, all of it is absorbed.
  const a = new CostPayer({ ...NO_COSTS, syscallUs: 100, absorbOwnWork: true }, clock);
  a.beginOwnWork();
  busy(300);
  a.syscall(1);
  assert.equal(a.syscallUs, 0, 'a cost its own work already covered is not spun again');
  assert.equal(a.absorbedUs, 100);
  // Time spent waiting for the lock is excluded: (nearly) the full cost is spun after it.
  let waited = 0;
  const b = new CostPayer({ ...NO_COSTS, guestPacketUs: 200, absorbOwnWork: true }, clock, () => waited);
  b.beginOwnWork();
  busy(300);
  waited += 300;
  b.guestPacket(1, 'tx');
  assert.ok(b.guestPacketUs >= 199.9, `a lock wait is not own work: spun ${b.guestPacketUs} of 200 µs`);
  // Another modelled cost spun inside the stretch is excluded too.
  const c = new CostPayer({ ...NO_COSTS, exitUs: 300, guestPacketUs: 200, absorbOwnWork: true }, clock);
  c.beginOwnWork();
  c.exit();
  c.guestPacket(1, 'rx');
  assert.ok(c.guestPacketUs >= 199.9, `an exit's spin is not own work: spun ${c.guestPacketUs} of 200 µs`);
  // Own work is set against the costs in order, and what is left of it carries to the next one.
  const f = new CostPayer({ ...NO_COSTS, guestPacketUs: 100, guestTxKiBUs: 100, absorbOwnWork: true }, clock);
  f.beginOwnWork();
  busy(150);
  f.guestBytes('tx', 1024);
  f.guestPacket(1, 'tx');
  assert.equal(f.guestKiBUs, 0, 'the first cost is covered by own work');
  assert.ok(f.absorbedUs >= 150 && f.guestPacketUs <= 50, `absorbed ${f.absorbedUs}, spun ${f.guestPacketUs}`);
  // Without the flag the cost is paid on top of any own work; with it but outside a stretch, whole.
  const d = new CostPayer({ ...NO_COSTS, syscallUs: 200 }, clock);
  d.beginOwnWork();
  busy(300);
  d.syscall(1);
  assert.ok(d.syscallUs >= 200 && d.absorbedUs === 0);
  const e = new CostPayer({ ...NO_COSTS, syscallUs: 200, absorbOwnWork: true }, clock);
  busy(300);
  e.syscall(1);
  assert.ok(e.syscallUs >= 200 && e.absorbedUs === 0, 'no stretch begun: nothing to absorb');
  assert.throws(
    () => resolvePolicy({ base: 'vhost', costs: { absorbOwnWork: 'yes' } }),
    (x: unknown) => x instanceof PolicyError && x.field === 'costs.absorbOwnWork',
  );
  assert.equal(resolvePolicy({ base: 'vhost', costs: { absorbOwnWork: false } }).costs?.absorbOwnWork, undefined);
});

test('timerFireUs: paid once per tx timer fire, counted; absent or 0 costs nothing', () => {
  const p = new CostPayer({ ...NO_COSTS, timerFireUs: 150 }, performanceClock);
  assert.ok(p.any);
  const t0 = performance.now();
  p.timerFire();
  assert.ok((performance.now() - t0) * 1000 >= 149);
  const o: Record<string, number> = {};
  p.toExtra(o);
  assert.equal(o.costTimerFires, 1);
  assert.ok(o.costTimerFireUs! >= 149);
  const none = new CostPayer({ ...NO_COSTS, exitUs: 1 }, performanceClock);
  none.timerFire();
  const o2: Record<string, number> = {};
  none.toExtra(o2);
  assert.equal(o2.costTimerFires, undefined);
  assert.equal(resolvePolicy({ base: 'vhost', costs: { timerFireUs: 0 } }).costs?.timerFireUs, undefined, '0 = absent');
});

test('per-KiB costs: paid in proportion to the bytes, counted apart, and absent from a preset that sets none', () => {
  const p = new CostPayer({ ...NO_COSTS, guestTxKiBUs: 100, guestRxKiBUs: 50, backendReadKiBUs: 25 }, performanceClock);
  assert.ok(p.perKiB && p.any);
  const t0 = performance.now();
  p.guestBytes('tx', 2048);
  p.guestBytes('rx', 1024);
  p.backendRead(4096);
  const spentUs = (performance.now() - t0) * 1000;
  assert.ok(spentUs >= 200 + 50 + 100 - 1, `spent ${spentUs} µs`);
  const out: Record<string, number> = {};
  p.toExtra(out);
  assert.ok(out.costGuestKiBUs! >= 250 && out.costBackendReadUs! >= 100, JSON.stringify(out));
  const plain = new CostPayer({ ...NO_COSTS, exitUs: 1 }, performanceClock);
  plain.guestBytes('tx', 1 << 20);
  plain.backendRead(1 << 20);
  const o2: Record<string, number> = {};
  plain.toExtra(o2);
  assert.equal(plain.perKiB, false);
  assert.equal(o2.costGuestKiBUs, undefined, 'no per-KiB counters without per-KiB costs');
});
