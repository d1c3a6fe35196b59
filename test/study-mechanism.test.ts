// The study's mechanism counters from two sides' SideStats: the share of tx-timer flushes a kick
// forced (ring full) rather than the timer, and the global lock's contention per packet — the
// counters the conclusions' "mechanism" lines read. A policy without a timer or a lock gives NaN
// ("—"), never 0.

import test from 'node:test';
import assert from 'node:assert/strict';
import { emptySideStats } from '../src/engine/types.js';
import { mechanismOf } from '../src/study/measure.js';

function sides(guestExtra: Record<string, number>, hostExtra: Record<string, number>) {
  const g = { ...emptySideStats('guest'), extra: guestExtra };
  const h = { ...emptySideStats('host'), extra: hostExtra };
  return [g, h] as const;
}

test('kickFlushShare is ring-full flushes over all timer flushes; the lock figures sum both sides per packet', () => {
  const [g, h] = sides({ drvLockContended: 10, drvLockWaitUs: 40 }, { timerFires: 30, ringFullFlushes: 90, devFlushes: 120, devFlushPackets: 3840, devLockContended: 20, devLockWaitUs: 160 });
  const m = mechanismOf(g, h, 1000);
  assert.equal(m.kickFlushShare, 0.75);
  assert.equal(m.avgBatch, 32);
  assert.equal(m.lockContendedPerPacket, 0.03);
  assert.equal(m.lockWaitUsPerPacket, 0.2);
});

test('a policy with no timer flushes and no lock reports NaN, not 0', () => {
  const [g, h] = sides({}, { timerFires: 0, ringFullFlushes: 0, devFlushes: 5, devFlushPackets: 50 });
  const m = mechanismOf(g, h, 50);
  assert.ok(Number.isNaN(m.kickFlushShare));
  assert.ok(Number.isNaN(m.lockContendedPerPacket));
  assert.ok(Number.isNaN(m.lockWaitUsPerPacket));
  const [g2, h2] = sides({}, {});
  assert.ok(Number.isNaN(mechanismOf(g2, h2, 50).kickFlushShare));
});
