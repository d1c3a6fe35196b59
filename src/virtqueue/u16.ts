// Wrap-aware arithmetic on the free-running u16 ring indices (virtio 1.2 §2.7.13.3: indices
// only increase and wrap at 65536; slot = idx mod queue size). Every index comparison in virtq
// goes through these helpers so no ad-hoc wrap arithmetic hides elsewhere.

/** (a - b) mod 2^16: how far `a` is ahead of `b`. */
export function u16Distance(a: number, b: number): number {
  return (a - b) & 0xffff;
}

/** (a + n) mod 2^16. */
export function u16Add(a: number, n: number): number {
  return (a + n) & 0xffff;
}

/**
 * True when `event` lies in the window [old, new) just published (virtio 1.2 §2.7.10, the
 * spec's `vring_need_event`): the other side asked to be notified when the index passes `event`.
 */
export function needEvent(event: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
