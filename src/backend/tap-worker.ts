// Worker entry of the TAP demo (Node only). role 'host': the device side, FrameDevice on the
// rings and the TAP fd, sleeping in poll(2) on [TAP, kick eventfd]. role 'guest': the driver
// side, GuestNet answering ARP/ICMP, sleeping in poll(2) on the call eventfd. Both leave their
// loop when the shared stop word is set and post their counters.

import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { GuestMemory } from '../memory/index.js';
import { DeviceQueue, SplitLayout } from '../virtqueue/index.js';
import { ipv4FromString, macFromString } from '../net/frames/index.js';
import { NetF, VirtioF } from '../net/features.js';
import { FrameDevice } from '../peers/frame-device.js';
import { GuestNet, type GuestNetPlan } from '../peers/guest-net.js';
import { Responder } from '../peers/responder.js';
import { loadIo } from './native.js';

interface TapWorkerData {
  role: 'host' | 'guest';
  stop: SharedArrayBuffer;
  memory: SharedArrayBuffer;
  plan: GuestNetPlan;
  kickFd: number;
  callFd: number;
  tapFd?: number;
  features: bigint;
  guestAddress: string;
  guestMac: string;
}

const d = workerData as TapWorkerData;
const io = loadIo();
const stop = new Int32Array(d.stop);
const mem = new GuestMemory([{ guestAddr: 0, buffer: d.memory }]);
const POLL_MS = 100; // how often an idle loop looks at the stop word
const EAGAIN = -io.constants.EAGAIN;

function stopped(): boolean {
  return Atomics.load(stop, 0) !== 0; // pairs with the main thread's Atomics.store in stop()
}

function host(): void {
  const tapFd = d.tapFd!;
  const q = d.plan.queueSize;
  const eventIdx = (d.features & VirtioF.EVENT_IDX) !== 0n;
  const rx = new DeviceQueue(mem, SplitLayout.packedAt(q, d.plan.rxRing, 0), { index: 0, eventIdx });
  const tx = new DeviceQueue(mem, SplitLayout.packedAt(q, d.plan.txRing, 1), { index: 1, eventIdx });
  const dev = new FrameDevice(mem, rx, tx, { hdrBytes: d.plan.hdrBytes, mergeable: (d.features & NetF.MRG_RXBUF) !== 0n });
  const extra = { tapWriteErrors: 0, tapRxDropNoBuffer: 0, calls: 0 };
  const buf = new Uint8Array(65536 + 64);
  let pendingLen = 0; // a frame read from the TAP that found no receive buffer yet
  const fds = new Int32Array([tapFd, d.kickFd]);
  const events = new Int32Array([io.constants.POLLIN, io.constants.POLLIN]);
  const revents = new Int32Array(2);
  const txBuf = new Uint8Array(65536 + 64);
  while (!stopped()) {
    for (let n = dev.popTx(txBuf); n >= 0; n = dev.popTx(txBuf)) {
      if (n > 0 && io.write(tapFd, txBuf, n) < 0) extra.tapWriteErrors++;
    }
    for (;;) {
      if (pendingLen === 0) {
        const r = io.read(tapFd, buf);
        if (r <= 0) break; // EAGAIN: nothing more now
        pendingLen = r;
      }
      if (dev.pushRx(buf, pendingLen) === 'no-buffer') break;
      pendingLen = 0;
    }
    const f = dev.flush();
    if (f.rx || f.tx) {
      io.eventfdWrite(d.callFd, 1);
      extra.calls++;
    }
    if (tx.enableNotification()) continue; // transmits arrived while we were busy
    if (pendingLen > 0 && dev.rxReady()) continue;
    // With a frame stuck for lack of buffers, only a kick (buffers posted) can help.
    events[0] = pendingLen > 0 ? 0 : io.constants.POLLIN;
    const r = io.poll(fds, events, revents, POLL_MS);
    if (r > 0 && revents[1] !== 0) io.eventfdRead(d.kickFd);
  }
  if (pendingLen > 0) extra.tapRxDropNoBuffer++;
  parentPort!.postMessage({ device: { ...dev.stats, ...extra } });
}

function guest(): void {
  const responder = new Responder(macFromString(d.guestMac), ipv4FromString(d.guestAddress));
  const gn = new GuestNet(mem, d.plan, responder);
  let kicks = 0;
  const kick = (): void => {
    io.eventfdWrite(d.kickFd, 1);
    kicks++;
  };
  gn.fillRx();
  kick();
  const fds = new Int32Array([d.callFd]);
  const events = new Int32Array([io.constants.POLLIN]);
  const revents = new Int32Array(1);
  while (!stopped()) {
    const r = gn.service();
    if (r.kickRx || r.kickTx) kick();
    if (r.work > 0) continue;
    if (gn.armInterrupts()) continue;
    if (io.poll(fds, events, revents, POLL_MS) > 0) {
      const v = io.eventfdRead(d.callFd);
      if (v < 0 && v !== EAGAIN) throw new Error(`call eventfd read failed: errno ${-v}`);
    }
  }
  parentPort!.postMessage({ guest: { ...gn.stats, kicks }, responder: responder.stats });
}

try {
  if (d.role === 'host') host();
  else guest();
} catch (e) {
  // The main thread may be waiting on us: make the failure visible at once.
  writeSync(2, `virtq tap ${d.role} worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  throw e;
}
