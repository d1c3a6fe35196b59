// Worker entry of the vhost-user backend (Node only): runs serveVhostUser until the shared stop
// word is set, reporting each connection's end and finally the counters to the parent.

import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { ipv4FromString, macFromString } from '../net/frames/index.js';
import { Responder } from '../peers/responder.js';
import { reflectHandler, type FrameHandler, type FramePort } from './backend.js';
import { loadIo } from '../backend/native.js';
import { serveVhostUser } from './server.js';

export interface VhostWorkerData {
  socketPath: string;
  stop: SharedArrayBuffer;
  backend: 'reflect' | 'responder' | 'tap';
  /** With backend 'tap': the TAP fd (opened and configured by the parent). */
  tapFd: number;
  address: string;
  mac: string;
  spinUs: number;
}

const d = workerData as VhostWorkerData;
const stop = new Int32Array(d.stop);
let responder: Responder | null = null;
let handler: FrameHandler = reflectHandler;
if (d.backend === 'responder') {
  const r = new Responder(macFromString(d.mac), ipv4FromString(d.address));
  responder = r;
  handler = (frame, len, out, hdr) => {
    const n = r.respond(frame.subarray(hdr, len), len - hdr, out.subarray(hdr));
    if (n === 0) return 0;
    out.fill(0, 0, hdr);
    return hdr + n;
  };
}

let port: FramePort | undefined;
if (d.backend === 'tap') {
  const io = loadIo();
  const fd = d.tapFd;
  port = {
    fd,
    send: (frame, len) => io.write(fd, frame, len) === len,
    receive: (buf) => Math.max(0, io.read(fd, buf)),
    setHeaderBytes: (n) => {
      const r = io.setVnetHdrSz(fd, n);
      if (r < 0) throw new Error(`TUNSETVNETHDRSZ ${n} failed: errno ${-r}`);
    },
  };
}

try {
  const { backend, stats } = serveVhostUser({
    ...(port ? { port } : {}),
    socketPath: d.socketPath,
    handler,
    spinUs: d.spinUs,
    stopped: () => Atomics.load(stop, 0) !== 0, // pairs with the parent's Atomics.store
    onListening: () => parentPort!.postMessage({ type: 'listening' }),
    onDisconnect: (err, backend) => parentPort!.postMessage({ type: 'disconnect', error: err ? `${err.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : null, frames: backend.frameStats }),
  });
  parentPort!.postMessage({ type: 'done', server: stats, backend: backend.stats, frames: backend.frameStats, responder: responder?.stats ?? null });
} catch (e) {
  writeSync(2, `virtq vhost-user worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  throw e;
}
