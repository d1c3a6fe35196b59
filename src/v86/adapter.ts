// virtq as the network path of a running v86 emulator (issue 21, route 1): v86's NIC (its ne2k
// or its own virtio-net) hands every frame the guest sends to its bus as `net0-send`; this
// adapter puts each one into the transmit queue of a virtq driver (NetDriver, the one driver,
// behind the MmioNetGuest glue) whose rings and buffers live in a SharedArrayBuffer, and a
// device serves them: the one NetDevice under the DeviceLoop with a preset's policy and a NetPort
// behind it (the in-memory host stack, a loopback, or any kind registered for the device worker,
// such as a TAP), on its own worker thread (default) or inline. Frames the device receives for
// the guest come back through the driver's receive queue and enter v86 with
// `bus.send("net0-receive", frame)`.
//
// The emulator's thread never blocks: the device worker's interrupts arrive through the
// WorkerRunner's Atomics.waitAsync watcher and are served in a microtask; a poll timer (every
// `pollMs`) catches what no interrupt announced (suppressed interrupts, reaped tx). A frame v86
// sends while every tx buffer is in flight waits in a bounded backlog (backpressure: counted)
// and is dropped, counted, only when that backlog is full; v86 itself cannot be told to wait.
// Runs in Node and in browser pages (no `node:` imports; the Node worker module is imported
// dynamically only in Node).

import { GuestMemory } from '../memory/index.js';
import type { NetObserver } from '../net/observer.js';
import { Tracer } from '../trace/tracer.js';
import type { TraceSession } from '../trace/session.js';
import { NetError } from '../net/errors.js';
import { NetF, describeFeatures } from '../net/features.js';
import { emptyNetHdr } from '../net/header.js';
import {
  InlineRunner,
  MmioNetGuest,
  MmioTransport,
  VirtioNetBackend,
  VirtioNetFrontend,
  VIRTIO_NET_FEATURES,
  startWebDeviceWorker,
  type DeviceRunner,
  type NetPortFactory,
  type VirtioNetOptions,
  type VirtioNetState,
} from '../transport/index.js';
import { V86AdapterError } from './errors.js';
import { readDeviceState } from './device-state.js';

/** What the adapter needs of a v86 instance (`new V86(...)` from the v86 package). */
export interface V86Like {
  add_listener(event: 'net0-send', listener: (frame: Uint8Array) => void): void;
  remove_listener(event: 'net0-send', listener: (frame: Uint8Array) => void): void;
  /**
   * v86's adapter-side bus (a V86 instance's `bus`, which v86's own network adapters answer on;
   * present at run time though v86.d.ts does not declare it).
   */
  bus?: { send(event: string, value: unknown): void };
}

export interface V86NetOptions {
  /**
   * The virtq device: preset (notification policy, default 'vhost'), MAC and MTU in its config
   * space, queue size, withheld features, and the port ('host-stack' default, 'loopback', or in
   * Node a TAP: `{ type: 'tap', name }`, on the worker or inline).
   */
  device?: VirtioNetOptions;
  /** Where the device runs: 'worker' (default: its own thread) or 'inline' (on this thread, at each kick). */
  runner?: 'worker' | 'inline';
  /** Inline only: the port behind the device, for any NetPort (a TapPort, a pcap tee…). */
  port?: NetPortFactory;
  /** Worker only: a device kind registered by `modules` (default 'virtio-net'). */
  kind?: string;
  /** Worker only: module URLs the worker imports first (they register more device kinds). */
  modules?: string[];
  /** Worker only, browsers: URL of web-device-worker.js (default: next to the transport module). */
  workerUrl?: URL | string;
  /** Frames that may wait for a free tx buffer before new ones are dropped (default 512). */
  backlogFrames?: number;
  /** Poll period for work no interrupt announced, ms (default 5). */
  pollMs?: number;
  /** Bytes of SharedArrayBuffer for rings and buffers (default 8 MiB). */
  memoryBytes?: number;
  /** Queue size the driver asks for (default 256). */
  queueSize?: number;
  /** Records the driver side's tx add/reap points (a Tracer from virtq/trace). */
  tracer?: NetObserver;
  /**
   * Records both sides into one TraceSession (virtq/trace): the driver's points on this thread,
   * the device's on its worker (or inline) through `session.setupFor('host')`. Call
   * `session.finish()` (or writeTraceFile) after close(). Not together with `tracer` or
   * `device.trace`.
   */
  trace?: TraceSession;
  /** A device worker's error (it stops serving frames). */
  onError?: (message: string) => void;
}

export interface V86NetStats {
  /** Frames v86's guest sent (net0-send) and their bytes. */
  framesFromGuest: number;
  bytesFromGuest: number;
  /** Frames handed to v86 (net0-receive) and their bytes. */
  framesToGuest: number;
  bytesToGuest: number;
  /** Frames that found no free tx buffer and waited in the backlog. */
  txBacklogged: number;
  /** Most frames the backlog held at once. */
  txBacklogPeak: number;
  /** Frames dropped because the backlog was full (backpressure v86 cannot feel). */
  txDropped: number;
  /** Frames longer than the driver's largest tx frame (dropped). */
  txTooLong: number;
  /** Interrupt services and poll-timer services run. */
  interrupts: number;
  polls: number;
}

const ARENA_BASE = 4096;

/**
 * What virtq's driver accepts on v86's behalf: everything but the receive offloads. v86's NICs
 * take plain Ethernet frames with finished checksums (its ne2k and its virtio-net offer no
 * offloads), so the device must not hand the driver a partial checksum or a GSO frame (§5.1.6.4
 * binds the device to what the driver accepted); frames from v86 carry an empty header.
 */
export const V86_DRIVER_FEATURES = VIRTIO_NET_FEATURES & ~(NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6);

/** The adapter between one v86 instance and one virtq device; build it with attach(). */
export class V86NetAdapter {
  readonly stats: V86NetStats = {
    framesFromGuest: 0,
    bytesFromGuest: 0,
    framesToGuest: 0,
    bytesToGuest: 0,
    txBacklogged: 0,
    txBacklogPeak: 0,
    txDropped: 0,
    txTooLong: 0,
    interrupts: 0,
    polls: 0,
  };
  /** The negotiated feature set between virtq's driver and device. */
  readonly features: bigint;
  private readonly backlog: Uint8Array[] = [];
  private readonly backlogCap: number;
  private readonly onSend = (frame: Uint8Array): void => this.fromGuest(frame);
  private readonly timer: ReturnType<typeof setInterval>;
  private scheduled = false;
  private servicing = false;
  private again = false;
  private closed = false;
  private readonly hdr = emptyNetHdr();
  private readonly bus: { send(event: string, value: unknown): void };

  private constructor(
    readonly emulator: V86Like,
    readonly mem: GuestMemory,
    readonly transport: MmioTransport,
    readonly runner: DeviceRunner,
    readonly guest: MmioNetGuest,
    opts: V86NetOptions,
    private readonly driverTracer?: { flush(): void },
  ) {
    this.backlogCap = opts.backlogFrames ?? 512;
    this.bus = emulator.bus!;
    this.features = guest.features;
    guest.net.onReceive = (bytes, offset, len) => {
      // A copy: the driver's buffer is reposted as soon as this returns.
      const frame = bytes.slice(offset, offset + len);
      this.stats.framesToGuest++;
      this.stats.bytesToGuest += len;
      this.bus.send('net0-receive', frame);
    };
    transport.onInterrupt = (asserted) => {
      if (asserted) this.schedule();
    };
    emulator.add_listener('net0-send', this.onSend);
    this.timer = setInterval(() => {
      this.stats.polls++;
      if (this.runner instanceof InlineRunner) this.runner.poll();
      this.service();
    }, opts.pollMs ?? 5);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /**
   * Attaches virtq to a running (or not yet started) v86 instance: starts the device (on a worker
   * by default), runs the driver's virtio initialisation (§3.1.1) and listens on `net0-send`.
   */
  static async attach(emulator: V86Like, opts: V86NetOptions = {}): Promise<V86NetAdapter> {
    if (typeof emulator?.add_listener !== 'function' || typeof emulator.bus?.send !== 'function') {
      throw new V86AdapterError('bad-emulator', 'not a v86 instance: add_listener() and bus.send() are needed');
    }
    const bytes = opts.memoryBytes ?? 8 << 20;
    if (!Number.isInteger(bytes) || bytes < 1 << 20) throw new V86AdapterError('bad-options', `memoryBytes ${String(opts.memoryBytes)}: need an integer ≥ 1 MiB`);
    const backlog = opts.backlogFrames ?? 512;
    if (!Number.isInteger(backlog) || backlog < 0) throw new V86AdapterError('bad-options', `backlogFrames ${String(opts.backlogFrames)}: need an integer ≥ 0`);
    const pollMs = opts.pollMs ?? 5;
    if (!(pollMs > 0)) throw new V86AdapterError('bad-options', `pollMs ${String(opts.pollMs)}: need a number > 0`);
    const mem = GuestMemory.allocate(bytes);
    if (opts.trace !== undefined && (opts.tracer !== undefined || opts.device?.trace !== undefined)) {
      throw new V86AdapterError('bad-options', 'give trace (a TraceSession for both sides) or tracer/device.trace, not both');
    }
    const device: VirtioNetOptions = opts.trace !== undefined ? { ...opts.device, trace: opts.trace.setupFor('host') } : (opts.device ?? {});
    const driverTracer = opts.trace !== undefined ? new Tracer(opts.trace.setupFor('guest')) : opts.tracer;
    let runner: DeviceRunner;
    const wantsTap = device.backend?.type === 'tap';
    if (wantsTap && !isNode()) throw new V86AdapterError('bad-options', "a 'tap' backend needs Node (a TAP is a Linux file descriptor)");
    if (wantsTap) {
      const name = (device.backend as { name?: unknown }).name;
      if (typeof name !== 'string' || name.length === 0 || name.length > 15) throw new V86AdapterError('bad-options', `device.backend.name ${JSON.stringify(name)}: a TAP needs an interface name of 1..15 characters`);
    }
    if (wantsTap && opts.port !== undefined) throw new V86AdapterError('bad-options', "give either device.backend { type: 'tap' } or port, not both");
    if ((opts.runner ?? 'worker') === 'inline') {
      let backend: VirtioNetBackend;
      if (wantsTap) {
        // Node only, so imported only here (the adapter itself runs in browsers too).
        const { TapNetBackend } = await import('../transport/virtio-net-tap.js');
        backend = new TapNetBackend(device);
      } else backend = new VirtioNetBackend(device, opts.port);
      runner = new InlineRunner(backend, mem);
    } else if (opts.runner === undefined || opts.runner === 'worker') {
      if (opts.port !== undefined) throw new V86AdapterError('bad-options', 'port is for the inline runner; a worker builds its port from device.backend or a registered kind');
      runner = await startDeviceWorker(mem, device, opts);
    } else {
      throw new V86AdapterError('bad-options', `runner '${String(opts.runner)}': 'worker' or 'inline'`);
    }
    const transport = new MmioTransport({ mem, device: new VirtioNetFrontend(device), runner });
    let g: MmioNetGuest;
    try {
      let regs = 0;
      g = new MmioNetGuest({ read: (o, s) => (regs++, transport.read(o, s)), write: (o, v, s) => (regs++, transport.write(o, v, s)) }, mem, {
        arenaBase: ARENA_BASE,
        arenaBytes: bytes - ARENA_BASE,
        queueSize: opts.queueSize ?? 256,
        wantFeatures: V86_DRIVER_FEATURES,
        ...(driverTracer !== undefined ? { driver: { tracer: driverTracer } } : {}),
      });
      g.init();
      g.refillRx();
    } catch (e) {
      await runner.close();
      throw new V86AdapterError('init-failed', `virtq driver initialisation failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    return new V86NetAdapter(emulator, mem, transport, runner, g, opts, driverTracer instanceof Tracer ? driverTracer : undefined);
  }

  /** The negotiated features by name (e.g. MRG_RXBUF, CSUM). */
  get featureNames(): string[] {
    return describeFeatures(this.features);
  }

  /** Frames waiting for a free tx buffer now. */
  get backlogFrames(): number {
    return this.backlog.length;
  }

  private fromGuest(frame: Uint8Array): void {
    if (this.closed) return;
    this.stats.framesFromGuest++;
    this.stats.bytesFromGuest += frame.length;
    if (this.backlog.length > 0) {
      this.enqueue(frame);
      this.flushBacklog();
      return;
    }
    if (!this.transmit(frame)) this.enqueue(frame);
    this.guest.flushTx();
  }

  /** True when the frame went into a tx buffer (or was dropped as too long). */
  private transmit(frame: Uint8Array): boolean {
    const d = this.guest.net;
    if (frame.length > d.maxTxFrameBytes) {
      this.stats.txTooLong++;
      return true;
    }
    try {
      if (d.transmit(frame, 0, frame.length, this.hdr)) return true;
      d.reapTx();
      return d.transmit(frame, 0, frame.length, this.hdr);
    } catch (e) {
      if (e instanceof NetError && e.code === 'bad-argument') {
        this.stats.txTooLong++;
        return true;
      }
      throw e;
    }
  }

  private enqueue(frame: Uint8Array): void {
    if (this.backlog.length >= this.backlogCap) {
      this.stats.txDropped++;
      return;
    }
    // A copy: v86 may reuse the buffer it sent.
    this.backlog.push(frame.slice());
    this.stats.txBacklogged++;
    if (this.backlog.length > this.stats.txBacklogPeak) this.stats.txBacklogPeak = this.backlog.length;
  }

  private flushBacklog(): void {
    const q = this.backlog;
    let sent = 0;
    while (sent < q.length && this.transmit(q[sent]!)) sent++;
    if (sent > 0) {
      q.splice(0, sent);
      this.guest.flushTx();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.stats.interrupts++;
      this.service();
    });
  }

  /**
   * The driver's interrupt handler and softirq: acknowledge, receive until the queue is empty
   * (NAPI: interrupts off while polling, on again with a re-check, §2.7.14), reap tx, send what
   * waited. Re-entry (an inline device interrupting inside a kick made here) runs one more round.
   */
  private service(): void {
    if (this.closed) return;
    if (this.servicing) {
      this.again = true;
      return;
    }
    this.servicing = true;
    try {
      const g = this.guest;
      const d = g.net;
      do {
        this.again = false;
        g.acknowledgeInterrupt();
        d.disableRxInterrupts();
        g.receive();
        d.reapTx();
        if (this.backlog.length > 0) this.flushBacklog();
        if (d.enableRxInterrupts()) this.again = true;
      } while (this.again && !this.closed);
    } finally {
      this.servicing = false;
    }
  }

  /**
   * Resolves true once every frame v86 has sent so far was taken by the device (the backlog is
   * empty and every tx chain came back used), false after `timeoutMs`. Stop the emulator first
   * for a count that stays put (its guest may send again at any time).
   */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      this.service();
      if (this.backlog.length === 0) {
        this.guest.net.reapTx();
        if (this.guest.net.txOutstanding === 0) return true;
      }
      if (this.closed || performance.now() > end) return false;
      if (this.runner instanceof InlineRunner) this.runner.poll();
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /**
   * The device's state: its counters, its loop's and, with the host stack behind it, the host
   * stack's (a save() of the device between two passes, then resume; null before DRIVER_OK).
   */
  async deviceState(): Promise<VirtioNetState | null> {
    return readDeviceState(this.runner);
  }

  /** Detaches from v86 and stops the device. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.emulator.remove_listener('net0-send', this.onSend);
    await this.runner.close();
    // The driver side's last records (the device's were published as its runner closed).
    this.driverTracer?.flush();
  }
}

function isNode(): boolean {
  return (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node !== undefined;
}

async function startDeviceWorker(mem: GuestMemory, device: VirtioNetOptions, opts: V86NetOptions): Promise<DeviceRunner> {
  const tap = device.backend?.type === 'tap';
  // A TAP backend is the Node-only kind 'virtio-net-tap': the worker imports its module first.
  const base = {
    mem,
    kind: opts.kind ?? (tap ? 'virtio-net-tap' : 'virtio-net'),
    options: device,
    modules: [...(opts.modules ?? []), ...(tap ? [new URL('../transport/virtio-net-tap.js', import.meta.url).href] : [])],
  };
  if (isNode()) {
    // Node: worker_threads (the one node: import of the transport lives in node-worker.js).
    const { startNodeDeviceWorker } = await import('../transport/node-worker.js');
    return startNodeDeviceWorker(base, (e) => opts.onError?.(e.message));
  }
  return startWebDeviceWorker({ ...base, ...(opts.workerUrl !== undefined ? { workerUrl: opts.workerUrl } : {}) }, (m) => opts.onError?.(m));
}
