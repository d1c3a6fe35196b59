// Plans and allocates the shared state of one engine run (guest RAM with the rings, indirect
// tables and a buffer arena; the doorbell block; a control word block) in the main thread, and
// re-opens it inside a processor. Ring placement goes through the ring layouts (split or packed); nothing here touches
// ring memory.

import { GuestMemory } from '../memory/index.js';
import { DoorbellBlock } from '../notify/index.js';
import { compactRingBytes, compactRingLayout, ringLayoutOf, type RingKind, type RingLayout } from '../virtqueue/index.js';
import { ENGINE_DOORBELLS, type QueuePlan, type SharedSetup } from './types.js';

export interface QueueRequest {
  size: number;
  eventIdx?: boolean;
  indirect?: boolean;
  indirectMaxSegments?: number;
  /** Ring layout (default split). */
  ring?: RingKind;
  /** VIRTIO_F_IN_ORDER on this queue. */
  inOrder?: boolean;
}

const PAGE = 4096;
const alignUp = (x: number, a: number): number => Math.ceil(x / a) * a;

/** Lays out `queues` at the bottom of guest RAM, then their indirect tables, then the arena. */
export function planSharedSetup(queues: QueueRequest[], arenaBytes: number): SharedSetup {
  let cursor = 0;
  const plans: QueuePlan[] = [];
  queues.forEach((q, index) => {
    const ring = q.ring ?? 'split';
    const layout = compactRingLayout(ring, q.size, cursor, index);
    cursor = alignUp(cursor + compactRingBytes(ring, q.size), PAGE);
    plans.push({
      index,
      size: q.size,
      descAddr: layout.descAddr,
      availAddr: layout.availAddr,
      usedAddr: layout.usedAddr,
      eventIdx: q.eventIdx ?? false,
      indirect: q.indirect ?? false,
      indirectArea: 0,
      indirectMaxSegments: q.indirectMaxSegments ?? 32,
      ring,
      inOrder: q.inOrder ?? false,
    });
  });
  for (const p of plans) {
    if (!p.indirect) continue;
    p.indirectArea = cursor;
    cursor = alignUp(cursor + p.size * p.indirectMaxSegments * 16, PAGE);
  }
  const arenaBase = cursor;
  const total = alignUp(arenaBase + arenaBytes, PAGE);
  const mem = GuestMemory.allocate(total);
  const doorbells = DoorbellBlock.allocate(ENGINE_DOORBELLS);
  return {
    regions: mem.toSpecs(),
    doorbellSab: doorbells.sab,
    doorbellControlOffset: doorbells.controlByteOffset,
    controlSab: new SharedArrayBuffer(64),
    queues: plans,
    arenaBase,
    arenaBytes: total - arenaBase,
  };
}

/** The layout of a planned queue. */
export function layoutOf(q: QueuePlan): RingLayout {
  return ringLayoutOf(q.ring ?? 'split', q.size, q.descAddr, q.availAddr, q.usedAddr, q.index);
}

/** Re-opens the guest memory of a setup (in any thread). */
export function openMemory(setup: SharedSetup): GuestMemory {
  return new GuestMemory(setup.regions);
}

/** Re-opens the doorbell block of a setup (in any thread). */
export function openDoorbells(setup: SharedSetup): DoorbellBlock {
  return DoorbellBlock.open(setup.doorbellSab, setup.doorbellControlOffset);
}
