// The model's 2008 costs (PolicyConfig.costs, docs/study.md "The model's costs"): validation
// names the bad field; every RFC row (cumulative and alone) pays the documented defaults and no
// modern preset pays any; a user's JSON can ask "what if" with other costs; CostPayer spends the
// time on the calling thread and counts it (under a fake clock too: a cost is real time).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CostPayer, FakeClock, NO_COSTS, PRESETS, PolicyError, RFC_ROWS, resolvePolicy, rfcRowAlone, performanceClock } from '../src/policy/index.js';

const RFC_2008 = { exitUs: 7, irqInjectUs: 7, syscallUs: 1, guestPacketUs: 1.6, guestTxKiBUs: 1.8, guestRxKiBUs: 1.1, backendReadKiBUs: 0.06 };

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
  p.guestPacket(4);
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
      none.guestPacket(n);
      return true;
    }),
  );
  const o2: Record<string, number> = {};
  none.toExtra(o2);
  assert.deepEqual(o2, {}, 'no cost counters without costs');
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
