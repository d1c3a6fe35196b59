// Worker entry of the vhost-user backend (Node only): builds the port behind the device (host
// stack, reflect or a TAP the parent opened, optionally inside a pcap tee), the policy, the
// tracer, then runs serveVhostUser until the shared stop word is set, reporting each
// connection's end and finally the counters to the parent.

import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { ipv4FromString, macFromString } from '../net/frames/index.js';
import type { NetPort } from '../net/port.js';
import type { EndpointStats } from '../net/endpoint.js';
import { HostStack } from '../backend/host-stack.js';
import { ReflectPort, type ReflectPortStats } from '../backend/reflect-port.js';
import { TapPort, type TapPortStats } from '../backend/tap-port.js';
import { PcapTeePort } from '../backend/pcap-tee.js';
import { openPcapFile } from '../backend/pcap-file.js';
import { loadIo } from '../backend/native.js';
import { resolvePolicy } from '../policy/index.js';
import { Tracer, type TracerSetup } from '../trace/tracer.js';
import { serveVhostUser, type ServerStats } from './server.js';
import { VhostUserError, type VhostUserErrorCode } from './errors.js';
import type { BackendStats, FrameStats } from './backend.js';

export type VhostPortKind = 'reflect' | 'hoststack' | 'tap';

export interface VhostWorkerData {
  socketPath: string;
  stop: SharedArrayBuffer;
  backend: VhostPortKind;
  /** With backend 'tap': the TAP fd (opened by the parent; header size and offloads set here). */
  tapFd: number;
  tapName: string;
  /** The host stack's own address and MAC. */
  address: string;
  mac: string;
  /** The driver's address and MAC, as the host stack first assumes them (ARP requests update the MAC). */
  peerAddress: string;
  peerMac: string;
  /** A preset name or policy JSON (resolvePolicy). */
  policy: string;
  /** Record every frame into this pcap file ('' = none). */
  pcapPath: string;
  trace: TracerSetup | null;
  /** ServerOptions.client: connect to the frontend's socket (and reconnect) instead of listening. */
  client?: boolean;
  /** ServerOptions.handshakeTimeoutMs (undefined: the server's default). */
  handshakeTimeoutMs?: number;
  /** Receive/transmit queue pairs served (VhostBackendOptions.queuePairs). */
  queues: number;
  /**
   * Policy changes from the parent (VhostUserHandle.setPreset): Int32 word 0 is the request's
   * generation, word 1 the byte length of the policy spec (UTF-8 from byte 8; 0 = only report
   * the counters); answered with a VhostWorkerPolicy message.
   */
  control?: SharedArrayBuffer;
}

/** A policy change applied (or a counters snapshot taken) at the parent's request. */
export interface VhostWorkerPolicy {
  type: 'policy';
  generation: number;
  /** The policy now running. */
  policy: string;
  /** Device and loop counters summed over every data path so far, at the switch. */
  counters: Record<string, number>;
  /** Why the spec was refused (the policy did not change), if it was. */
  error?: string;
}

/** A started ring looks wrong in a way the protocol cannot refuse (VhostBackendOptions.onWarning). */
export interface VhostWorkerWarning {
  type: 'warning';
  message: string;
}

/** A connection refused at once because another frontend is served. */
export interface VhostWorkerBusy {
  type: 'busy';
  reason: string;
}

/** The worker's final report. */
export interface VhostWorkerDone {
  type: 'done';
  server: ServerStats;
  backend: BackendStats;
  frames: FrameStats;
  counters: Record<string, number>;
  hoststack: EndpointStats | null;
  tap: TapPortStats | null;
  reflect: ReflectPortStats | null;
  pcapRecorded: number;
  /** Frames the pcap tee could not record as they are (segmentation failed; see PcapTeePort). */
  pcapErrors: number;
}

/** The socket path was refused before the server listened (claimSocketPath). */
export interface VhostWorkerRefused {
  type: 'refused';
  code: VhostUserErrorCode;
  message: string;
}

export interface VhostWorkerDisconnect {
  type: 'disconnect';
  error: string | null;
  /** Why the connection ended: the last request and what went wrong (always set). */
  reason: string;
  frames: FrameStats;
  /** The features the frontend accepted on that connection (SET_FEATURES). */
  features: bigint;
  /** The backend's protocol counters so far (ring starts, chains left in the ring at stop, regions mapped and released). */
  backend: BackendStats;
}

const d = workerData as VhostWorkerData;
const stop = new Int32Array(d.stop);

let hoststack: HostStack | null = null;
let tap: TapPort | null = null;
let reflect: ReflectPort | null = null;
let port: NetPort;
if (d.backend === 'hoststack') {
  hoststack = new HostStack({
    mac: macFromString(d.mac),
    ip: ipv4FromString(d.address),
    peerMac: macFromString(d.peerMac),
    peerIp: ipv4FromString(d.peerAddress),
  });
  port = hoststack;
} else if (d.backend === 'tap') {
  tap = new TapPort(loadIo(), d.tapFd, d.tapName);
  port = tap;
} else {
  reflect = new ReflectPort();
  port = reflect;
}
const pcap = d.pcapPath !== '' ? openPcapFile(d.pcapPath) : null;
// GSO frames as their MSS segments, so the capture reads as the wire would carry it.
const tee = pcap !== null ? new PcapTeePort(port, pcap.writer, { segmentGso: true }) : null;
const tracer = d.trace !== null ? new Tracer(d.trace) : undefined;
const control = d.control !== undefined ? new Int32Array(d.control, 0, 2) : null;
let appliedGeneration = 0;

try {
  const { backend, stats } = serveVhostUser({
    socketPath: d.socketPath,
    ...(d.client === true ? { client: true } : {}),
    backend: {
      port: tee ?? port,
      policy: resolvePolicy(d.policy),
      ...(tracer !== undefined ? { tracer } : {}),
      // The TAP takes UDP GSO frames as the kernel does; the other ports only TCP (segmented in software when needed).
      ufo: d.backend === 'tap',
      queuePairs: d.queues,
      onWarning: (message) => parentPort!.postMessage({ type: 'warning', message } satisfies VhostWorkerWarning),
    },
    stopped: () => Atomics.load(stop, 0) !== 0, // pairs with the parent's Atomics.store in stop()
    onListening: () => parentPort!.postMessage({ type: 'listening' }),
    ...(d.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: d.handshakeTimeoutMs } : {}),
    ...(control !== null
      ? {
          reconfigure: {
            // Pairs with the parent's Atomics.store of the generation (after the spec bytes).
            pending: () => Atomics.load(control, 0) !== appliedGeneration,
            apply: (b) => {
              const generation = Atomics.load(control, 0); // pairs with the parent's store, as above
              const len = control[1]!;
              appliedGeneration = generation;
              const m: VhostWorkerPolicy = { type: 'policy', generation, policy: b.currentPolicy.name, counters: {} };
              if (len > 0) {
                try {
                  b.setPolicy(resolvePolicy(new TextDecoder().decode(new Uint8Array(d.control!, 8, len))));
                  m.policy = b.currentPolicy.name;
                } catch (e) {
                  m.error = e instanceof Error ? e.message : String(e);
                }
              }
              m.counters = b.counters;
              parentPort!.postMessage(m);
            },
          },
        }
      : {}),
    onRefused: (e) => parentPort!.postMessage({ type: 'busy', reason: e.message } satisfies VhostWorkerBusy),
    onDisconnect: (err, backend, reason) => {
      const m: VhostWorkerDisconnect = { type: 'disconnect', error: err ? `${err.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : null, reason, frames: backend.frameStats, features: backend.negotiatedFeatures, backend: { ...backend.stats } };
      parentPort!.postMessage(m);
    },
  });
  tracer?.flush();
  pcap?.close();
  tap?.refreshKernelDrops();
  const done: VhostWorkerDone = {
    type: 'done',
    server: stats,
    backend: backend.stats,
    frames: backend.frameStats,
    counters: backend.counters,
    hoststack: hoststack?.endpoint.stats ?? null,
    tap: tap?.stats ?? null,
    reflect: reflect?.stats ?? null,
    pcapRecorded: tee?.recorded ?? 0,
    pcapErrors: tee?.recordErrors ?? 0,
  };
  parentPort!.postMessage(done);
} catch (e) {
  if (e instanceof VhostUserError && (e.code === 'socket-in-use' || e.code === 'not-a-socket')) {
    // The socket path was refused before listening: the caller gets it as a typed error.
    const m: VhostWorkerRefused = { type: 'refused', code: e.code, message: e.message };
    parentPort!.postMessage(m);
  } else {
    writeSync(2, `virtq vhost-user worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    throw e;
  }
}
