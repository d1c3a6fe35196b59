// The rings a vhost-user frontend hands over, for either layout: checks of SET_VRING_NUM and
// SET_VRING_BASE against the negotiated features, the device queue built from the vring
// addresses (split: descriptor table, avail ring, used ring, virtio 1.2 §2.7; packed with
// VIRTIO_F_RING_PACKED: descriptor ring and the driver/device event suppression areas, §2.8),
// and the base GET_VRING_BASE returns. vhost-user "Ring states": a split base is the 16-bit last
// avail index; a packed one carries the position in bits 0–14 and its wrap counter in bit 15,
// and QEMU adds the used position and its wrap counter in bits 16–31.

import type { GuestMemory } from '../memory/index.js';
import { VirtioF } from '../net/features.js';
import {
  DeviceQueue,
  PACKED_EVENT_AREA_BYTES,
  PackedDeviceQueue,
  PackedLayout,
  SplitLayout,
  availRingBytes,
  descTableBytes,
  isValidPackedQueueSize,
  isValidQueueSize,
  packedRingBytes,
  usedRingBytes,
  type DeviceVirtqueue,
} from '../virtqueue/index.js';
import { VhostUserError } from './errors.js';

/** What the frontend set for one ring. */
export interface VringSetup {
  index: number;
  num: number;
  base: number;
  descUser: number;
  availUser: number;
  usedUser: number;
}

/** Frontend virtual address → guest physical address of `len` bytes (throws VhostUserError). */
export type ToGuest = (uva: number, len: number, what: string) => number;

const packed = (features: bigint): boolean => (features & VirtioF.RING_PACKED) !== 0n;

/** SET_VRING_NUM: a power of 2 for a split ring, any size for a packed one, at most 2^15. */
export function checkVringNum(features: bigint, index: number, num: number): void {
  if (packed(features)) {
    if (!isValidPackedQueueSize(num)) throw new VhostUserError('bad-queue', `SET_VRING_NUM: packed queue ${index} size ${num} is not in 1..32768`);
  } else if (!isValidQueueSize(num)) throw new VhostUserError('bad-queue', `SET_VRING_NUM: queue ${index} size ${num} is not a power of 2 in 1..32768`);
}

/** SET_VRING_BASE: 16 bits for a split ring; a packed one may carry QEMU's used position above. */
export function checkVringBase(features: bigint, index: number, num: number): void {
  if (num > 0xffff && !packed(features)) throw new VhostUserError('bad-queue', `SET_VRING_BASE: queue ${index} base ${num} exceeds 16 bits`);
}

/**
 * The device queue of a started ring, resuming at its base (nothing in flight). virtio-net's odd
 * queues transmit (§5.1.2): only their used returns are batched under IN_ORDER (the driver
 * ignores a transmit length; each receive length must be written).
 */
export function openVring(mem: GuestMemory, features: bigint, v: VringSetup, toGuest: ToGuest): DeviceVirtqueue {
  const { index, num: n } = v;
  const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
  const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
  const inOrder = (features & VirtioF.IN_ORDER) !== 0n;
  const opts = { index, eventIdx, indirect, inOrder, batchUsed: inOrder && index % 2 === 1 };
  try {
    if (packed(features)) {
      const desc = toGuest(v.descUser, packedRingBytes(n), 'descriptor ring');
      const driverEvent = toGuest(v.availUser, PACKED_EVENT_AREA_BYTES, 'driver event suppression area');
      const deviceEvent = toGuest(v.usedUser, PACKED_EVENT_AREA_BYTES, 'device event suppression area');
      const q = new PackedDeviceQueue(mem, PackedLayout.of(n, desc, driverEvent, deviceEvent, index), opts);
      // The used position is the avail one unless the frontend sent its own (QEMU).
      const availPw = v.base & 0xffff;
      q.setPositions(availPw, v.base > 0xffff ? v.base >>> 16 : availPw);
      return q;
    }
    const desc = toGuest(v.descUser, descTableBytes(n), 'descriptor table');
    const avail = toGuest(v.availUser, availRingBytes(n), 'driver area');
    const used = toGuest(v.usedUser, usedRingBytes(n), 'device area');
    const q = new DeviceQueue(mem, SplitLayout.modern(n, desc, avail, used, index), opts);
    // Both indices at the base: nothing in flight.
    q.restore({ ...q.snapshot(), nextAvail: v.base, nextUsed: v.base, signalledUsedValid: false, inFlight: 0, broken: false });
    return q;
  } catch (e) {
    if (e instanceof VhostUserError) throw e;
    throw new VhostUserError('bad-queue', `queue ${index}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** A packed ring's starting position word: position 0, wrap counter 1 (§2.8.1, after reset). */
const PACKED_START_PW = 0x8000;

/**
 * A packed ring handed over at its starting position although a device has already used it
 * (descriptors carry the USED flag, which only a device sets): the frontend lost the ring's
 * position. QEMU does this when it restarts a backend it could not ask (GET_VRING_BASE failed:
 * the old backend was killed) — for a split ring it restores the position from used.idx in guest
 * memory, but a packed ring keeps none there (QEMU's virtio_queue_packed_restore_last_avail_idx
 * is empty), so it resends the position it last set. The device cannot find the real position
 * safely (a used chain's other descriptors still look available), so the queue will see nothing
 * until the driver resets the device. Returns a sentence saying so, or null. (A ring that went
 * round exactly to its start between a clean stop and this start reads the same: rare, and the
 * sentence says "probably".)
 */
export function lostPackedPosition(q: DeviceVirtqueue): string | null {
  if (!(q instanceof PackedDeviceQueue) || q.availPosition !== PACKED_START_PW || q.usedPosition !== PACKED_START_PW) return null;
  const used = q.ring.countUsedFlags();
  if (used === 0) return null;
  return `packed ring started at its first position, but ${used} of its ${q.size} descriptors are marked used by an earlier device: the frontend probably lost the ring's position (QEMU after a backend restart cannot restore a packed ring: it keeps no position for it in guest memory), so this queue will see no buffers until the guest's driver resets the device`;
}

/**
 * Where the driver resumes the ring: the next available entry the device has not consumed.
 * Chains popped and held unused (rx buffers gathered for a mergeable frame; NetDevice holds only
 * the latest pops) count as not consumed. A packed ring's positions cannot be computed around
 * them, so they are given back first: call only once the data path on this queue has ended.
 */
export function vringBase(q: DeviceVirtqueue): number {
  if (q instanceof PackedDeviceQueue) {
    if (q.inFlight > 0 && !q.broken) q.unpop(q.inFlight);
    return (q.availPosition | (q.usedPosition << 16)) >>> 0;
  }
  return (q.nextAvail - q.inFlight) & 0xffff;
}
