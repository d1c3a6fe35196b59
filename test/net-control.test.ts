// The virtio-net control virtqueue (virtio 1.2 §5.1.6.5): the command parser, good and malformed,
// per class (and a fast-check property: any bytes give a command or a rejection, never a throw,
// and every command survives encode → parse); the control queue driven by a spec-level mock
// driver (acks, VIRTIO_NET_ERR for bad input, the queue intact after it, a chain with no room for
// the ack); the rx filter applied by NetDevice (promisc off + MAC table, rx modes, VLANs); the
// announce bit and its ack; guest offloads; coalescing reaching the loop's interrupt policy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import { DeviceQueue, SplitLayout } from '../src/virtqueue/index.js';
import { MockDriver } from './support/mock-driver.js';
import { RecordingBackend, BASE_FEATURES } from './support/net-pair.js';
import { NetF, VirtioF } from '../src/net/features.js';
import {
  CTRL_ERR,
  CTRL_OK,
  CtrlClass,
  CtrlMac,
  CtrlRx,
  ControlRejection,
  MAC_TABLE_ENTRIES,
  encodeControl,
  parseControl,
  type ControlCommand,
} from '../src/net/control.js';
import { ControlQueue, NetControl } from '../src/net/control-queue.js';
import { NetDevice, deviceConfig } from '../src/net/device.js';
import { NetDeviceService } from '../src/net/device-service.js';
import { decodeNetConfig } from '../src/net/config.js';
import { GsoType, NetHdrFlags } from '../src/net/header.js';
import { resolvePolicy, type InterruptPolicy, type LoopDoorbell } from '../src/policy/index.js';

const SEED = Number(process.env.FC_SEED ?? 1616);
const CTRL_ALL = NetF.CTRL_VQ | NetF.CTRL_RX | NetF.CTRL_RX_EXTRA | NetF.CTRL_VLAN | NetF.GUEST_ANNOUNCE | NetF.CTRL_MAC_ADDR | NetF.MQ | NetF.CTRL_GUEST_OFFLOADS | NetF.NOTF_COAL;
const FEATURES = BASE_FEATURES | CTRL_ALL | NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.CSUM | NetF.MRG_RXBUF;
const OWN_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const mac = (s: string): Uint8Array => Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));

function bytes(...b: number[]): Uint8Array {
  return Uint8Array.from(b);
}
function parse(b: Uint8Array, features = FEATURES): ControlCommand | ControlRejection {
  return parseControl(b, b.length, features);
}
function rejected(r: ControlCommand | ControlRejection, reason: string): void {
  assert.ok(r instanceof ControlRejection, `expected a rejection (${reason}), got ${JSON.stringify(r)}`);
  assert.equal(r.reason, reason, r.message);
}

// ---- parser, per class ----

test('CTRL_RX: each of the six modes parses on and off; a byte other than 0/1, a wrong length and an unknown mode are refused', () => {
  const modes = ['promisc', 'allmulti', 'alluni', 'nomulti', 'nouni', 'nobcast'];
  for (let cmd = 0; cmd < 6; cmd++) {
    for (const on of [0, 1]) assert.deepEqual(parse(bytes(CtrlClass.RX, cmd, on)), { kind: 'rx-mode', mode: modes[cmd], on: on === 1 });
  }
  rejected(parse(bytes(CtrlClass.RX, CtrlRx.PROMISC, 2)), 'bad-value');
  rejected(parse(bytes(CtrlClass.RX, CtrlRx.PROMISC)), 'bad-length');
  rejected(parse(bytes(CtrlClass.RX, CtrlRx.PROMISC, 1, 0)), 'bad-length');
  rejected(parse(bytes(CtrlClass.RX, 6, 1)), 'unknown-command');
});

test('CTRL_RX: ALLUNI/NOMULTI/NOUNI/NOBCAST need CTRL_RX_EXTRA, the class needs CTRL_RX', () => {
  const noExtra = FEATURES & ~NetF.CTRL_RX_EXTRA;
  assert.equal((parse(bytes(CtrlClass.RX, CtrlRx.ALLMULTI, 1), noExtra) as ControlCommand).kind, 'rx-mode');
  for (const cmd of [CtrlRx.ALLUNI, CtrlRx.NOMULTI, CtrlRx.NOUNI, CtrlRx.NOBCAST]) rejected(parse(bytes(CtrlClass.RX, cmd, 1), noExtra), 'not-negotiated');
  rejected(parse(bytes(CtrlClass.RX, CtrlRx.PROMISC, 1), FEATURES & ~(NetF.CTRL_RX | NetF.CTRL_RX_EXTRA)), 'not-negotiated');
});

test('CTRL_MAC TABLE_SET: two tables parse; counts that overrun, bytes left over and a missing count are refused; a table over the cap overflows', () => {
  const good = encodeControl({ kind: 'mac-table', unicast: [mac('52:54:00:00:00:01')], multicast: [mac('01:00:5e:00:00:01'), mac('33:33:00:00:00:01')], unicastOverflow: false, multicastOverflow: false });
  const c = parse(good) as Extract<ControlCommand, { kind: 'mac-table' }>;
  assert.equal(c.kind, 'mac-table');
  assert.deepEqual(c.unicast.map((m) => [...m]), [[0x52, 0x54, 0, 0, 0, 1]]);
  assert.equal(c.multicast.length, 2);
  rejected(parse(good.subarray(0, good.length - 1)), 'bad-length');
  rejected(parse(Uint8Array.of(...good, 0)), 'bad-length');
  rejected(parse(bytes(CtrlClass.MAC, CtrlMac.TABLE_SET, 0, 0, 0, 0)), 'bad-length'); // no multicast count
  rejected(parse(bytes(CtrlClass.MAC, CtrlMac.TABLE_SET, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)), 'bad-length'); // 2^32-1 entries claimed
  const many = Array.from({ length: MAC_TABLE_ENTRIES + 1 }, (_, i) => mac(`52:54:00:00:01:${(i & 0xff).toString(16)}`));
  const big = parse(encodeControl({ kind: 'mac-table', unicast: many, multicast: [], unicastOverflow: false, multicastOverflow: false })) as Extract<ControlCommand, { kind: 'mac-table' }>;
  assert.equal(big.unicastOverflow, true);
  assert.equal(big.unicast.length, 0);
  rejected(parse(good, FEATURES & ~(NetF.CTRL_RX | NetF.CTRL_RX_EXTRA)), 'not-negotiated');
});

test('CTRL_MAC ADDR_SET: six bytes parse with CTRL_MAC_ADDR; five bytes or no feature are refused', () => {
  assert.deepEqual(parse(bytes(CtrlClass.MAC, CtrlMac.ADDR_SET, 2, 0, 0, 0, 0, 9)), { kind: 'mac-addr', mac: bytes(2, 0, 0, 0, 0, 9) });
  rejected(parse(bytes(CtrlClass.MAC, CtrlMac.ADDR_SET, 2, 0, 0, 0, 0)), 'bad-length');
  rejected(parse(bytes(CtrlClass.MAC, CtrlMac.ADDR_SET, 2, 0, 0, 0, 0, 9), FEATURES & ~NetF.CTRL_MAC_ADDR), 'not-negotiated');
  rejected(parse(bytes(CtrlClass.MAC, 7)), 'unknown-command');
});

test('CTRL_VLAN: add and del parse a le16 id; id 4096 and a one-byte id are refused', () => {
  assert.deepEqual(parse(bytes(CtrlClass.VLAN, 0, 0x2a, 0x01)), { kind: 'vlan', add: true, vid: 0x12a });
  assert.deepEqual(parse(bytes(CtrlClass.VLAN, 1, 5, 0)), { kind: 'vlan', add: false, vid: 5 });
  rejected(parse(bytes(CtrlClass.VLAN, 0, 0x00, 0x10)), 'bad-value');
  rejected(parse(bytes(CtrlClass.VLAN, 0, 5)), 'bad-length');
  rejected(parse(bytes(CtrlClass.VLAN, 2, 5, 0)), 'unknown-command');
  rejected(parse(bytes(CtrlClass.VLAN, 0, 5, 0), FEATURES & ~NetF.CTRL_VLAN), 'not-negotiated');
});

test('CTRL_ANNOUNCE: ACK parses with no data; data or another command is refused', () => {
  assert.deepEqual(parse(bytes(CtrlClass.ANNOUNCE, 0)), { kind: 'announce-ack' });
  rejected(parse(bytes(CtrlClass.ANNOUNCE, 0, 0)), 'bad-length');
  rejected(parse(bytes(CtrlClass.ANNOUNCE, 1)), 'unknown-command');
  rejected(parse(bytes(CtrlClass.ANNOUNCE, 0), FEATURES & ~NetF.GUEST_ANNOUNCE), 'not-negotiated');
});

test('CTRL_MQ: VQ_PAIRS_SET takes 1..0x8000; 0 and 0x8001 are refused, RSS is not offered', () => {
  assert.deepEqual(parse(bytes(CtrlClass.MQ, 0, 2, 0)), { kind: 'mq-pairs', pairs: 2 });
  assert.deepEqual(parse(bytes(CtrlClass.MQ, 0, 0, 0x80)), { kind: 'mq-pairs', pairs: 0x8000 });
  rejected(parse(bytes(CtrlClass.MQ, 0, 0, 0)), 'bad-value');
  rejected(parse(bytes(CtrlClass.MQ, 0, 1, 0x80)), 'bad-value');
  rejected(parse(bytes(CtrlClass.MQ, 1, 0, 0)), 'not-negotiated');
  rejected(parse(bytes(CtrlClass.MQ, 0, 2, 0), FEATURES & ~NetF.MQ), 'not-negotiated');
});

test('CTRL_GUEST_OFFLOADS: a le64 subset of the negotiated receive offloads parses; a bit not negotiated is refused', () => {
  assert.deepEqual(parse(encodeControl({ kind: 'guest-offloads', offloads: NetF.GUEST_CSUM })), { kind: 'guest-offloads', offloads: NetF.GUEST_CSUM });
  rejected(parse(encodeControl({ kind: 'guest-offloads', offloads: NetF.GUEST_TSO6 })), 'bad-value'); // TSO6 not negotiated
  rejected(parse(encodeControl({ kind: 'guest-offloads', offloads: NetF.HOST_TSO4 })), 'bad-value'); // not a receive offload
  rejected(parse(bytes(CtrlClass.GUEST_OFFLOADS, 0, 1, 0, 0, 0)), 'bad-length');
});

test('CTRL_NOTF_COAL: TX_SET and RX_SET parse max_packets then max_usecs; VQ_SET is refused without VQ_NOTF_COAL', () => {
  assert.deepEqual(parse(encodeControl({ kind: 'coalesce', direction: 'rx', maxPackets: 64, maxUsecs: 50 })), { kind: 'coalesce', direction: 'rx', maxPackets: 64, maxUsecs: 50 });
  assert.deepEqual(parse(bytes(CtrlClass.NOTF_COAL, 0, 1, 0, 0, 0, 2, 0, 0, 0)), { kind: 'coalesce', direction: 'tx', maxPackets: 1, maxUsecs: 2 });
  rejected(parse(bytes(CtrlClass.NOTF_COAL, 2, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0)), 'not-negotiated');
  rejected(parse(bytes(CtrlClass.NOTF_COAL, 0, 1, 0, 0, 0)), 'bad-length');
});

test('an unknown class, and fewer than two bytes, are refused', () => {
  rejected(parse(bytes(7, 0)), 'unknown-class');
  rejected(parse(bytes(0xff, 0xff, 1)), 'unknown-class');
  rejected(parse(bytes(CtrlClass.RX)), 'too-short');
  rejected(parse(bytes()), 'too-short');
});

const arbMac = fc.uint8Array({ minLength: 6, maxLength: 6 });
const arbCommand: fc.Arbitrary<ControlCommand> = fc.oneof(
  fc.record({ kind: fc.constant('rx-mode' as const), mode: fc.constantFrom('promisc' as const, 'allmulti' as const, 'alluni' as const, 'nomulti' as const, 'nouni' as const, 'nobcast' as const), on: fc.boolean() }),
  fc.record({ kind: fc.constant('mac-table' as const), unicast: fc.array(arbMac, { maxLength: 8 }), multicast: fc.array(arbMac, { maxLength: 8 }), unicastOverflow: fc.constant(false), multicastOverflow: fc.constant(false) }),
  fc.record({ kind: fc.constant('mac-addr' as const), mac: arbMac }),
  fc.record({ kind: fc.constant('vlan' as const), add: fc.boolean(), vid: fc.integer({ min: 0, max: 4095 }) }),
  fc.constant({ kind: 'announce-ack' as const }),
  fc.record({ kind: fc.constant('mq-pairs' as const), pairs: fc.integer({ min: 1, max: 0x8000 }) }),
  fc.record({ kind: fc.constant('guest-offloads' as const), offloads: fc.constantFrom(0n, NetF.GUEST_CSUM, NetF.GUEST_CSUM | NetF.GUEST_TSO4) }),
  fc.record({ kind: fc.constant('coalesce' as const), direction: fc.constantFrom('tx' as const, 'rx' as const), maxPackets: fc.integer({ min: 0, max: 0xffffffff }), maxUsecs: fc.integer({ min: 0, max: 0xffffffff }) }),
);

test('property: every command survives encode → parse unchanged', () => {
  fc.assert(
    fc.property(arbCommand, (cmd) => {
      assert.deepEqual(parse(encodeControl(cmd)), { ...cmd }); // fc.record objects have no prototype
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('property: any bytes under any feature set parse to a command or a rejection, never a throw; a command re-encodes to the same bytes', () => {
  const arbBytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // Mostly-valid heads so every class and command is reached with hostile data.
    fc.tuple(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 40 })).map(([c, m, d]) => Uint8Array.of(c, m, ...d)),
  );
  fc.assert(
    fc.property(arbBytes, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (b, features) => {
      const r = parseControl(b, b.length, features);
      if (r instanceof ControlRejection) {
        assert.ok(r.message.length > 0);
        return;
      }
      if (r.kind === 'mac-table' && (r.unicastOverflow || r.multicastOverflow)) return;
      assert.deepEqual([...encodeControl(r)], [...b]);
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

// ---- the control queue, driven by a mock driver ----

const QSIZE = 64;

interface Rig {
  mem: GuestMemory;
  rxq: DeviceQueue;
  txq: DeviceQueue;
  cq: DeviceQueue;
  ctrlDriver: MockDriver;
  rxDriver: MockDriver;
  control: NetControl;
  ctrl: ControlQueue;
  device: NetDevice;
  port: RecordingBackend;
  data: number;
}

function rig(features = FEATURES): Rig {
  const ringBytes = 8192;
  const mem = GuestMemory.allocate(3 * ringBytes + (1 << 20));
  const l = [0, 1, 2].map((i) => SplitLayout.packedAt(QSIZE, i * ringBytes, i));
  const [rxq, txq, cq] = l.map((layout, i) => new DeviceQueue(mem, layout, { index: i, eventIdx: false, indirect: false })) as [DeviceQueue, DeviceQueue, DeviceQueue];
  const mock = (x: SplitLayout): MockDriver => new MockDriver(mem, x.size, x.descAddr, x.availAddr, x.usedAddr);
  const control = new NetControl({ features, config: deviceConfig({ mac: OWN_MAC }) });
  const port = new RecordingBackend();
  const device = new NetDevice({ mem, rxq, txq, features, port, control });
  return { mem, rxq, txq, cq, ctrlDriver: mock(l[2]!), rxDriver: mock(l[0]!), control, ctrl: new ControlQueue(mem, cq, control), device, port, data: 3 * ringBytes };
}

let nextDesc = 0;
/** Sends `cmd` as [class+command][data][ack] (three descriptors); returns the ack address. */
function sendCtrl(r: Rig, cmd: Uint8Array, opts: { ackBytes?: number; split?: boolean } = {}): number {
  const addr = r.data + 8192 * (nextDesc++ % 32);
  r.mem.copyIn(addr, cmd);
  const ack = addr + 4096;
  r.mem.writeU8(ack, 0xee);
  const bufs = opts.split === false || cmd.length <= 2 ? [{ addr, len: cmd.length }] : [{ addr, len: 2 }, { addr: addr + 2, len: cmd.length - 2 }];
  if ((opts.ackBytes ?? 1) > 0) bufs.push({ addr: ack, len: opts.ackBytes ?? 1, write: true } as never);
  const d = r.ctrlDriver;
  const head = (d.availIdx * 4) % QSIZE;
  d.writeChain(head, bufs.filter((b) => b.len > 0));
  d.makeAvailable(head);
  return ack;
}

function run(r: Rig): void {
  r.ctrl.process(64);
  r.ctrl.flush();
}

function ackOf(r: Rig, ack: number): number {
  return r.mem.readU8(ack);
}

test('control queue: a good command is acked VIRTIO_NET_OK with used length 1 and applied', () => {
  const r = rig();
  const a = sendCtrl(r, encodeControl({ kind: 'rx-mode', mode: 'promisc', on: false }));
  run(r);
  assert.equal(ackOf(r, a), CTRL_OK);
  assert.deepEqual(r.ctrlDriver.usedElem(0).len, 1);
  assert.equal(r.control.filter.promisc, false);
  assert.equal(r.control.stats.ok, 1);
});

test('control queue: bad class, bad command and bad length are acked VIRTIO_NET_ERR, counted, and the queue keeps working', () => {
  const r = rig();
  const acks = [sendCtrl(r, bytes(9, 0, 1)), sendCtrl(r, bytes(CtrlClass.RX, 9, 1)), sendCtrl(r, bytes(CtrlClass.VLAN, 0, 1, 2, 3)), sendCtrl(r, bytes(CtrlClass.RX))];
  const good = sendCtrl(r, encodeControl({ kind: 'rx-mode', mode: 'allmulti', on: true }));
  run(r);
  for (const a of acks) assert.equal(ackOf(r, a), CTRL_ERR);
  assert.equal(ackOf(r, good), CTRL_OK);
  assert.equal(r.control.filter.allmulti, true);
  assert.deepEqual(r.control.stats.failures, { 'unknown-class': 1, 'unknown-command': 1, 'bad-length': 1, 'too-short': 1 });
  assert.equal(r.control.stats.failed, 4);
  assert.equal(r.cq.broken, false);
  assert.equal(r.ctrlDriver.usedIdx(), 5);
});

test('control queue: a chain with no writable byte for the ack is returned with used length 0, not applied, and counted', () => {
  const r = rig();
  sendCtrl(r, encodeControl({ kind: 'rx-mode', mode: 'promisc', on: false }), { ackBytes: 0 });
  run(r);
  assert.equal(r.ctrlDriver.usedElem(0).len, 0);
  assert.equal(r.control.filter.promisc, true);
  assert.deepEqual(r.control.stats.failures, { 'no-ack-room': 1 });
  assert.equal(r.cq.broken, false);
});

test('control queue: a ring violation breaks only the control queue (the data queues run on)', () => {
  const r = rig();
  r.ctrlDriver.writeDesc(0, r.data, 2, 1 /* NEXT */, 0); // a descriptor that loops to itself
  r.ctrlDriver.makeAvailable(0);
  run(r);
  assert.equal(r.cq.broken, true);
  assert.ok(r.ctrl.error !== null);
  assert.equal(r.control.stats.queueErrors, 1);
  assert.equal(r.rxq.broken || r.txq.broken, false);
});

// ---- the rx filter applied by the device ----

function frame(dst: Uint8Array, vlan?: number): Uint8Array {
  const f = new Uint8Array(64);
  f.set(dst, 0);
  f.set(mac('52:54:00:aa:bb:cc'), 6);
  if (vlan === undefined) {
    f[12] = 0x08;
  } else {
    f[12] = 0x81;
    f[14] = vlan >> 8;
    f[15] = vlan & 0xff;
    f[16] = 0x08;
  }
  return f;
}

/** Posts one 4 KiB rx buffer. */
function postRx(r: Rig): void {
  const d = r.rxDriver;
  const head = d.availIdx % QSIZE;
  d.writeChain(head, [{ addr: r.data + 512 * 1024 + 4096 * head, len: 4096, write: true }]);
  d.makeAvailable(head);
}

/** Offers each frame to the device (an rx buffer posted) and returns which were delivered. */
function deliveredOf(r: Rig, frames: Uint8Array[]): boolean[] {
  const out: boolean[] = [];
  for (const f of frames) {
    // A filtered frame takes no buffer: the one posted waits for the next frame.
    if (r.rxq.pending() === 0) postRx(r);
    const before = r.device.stats.rxFrames;
    r.port.offer(f);
    r.device.fillRx(1);
    r.device.flushRx();
    assert.equal(r.port.queue.length, 0, 'the device took the frame (delivered or dropped)');
    out.push(r.device.stats.rxFrames > before);
  }
  return out;
}

const BCAST = mac('ff:ff:ff:ff:ff:ff');
const TABLE_UNI = mac('52:54:00:00:00:77');
const OTHER_UNI = mac('52:54:00:00:00:99');
const TABLE_MULTI = mac('01:00:5e:00:00:fb');
const OTHER_MULTI = mac('01:00:5e:00:00:01');

function ctl(r: Rig, ...cmds: ControlCommand[]): void {
  const acks = cmds.map((c) => sendCtrl(r, encodeControl(c)));
  run(r);
  for (const a of acks) assert.equal(ackOf(r, a), CTRL_OK);
}

test('rx filter: promiscuous (the reset mode) passes every address', () => {
  const r = rig();
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC), frame(OTHER_UNI), frame(OTHER_MULTI), frame(BCAST)]), [true, true, true, true]);
});

test('rx filter: promisc off + MAC table passes own MAC, table entries and broadcast, drops the rest (§5.1.6.5.2)', () => {
  const r = rig();
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: false }, { kind: 'mac-table', unicast: [TABLE_UNI], multicast: [TABLE_MULTI], unicastOverflow: false, multicastOverflow: false });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC), frame(TABLE_UNI), frame(OTHER_UNI), frame(TABLE_MULTI), frame(OTHER_MULTI), frame(BCAST)]), [true, true, false, true, false, true]);
  assert.equal(r.device.stats.rxDrops['rx-filtered-address'], 2);
  // An empty table (the reset state) leaves only own MAC and broadcast.
  ctl(r, { kind: 'mac-table', unicast: [], multicast: [], unicastOverflow: false, multicastOverflow: false });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC), frame(TABLE_UNI), frame(TABLE_MULTI), frame(BCAST)]), [true, false, false, true]);
});

test('rx filter: MAC_ADDR_SET moves the accepted address and config space with it', () => {
  const r = rig();
  const moved = mac('52:54:00:00:12:12');
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: false }, { kind: 'mac-addr', mac: moved });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC), frame(moved)]), [false, true]);
  assert.deepEqual([...decodeNetConfig(r.device.configBytes()).mac], [...moved]);
});

test('rx filter: allmulti passes every multicast; nomulti drops multicast even with allmulti, but not broadcast; nobcast drops broadcast', () => {
  const r = rig();
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: false }, { kind: 'rx-mode', mode: 'allmulti', on: true });
  assert.deepEqual(deliveredOf(r, [frame(OTHER_MULTI), frame(OTHER_UNI)]), [true, false]);
  ctl(r, { kind: 'rx-mode', mode: 'nomulti', on: true });
  assert.deepEqual(deliveredOf(r, [frame(OTHER_MULTI), frame(BCAST)]), [false, true]);
  ctl(r, { kind: 'rx-mode', mode: 'nobcast', on: true });
  assert.deepEqual(deliveredOf(r, [frame(BCAST), frame(OWN_MAC)]), [false, true]);
});

test('rx filter: alluni passes every unicast; nouni drops unicast even with alluni; promisc overrides both', () => {
  const r = rig();
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: false }, { kind: 'rx-mode', mode: 'alluni', on: true });
  assert.deepEqual(deliveredOf(r, [frame(OTHER_UNI), frame(OTHER_MULTI)]), [true, false]);
  ctl(r, { kind: 'rx-mode', mode: 'nouni', on: true });
  assert.deepEqual(deliveredOf(r, [frame(OTHER_UNI), frame(OWN_MAC)]), [false, false]);
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: true });
  assert.deepEqual(deliveredOf(r, [frame(OTHER_UNI), frame(OWN_MAC)]), [true, true]);
});

test('rx filter: with CTRL_VLAN a tagged frame passes only once its VLAN is added, and not after it is deleted; untagged frames pass', () => {
  const r = rig();
  ctl(r, { kind: 'rx-mode', mode: 'promisc', on: false });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC, 42), frame(OWN_MAC)]), [false, true]);
  assert.equal(r.device.stats.rxDrops['rx-filtered-vlan'], 1);
  ctl(r, { kind: 'vlan', add: true, vid: 42 });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC, 42), frame(OWN_MAC, 43)]), [true, false]);
  ctl(r, { kind: 'vlan', add: false, vid: 42 });
  assert.deepEqual(deliveredOf(r, [frame(OWN_MAC, 42)]), [false]);
});

test('rx filter: without CTRL_RX and CTRL_VLAN nothing is filtered', () => {
  const r = rig(BASE_FEATURES | NetF.CTRL_VQ | NetF.MRG_RXBUF);
  assert.equal(r.control.filter.active, false);
  assert.deepEqual(deliveredOf(r, [frame(OTHER_UNI), frame(OWN_MAC, 7)]), [true, true]);
});

// ---- announce, offloads, pairs ----

test('announce: requestAnnounce sets VIRTIO_NET_S_ANNOUNCE and signals a config change; the ack clears it', () => {
  const r = rig();
  let changes = 0;
  r.control.onConfigChange = () => changes++;
  assert.equal(r.control.requestAnnounce(), true);
  assert.equal(decodeNetConfig(r.device.configBytes()).announce, true);
  assert.equal(changes, 1);
  ctl(r, { kind: 'announce-ack' });
  assert.equal(decodeNetConfig(r.device.configBytes()).announce, false);
  assert.equal(r.control.stats.announceAcks, 1);
  const plain = rig(FEATURES & ~NetF.GUEST_ANNOUNCE);
  assert.equal(plain.control.requestAnnounce(), false);
  assert.equal(decodeNetConfig(plain.device.configBytes()).announce, false);
});

test('guest offloads: with GUEST_TSO4/CSUM switched off a GSO frame is no longer delivered and a partial checksum is completed', () => {
  const r = rig();
  const f = frame(OWN_MAC);
  const gso = { flags: NetHdrFlags.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 1000, csumStart: 34, csumOffset: 16, hdrLen: 54 };
  r.port.offer(f, gso);
  postRx(r);
  r.device.fillRx(1);
  assert.equal(r.device.stats.rxFrames, 1);
  ctl(r, { kind: 'guest-offloads', offloads: 0n });
  assert.equal(r.control.guestOffloads, 0n);
  r.port.offer(f, gso);
  postRx(r);
  r.device.fillRx(1);
  assert.equal(r.device.stats.rxDrops['rx-gso-not-negotiated'], 1);
  r.port.offer(f, { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 16 });
  r.device.fillRx(1);
  assert.equal(r.device.stats.rxCsumCompleted, 1);
});

test('VQ_PAIRS_SET: within max_virtqueue_pairs it is applied, above it is refused', () => {
  const r = rig();
  const a = sendCtrl(r, encodeControl({ kind: 'mq-pairs', pairs: 2 }));
  run(r);
  assert.equal(ackOf(r, a), CTRL_ERR); // max is 1 here
  assert.deepEqual(r.control.stats.failures, { 'too-many-pairs': 1 });
  const control = new NetControl({ features: FEATURES, config: deviceConfig(), maxPairs: 4 });
  let seen = 0;
  control.onPairs = (n) => (seen = n);
  assert.equal(control.apply({ kind: 'mq-pairs', pairs: 3 }), null);
  assert.equal(control.pairs, 3);
  assert.equal(seen, 3);
});

// ---- through NetDeviceService: the control queue in the loop, coalescing into the policy ----

const idleDoorbell: LoopDoorbell = { seq: () => 0, ring: () => false, wait: () => 'stopped', waitUntil: () => 'stopped' };

test('service: the loop answers the control queue and NOTF_COAL RX_SET/TX_SET reach the interrupt policy of every queue of that direction', () => {
  const r = rig();
  const svc = new NetDeviceService({
    mem: r.mem,
    rxq: r.rxq,
    txq: r.txq,
    features: FEATURES,
    port: r.port,
    policy: resolvePolicy('vhost'),
    kick: idleDoorbell,
    irq: idleDoorbell,
    stopped: () => false,
    ctrl: { queue: r.cq, index: 2 },
    config: { mac: OWN_MAC },
  });
  const a = sendCtrl(r, encodeControl({ kind: 'coalesce', direction: 'rx', maxPackets: 32, maxUsecs: 100 }));
  const b = sendCtrl(r, encodeControl({ kind: 'coalesce', direction: 'tx', maxPackets: 8, maxUsecs: 20 }));
  const c = sendCtrl(r, bytes(CtrlClass.NOTF_COAL, 9));
  svc.run();
  assert.equal(ackOf(r, a), CTRL_OK);
  assert.equal(ackOf(r, b), CTRL_OK);
  assert.equal(ackOf(r, c), CTRL_ERR);
  // Positions: 0 tx, 1 rx, 2 control.
  assert.deepEqual((svc.loop.modules(1).irq as InterruptPolicy).coalesce, { maxPackets: 32, maxUsecs: 100 });
  assert.deepEqual((svc.loop.modules(0).irq as InterruptPolicy).coalesce, { maxPackets: 8, maxUsecs: 20 });
  assert.equal((svc.loop.modules(2).irq as InterruptPolicy).coalesce, null);
  const extra = svc.extra();
  assert.equal(extra['ctl.ok'], 2);
  assert.equal(extra['ctl.failures.unknown-command'], 1);
  assert.equal(svc.failure, null);
});

test('service: with VirtioF bits only (no CTRL_VQ) no control state exists', () => {
  const r = rig(BASE_FEATURES | VirtioF.EVENT_IDX);
  const svc = new NetDeviceService({ mem: r.mem, rxq: r.rxq, txq: r.txq, features: BASE_FEATURES, port: r.port, policy: resolvePolicy('vhost'), kick: idleDoorbell, irq: idleDoorbell, stopped: () => false });
  assert.equal(svc.control, null);
  assert.equal(svc.ctrl, null);
});

test('NetControl save → JSON → restore keeps the filter, the offloads and the pairs; garbage in a saved state is ignored', () => {
  const r = rig();
  ctl(
    r,
    { kind: 'rx-mode', mode: 'promisc', on: false },
    { kind: 'rx-mode', mode: 'nobcast', on: true },
    { kind: 'mac-table', unicast: [TABLE_UNI], multicast: [TABLE_MULTI], unicastOverflow: false, multicastOverflow: false },
    { kind: 'vlan', add: true, vid: 42 },
    { kind: 'guest-offloads', offloads: NetF.GUEST_CSUM },
  );
  const saved = JSON.parse(JSON.stringify(r.control.save())) as ReturnType<NetControl['save']>;
  const fresh = rig();
  let offloads = -1n;
  fresh.control.onOffloads = (o) => (offloads = o);
  fresh.control.restore(saved);
  assert.equal(offloads, NetF.GUEST_CSUM);
  assert.equal(fresh.control.guestOffloads, NetF.GUEST_CSUM);
  assert.deepEqual(deliveredOf(fresh, [frame(OWN_MAC), frame(TABLE_UNI), frame(OTHER_UNI), frame(TABLE_MULTI), frame(OTHER_MULTI), frame(BCAST), frame(OWN_MAC, 42), frame(OWN_MAC, 43)]), [true, true, false, true, false, false, true, false]);
  // Hostile or stale state: wrong types, bad MACs, VLAN ids out of range, offloads never negotiated.
  const other = rig(FEATURES & ~NetF.GUEST_TSO4);
  other.control.restore({ filter: { modes: { promisc: 'no' }, unicast: ['zz', 7], vlans: [-1, 5000, 7] } as never, guestOffloads: 'ffffffffffffffff', pairs: 99, mac: 'nope' });
  assert.equal(other.control.filter.promisc, true);
  assert.equal(other.control.filter.hasVlan(7), true);
  assert.equal(other.control.guestOffloads, (FEATURES & ~NetF.GUEST_TSO4) & (NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6));
  assert.equal(other.control.pairs, 1);
  assert.deepEqual([...other.control.config.mac], [...OWN_MAC]);
});

test('property: hostile control chains (any bytes, any split, with or without room for the ack) are answered or returned, never throw, and the queue keeps working', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ bytes: fc.uint8Array({ maxLength: 48 }), ack: fc.integer({ min: 0, max: 3 }), split: fc.boolean() }), { minLength: 1, maxLength: 12 }),
      fc.constantFrom(FEATURES, BASE_FEATURES | NetF.CTRL_VQ, FEATURES & ~NetF.CTRL_RX_EXTRA),
      (cmds, features) => {
        const r = rig(features);
        const acks = cmds.map((c) => ({ ack: c.bytes.length > 0 ? sendCtrl(r, c.bytes, { ackBytes: c.ack, split: c.split }) : -1, c }));
        const good = sendCtrl(r, encodeControl({ kind: 'rx-mode', mode: 'promisc', on: true }));
        run(r);
        assert.equal(r.cq.broken, false);
        for (const { ack, c } of acks) {
          if (ack < 0) continue;
          const v = ackOf(r, ack);
          if (c.ack === 0) assert.equal(v, 0xee, 'nothing written without room for the ack');
          else assert.ok(v === CTRL_OK || v === CTRL_ERR, `ack ${v}`);
        }
        const s = r.control.stats;
        assert.equal(s.ok + s.failed, s.commands);
        if ((features & NetF.CTRL_RX) !== 0n) assert.equal(ackOf(r, good), CTRL_OK, 'a good command after them is answered OK');
        else assert.equal(ackOf(r, good), CTRL_ERR);
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
});

/** The rules of §5.1.6.5.1–.3 written out plainly, to check RxFilter against. */
function referencePasses(m: Record<string, boolean>, uni: Uint8Array[], multi: Uint8Array[], vlans: Set<number>, f: Uint8Array): boolean {
  if (m.promisc) return true;
  if (f[12] === 0x81 && f[13] === 0x00 && !vlans.has(((f[14]! << 8) | f[15]!) & 0xfff)) return false;
  const dst = [...f.subarray(0, 6)];
  const eq = (a: Uint8Array): boolean => a.every((b, i) => b === dst[i]);
  if (dst.every((b) => b === 0xff)) return !m.nobcast;
  if (dst[0]! & 1) return !m.nomulti && (m.allmulti || multi.some(eq));
  return !m.nouni && (m.alluni || eq(OWN_MAC) || uni.some(eq));
}

test('property: the device filter agrees with the spec rules written out plainly, over random modes, tables, VLANs and frames', () => {
  const arbMacOf = fc.constantFrom(OWN_MAC, TABLE_UNI, OTHER_UNI, TABLE_MULTI, OTHER_MULTI, BCAST);
  fc.assert(
    fc.property(
      fc.record({ promisc: fc.boolean(), allmulti: fc.boolean(), alluni: fc.boolean(), nomulti: fc.boolean(), nouni: fc.boolean(), nobcast: fc.boolean() }),
      fc.subarray([TABLE_UNI, OTHER_UNI]),
      fc.subarray([TABLE_MULTI, OTHER_MULTI]),
      fc.subarray([1, 42, 4095]),
      fc.array(fc.tuple(arbMacOf, fc.option(fc.constantFrom(1, 42, 7, 4095), { nil: undefined })), { minLength: 1, maxLength: 8 }),
      (modes, uni, multi, vlans, frames) => {
        const r = rig();
        const cmds: ControlCommand[] = [
          ...Object.entries(modes).map(([mode, on]) => ({ kind: 'rx-mode' as const, mode: mode as 'promisc', on })),
          { kind: 'mac-table', unicast: uni, multicast: multi, unicastOverflow: false, multicastOverflow: false },
          ...vlans.map((vid) => ({ kind: 'vlan' as const, add: true, vid })),
        ];
        ctl(r, ...cmds);
        const fs = frames.map(([dst, vlan]) => frame(dst, vlan));
        const want = fs.map((f) => referencePasses(modes, uni, multi, new Set(vlans), f));
        assert.deepEqual(deliveredOf(r, fs), want);
      },
    ),
    { seed: SEED, numRuns: 150 },
  );
});
