// The virtio-pci modern transport (src/transport/pci.ts, virtio 1.2 §4.1) without an emulator: a
// guest driver written here against the PCI layout only — it finds the four structures by walking
// the capability list as Linux's virtio_pci_modern_dev does, then runs §3.1.1 through the common
// configuration, sets up both queues, runs NetDriver over them, kicks through the notify area
// and takes interrupts by reading the ISR — talks to the one virtio-net device (inline, a
// loopback port behind it). Plus hostile register traffic: random accesses never throw.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Arena, GuestMemory } from '../src/memory/index.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { NetDriver } from '../src/net/driver.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { emptyNetHdr } from '../src/net/header.js';
import {
  CommonCfg,
  InlineRunner,
  MmioTransport,
  NOTIFY_MULTIPLIER,
  PciCapType,
  VirtioNetBackend,
  VirtioNetFrontend,
  VirtioPciTransport,
  VIRTIO_PCI_VENDOR_ID,
  Status,
  type VirtioNetOptions,
} from '../src/transport/index.js';

const OPTIONS: VirtioNetOptions = { mac: '52:54:00:12:34:56', backend: { type: 'loopback' } };

function makeDevice(mem: GuestMemory): { pci: VirtioPciTransport; irq: boolean[] } {
  const runner = new InlineRunner(new VirtioNetBackend(OPTIONS), mem);
  const mmio = new MmioTransport({ mem, device: new VirtioNetFrontend(OPTIONS), runner });
  const pci = new VirtioPciTransport(mmio, { barBase: 0xe800 });
  const irq: boolean[] = [];
  pci.onInterrupt = (a) => irq.push(a);
  return { pci, irq };
}

/** The capability list as a driver walks it: cfg_type → { offset, length, multiplier }. */
function walkCaps(space: Uint8Array): Map<number, { bar: number; offset: number; length: number; multiplier: number }> {
  const v = new DataView(space.buffer);
  const out = new Map<number, { bar: number; offset: number; length: number; multiplier: number }>();
  assert.ok(v.getUint16(0x06, true) & 0x10, 'status: capability list');
  let at = space[0x34]!;
  for (let n = 0; at !== 0 && n < 48; n++) {
    assert.equal(space[at], 0x09, 'vendor-specific capability');
    const type = space[at + 3]!;
    out.set(type, { bar: space[at + 4]!, offset: v.getUint32(at + 8, true), length: v.getUint32(at + 12, true), multiplier: type === PciCapType.NOTIFY ? v.getUint32(at + 16, true) : 0 });
    at = space[at + 1]!;
  }
  return out;
}

test('the PCI header names a modern virtio-net function and its four capabilities lie in one I/O BAR without overlapping', () => {
  const { pci } = makeDevice(GuestMemory.allocate(1 << 20));
  const s = pci.configSpace();
  const v = new DataView(s.buffer);
  assert.equal(v.getUint16(0, true), VIRTIO_PCI_VENDOR_ID);
  assert.equal(v.getUint16(2, true), 0x1041, '0x1040 + device id 1 (§4.1.2)');
  assert.ok(s[8]! >= 1, 'revision ≥ 1: modern only');
  assert.equal(v.getUint32(0x10, true), 0xe801, 'BAR0: I/O at 0xe800');
  assert.equal(s[0x3d], 1, 'INTA');
  const caps = walkCaps(s);
  assert.deepEqual([...caps.keys()].sort(), [PciCapType.COMMON, PciCapType.NOTIFY, PciCapType.ISR, PciCapType.DEVICE]);
  assert.equal(caps.get(PciCapType.NOTIFY)!.multiplier, NOTIFY_MULTIPLIER);
  const spans = [...caps.values()].map((c) => [c.offset, c.offset + c.length] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], 'structures do not overlap');
  assert.ok(caps.get(PciCapType.COMMON)!.length >= 0x38, 'the whole virtio_pci_common_cfg');
});

test('a driver that knows only the PCI layout negotiates, sets up both queues, and moves frames through the device both ways', () => {
  const mem = GuestMemory.allocate(8 << 20);
  const { pci, irq } = makeDevice(mem);
  const caps = walkCaps(pci.configSpace());
  const C = caps.get(PciCapType.COMMON)!.offset;
  const N = caps.get(PciCapType.NOTIFY)!;
  const ISR = caps.get(PciCapType.ISR)!.offset;
  const r = (off: number, size: number): number => pci.read(C + off, size);
  const w = (off: number, val: number, size: number): void => pci.write(C + off, val, size);
  // §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
  w(CommonCfg.DEVICE_STATUS, 0, 1);
  assert.equal(r(CommonCfg.DEVICE_STATUS, 1), 0);
  w(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE, 1);
  w(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE | Status.DRIVER, 1);
  let offered = 0n;
  for (let sel = 0; sel < 2; sel++) {
    w(CommonCfg.DEVICE_FEATURE_SELECT, sel, 4);
    assert.equal(r(CommonCfg.DEVICE_FEATURE_SELECT, 4), sel);
    offered |= BigInt(r(CommonCfg.DEVICE_FEATURE, 4)) << BigInt(32 * sel);
  }
  assert.ok(offered & VirtioF.VERSION_1 && offered & NetF.MRG_RXBUF && offered & NetF.CSUM);
  const accept = offered & (VirtioF.VERSION_1 | NetF.MRG_RXBUF | NetF.MAC | VirtioF.EVENT_IDX);
  for (let sel = 0; sel < 2; sel++) {
    w(CommonCfg.DRIVER_FEATURE_SELECT, sel, 4);
    w(CommonCfg.DRIVER_FEATURE, Number((accept >> BigInt(32 * sel)) & 0xffffffffn), 4);
    assert.equal(r(CommonCfg.DRIVER_FEATURE, 4), Number((accept >> BigInt(32 * sel)) & 0xffffffffn), 'driver features read back');
  }
  w(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK, 1);
  assert.ok(r(CommonCfg.DEVICE_STATUS, 1) & Status.FEATURES_OK, 'FEATURES_OK accepted');
  assert.equal(r(CommonCfg.NUM_QUEUES, 2), 2);
  const arena = new Arena(mem, 4096, (8 << 20) - 4096);
  const queues: DriverQueue<number>[] = [];
  for (let q = 0; q < 2; q++) {
    w(CommonCfg.QUEUE_SELECT, q, 2);
    const max = r(CommonCfg.QUEUE_SIZE, 2);
    assert.ok(max >= 64);
    const size = 64;
    w(CommonCfg.QUEUE_SIZE, size, 2);
    assert.equal(r(CommonCfg.QUEUE_MSIX_VECTOR, 2), 0xffff, 'no MSI-X: NO_VECTOR');
    const base = arena.alloc(SplitLayout.packedBytes(size), 4096);
    const layout = SplitLayout.packedAt(size, base, q);
    w(CommonCfg.QUEUE_DESC, layout.descAddr, 4);
    w(CommonCfg.QUEUE_DESC + 4, 0, 4);
    w(CommonCfg.QUEUE_DRIVER, layout.availAddr, 4);
    w(CommonCfg.QUEUE_DRIVER + 4, 0, 4);
    w(CommonCfg.QUEUE_DEVICE, layout.usedAddr, 4);
    w(CommonCfg.QUEUE_DEVICE + 4, 0, 4);
    assert.equal(r(CommonCfg.QUEUE_DESC, 4), layout.descAddr, 'queue_desc reads back');
    assert.equal(r(CommonCfg.QUEUE_NOTIFY_OFF, 2), q);
    w(CommonCfg.QUEUE_ENABLE, 1, 2);
    assert.equal(r(CommonCfg.QUEUE_ENABLE, 2), 1, `queue ${q} enabled`);
    queues.push(new DriverQueue<number>(mem, layout, { index: q, eventIdx: true }));
  }
  w(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK, 1);
  assert.ok(r(CommonCfg.DEVICE_STATUS, 1) & Status.DRIVER_OK);
  // Data path: NetDriver over the two queues; kicks through the notify area, interrupts via ISR.
  const got: number[] = [];
  const d = new NetDriver({ mem, arena, features: accept, rxq: queues[0]!, txq: queues[1]!, onReceive: (b, off, len) => got.push(new DataView(b.buffer, b.byteOffset + off).getUint32(14)) });
  const kick = (q: number): void => pci.write(N.offset + q * N.multiplier, q, 2);
  d.fillRx();
  if (d.flushRx()) kick(0);
  const frame = new Uint8Array(100);
  frame.fill(0xff, 0, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  for (let i = 0; i < 200; i++) {
    new DataView(frame.buffer).setUint32(14, i);
    assert.ok(d.transmit(frame, 0, frame.length, emptyNetHdr()));
    if (d.flushTx()) kick(1);
    // The interrupt handler: the line went up; reading ISR clears it and lowers the line.
    if (irq.at(-1) === true) {
      assert.equal(pci.read(ISR, 1) & 1, 1, 'ISR: used buffer');
      assert.equal(irq.at(-1), false, 'reading the ISR lowered the line');
      assert.equal(pci.read(ISR, 1), 0, 'and cleared it');
    }
    d.pollRx();
    d.reapTx();
    if (d.flushRx()) kick(0);
  }
  assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i), 'every frame came back once, in order');
  assert.ok(irq.includes(true), 'interrupts were raised');
  assert.deepEqual(pci.issues, {});
  // Reset through device_status: the queue registers return to their defaults.
  w(CommonCfg.DEVICE_STATUS, 0, 1);
  assert.equal(r(CommonCfg.DEVICE_STATUS, 1), 0);
  w(CommonCfg.QUEUE_SELECT, 0, 2);
  assert.equal(r(CommonCfg.QUEUE_ENABLE, 2), 0);
  assert.equal(r(CommonCfg.QUEUE_DESC, 4), 0);
});

test('hostile register traffic: wrong widths, offsets past every structure, writes to read-only fields are counted, never thrown', () => {
  const { pci } = makeDevice(GuestMemory.allocate(1 << 20));
  pci.write(CommonCfg.DEVICE_STATUS, 1, 4); // an 8-bit field written as 32 bits
  pci.write(CommonCfg.NUM_QUEUES, 9, 2);
  pci.read(0x1f0, 4);
  pci.write(0x80, 1, 1); // the ISR is read-only
  assert.equal(pci.issues['bad-width'], 1);
  assert.equal(pci.issues['read-only'], 2);
  assert.equal(pci.issues['out-of-range'], 1);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 0x1ff }), fc.constantFrom(1, 2, 4), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 200 }), (ops) => {
      const { pci: p } = makeDevice(GuestMemory.allocate(1 << 20));
      for (const [isWrite, off, size, val] of ops) {
        if (isWrite) p.write(off, val, size);
        else {
          const x = p.read(off, size);
          assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** (8 * size), `read ${off}/${size} = ${x}`);
        }
      }
    }),
    { numRuns: 200 },
  );
});
