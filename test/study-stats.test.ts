// The study's statistics: min/avg/max with population and sample stddev, iputils' integer-µs
// rtt summary (current and 2008 formulas), HDR percentiles, and the ping -f send rule driven by
// a fake clock.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { summarize, percentile, median } from '../src/study/stats.js';
import { iputilsEwmaUs, iputilsRtt, llsqrt, msFromUs } from '../src/study/iputils.js';
import { hdrPercentiles } from '../src/study/measure.js';
import { FloodPingSchedule } from '../src/study/flood-schedule.js';

const close = (a: number, b: number, eps = 1e-9): boolean => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));

test('summarize gives min/avg/max and both standard deviations of a known sample', () => {
  const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(s.n, 8);
  assert.equal(s.min, 2);
  assert.equal(s.max, 9);
  assert.equal(s.avg, 5);
  assert.equal(s.stddevPop, 2);
  assert.ok(close(s.stddevSample, Math.sqrt(32 / 7)));
});

test('summarize of one value has no sample stddev, of none has nothing, and ignores NaN', () => {
  const one = summarize([1.5]);
  assert.equal(one.stddevPop, 0);
  assert.ok(Number.isNaN(one.stddevSample));
  const none = summarize([]);
  assert.equal(none.n, 0);
  assert.ok(Number.isNaN(none.avg) && Number.isNaN(none.min));
  assert.equal(summarize([1, NaN, 3]).n, 2);
});

test('stddevs agree with the textbook formulas and sample ≥ population (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 2, maxLength: 50 }), (xs) => {
      const s = summarize(xs);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const ss = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
      assert.ok(close(s.avg, mean, 1e-9) || Math.abs(s.avg - mean) < 1e-6);
      assert.ok(Math.abs(s.stddevPop - Math.sqrt(ss / xs.length)) <= 1e-6 * Math.max(1, s.stddevPop));
      assert.ok(Math.abs(s.stddevSample - Math.sqrt(ss / (xs.length - 1))) <= 1e-6 * Math.max(1, s.stddevSample));
      assert.ok(s.stddevSample >= s.stddevPop);
      assert.ok(s.min <= s.avg + 1e-9 && s.avg <= s.max + 1e-9);
    }),
  );
});

test('percentile is nearest-rank and median averages the middle pair', () => {
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile([1, 2, 3, 4], 99), 4);
  assert.equal(percentile([1, 2, 3, 4], 0), 1);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test("llsqrt is iputils' Newton iteration: the floor of the square root, except k when a = k² − 1", () => {
  // iputils returns the iterate that stopped the descent; for a = k² − 1 Newton oscillates
  // between k − 1 and k and the loop ends on k (llsqrt(3) = 2, llsqrt(8) = 3).
  for (let a = 0n; a < 5000n; a++) {
    const r = llsqrt(a);
    let f = 0n;
    while ((f + 1n) * (f + 1n) <= a) f++;
    const oscillates = a > 0n && (f + 1n) * (f + 1n) - 1n === a;
    assert.equal(r, oscillates ? f + 1n : f, `llsqrt(${a})`);
  }
  assert.equal(llsqrt(3n), 2n);
  assert.equal(llsqrt(8n), 3n);
  assert.equal(llsqrt(10n ** 18n), 10n ** 9n);
  assert.equal(llsqrt(-5n), -5n); // iputils returns its input when it is not positive
});

test('iputils ms formatting is exact %ld.%03ld, never rounded', () => {
  assert.equal(msFromUs(60), '0.060');
  assert.equal(msFromUs(7602), '7.602');
  assert.equal(msFromUs(0), '0.000');
  assert.equal(msFromUs(12_345_678), '12345.678');
  assert.equal(msFromUs(999), '0.999');
});

test('iputils summary of a hand-computed sample: integer avg and mdev from truncated µs', () => {
  // RTTs 100.9, 200.2, 301.7 µs truncate to 100, 200, 301: tsum 601, tsum2 140601,
  // avg trunc(200.33) = 200, variance trunc((140601 − 601²/3)/3) = trunc(6733.55…) = 6733, √ → 82.
  const r = iputilsRtt([100.9, 200.2, 301.7]);
  assert.deepEqual([r.count, r.minUs, r.avgUs, r.maxUs, r.mdevUs], [3, 100, 200, 301, 82]);
  assert.equal(r.line, 'rtt min/avg/max/mdev = 0.100/0.200/0.301/0.082 ms');
});

test("iputils' current order avoids the 2008 formula's rounding error for small RTTs", () => {
  // [1, 2]: current (5 − 9/2)/2 = 0.25 → 0; 2008: 5/2 − (3/2)² in integers = 2 − 1 = 1.
  assert.equal(iputilsRtt([1, 2]).mdevUs, 0);
  assert.equal(iputilsRtt([1, 2], 's20071127').mdevUs, 1);
  assert.equal(iputilsRtt([1, 1, 2]).mdevUs, 0);
  assert.equal(iputilsRtt([1, 1, 2], 's20071127').mdevUs, 1);
});

test('iputils mdev is llsqrt of the truncated population variance of the integer RTTs (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 300 }), (xs) => {
      const r = iputilsRtt(xs);
      const n = BigInt(xs.length);
      const s = xs.reduce((a, x) => a + BigInt(x), 0n);
      const s2 = xs.reduce((a, x) => a + BigInt(x) * BigInt(x), 0n);
      // Exact: trunc((s2 − s²/n)/n) = floor((n·s2 − s²)/n²) for the non-negative variance.
      const exact = llsqrt((n * s2 - s * s) / (n * n));
      assert.ok(Math.abs(r.mdevUs - Number(exact)) <= 1, `mdev ${r.mdevUs} vs exact ${exact}`);
      assert.equal(r.avgUs, Number(s / n));
      assert.equal(r.minUs, Math.min(...xs));
      assert.equal(r.maxUs, Math.max(...xs));
    }),
  );
});

test("iputils' flood EWMA starts at the first RTT and moves 1/8 of the way with integer steps", () => {
  assert.equal(iputilsEwmaUs([100]), 100);
  // rtt = 800; += 180 − 100 → 880 (110); += 110 − 110 → 880 (110).
  assert.equal(iputilsEwmaUs([100, 180, 110]), 110);
  // Truncation: 8·3 = 24, += 0 − 3 → 21, 21/8 → 2.
  assert.equal(iputilsEwmaUs([3, 0]), 2);
  assert.ok(Number.isNaN(iputilsEwmaUs([])));
});

test('an empty RTT list has no summary line', () => {
  const r = iputilsRtt([]);
  assert.equal(r.count, 0);
  assert.equal(r.line, '');
});

test('HDR p50/p99 stay within the histogram precision of the exact percentiles', () => {
  const xs = Array.from({ length: 10_000 }, (_, i) => 20 + ((i * 7919) % 5000));
  const { p50Us, p99Us } = hdrPercentiles(xs);
  assert.ok(Math.abs(p50Us - percentile(xs, 50)) <= percentile(xs, 50) * 0.002 + 1);
  assert.ok(Math.abs(p99Us - percentile(xs, 99)) <= percentile(xs, 99) * 0.002 + 1);
  assert.ok(Number.isNaN(hdrPercentiles([]).p50Us));
});

test('ping -f sends the next request as soon as the reply arrives', () => {
  const s = new FloodPingSchedule(3);
  assert.equal(s.delayMs(0), 0);
  assert.equal(s.onSent(0), 1);
  assert.equal(s.delayMs(0.05), 9.95); // one in flight: held back up to 10 ms after the send
  assert.equal(s.onReply(1, 50), 'new');
  assert.equal(s.delayMs(0.05), 0); // reply in: send at once
  assert.equal(s.onSent(0.05), 2);
});

test('ping -f without replies falls back to one request every 10 ms (100 per second)', () => {
  const s = new FloodPingSchedule(5);
  const sends: number[] = [];
  // A fake clock stepping 0.5 ms; nothing ever comes back.
  for (let t = 0; t <= 60; t += 0.5) {
    if (s.delayMs(t) === 0) {
      s.onSent(t);
      sends.push(t);
    }
  }
  assert.deepEqual(sends, [0, 10, 20, 30, 40]);
  assert.equal(s.inFlight, 5);
  assert.equal(s.delayMs(70), Infinity); // all sent
});

test('ping -f counts in flight from the highest sequence acknowledged, like iputils', () => {
  const s = new FloodPingSchedule(10);
  s.onSent(0);
  s.onSent(10);
  s.onSent(20);
  assert.equal(s.onReply(1, 20_000), 'new'); // a late reply to the first request
  assert.equal(s.inFlight, 2);
  assert.equal(s.delayMs(25), 5); // still held back: requests 2 and 3 are out
  assert.equal(s.onReply(3, 100), 'new');
  assert.equal(s.inFlight, 0);
  assert.equal(s.delayMs(25), 0);
  assert.equal(s.onReply(3, 100), 'duplicate');
  assert.equal(s.onReply(9, 100), 'unknown');
  assert.equal(s.duplicates, 1);
  assert.equal(s.received, 2);
});

test('ping -f ends when every reply came back, or 2 × max RTT after the last send', () => {
  const a = new FloodPingSchedule(2);
  a.onSent(0);
  a.onReply(1, 300);
  a.onSent(1);
  assert.equal(a.done(1.2), false);
  a.onReply(2, 200);
  assert.equal(a.done(1.2), true);

  const b = new FloodPingSchedule(2);
  b.onSent(0);
  b.onReply(1, 300); // max RTT 300 µs
  b.onSent(1); // the last request: linger 0.6 ms
  assert.equal(b.done(1.5), false);
  assert.equal(b.done(1.6), true);
  assert.equal(b.nextDeadlineMs(1), 1.6);

  const c = new FloodPingSchedule(1);
  c.onSent(0); // nothing ever received: linger MAXWAIT (10 s)
  assert.equal(c.done(9_999), false);
  assert.equal(c.done(10_000), true);
});

test('a simulated flood with a fixed RTT sends back to back and takes count × RTT', () => {
  const rttMs = 0.1;
  const s = new FloodPingSchedule(1000);
  let now = 0;
  let pending: { seq: number; at: number } | null = null;
  for (;;) {
    if (pending && now >= pending.at) {
      s.onReply(pending.seq, rttMs * 1000);
      pending = null;
    }
    if (s.done(now)) break;
    if (s.delayMs(now) === 0) pending = { seq: s.onSent(now), at: now + rttMs };
    now = pending ? Math.max(now, pending.at) : s.nextDeadlineMs(now);
  }
  assert.equal(s.received, 1000);
  assert.ok(Math.abs(now - 1000 * rttMs) < 1e-6, `ended at ${now} ms`);
});

test('a ping schedule rejects a count that is not a positive integer', () => {
  assert.throws(() => new FloodPingSchedule(0), RangeError);
  assert.throws(() => new FloodPingSchedule(1.5), RangeError);
  const s = new FloodPingSchedule(1);
  s.onSent(0);
  assert.throws(() => s.onSent(1), RangeError);
});
