// virtq as a vhost-user-net backend (Node only): startVhostUser() runs the socket server and the
// data path (NetDeviceService: NetDevice + the policy's DeviceLoop + a NetPort) in a worker and
// returns a handle; the main thread stays free for signals, opens the TAP (root) and, when
// tracing, owns the TraceSession that drains the worker's trace buffer and writes the file.

import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { loadIo, loadShm } from '../backend/native.js';
import { TapDevice } from '../backend/tap.js';
import { resolvePolicy } from '../policy/index.js';
import { TraceSession, type TraceOptions } from '../trace/session.js';
import { writeTraceFile, type TraceFileSummary } from '../trace/output.js';
import type { BackendStats, FrameStats } from './backend.js';
import type { VhostPortKind, VhostWorkerData, VhostWorkerDisconnect, VhostWorkerDone, VhostWorkerRefused, VhostWorkerBusy, VhostWorkerPolicy, VhostWorkerWarning } from './worker.js';
import { VhostUserError } from './errors.js';

export { VhostUserError } from './errors.js';
export type { VhostUserErrorCode } from './errors.js';
export { VhostUserBackend, OFFERED_FEATURES, OFFERED_PROTOCOL_FEATURES, UFO_FEATURES, offeredFeatures } from './backend.js';
export type { VhostOs, VhostDoorbell, VhostRingFds, VhostBackendOptions, BackendStats, FrameStats } from './backend.js';
export type { VhostPortKind } from './worker.js';
export * from './messages.js';

export interface VhostUserOptions {
  /**
   * The Unix socket to listen on. An existing path is refused with a VhostUserError when it is a
   * live socket ('socket-in-use') or not a socket ('not-a-socket'); a stale socket is replaced.
   * The socket is removed when the server stops.
   */
  socketPath: string;
  /**
   * Client mode: connect to `socketPath`, where the frontend listens (QEMU `-chardev
   * socket,server=on`, DPDK virtio_user `server=1`), and reconnect with back-off (100 ms doubling
   * to 5 s) whenever the connection ends, so a restarted peer is rejoined. The path is the
   * peer's: it is neither claimed nor removed.
   */
  client?: boolean;
  /**
   * What stands behind the device: reflect (every frame back with MACs swapped, offload header
   * kept), hoststack (virtq's in-memory stack answering ARP/ping for `address`; 'responder' is
   * an alias), tap (frames to and from a TAP interface `tapName`, host side `tapAddress`; root).
   */
  backend?: VhostPortKind | 'responder';
  tapName?: string;
  /** Host-side address of the TAP with prefix, e.g. 10.78.0.2/24. */
  tapAddress?: string;
  /** The host stack's address and MAC. */
  address?: string;
  mac?: string;
  /** The driver's address and MAC as the host stack first assumes them (QEMU's default MAC). */
  peerAddress?: string;
  peerMac?: string;
  /** Notification policy: a preset name (default 'vhost') or policy JSON. */
  preset?: string;
  /** Record every frame both ways into this pcap file. */
  pcapPath?: string;
  /** Record a latency trace into `trace.file` (device-side points: the driver is not ours). */
  trace?: TraceOptions & { file: string };
  /**
   * Called when a frontend disconnects: the error (null for a close by the frontend) and why, as
   * a sentence naming the last request (and the accept back-off, when a reconnect storm began).
   */
  onDisconnect?: (error: string | null, frames: FrameStats, features: bigint, reason: string, backend: BackendStats) => void;
  /** Called when a second frontend is refused at once because one is being served. */
  onRefused?: (reason: string) => void;
  /** Called when a started ring looks wrong in a way the protocol cannot refuse (a packed ring's lost position). */
  onWarning?: (message: string) => void;
  /**
   * A connection that has not sent SET_OWNER within this many ms of silence is closed, so an
   * idle client cannot block the frontends behind it (default 3000).
   */
  handshakeTimeoutMs?: number;
  /**
   * Receive/transmit queue pairs to serve (VHOST_USER_PROTOCOL_F_MQ; QEMU `queues=N`, DPDK
   * virtio_user `queues=N`). Every enabled pair runs in the backend worker's one device loop,
   * over one port steered by flow. Default 1.
   */
  queues?: number;
}

export interface VhostUserResult extends Omit<VhostWorkerDone, 'type'> {
  /** The trace file written, with --trace. */
  trace: TraceFileSummary | null;
}

export interface VhostUserHandle {
  stop(): Promise<VhostUserResult>;
  /**
   * Runs another notification policy from now on (a preset name or policy JSON), without
   * disturbing the frontend: the data path ends and restarts over the same rings (features and
   * ring sizes stay as negotiated). Resolves, once the worker switched, with the device and loop
   * counters summed so far (a study takes the difference between two switches). A bad spec is
   * refused here (PolicyError) and the policy stays.
   */
  setPreset(spec: string): Promise<Record<string, number>>;
  /** The device and loop counters summed so far (taken between two data-path runs). */
  counters(): Promise<Record<string, number>>;
}

/** Room for a policy spec sent to a running worker (a preset name or policy JSON). */
const CONTROL_BYTES = 64 << 10;

/** How often the main thread copies the worker's trace records out while it runs. */
const TRACE_DRAIN_MS = 200;

export async function startVhostUser(o: VhostUserOptions): Promise<VhostUserHandle> {
  loadIo(); // fail here, with the build hint, rather than inside the worker
  loadShm();
  const kind: VhostPortKind = o.backend === undefined ? 'reflect' : o.backend === 'responder' ? 'hoststack' : o.backend;
  const policy = o.preset ?? 'vhost';
  resolvePolicy(policy); // a bad preset fails here (PolicyError), not in the worker
  let tap: TapDevice | null = null;
  if (kind === 'tap') {
    // Opened without features: TapPort sets the header size and offloads once the driver's are known.
    tap = TapDevice.open(o.tapName ?? 'vq0', 0n);
    try {
      if (o.tapAddress !== undefined) execFileSync('ip', ['addr', 'add', o.tapAddress, 'dev', tap.name]);
      execFileSync('ip', ['link', 'set', tap.name, 'up']);
    } catch (e) {
      tap.close();
      throw e;
    }
  }
  const session = o.trace !== undefined ? new TraceSession({ drainEveryMs: TRACE_DRAIN_MS, ...o.trace }) : null;
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const controlSab = new SharedArrayBuffer(8 + CONTROL_BYTES);
  const control = new Int32Array(controlSab, 0, 2);
  let generation = 0;
  const answers = new Map<number, (m: VhostWorkerPolicy) => void>();
  const data: VhostWorkerData = {
    socketPath: o.socketPath,
    stop: stop.buffer as SharedArrayBuffer,
    backend: kind,
    address: o.address ?? '10.78.0.2',
    mac: o.mac ?? '52:54:00:12:34:57',
    peerAddress: o.peerAddress ?? '10.78.0.1',
    peerMac: o.peerMac ?? '52:54:00:12:34:56',
    tapFd: tap?.fd ?? -1,
    tapName: tap?.name ?? '',
    policy,
    pcapPath: o.pcapPath ?? '',
    trace: session?.setupFor('host') ?? null,
    control: controlSab,
    ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
    queues: o.queues ?? 1,
    ...(o.client === true ? { client: true } : {}),
  };
  const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
  let done: VhostWorkerDone | null = null;
  let listening!: () => void;
  let refused!: (e: VhostUserError) => void;
  const ready = new Promise<void>((res, rej) => ((listening = res), (refused = rej)));
  const exited = new Promise<void>((resolve, reject) => {
    w.on('error', reject);
    w.on('exit', () => resolve());
  });
  w.on('message', (m: { type: 'listening' } | VhostWorkerDone | VhostWorkerDisconnect | VhostWorkerRefused | VhostWorkerBusy | VhostWorkerPolicy | VhostWorkerWarning) => {
    if (m.type === 'listening') listening();
    else if (m.type === 'policy') {
      answers.get(m.generation)?.(m);
      answers.delete(m.generation);
    }
    else if (m.type === 'busy') o.onRefused?.(m.reason);
    else if (m.type === 'warning') o.onWarning?.(m.message);
    else if (m.type === 'refused') refused(new VhostUserError(m.code, m.message));
    else if (m.type === 'disconnect') o.onDisconnect?.(m.error, m.frames, m.features, m.reason, m.backend);
    else done = m;
  });
  try {
    await Promise.race([ready, exited.then(() => Promise.reject(new Error('vhost-user worker exited before listening')))]);
  } catch (e) {
    tap?.close();
    await exited.catch(() => undefined);
    throw e;
  }
  session?.start();
  let workerGone = false;
  void exited.then(
    () => (workerGone = true),
    () => (workerGone = true),
  );
  /** Asks the worker to apply `spec` ('' = only the counters) and waits for its answer. */
  const ask = (spec: string): Promise<VhostWorkerPolicy> => {
    if (workerGone) return Promise.reject(new Error('vhost-user worker has ended'));
    const bytes = new TextEncoder().encode(spec);
    if (bytes.length > CONTROL_BYTES) throw new RangeError(`policy spec of ${bytes.length} bytes (at most ${CONTROL_BYTES})`);
    // One request at a time: the worker reads the spec when it sees the new generation.
    const g = ++generation;
    const answered = new Promise<VhostWorkerPolicy>((res, rej) => {
      answers.set(g, res);
      const gone = (): void => rej(new Error('vhost-user worker ended before applying the policy'));
      void exited.then(gone, gone);
    });
    new Uint8Array(controlSab, 8, bytes.length).set(bytes);
    control[1] = bytes.length;
    Atomics.store(control, 0, g); // pairs with the worker's Atomics.load in reconfigure.pending/apply
    return answered;
  };
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = queue.then(f, f);
    queue = p.catch(() => undefined);
    return p;
  };
  return {
    setPreset: (spec: string) =>
      serial(async () => {
        resolvePolicy(spec); // a bad spec fails here (PolicyError), not in the worker
        const m = await ask(spec);
        if (m.error !== undefined) throw new Error(`vhost-user: the policy was refused: ${m.error}`);
        return m.counters;
      }),
    counters: () => serial(async () => (await ask('')).counters),
    async stop(): Promise<VhostUserResult> {
      Atomics.store(stop, 0, 1); // pairs with the worker's Atomics.load in its stopped() check
      try {
        await exited;
      } finally {
        tap?.close();
        session?.stop();
      }
      const d = done as VhostWorkerDone | null;
      if (d === null) throw new Error('vhost-user worker ended without reporting');
      const { type: _type, ...rest } = d;
      const trace = session !== null && o.trace !== undefined ? writeTraceFile(session, o.trace.file, { workload: 'vhost-user', backend: kind, policy, socket: o.socketPath }) : null;
      return { ...rest, trace };
    },
  };
}
