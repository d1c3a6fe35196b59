// Single-thread tests for src/sync: layouts and initial state, every error case, timed variants
// against their deadlines, and the regressions that one thread can pin deterministically
// (condition signal in the unlock→sleep window, mutex/semaphore/condition notify only when
// someone sleeps, Once retry and re-entry). Cross-thread behaviour is in sync-threads.test.ts.
// Node's main thread may block in Atomics.wait, but only timed waits are used here.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Barrier,
  Condition,
  DeadlockError,
  INT32_MAX_VALUE,
  INT32_MIN_VALUE,
  InvalidError,
  Mutex,
  Once,
  PermissionError,
  Semaphore,
  SpinLock,
} from '../src/sync/index.js';

/** Counts Atomics.notify calls made on this thread while `body` runs. */
function countNotifies(body: () => void): number {
  const real = Atomics.notify;
  let calls = 0;
  Atomics.notify = ((view: Int32Array, index: number, count?: number) => {
    calls++;
    return real(view, index, count);
  }) as typeof Atomics.notify;
  try {
    body();
  } finally {
    Atomics.notify = real;
  }
  return calls;
}

/** Asserts that `call` returned false no earlier than `deadline` and not much later. */
function assertTimedOut(call: (deadline: number) => boolean, waitMs = 80): void {
  const deadline = Date.now() + waitMs;
  const result = call(deadline);
  const now = Date.now();
  assert.equal(result, false);
  assert.ok(now >= deadline, `returned ${deadline - now} ms before the deadline`);
  assert.ok(now < deadline + 100, `returned ${now - deadline} ms after the deadline`);
}

const BAD_THREAD_IDS: ReadonlyArray<[number, typeof InvalidError | typeof RangeError]> = [
  [0, InvalidError],
  [1.5, InvalidError],
  [Number.NaN, InvalidError],
  [Infinity, InvalidError],
  [INT32_MAX_VALUE + 1, RangeError],
  [INT32_MIN_VALUE - 1, RangeError],
];

test('limits are the int32 bounds', () => {
  assert.equal(INT32_MAX_VALUE, 2 ** 31 - 1);
  assert.equal(INT32_MIN_VALUE, -(2 ** 31));
});

test('errors extend Error and carry their class name and a stable code', () => {
  for (const [E, name, code] of [
    [DeadlockError, 'DeadlockError', 'EDEADLK'],
    [PermissionError, 'PermissionError', 'EPERM'],
    [InvalidError, 'InvalidError', 'EINVAL'],
  ] as const) {
    const err = new E('boom');
    assert.ok(err instanceof Error);
    assert.ok(err instanceof E);
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.equal(err.message, 'boom');
  }
});

for (const [name, Lock] of [
  ['Mutex', Mutex],
  ['SpinLock', SpinLock],
] as const) {
  describe(name, () => {
    test('init gives a zeroed Int32Array [state, owner] over a SharedArrayBuffer', () => {
      const lock = Lock.init();
      assert.ok(lock instanceof Int32Array);
      assert.ok(lock.buffer instanceof SharedArrayBuffer);
      assert.deepEqual([...lock], [0, 0]);
    });

    test('lock records the owner; unlock frees the state word and the owner', () => {
      const lock = Lock.init();
      Lock.lock(lock, 5);
      assert.deepEqual([...lock], [1, 5]);
      Lock.unlock(lock, 5);
      assert.deepEqual([...lock], [0, 0]);
    });

    test('tryLock takes a free lock and refuses a held one', () => {
      const lock = Lock.init();
      assert.equal(Lock.tryLock(lock, 1), true);
      assert.equal(Lock.tryLock(lock, 2), false);
      assert.deepEqual([...lock], [1, 1]);
      Lock.unlock(lock, 1);
      assert.equal(Lock.tryLock(lock, 2), true);
      Lock.unlock(lock, 2);
    });

    test('INT32_MIN_VALUE and INT32_MAX_VALUE are valid thread ids', () => {
      const lock = Lock.init();
      for (const tid of [INT32_MIN_VALUE, INT32_MAX_VALUE, -1]) {
        Lock.lock(lock, tid);
        Lock.unlock(lock, tid);
      }
    });

    test('bad thread ids are rejected by every method with InvalidError or RangeError', () => {
      const lock = Lock.init();
      for (const [tid, E] of BAD_THREAD_IDS) {
        assert.throws(() => Lock.lock(lock, tid), E, `lock(${tid})`);
        assert.throws(() => Lock.tryLock(lock, tid), E, `tryLock(${tid})`);
        assert.throws(() => Lock.unlock(lock, tid), E, `unlock(${tid})`);
      }
      assert.deepEqual([...lock], [0, 0]);
    });

    test('relocking by the owner throws DeadlockError and leaves the lock held', () => {
      const lock = Lock.init();
      Lock.lock(lock, 3);
      assert.throws(() => Lock.lock(lock, 3), DeadlockError);
      assert.throws(() => Lock.tryLock(lock, 3), DeadlockError);
      assert.deepEqual([...lock], [1, 3]);
      Lock.unlock(lock, 3);
    });

    test('unlock by a non-owner or of a free lock throws PermissionError', () => {
      const lock = Lock.init();
      assert.throws(() => Lock.unlock(lock, 1), PermissionError);
      Lock.lock(lock, 1);
      assert.throws(() => Lock.unlock(lock, 2), PermissionError);
      assert.deepEqual([...lock], [1, 1]);
      Lock.unlock(lock, 1);
    });

    test('unlock of a lock whose owner word is set but state is free throws "was not locked"', () => {
      const lock = Lock.init();
      lock[1] = 9;
      assert.throws(() => Lock.unlock(lock, 9), (e: unknown) => e instanceof PermissionError && /not locked/.test(e.message));
    });
  });
}

describe('Mutex (futex, notify only when contended)', () => {
  test('uncontended lock/unlock never calls Atomics.notify and returns the state word to 0', () => {
    const m = Mutex.init();
    const notifies = countNotifies(() => {
      for (let i = 0; i < 1000; i++) {
        Mutex.lock(m, 1);
        Mutex.unlock(m, 1);
        assert.equal(m[0], 0);
        assert.equal(Mutex.tryLock(m, 2), true);
        Mutex.unlock(m, 2);
        assert.equal(Mutex.timedLock(m, 3, Date.now() + 1000), true);
        Mutex.unlock(m, 3);
      }
    });
    assert.equal(notifies, 0);
    assert.deepEqual([...m], [0, 0]);
  });

  test('timedLock on a held mutex returns false at the deadline, then unlock frees it', () => {
    const m = Mutex.init();
    Mutex.lock(m, 1);
    assertTimedOut((deadline) => Mutex.timedLock(m, 2, deadline));
    // The waiter that gave up left the contended mark, so unlock notifies (nobody) once.
    assert.equal(m[0], 2);
    assert.equal(countNotifies(() => Mutex.unlock(m, 1)), 1);
    assert.deepEqual([...m], [0, 0]);
  });

  test('timedLock with a past deadline fails at once on a held mutex and succeeds on a free one', () => {
    const m = Mutex.init();
    Mutex.lock(m, 1);
    const t0 = Date.now();
    assert.equal(Mutex.timedLock(m, 2, t0 - 1000), false);
    assert.ok(Date.now() - t0 < 20);
    Mutex.unlock(m, 1);
    assert.equal(Mutex.timedLock(m, 2, t0 - 1000), true);
    Mutex.unlock(m, 2);
    assert.equal(Mutex.timedLock(m, 2, Infinity), true);
    Mutex.unlock(m, 2);
  });

  test('timedLock checks the thread id, self-deadlock and a NaN deadline', () => {
    const m = Mutex.init();
    for (const [tid, E] of BAD_THREAD_IDS) assert.throws(() => Mutex.timedLock(m, tid, Date.now()), E);
    assert.throws(() => Mutex.timedLock(m, 1, Number.NaN), InvalidError);
    Mutex.lock(m, 1);
    assert.throws(() => Mutex.timedLock(m, 1, Date.now() + 1000), DeadlockError);
    Mutex.unlock(m, 1);
    assert.deepEqual([...m], [0, 0]);
  });
});

describe('SpinLock', () => {
  test('unlock never calls Atomics.notify', () => {
    const s = SpinLock.init();
    const notifies = countNotifies(() => {
      for (let i = 0; i < 100; i++) {
        SpinLock.lock(s, 1);
        SpinLock.unlock(s, 1);
      }
    });
    assert.equal(notifies, 0);
  });
});

describe('Semaphore', () => {
  test('init gives an Int32Array [value, waiters = 0] over a SharedArrayBuffer', () => {
    const sem = Semaphore.init(3);
    assert.ok(sem.buffer instanceof SharedArrayBuffer);
    assert.deepEqual([...sem], [3, 0]);
    assert.equal(Semaphore.getValue(sem), 3);
    assert.equal(Semaphore.getValue(Semaphore.init(0)), 0);
    assert.equal(Semaphore.getValue(Semaphore.init(INT32_MAX_VALUE)), INT32_MAX_VALUE);
  });

  test('init rejects non-integers with InvalidError and out-of-range values with RangeError', () => {
    assert.throws(() => Semaphore.init(1.5), InvalidError);
    assert.throws(() => Semaphore.init(Number.NaN), InvalidError);
    assert.throws(() => Semaphore.init(-1), RangeError);
    assert.throws(() => Semaphore.init(INT32_MAX_VALUE + 1), RangeError);
  });

  test('tryWait takes permits until none are left; post gives them back', () => {
    const sem = Semaphore.init(2);
    assert.equal(Semaphore.tryWait(sem), true);
    assert.equal(Semaphore.tryWait(sem), true);
    assert.equal(Semaphore.tryWait(sem), false);
    assert.equal(Semaphore.getValue(sem), 0);
    Semaphore.post(sem);
    assert.equal(Semaphore.getValue(sem), 1);
    Semaphore.wait(sem);
    assert.equal(Semaphore.getValue(sem), 0);
  });

  test('post at INT32_MAX_VALUE throws RangeError and leaves the value', () => {
    const sem = Semaphore.init(INT32_MAX_VALUE);
    assert.throws(() => Semaphore.post(sem), RangeError);
    assert.equal(Semaphore.getValue(sem), INT32_MAX_VALUE);
  });

  test('post with nobody asleep never calls Atomics.notify', () => {
    const sem = Semaphore.init(0);
    assert.equal(
      countNotifies(() => {
        for (let i = 0; i < 100; i++) Semaphore.post(sem);
      }),
      0,
    );
    assert.equal(Semaphore.getValue(sem), 100);
  });

  test('timedWait returns false at the deadline when empty, true at once when not', () => {
    const sem = Semaphore.init(0);
    assertTimedOut((deadline) => Semaphore.timedWait(sem, deadline));
    assert.deepEqual([...sem], [0, 0], 'a sleeper that gave up uncounts itself');
    Semaphore.post(sem);
    assert.equal(Semaphore.timedWait(sem, Date.now() - 1000), true);
    assert.throws(() => Semaphore.timedWait(sem, Number.NaN), InvalidError);
  });
});

describe('Condition', () => {
  test('init gives a zeroed Int32Array [seq, waiters] over a SharedArrayBuffer', () => {
    const c = Condition.init();
    assert.ok(c.buffer instanceof SharedArrayBuffer);
    assert.deepEqual([...c], [0, 0]);
  });

  test('signal and broadcast with nobody waiting bump seq but never call Atomics.notify', () => {
    const c = Condition.init();
    const notifies = countNotifies(() => {
      Condition.signal(c);
      Condition.broadcast(c);
    });
    assert.equal(notifies, 0);
    assert.equal(c[0], 2);
  });

  test('regression (lost wake-up): a signal between the unlock and the sleep is not lost', () => {
    const m = Mutex.init();
    const c = Condition.init();
    const realUnlock = Mutex.unlock;
    // Lands a signal exactly in the window atomics-sync loses it: after the mutex is released,
    // before the waiter sleeps (as another thread taking the mutex and signalling would).
    Mutex.unlock = (mutex, threadId) => {
      realUnlock(mutex, threadId);
      Condition.signal(c);
    };
    Mutex.lock(m, 1);
    const t0 = Date.now();
    let signalled: boolean;
    try {
      signalled = Condition.timedWait(c, m, 1, t0 + 1000);
    } finally {
      Mutex.unlock = realUnlock;
    }
    assert.equal(signalled, true);
    assert.ok(Date.now() - t0 < 200, 'returned at once instead of sleeping to the deadline');
    assert.equal(m[1], 1, 'the mutex is held again');
    Mutex.unlock(m, 1);
  });

  test('timedWait without a signal returns false at the deadline with the mutex held again', () => {
    const m = Mutex.init();
    const c = Condition.init();
    Mutex.lock(m, 4);
    assertTimedOut((deadline) => Condition.timedWait(c, m, 4, deadline));
    assert.deepEqual([...m], [1, 4]);
    assert.deepEqual([...c], [0, 0], 'the waiter uncounts itself');
    Mutex.unlock(m, 4);
  });

  test('waiting without owning the mutex throws PermissionError and does not take the mutex', () => {
    const m = Mutex.init();
    const c = Condition.init();
    assert.throws(() => Condition.wait(c, m, 1), PermissionError);
    assert.throws(() => Condition.timedWait(c, m, 1, Date.now() + 1000), PermissionError);
    assert.deepEqual([...m], [0, 0]);
    assert.deepEqual([...c], [0, 0]);
    Mutex.lock(m, 2);
    assert.throws(() => Condition.timedWait(c, m, 1, Date.now() + 1000), PermissionError);
    assert.deepEqual([...m], [1, 2]);
    assert.throws(() => Condition.timedWait(c, m, 2, Number.NaN), InvalidError);
    assert.deepEqual([...m], [1, 2]);
    Mutex.unlock(m, 2);
  });
});

describe('Barrier', () => {
  test('init gives BigInt64Array [count, 0, 0] with a fresh mutex and condition', () => {
    const b = Barrier.init(3);
    assert.ok(b.barrier instanceof BigInt64Array);
    assert.ok(b.barrier.buffer instanceof SharedArrayBuffer);
    assert.deepEqual([...b.barrier], [3n, 0n, 0n]);
    assert.deepEqual([...b.mutex], [0, 0]);
    assert.deepEqual([...b.cond], [0, 0]);
  });

  test('init rejects non-integers with InvalidError and counts ≤ 0 with RangeError', () => {
    assert.throws(() => Barrier.init(2.5), InvalidError);
    assert.throws(() => Barrier.init(Number.NaN), InvalidError);
    assert.throws(() => Barrier.init(0), RangeError);
    assert.throws(() => Barrier.init(-1), RangeError);
  });

  test('a one-party barrier makes every call the serial thread and advances the generation', () => {
    const b = Barrier.init(1);
    for (let i = 1; i <= 5; i++) {
      assert.equal(Barrier.wait(b, 1), true);
      assert.deepEqual([...b.barrier], [1n, 0n, BigInt(i)]);
    }
    assert.deepEqual([...b.mutex], [0, 0]);
  });

  test('wait rejects a bad thread id without touching the state', () => {
    const b = Barrier.init(2);
    assert.throws(() => Barrier.wait(b, 0), InvalidError);
    assert.throws(() => Barrier.wait(b, 2 ** 40), RangeError);
    assert.deepEqual([...b.barrier], [2n, 0n, 0n]);
  });
});

describe('Once', () => {
  test('init gives a zeroed Int32Array [state] over a SharedArrayBuffer', () => {
    const o = Once.init();
    assert.ok(o.buffer instanceof SharedArrayBuffer);
    assert.deepEqual([...o], [0]);
    assert.equal(Once.isExecuted(o), false);
  });

  test('execute runs fn once; isExecuted is false while fn runs and true after', () => {
    const o = Once.init();
    let runs = 0;
    let executedInside: boolean | undefined;
    Once.execute(o, () => {
      runs++;
      executedInside = Once.isExecuted(o);
    });
    Once.execute(o, () => {
      runs++;
    });
    assert.equal(runs, 1);
    assert.equal(executedInside, false);
    assert.equal(Once.isExecuted(o), true);
  });

  test('if fn throws, the error propagates, the Once stays unexecuted and the next caller retries', () => {
    const o = Once.init();
    assert.throws(
      () =>
        Once.execute(o, () => {
          throw new Error('init failed');
        }),
      /init failed/,
    );
    assert.equal(Once.isExecuted(o), false);
    let ran = false;
    Once.execute(o, () => {
      ran = true;
    });
    assert.equal(ran, true);
    assert.equal(Once.isExecuted(o), true);
  });

  test('calling execute on the same Once from inside fn throws DeadlockError instead of hanging', () => {
    const o = Once.init();
    assert.throws(() => Once.execute(o, () => Once.execute(o, () => {})), DeadlockError);
    assert.equal(Once.isExecuted(o), false);
    // A different Once inside fn is fine.
    const inner = Once.init();
    Once.execute(o, () => Once.execute(inner, () => {}));
    assert.equal(Once.isExecuted(o), true);
    assert.equal(Once.isExecuted(inner), true);
  });
});
