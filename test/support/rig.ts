// Test rig: guest memory with one queue's rings at the bottom and a data area above, a device
// queue on it and a mock driver writing the rings.

import { GuestMemory } from '../../src/memory/index.js';
import { DeviceQueue, SplitLayout, type DeviceQueueOptions } from '../../src/virtqueue/index.js';
import { MockDriver } from './mock-driver.js';

export interface Rig {
  mem: GuestMemory;
  layout: SplitLayout;
  dev: DeviceQueue;
  drv: MockDriver;
  /** First guest address free for buffers and tables. */
  dataBase: number;
  memBytes: number;
}

export function makeRig(size: number, opts: DeviceQueueOptions = {}, extraBytes = 256 * 1024): Rig {
  const ringBytes = SplitLayout.packedBytes(size);
  const dataBase = Math.ceil(ringBytes / 4096) * 4096;
  const memBytes = dataBase + extraBytes;
  const mem = GuestMemory.allocate(memBytes);
  const layout = SplitLayout.packedAt(size, 0);
  const dev = new DeviceQueue(mem, layout, opts);
  const drv = new MockDriver(mem, size, layout.descAddr, layout.availAddr, layout.usedAddr);
  return { mem, layout, dev, drv, dataBase, memBytes };
}
