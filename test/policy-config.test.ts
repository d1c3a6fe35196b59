// Policy configs: presets line up with the RFC's rows, apply cumulatively or alone, and user
// configs (names, JSON, objects with a base) are validated with errors that name the bad field.

import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { PRESETS, PolicyError, RFC_ROWS, RFC_ROW_LABELS, driverTxBatch, listPresets, resolvePolicy, rfcRowAlone, validatePolicy } from '../src/policy/index.js';

// The RFC's rows as data, when the shared seed is present (checked in the project environment).
const SEED = '/work/shared/seed/rfc-tables.json';
const RFC_TABLES = existsSync(SEED) ? (JSON.parse(readFileSync(SEED, 'utf8')) as { throughput_gbps: { row: string }[] }) : null;

test('RFC_ROWS names one preset per row of the RFC tables, in the same order', () => {
  const labels = RFC_ROWS.map((n) => RFC_ROW_LABELS[n]);
  const expected = ['baseline', '50us tx timer + rearm', '250us tx timer + rearm', '150us tx timer + rearm', 'no ring-full heuristic', 'VIRTIO_F_NOTIFY_ON_EMPTY', 'recv NO_NOTIFY', 'GSO', 'ring size == 256', 'ring size == 512', 'drop mutex during tapfd read', 'aligouri zero-copy'];
  assert.deepEqual(labels, expected);
  if (RFC_TABLES !== null) assert.deepEqual(labels, RFC_TABLES.throughput_gbps.map((r) => r.row));
  for (const n of RFC_ROWS) assert.ok(PRESETS[n], `${n} is a preset`);
});

test('the RFC presets are cumulative: each row after the timer rows keeps every earlier change', () => {
  const gso = PRESETS['rfc-gso']!;
  assert.equal(gso.tx.kind, 'timer');
  if (gso.tx.kind === 'timer') {
    assert.equal(gso.tx.intervalUs, 150);
    assert.equal(gso.tx.kickWhileArmed, 'flushNow');
  }
  assert.equal(gso.interrupts.mode, 'notifyOnEmpty');
  assert.equal(gso.rxKicks, 'onlyWhenStarved');
  assert.equal(gso.dataPath.gso, true);
  const last = PRESETS['rfc-zero-copy']!;
  assert.deepEqual([last.dataPath.txRingSize, last.dataPath.lock, last.dataPath.copies, last.dataPath.gso], [512, 'dropped', 1, true]);
  const t250 = PRESETS['rfc-timer-250us']!;
  assert.ok(t250.tx.kind === 'timer' && t250.tx.intervalUs === 250 && t250.tx.minRearmUs === 0, 'timer rows replace the interval on the baseline');
});

test('an RFC row alone changes only its own setting on top of the baseline', () => {
  const alone = rfcRowAlone('rfc-gso');
  const base = PRESETS['rfc-baseline']!;
  assert.equal(alone.dataPath.gso, true);
  assert.deepEqual(alone.tx, base.tx);
  assert.deepEqual(alone.interrupts, base.interrupts);
  assert.equal(alone.rxKicks, base.rxKicks);
  assert.equal(resolvePolicy('rfc-drop-mutex-alone').dataPath.lock, 'dropped');
  assert.equal(resolvePolicy('rfc-drop-mutex-alone').dataPath.gso, false);
});

test('every preset validates and has a one-line description', () => {
  for (const p of listPresets()) {
    assert.ok(p.description.length > 10 && !p.description.includes('\n'), p.name);
    assert.deepEqual(validatePolicy(PRESETS[p.name]), PRESETS[p.name]);
  }
});

test('a user object extends a base preset, and a JSON string does the same', () => {
  const p = resolvePolicy({ base: 'rfc-baseline', tx: { intervalUs: 75, minRearmUs: 0 } });
  assert.ok(p.tx.kind === 'timer' && p.tx.intervalUs === 75 && p.tx.rearmOnKick);
  assert.equal(p.name, 'rfc-baseline+custom');
  const j = resolvePolicy('{"base":"vhost","busyPoll":{"busyUs":20},"name":"mine"}');
  assert.equal(j.busyPoll.busyUs, 20);
  assert.equal(j.name, 'mine');
  const swapped = resolvePolicy({ base: 'rfc-baseline', tx: { kind: 'bh', burst: 64 } });
  assert.deepEqual(swapped.tx, { kind: 'bh', burst: 64 }, 'a different tx kind replaces the module');
});

test('bad user configs fail with a typed error naming the field', () => {
  const cases: [unknown, string, RegExp][] = [
    [{ base: 'vhost', tx: { burst: -1 } }, 'tx.burst', /≥ 1/],
    [{ base: 'vhost', dataPath: { txRingSize: 100 } }, 'dataPath.txRingSize', /power of 2/],
    [{ base: 'vhost', interrupts: { mode: 'sometimes' } }, 'interrupts.mode', /one of/],
    [{ base: 'vhost', interrupts: { coalesce: { maxPackets: 1.5, maxUsecs: 3 } } }, 'interrupts.coalesce.maxPackets', /integer/],
    [{ base: 'vhost', busyPoll: { busyUs: 'lots' } }, 'busyPoll.busyUs', /number/],
    [{ base: 'vhost', rxKicks: 'never' }, 'rxKicks', /one of/],
    [{ base: 'vhost', dataPath: { copies: 3 } }, 'dataPath.copies', /one of/],
    [{ base: 'vhost', frobnicate: true }, 'frobnicate', /unknown field/],
    [{ base: 'rfc-baseline', interrupts: { driverEnable: 'delayed' } }, 'interrupts.driverEnable', /eventIdx/],
    [{ base: 'adaptive', adaptive: { startIx: 9 } }, 'adaptive.startIx', /index a profile/],
    [{ base: 'rfc-baseline', tx: { kicksDuringFlush: 'yes' } }, 'tx.kicksDuringFlush', /true or false/],
    [{ base: 'vhost', dataPath: { driverTxBatch: 0 } }, 'dataPath.driverTxBatch', /≥ 1/],
    [{ base: 'vhost', dataPath: { driverTxBatch: 2.5 } }, 'dataPath.driverTxBatch', /integer/],
    [{ base: 'rfc-baseline', dataPath: { ackEach: 1 } }, 'dataPath.ackEach', /true or false/],
    [{ base: 'rfc-baseline', dataPath: { lockSpinUs: -1 } }, 'dataPath.lockSpinUs', /≥ 0/],
    [{ base: 'rfc-baseline', dataPath: { lockSpinUs: 1e6 } }, 'dataPath.lockSpinUs', /at most 100000/],
    [{ base: 'rfc-ring-512', dataPath: { rxPoolKiB: 0 } }, 'dataPath.rxPoolKiB', /≥ 1/],
    [{ base: 'rfc-ring-512', dataPath: { rxPoolKiB: 1.5 } }, 'dataPath.rxPoolKiB', /integer/],
    [{ base: 'vhost', dataPath: { mergeableBufBytes: 12 } }, 'dataPath.mergeableBufBytes', /≥ 64/],
    [{ base: 'vhost', dataPath: { mergeableBufBytes: 1 << 21 } }, 'dataPath.mergeableBufBytes', /at most 1048576/],
    [{ base: 'adaptive', adaptive: { parkExitSamples: 0 } }, 'adaptive.parkExitSamples', /≥ 1/],
    [{ base: 'adaptive', adaptive: { minSampleUs: -5 } }, 'adaptive.minSampleUs', /≥ 0/],
    [{ base: 'adaptive', adaptive: { tieToLower: 'yes' } }, 'adaptive.tieToLower', /true or false/],
  ];
  for (const [spec, field, msg] of cases) {
    assert.throws(
      () => resolvePolicy(spec as Record<string, unknown>),
      (e: unknown) => e instanceof PolicyError && e.field === field && msg.test(e.message) && e.message.includes(field),
      `${JSON.stringify(spec)} should name ${field}`,
    );
  }
  assert.throws(() => resolvePolicy('no-such-preset'), (e: unknown) => e instanceof PolicyError && e.code === 'unknown-preset' && /vhost/.test(e.message));
  assert.throws(() => resolvePolicy('{"base": '), (e: unknown) => e instanceof PolicyError && e.code === 'bad-json');
});

test('Infinity is accepted as the string "Infinity" where JSON cannot say it', () => {
  const p = resolvePolicy('{"base":"vhost","busyPoll":{"busyUs":"Infinity"}}');
  assert.equal(p.busyPoll.busyUs, Infinity);
});

test('the 2008 guest and host: every RFC row kicks per frame, keeps kicks on during a flush, ACKs as data arrives and spins on the lock; the modern presets do none of it', () => {
  for (const name of RFC_ROWS) {
    const p = PRESETS[name]!;
    assert.equal(driverTxBatch(p), 1, name);
    assert.equal(p.tx.kind === 'timer' && p.tx.kicksDuringFlush, true, name);
    // 2.6.26's receivers ACKed as data arrived; a 2008 mutex waiter woke in µs (spins here).
    assert.equal(p.dataPath.ackEach, true, name);
    assert.equal(p.dataPath.lockSpinUs, 500, name);
  }
  for (const [name, p] of Object.entries(PRESETS)) {
    if (RFC_ROWS.includes(name)) continue;
    assert.equal(driverTxBatch(p), 32, name);
    assert.notEqual(p.tx.kind === 'timer' && p.tx.kicksDuringFlush, true, name);
    assert.notEqual(p.dataPath.ackEach, true, name);
    assert.equal(p.dataPath.lockSpinUs ?? 0, 0, name);
  }
  assert.equal(driverTxBatch(resolvePolicy({ base: 'vhost', dataPath: { driverTxBatch: 4 } })), 4);
});
