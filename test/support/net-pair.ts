// Single-thread virtio-net rig for device and driver tests: guest memory with an rx queue
// (index 0) and a tx queue (index 1), DeviceQueues and a NetDevice over a recording backend (or
// the host stack), and either a MockDriver per queue (spec-level ring writes, for hostile
// input) or a NetDriver (for driver tests and loopback).

import { GuestMemory, Arena } from '../../src/memory/index.js';
import { DeviceQueue, DriverQueue, SplitLayout } from '../../src/virtqueue/index.js';
import { NetDevice, type NetDeviceOptions } from '../../src/net/device.js';
import { NetDriver, type NetDriverOptions } from '../../src/net/driver.js';
import { NetF, VirtioF } from '../../src/net/features.js';
import { emptyNetHdr, type VirtioNetHdr } from '../../src/net/header.js';
import type { PortRxFrame, NetPort } from '../../src/net/port.js';
import { MockDriver } from './mock-driver.js';

/** A backend that records what the guest sent and offers queued frames to the guest. */
export class RecordingBackend implements NetPort {
  readonly sent: { frame: Uint8Array; hdr: VirtioNetHdr }[] = [];
  readonly queue: PortRxFrame[] = [];
  constructor(
    readonly acceptsGso = true,
    readonly acceptsPartialCsum = true,
  ) {}
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.sent.push({ frame: frame.slice(offset, offset + lenBytes), hdr: { ...hdr } });
  }
  offer(frame: Uint8Array, hdr: Partial<VirtioNetHdr> = {}): void {
    this.queue.push({ bytes: frame, offset: 0, lenBytes: frame.length, hdr: { ...emptyNetHdr(), ...hdr } });
  }
  /**
   * Offers `frame` in two parts to a caller that takes them (peekRx(true)): its first `headBytes`
   * and the rest, the rest copied to `tailAt` in a buffer of its own; in one piece otherwise.
   */
  offerTwoPart(frame: Uint8Array, headBytes: number, hdr: Partial<VirtioNetHdr> = {}, tailAt = 3): void {
    const rest = frame.length - headBytes;
    const tailBuf = new Uint8Array(tailAt + rest + 5);
    tailBuf.set(frame.subarray(headBytes), tailAt);
    this.queue.push({ bytes: frame, offset: 0, lenBytes: frame.length, hdr: { ...emptyNetHdr(), ...hdr }, tail: { bytes: tailBuf, offset: tailAt, lenBytes: rest } });
  }
  /** How many peeks were answered in two parts. */
  twoPartPeeks = 0;
  peekRx(twoPart = false): PortRxFrame | null {
    const f = this.queue[0];
    if (f === undefined) return null;
    if (f.tail == null) return f;
    if (twoPart) {
      this.twoPartPeeks++;
      return f;
    }
    return { ...f, tail: null };
  }
  consumeRx(): void {
    this.queue.shift();
  }
}

export const BASE_FEATURES = VirtioF.VERSION_1 | NetF.MAC | NetF.MTU | NetF.STATUS;
export const ALL_OFFLOADS = NetF.CSUM | NetF.GUEST_CSUM | NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.GUEST_TSO4 | NetF.GUEST_TSO6;

export interface NetRig {
  mem: GuestMemory;
  rxLayout: SplitLayout;
  txLayout: SplitLayout;
  rxq: DeviceQueue;
  txq: DeviceQueue;
  device: NetDevice;
  backend: NetPort;
  /** First guest address free for buffers (below it: rings and indirect areas). */
  dataBase: number;
  dataBytes: number;
  rxIndirectArea: number;
  txIndirectArea: number;
  features: bigint;
}

export interface RigOptions {
  size?: number;
  features?: bigint;
  backend?: NetPort;
  eventIdx?: boolean;
  indirect?: boolean;
  dataBytes?: number;
  device?: Partial<NetDeviceOptions>;
}

export function makeNetRig(o: RigOptions = {}): NetRig {
  const size = o.size ?? 64;
  const features = o.features ?? BASE_FEATURES;
  const ringBytes = Math.ceil(SplitLayout.packedBytes(size) / 4096) * 4096;
  const indirectBytes = size * 32 * 16;
  const rxIndirectArea = 2 * ringBytes;
  const txIndirectArea = rxIndirectArea + indirectBytes;
  const dataBase = txIndirectArea + indirectBytes;
  const dataBytes = o.dataBytes ?? 16 << 20;
  const mem = GuestMemory.allocate(dataBase + dataBytes);
  const rxLayout = SplitLayout.packedAt(size, 0, 0);
  const txLayout = SplitLayout.packedAt(size, ringBytes, 1);
  const eventIdx = o.eventIdx ?? false;
  const indirect = o.indirect ?? false;
  const rxq = new DeviceQueue(mem, rxLayout, { index: 0, eventIdx, indirect });
  const txq = new DeviceQueue(mem, txLayout, { index: 1, eventIdx, indirect });
  const backend = o.backend ?? new RecordingBackend();
  const device = new NetDevice({ mem, rxq, txq, features, port: backend, ...(o.device ?? {}) });
  return { mem, rxLayout, txLayout, rxq, txq, device, backend, dataBase, dataBytes, rxIndirectArea, txIndirectArea, features };
}

export function mockDrivers(r: NetRig): { rx: MockDriver; tx: MockDriver } {
  const m = (l: SplitLayout): MockDriver => new MockDriver(r.mem, l.size, l.descAddr, l.availAddr, l.usedAddr);
  return { rx: m(r.rxLayout), tx: m(r.txLayout) };
}

/** A NetDriver on the rig's queues, buffers from the data area. */
export function netDriver(r: NetRig, o: Partial<NetDriverOptions> = {}): NetDriver {
  const eventIdx = r.rxq.eventIdx;
  const indirect = r.rxq.indirect;
  const rxq = new DriverQueue<number>(r.mem, r.rxLayout, { index: 0, eventIdx, indirect, indirectArea: r.rxIndirectArea, indirectMaxSegments: 32 });
  const txq = new DriverQueue<number>(r.mem, r.txLayout, { index: 1, eventIdx, indirect, indirectArea: r.txIndirectArea, indirectMaxSegments: 32 });
  const arena = new Arena(r.mem, r.dataBase, r.dataBytes);
  return new NetDriver({ mem: r.mem, arena, features: r.features, rxq, txq, ...o });
}
