// A user's own device-side policy module for policy-stream (params.modules): a tx mitigation
// that flushes on every kick and counts how often it was asked, reported through `extra`.

import type { TxAction, TxAfterFlush, TxMitigationHooks } from '../../src/policy/index.js';

let asked = 0;

class FlushAlways implements TxMitigationHooks {
  readonly precise = true;
  readonly burst = 32;
  private busy = false;
  get kicksSuppressed(): boolean {
    return this.busy;
  }
  onKick(): TxAction {
    asked++;
    this.busy = true;
    return 'flush';
  }
  onTimer(): TxAction {
    return 'defer';
  }
  afterFlush(_now: number, flushed: number): TxAfterFlush {
    if (flushed >= this.burst) return 'again';
    this.busy = false;
    return 'idle';
  }
  deadlineUs(): number {
    return Infinity;
  }
  sleepFloorUs(): number {
    return 0;
  }
}

export const tx = (): TxMitigationHooks => new FlushAlways();
export const extra = (out: Record<string, number>): void => {
  out.customTxAsked = asked;
};
