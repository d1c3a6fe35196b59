// The one contract above the ring: what NetDevice, NetDriver, the policy loops, tracing and
// save/restore use of a virtqueue, whichever layout VIRTIO_F_RING_PACKED chose. The split ring
// (DeviceQueue/DriverQueue, §2.7) and the packed ring (PackedDeviceQueue/PackedDriverQueue,
// §2.8) both implement it; `openDeviceQueue`/`openDriverQueue` pick one from the layout.
//
// Indices in this contract count chains, as the split ring's free-running u16 indices do:
// `nextAvail` chains popped, `nextUsed` chains returned. `head` is the handle a chain is
// returned with: the descriptor index of its head (split) or its buffer id (packed).

import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from './chain.js';
import { DeviceQueue, type DeviceQueueOptions, type DeviceQueueState } from './device-queue.js';
import { DriverQueue, type DriverQueueOptions, type Segment, type UsedElem } from './driver-queue.js';
import { VirtqueueError } from './errors.js';
import { SplitLayout } from './layout.js';
import { PackedDeviceQueue } from './packed-device-queue.js';
import { PackedDriverQueue } from './packed-driver-queue.js';
import { PackedLayout } from './packed-layout.js';

export type RingKind = 'split' | 'packed';
/** Where a queue's three areas sit, for either layout. */
export type RingLayout = SplitLayout | PackedLayout;

/** Device side of a virtqueue, either layout. */
export interface DeviceVirtqueue {
  readonly kind: RingKind;
  readonly index: number;
  readonly size: number;
  readonly mem: GuestMemory;
  readonly layout: RingLayout;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly notifyOnEmpty: boolean;
  readonly inOrder: boolean;
  readonly broken: boolean;
  readonly error: VirtqueueError | null;
  readonly nextAvail: number;
  readonly nextUsed: number;
  readonly inFlight: number;
  readonly availFetches: number;
  readonly popsSinceFetch: number;
  readonly notificationsEnabled: boolean;
  pending(): number;
  pop(out?: DescriptorChain): DescriptorChain | null;
  popReused(): DescriptorChain | null;
  unpop(count?: number): void;
  availIdx(): number;
  enableNotificationAfter(idx: number): boolean;
  addUsed(head: number, len: number): void;
  publishUsed(): number;
  needsNotification(): boolean;
  driverSuppressesInterrupts(): boolean;
  disableNotification(): void;
  enableNotification(): boolean;
  snapshot(): DeviceQueueState;
  restore(s: DeviceQueueState): void;
  markBroken(e: VirtqueueError): void;
  resetState(): void;
}

/** Driver side of a virtqueue, either layout. */
export interface DriverVirtqueue<T = unknown> {
  readonly kind: RingKind;
  readonly index: number;
  readonly size: number;
  readonly mem: GuestMemory;
  readonly layout: RingLayout;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  readonly numFree: number;
  readonly broken: boolean;
  readonly error: VirtqueueError | null;
  readonly outstanding: number;
  readonly stats: { added: number; reaped: number; addFailures: number; indirectChains: number };
  readonly usedFetches: number;
  readonly reapsSinceFetch: number;
  readonly interruptsEnabled: boolean;
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): number;
  add1(addr: number, len: number, writable: boolean, token: T): number;
  publish(): number;
  kickNeeded(): boolean;
  hasUsed(): boolean;
  reap(): UsedElem<T> | null;
  disableInterrupts(): void;
  enableInterrupts(): boolean;
  enableInterruptsDelayed(): boolean;
}

/** Options of either device queue (`stateBlock`, the shared state of the global-lock model, is the split ring's only). */
export type DeviceVirtqueueOptions = DeviceQueueOptions;

/** The device queue for `layout`: split or packed. */
export function openDeviceQueue(mem: GuestMemory, layout: RingLayout, opts: DeviceVirtqueueOptions = {}): DeviceVirtqueue {
  if (layout instanceof PackedLayout) {
    if (opts.stateBlock !== undefined) {
      throw new VirtqueueError('bad-argument', { queue: opts.index ?? 0, detail: 'a packed queue keeps its state privately: no shared state block' });
    }
    return new PackedDeviceQueue(mem, layout, { index: opts.index, eventIdx: opts.eventIdx, indirect: opts.indirect, inOrder: opts.inOrder, batchUsed: opts.batchUsed });
  }
  return new DeviceQueue(mem, layout, opts);
}

/** The driver queue for `layout`: split or packed. */
export function openDriverQueue<T>(mem: GuestMemory, layout: RingLayout, opts: DriverQueueOptions = {}): DriverVirtqueue<T> {
  if (layout instanceof PackedLayout) return new PackedDriverQueue<T>(mem, layout, opts);
  return new DriverQueue<T>(mem, layout, opts);
}

/**
 * The layout of a queue whose three areas a transport or vhost-user frontend gave
 * (descriptor area, driver area, device area), for the negotiated ring kind.
 */
export function ringLayoutOf(kind: RingKind, size: number, descAddr: number, driverAddr: number, deviceAddr: number, queue = 0): RingLayout {
  return kind === 'packed' ? PackedLayout.of(size, descAddr, driverAddr, deviceAddr, queue) : SplitLayout.modern(size, descAddr, driverAddr, deviceAddr, queue);
}

/** A compact placement from one base address, and its byte count, for either kind. */
export function compactRingLayout(kind: RingKind, size: number, base: number, queue = 0): RingLayout {
  return kind === 'packed' ? PackedLayout.compactAt(size, base, queue) : SplitLayout.packedAt(size, base, queue);
}
export function compactRingBytes(kind: RingKind, size: number): number {
  return kind === 'packed' ? PackedLayout.compactBytes(size) : SplitLayout.packedBytes(size);
}
