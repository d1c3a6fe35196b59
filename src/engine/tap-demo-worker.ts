// Worker entry of the TAP demo (Node only); src/engine/tap-demo.ts starts one of each role.
// role 'guest': NetDriverService (NetDriver + the guest's NetEndpoint answering ARP/ICMP for the
// guest address + DriverLoop) on the driver side of the rings, sleeping in poll(2) on the call
// eventfd and ringing the kick eventfd. role 'host': NetDeviceService (NetDevice + DeviceLoop)
// with the TAP as its NetPort (in a pcap tee when asked), sleeping in poll(2) on the kick
// eventfd and, while the guest has rx buffers posted, the TAP fd; it rings the call eventfd.
// Both run the same policy; both leave their loop when the shared stop word is set and post
// their counters.

import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { Arena } from '../memory/index.js';
import { openDeviceQueue, openDriverQueue, type DriverVirtqueue } from '../virtqueue/index.js';
import { ipv4FromString, macFromString } from '../net/frames/index.js';
import { VirtioF } from '../net/features.js';
import { NetDeviceService, txDescsPerFrame } from '../net/device-service.js';
import { NetDriverService, txLayoutOf } from '../net/driver-service.js';
import { BIG_LOCK_WORDS, bigLockFor, type BigLock } from '../policy/index.js';
import { layoutOf, openMemory } from './setup.js';
import { Tracer } from '../trace/tracer.js';
import { FdDoorbell } from '../backend/fd-doorbell.js';
import { TapPort } from '../backend/tap-port.js';
import { PcapTeePort } from '../backend/pcap-tee.js';
import { openPcapFile } from '../backend/pcap-file.js';
import { loadIo } from '../backend/native.js';
import type { NetPort } from '../net/port.js';
import {
  TAP_GUEST_RING_SEQ_WORD,
  TAP_GUEST_SLEEPING_WORD,
  TAP_HOST_RING_SEQ_WORD,
  TAP_HOST_SLEEPING_WORD,
  TAP_KICK_WORD0,
  TAP_LOCK_WORD0,
  TAP_STOP_WORD,
  type TapWorkerData,
  type TapWorkerMessage,
} from './tap-demo-protocol.js';

const d = workerData as TapWorkerData;
const io = loadIo();
const words = new Int32Array(d.ctrl);
const mem = openMemory(d.setup);
const plans = d.setup.queues;
const RX = 0;
const TX = 1;
const GUEST_THREAD_ID = 1;
/**
 * How long the guest spins on the host's interrupt sequence before it sleeps in poll(2): Linux's
 * socket busy polling budget as commonly set (net.core.busy_poll = 50 µs). A round trip through
 * the TAP includes the kernel's side (a ping's process waking and answering), longer than the
 * engine's 2000-iteration hybrid spin; a wake-up from poll(2) costs ~20 µs here.
 */
const GUEST_SPIN_US = 50;
const HOST_THREAD_ID = 2;
const eventIdx = (d.features & VirtioF.EVENT_IDX) !== 0n;
const indirect = (d.features & VirtioF.INDIRECT_DESC) !== 0n;

function stopped(): boolean {
  // Pairs with the Atomics.store in the main thread's stop() (or a failing host's below).
  return Atomics.load(words, TAP_STOP_WORD) !== 0;
}

function post(m: TapWorkerMessage): void {
  parentPort!.postMessage(m);
}

function bigLock(threadId: number): BigLock | null {
  return bigLockFor(d.policy.dataPath, words.subarray(TAP_LOCK_WORD0, TAP_LOCK_WORD0 + BIG_LOCK_WORDS) as Int32Array<SharedArrayBuffer>, threadId);
}

function host(): void {
  const rxq = openDeviceQueue(mem, layoutOf(plans[RX]!), { index: RX, eventIdx, indirect });
  const txq = openDeviceQueue(mem, layoutOf(plans[TX]!), { index: TX, eventIdx, indirect });
  const tap = new TapPort(io, d.tapFd!, d.tapName);
  const pcap = d.pcapPath !== undefined ? openPcapFile(d.pcapPath) : null;
  // GSO frames recorded as the MSS segments a wire carries, so tshark decodes every one.
  const tee = pcap !== null ? new PcapTeePort(tap, pcap.writer, { segmentGso: true }) : null;
  const port: NetPort = tee ?? tap;
  const tracer = d.trace !== undefined ? new Tracer(d.trace) : undefined;
  let service: NetDeviceService | null = null;
  const doorbell = new FdDoorbell({
    io,
    waitFds: () => [d.kickFd],
    // The loop rings by virtio queue index; both queues share the one call eventfd.
    ringFds: () => [d.callFd, d.callFd],
    inputFd: d.tapFd!,
    // The TAP is polled only while the guest has rx buffers posted: frames the guest has no room
    // for stay in the kernel (as QEMU leaves a tap unread), and the rx refill kick wakes us.
    wantInput: () => service !== null && service.wantsPortInput(),
    stopped,
    // The guest's kicks arrive on its sequence word; an eventfd only while we sleep in poll(2).
    // No spin here: the TAP is seen only by poll(2) (the busy-poll presets read it instead).
    shared: { words, waitSeq: TAP_GUEST_RING_SEQ_WORD, waitSleeping: TAP_HOST_SLEEPING_WORD, ringSeq: TAP_HOST_RING_SEQ_WORD, ringSleeping: TAP_GUEST_SLEEPING_WORD, spinUs: 0 },
  });
  let failure: string | null = null;
  service = new NetDeviceService({
    mem,
    rxq,
    txq,
    features: d.features,
    port,
    policy: d.policy,
    kick: doorbell,
    irq: doorbell,
    lock: bigLock(HOST_THREAD_ID),
    stopped,
    // Pairs with the guest's Atomics.add before it writes the kick eventfd (a syscall, so a full barrier).
    kicks: (queue) => Atomics.load(words, TAP_KICK_WORD0 + queue),
    config: { mac: macFromString(d.guestMac), mtu: d.mtu, linkUp: true },
    txDescsPerFrame: txDescsPerFrame(txLayoutOf(d.policy), d.features, d.mtu),
    ...(tracer !== undefined ? { tracer } : {}),
    onIteration: () => {
      if (failure !== null || service === null) return;
      failure = service.failure;
      if (failure !== null) {
        writeSync(2, `virtq tap: ${failure}\n`);
        // A broken ring ends the demo: pairs with the Atomics.load in both workers' stopped().
        Atomics.store(words, TAP_STOP_WORD, 1);
        io.eventfdWrite(d.callFd, 1);
      }
    },
  });
  post({ kind: 'up' });
  try {
    service.run();
  } finally {
    tracer?.flush();
    pcap?.close();
  }
  post({
    kind: 'stats',
    role: 'host',
    device: service.extra(),
    tap: { ...tap.stats, kernelTxDropped: tap.refreshKernelDrops() },
    ...(tee !== null ? { pcap: { recorded: tee.recorded, errors: tee.recordErrors } } : {}),
    failure: failure ?? service.failure,
  });
}

function guest(): void {
  const q = (i: number): DriverVirtqueue<number> => {
    const plan = plans[i]!;
    return openDriverQueue<number>(mem, layoutOf(plan), { index: i, eventIdx, indirect, indirectArea: plan.indirectArea, indirectMaxSegments: plan.indirectMaxSegments });
  };
  const tracer = d.trace !== undefined ? new Tracer(d.trace) : undefined;
  const doorbell = new FdDoorbell({
    io,
    waitFds: () => [d.callFd],
    ringFds: () => [d.kickFd],
    stopped,
    // The host's interrupts arrive on its sequence word: spin on it for GUEST_SPIN_US, then sleep
    // in poll(2) on the call eventfd.
    shared: { words, waitSeq: TAP_HOST_RING_SEQ_WORD, waitSleeping: TAP_GUEST_SLEEPING_WORD, ringSeq: TAP_GUEST_RING_SEQ_WORD, ringSleeping: TAP_HOST_SLEEPING_WORD, spinUs: GUEST_SPIN_US },
  });
  const service = new NetDriverService({
    mem,
    arena: new Arena(mem, d.setup.arenaBase, d.setup.arenaBytes),
    rxq: q(RX),
    txq: q(TX),
    features: d.features,
    // The guest only answers; replies go to whoever asked (the kernel behind the TAP).
    endpoint: { mac: macFromString(d.guestMac), ip: ipv4FromString(d.guestAddress), peerMac: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), peerIp: ipv4FromString(d.hostAddress), mtu: d.mtu },
    policy: d.policy,
    kick: doorbell,
    irq: doorbell,
    lock: bigLock(GUEST_THREAD_ID),
    stopped,
    // Pairs with the device's Atomics.load in kicks(queue) after it reads the kick eventfd.
    beforeKick: (queue) => void Atomics.add(words, TAP_KICK_WORD0 + queue, 1),
    mtu: d.mtu,
    txLayout: txLayoutOf(d.policy),
    rxMemoryBytes: d.rxMemoryBytes,
    txMemoryBytes: d.txMemoryBytes,
    ...(tracer !== undefined ? { tracer } : {}),
    rxIndex: RX,
    txIndex: TX,
  });
  post({ kind: 'up' });
  try {
    service.run();
  } finally {
    tracer?.flush();
  }
  const extra = service.driver.flatStats('drv.');
  service.loop.toExtra(extra);
  if (tracer !== undefined) extra.traceIdentityLost = service.driver.traceIdentityLost ? 1 : 0;
  post({ kind: 'stats', role: 'guest', guest: extra, endpoint: { ...service.endpoint.stats } });
}

try {
  if (d.role === 'host') host();
  else guest();
} catch (e) {
  // An operational failure (a system call refused: a pcap path that cannot be opened, a
  // descriptor gone) is the user's to fix, not a bug: it goes to the main thread as one line
  // naming the role and the errno, which the CLI prints (`virtq: tap host worker: ENOENT: …`),
  // exit code 1, no stack.
  const code = (e as { code?: unknown }).code;
  if (e instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    throw Object.assign(new Error(`tap ${d.role} worker: ${e.message.includes(code) ? e.message : `${e.message} (${code})`}`), { code });
  }
  // Anything else is a bug: the main thread may be waiting on us, so show it at once, stack and all.
  writeSync(2, `virtq tap ${d.role} worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  throw e;
}
