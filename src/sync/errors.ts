// Error classes thrown by src/sync. Names, base class and `(message)` constructors match
// atomics-sync; each also carries a stable POSIX-style `code` for programs to switch on.
// Out-of-range numbers throw the built-in RangeError, as atomics-sync does.

/** The calling thread would wait for itself (relocking a lock it holds, re-entering a Once). */
export class DeadlockError extends Error {
  readonly code = 'EDEADLK' as const;

  constructor(message: string) {
    super(message);
    this.name = 'DeadlockError';
  }
}

/** The calling thread released something it does not hold. */
export class PermissionError extends Error {
  readonly code = 'EPERM' as const;

  constructor(message: string) {
    super(message);
    this.name = 'PermissionError';
  }
}

/** An argument has the wrong kind of value (not an integer, the reserved thread id 0, NaN). */
export class InvalidError extends Error {
  readonly code = 'EINVAL' as const;

  constructor(message: string) {
    super(message);
    this.name = 'InvalidError';
  }
}
