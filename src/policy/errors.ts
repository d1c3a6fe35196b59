// Typed errors of the policy layer: a bad user configuration (naming the field and what was
// expected) or a policy that does not fit the queues it was given.

export type PolicyErrorCode = 'bad-field' | 'unknown-field' | 'unknown-preset' | 'bad-json' | 'plan-mismatch';

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  constructor(
    readonly code: PolicyErrorCode,
    /** Dotted path of the offending field (e.g. `tx.intervalUs`), or '' for the whole config. */
    readonly field: string,
    message: string,
  ) {
    super(field === '' ? message : `policy field "${field}": ${message}`);
  }
}
