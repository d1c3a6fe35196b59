// The vhost-user socket side (Node only): listens on a Unix socket, accepts one frontend at a
// time, reads messages with their SCM_RIGHTS fds (libuv drops ancillary data, hence the addon),
// feeds them to a VhostUserBackend and writes replies. One thread runs both the control plane
// and the data path: once the backend has started its NetDeviceService, the service's device
// loop runs (sleeping in poll(2) on the kick fds, the port's fd and the socket, through a
// ConnectionDoorbell) until a message arrives; the message is handled between two runs. It is
// meant to run in a worker so the main thread keeps handling signals. A protocol error or a
// broken ring closes the connection and resets the backend; the server keeps listening.
// The socket path is claimed as QEMU and DPDK claim theirs: a live socket or a file that is not
// a socket is refused, a stale socket is replaced, and our socket is removed on a clean stop.

import { fstatSync, lstatSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { check, loadIo, loadShm, releaseMapping, type IoAddon } from '../backend/native.js';
import { VirtqueueError } from '../virtqueue/index.js';
import { FdDoorbell } from '../backend/fd-doorbell.js';
import { VhostUserBackend, type VhostBackendOptions, type VhostDoorbell, type VhostOs } from './backend.js';
import { VhostUserError } from './errors.js';
import { Flags, HEADER_BYTES, MAX_PAYLOAD_BYTES, decodeHeader, decodeMessage, encodeMessage, requestName, u64Payload } from './messages.js';

export interface ServerOptions {
  /** The socket to listen on, or with `client`, the frontend's socket to connect to. */
  socketPath: string;
  /**
   * Connect to a frontend that listens (QEMU server=on, DPDK virtio_user server=1) instead of
   * listening, and reconnect with back-off when the connection ends. Default false.
   */
  client?: boolean;
  /** The device's port, policy, tracer and offers (VhostUserBackend's options). */
  backend: VhostBackendOptions;
  /** Checked between polls; the loop ends when it returns true. */
  stopped: () => boolean;
  /**
   * Called when a connection ends: the error (null for a close by the frontend) and, always, a
   * sentence saying why — the last request and what went wrong, and the accept back-off if one
   * started.
   */
  onDisconnect?: (err: Error | null, backend: VhostUserBackend, reason: string) => void;
  /** Called once the socket listens (client mode: once, before the first connect). */
  onListening?: () => void;
  /** How long a started message may take to arrive whole. */
  messageTimeoutMs?: number;
  /**
   * How long a connection that has not sent SET_OWNER (its opening handshake) may stay silent
   * before it is closed, so an idle client never blocks the frontends queued behind it. After
   * SET_OWNER a frontend may idle (QEMU waits there for its guest's driver). Default 3000 ms.
   */
  handshakeTimeoutMs?: number;
  /** Called with the reason when a connection is refused because another frontend is served. */
  onRefused?: (reason: VhostUserError) => void;
  /**
   * A change asked from outside the server's thread (a new policy between a study's cells):
   * `pending` is looked at as often as `stopped` (it ends a data-path run the same way) and
   * `apply` runs on the server's thread between two runs, or while no frontend is connected.
   */
  reconfigure?: { pending(): boolean; apply(backend: VhostUserBackend): void };
}

export interface ServerStats {
  connections: number;
  /** Connections closed at once because another frontend was being served. */
  refusedBusy: number;
  /** Times the accept back-off started or grew (a frontend reconnecting in a tight loop). */
  backoffs: number;
  protocolErrors: number;
  lastError: string | null;
  /** Client mode: connect attempts the peer's socket refused (not there yet, or restarting). */
  connectFailures: number;
}

export function nodeVhostOs(io: IoAddon = loadIo()): VhostOs {
  const shm = loadShm();
  return {
    fileSize: (fd) => fstatSync(fd).size,
    mmapShared: (fd, len, off) => shm.mmapShared(fd, len, off),
    unmap: (buffer) => releaseMapping(shm, buffer),
    close: (fd) => void io.close(fd),
    signal: (fd) => void io.eventfdWrite(fd, 1),
  };
}

const IDLE_POLL_MS = 100;
/** A device loop that never sleeps looks for control input this often (iterations, a power of 2). */
const CONTROL_CHECK_ITERATIONS = 256;

export function serveVhostUser(o: ServerOptions): { backend: VhostUserBackend; stats: ServerStats } {
  const io = loadIo();
  const backend = new VhostUserBackend(nodeVhostOs(io), o.backend);
  const stats: ServerStats = { connections: 0, refusedBusy: 0, backoffs: 0, protocolErrors: 0, lastError: null, connectFailures: 0 };
  const storm = new AcceptBackoff();

  // Serves one connected frontend to its end, reports why it ended and resets the backend
  // (releasing its mappings). Returns whether its rings ran.
  const serveOne = (conn: number, listenFd: number, backoffNote: (ranRings: boolean) => string): boolean => {
    io.setNonblock(conn);
    stats.connections++;
    let err: Error | null = null;
    const outcome: ConnectionOutcome = { lastRequest: 'no request', ranRings: false, askedQueueNum: false };
    try {
      serveConnection(io, conn, listenFd, backend, o, stats, outcome);
    } catch (e) {
      if (!(e instanceof VhostUserError) && !(e instanceof VirtqueueError)) throw e;
      if (!(e instanceof VhostUserError && e.code === 'closed')) {
        err = e;
        stats.protocolErrors++;
        stats.lastError = e.message;
      }
    } finally {
      io.close(conn);
    }
    const reason = describeEnd(err, outcome) + backoffNote(outcome.ranRings);
    o.onDisconnect?.(err, backend, reason);
    backend.reset();
    return outcome.ranRings;
  };

  if (o.client === true) {
    try {
      clientLoop(io, o, stats, serveOne);
    } finally {
      backend.reset();
    }
    return { backend, stats };
  }

  const noEvents = new Int32Array(1);
  claimSocketPath(io, o.socketPath);
  const listenFd = io.unixListen(o.socketPath);
  if (listenFd === -osConstants.errno.EADDRINUSE) {
    // Someone bound the path between the claim and our bind.
    throw new VhostUserError('socket-in-use', `${o.socketPath}: another server bound this path while virtq was starting`);
  }
  check(listenFd, `listen on ${o.socketPath}`);
  const ours = statSync(o.socketPath);
  o.onListening?.();
  const POLLIN = io.constants.POLLIN;
  const one = { fds: new Int32Array(1), ev: new Int32Array([POLLIN]), rev: new Int32Array(1) };
  try {
    while (!o.stopped()) {
      if (o.reconfigure?.pending() === true) o.reconfigure.apply(backend);
      one.fds[0] = listenFd;
      const holdMs = storm.holdMs(Date.now());
      if (holdMs > 0) {
        // Backing off: leave newcomers in the backlog; sleep in short steps to notice stop.
        io.poll(one.fds, noEvents, one.rev, Math.min(holdMs, IDLE_POLL_MS));
        continue;
      }
      if (io.poll(one.fds, one.ev, one.rev, IDLE_POLL_MS) <= 0) continue;
      const conn = io.accept(listenFd);
      if (conn < 0) continue;
      serveOne(conn, listenFd, (ranRings) => {
        const delayMs = storm.ended(Date.now(), ranRings);
        if (delayMs <= 0) return '';
        stats.backoffs++;
        return `; ${storm.failures} connections without a running ring in ${BACKOFF_WINDOW_MS / 1000} s: the next accept waits ${delayMs} ms`;
      });
    }
  } finally {
    // Also after an unexpected error: the last connection's mappings are released, not left
    // for the garbage collector (reset() is idempotent).
    backend.reset();
    io.close(listenFd);
    removeOwnSocket(o.socketPath, ours);
  }
  return { backend, stats };
}

const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/**
 * Client mode (QEMU `-chardev socket,server=on`, DPDK virtio_user `server=1`): virtq connects to
 * the frontend's socket instead of listening, serves that connection, and when it ends (the peer
 * restarted) connects again. Attempts are spaced 100 ms apart, doubling to 5 s while they fail
 * or the connections end before any ring ran (a peer that keeps refusing is not hammered); a
 * connection whose rings ran resets the spacing. The socket path is the peer's: never removed.
 */
function clientLoop(io: IoAddon, o: ServerOptions, stats: ServerStats, serveOne: (conn: number, listenFd: number, note: (ranRings: boolean) => string) => boolean): void {
  const noFds = new Int32Array(0);
  let delayMs = 0;
  o.onListening?.();
  while (!o.stopped()) {
    if (delayMs > 0) {
      // Sleep in short steps to notice stop (poll with no fds is a sleep).
      const until = Date.now() + delayMs;
      while (!o.stopped() && Date.now() < until) io.poll(noFds, noFds, noFds, Math.min(until - Date.now(), IDLE_POLL_MS));
      if (o.stopped()) break;
    }
    const conn = io.unixConnect(o.socketPath);
    if (conn < 0) {
      stats.connectFailures++;
      delayMs = delayMs === 0 ? RECONNECT_FIRST_MS : Math.min(2 * delayMs, RECONNECT_MAX_MS);
      continue;
    }
    const ranRings = serveOne(conn, -1, (ran) => {
      const next = ran ? RECONNECT_FIRST_MS : Math.min(Math.max(2 * delayMs, RECONNECT_FIRST_MS), RECONNECT_MAX_MS);
      return `; reconnecting to ${o.socketPath} in ${next} ms`;
    });
    delayMs = ranRings ? RECONNECT_FIRST_MS : Math.min(Math.max(2 * delayMs, RECONNECT_FIRST_MS), RECONNECT_MAX_MS);
  }
}

/** What the accept loop learns from one connection. */
interface ConnectionOutcome {
  /** The name of the last request read (or started), for the disconnect reason. */
  lastRequest: string;
  /** Whether the rings ever ran: a frontend that got that far is not reconnecting in a loop. */
  ranRings: boolean;
  /** GET_QUEUE_NUM was asked (a frontend that then leaves may want more queue pairs). */
  askedQueueNum: boolean;
}

/** Why a connection ended, as one sentence for the log. */
function describeEnd(err: Error | null, c: ConnectionOutcome): string {
  if (err === null) {
    // QEMU gives up after GET_QUEUE_NUM when its queues= exceeds the answer ("you are asking more
    // queues than supported"), closing a few requests later (issue 16).
    const hint = c.askedQueueNum && !c.ranRings ? ' (a frontend that asked GET_QUEUE_NUM and left before any ring ran may want more queue pairs than offered: serve more with --queues N)' : '';
    return `the frontend closed the connection after ${c.lastRequest}${c.ranRings ? '' : ', before any ring ran'}${hint}`;
  }
  if (err instanceof VirtqueueError) return `the driver broke a ring (${err.code}) while the rings ran: ${err.message}`;
  const code = err instanceof VhostUserError ? err.code : err.name;
  return `${code} at ${c.lastRequest}: ${err.message}`;
}

/** Failed connections tolerated in BACKOFF_WINDOW_MS before accepts are delayed. */
const BACKOFF_AFTER = 5;
const BACKOFF_WINDOW_MS = 10_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;

/**
 * Slows a frontend that reconnects in a tight loop (QEMU asking for more queue pairs than offered
 * reconnected 126 k times in 50 s): after BACKOFF_AFTER connections that ended without a running
 * ring within BACKOFF_WINDOW_MS, each further one delays the next accept, doubling from
 * BACKOFF_FIRST_MS up to BACKOFF_MAX_MS. A connection whose rings ran resets it.
 */
class AcceptBackoff {
  private readonly ends: number[] = [];
  private notBeforeMs = 0;
  private delayMs = 0;

  get failures(): number {
    return this.ends.length;
  }

  holdMs(nowMs: number): number {
    return Math.max(0, this.notBeforeMs - nowMs);
  }

  /** Records a connection's end; returns the delay before the next accept (0: none). */
  ended(nowMs: number, good: boolean): number {
    if (good) {
      this.ends.length = 0;
      this.delayMs = 0;
      return 0;
    }
    this.ends.push(nowMs);
    while (this.ends.length > 0 && nowMs - this.ends[0]! > BACKOFF_WINDOW_MS) this.ends.shift();
    if (this.ends.length <= BACKOFF_AFTER) {
      this.delayMs = 0;
      return 0;
    }
    this.delayMs = this.delayMs === 0 ? BACKOFF_FIRST_MS : Math.min(2 * this.delayMs, BACKOFF_MAX_MS);
    this.notBeforeMs = nowMs + this.delayMs;
    return this.delayMs;
  }
}

/**
 * Makes `path` free for bind(2), as QEMU and DPDK do (never an unconditional unlink): nothing
 * there, free; a socket nobody accepts on (connect: ECONNREFUSED), a dead server's leftover,
 * removed; a socket that accepts a connection, VhostUserError 'socket-in-use'; anything else (a
 * regular file, a directory), VhostUserError 'not-a-socket', left untouched.
 */
export function claimSocketPath(io: IoAddon, path: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new VhostUserError('not-a-socket', `${path} exists and is not a socket (${st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'a special file'}); refusing to replace it`);
  }
  const c = io.unixConnect(path);
  if (c >= 0) {
    io.close(c);
    throw new VhostUserError('socket-in-use', `${path}: another server is listening on this socket (is a second virtq, or a QEMU/DPDK server=1, using it?)`);
  }
  if (c === -osConstants.errno.ENOENT) return;
  if (c !== -osConstants.errno.ECONNREFUSED) {
    throw new VhostUserError('socket-in-use', `${path}: cannot tell whether the socket is live (connect: errno ${-c}); refusing to replace it`);
  }
  unlinkSync(path); // stale: its server is gone
}

/** Removes the socket file at `path` if it is still the one we bound (`ours`), not a successor's. */
function removeOwnSocket(path: string, ours: Stats): void {
  try {
    const now = lstatSync(path);
    if (now.ino === ours.ino && now.dev === ours.dev) unlinkSync(path);
  } catch {
    // Already gone (removed by hand): nothing to clean up.
  }
}

/**
 * Serves one frontend until it closes, breaks the protocol or a ring, or the server stops. One
 * frontend at a time (vhost-user is one device per socket): a second connection is accepted and
 * closed at once, with a reason to onRefused, once the current one has finished its handshake
 * (SET_OWNER); before that it waits in the backlog for at most the handshake timeout.
 */
function serveConnection(io: IoAddon, conn: number, listenFd: number, backend: VhostUserBackend, o: ServerOptions, stats: ServerStats, outcome: ConnectionOutcome): void {
  const POLLIN = io.constants.POLLIN;
  const EAGAIN = io.constants.EAGAIN;
  const timeoutMs = o.messageTimeoutMs ?? 2000;
  const handshakeMs = o.handshakeTimeoutMs ?? 3000;
  let lastMessageMs = Date.now();
  const two = { fds: new Int32Array([conn, listenFd]), ev: new Int32Array([POLLIN, POLLIN]), rev: new Int32Array(2) };
  // Accepts and closes a frontend that arrived while this one is served (it sees EOF at once
  // instead of hanging in the backlog).
  const refuseNewcomer = (): void => {
    const c = io.accept(listenFd);
    if (c < 0) return;
    io.close(c);
    stats.refusedBusy++;
    o.onRefused?.(new VhostUserError('busy', 'refused a second frontend: another one is being served (one connection at a time)'));
  };
  const hdrBuf = new Uint8Array(HEADER_BYTES);
  const hdrView = new DataView(hdrBuf.buffer);
  const payload = new Uint8Array(MAX_PAYLOAD_BYTES);
  const out = new Uint8Array(HEADER_BYTES + MAX_PAYLOAD_BYTES);
  const fdsIn = new Int32Array(16);
  const waitOne = new Int32Array(1);
  const waitEv = new Int32Array([POLLIN]);
  const waitRev = new Int32Array(1);

  // Reads exactly buf.length bytes (collecting fds), waiting at most timeoutMs for the rest.
  const readExact = (buf: Uint8Array, got: number[], first: boolean): void => {
    let off = 0;
    const deadline = Date.now() + timeoutMs;
    while (off < buf.length) {
      const r = io.recvMsg(conn, buf.subarray(off), fdsIn);
      if (typeof r === 'number') {
        if (r !== -EAGAIN) throw new VhostUserError('closed', `recvmsg failed: errno ${-r}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new VhostUserError('timeout', `a message stalled after ${off} of ${buf.length} bytes for ${timeoutMs} ms`);
        waitOne[0] = conn;
        io.poll(waitOne, waitEv, waitRev, Math.min(left, 100));
        continue;
      }
      for (let i = 0; i < r.fds; i++) got.push(fdsIn[i]!);
      if (r.bytes === 0) {
        for (const fd of got) io.close(fd);
        if (first && off === 0) throw new VhostUserError('closed', 'the frontend closed the connection');
        throw new VhostUserError('truncated', `the connection closed after ${off} of ${buf.length} bytes`);
      }
      off += r.bytes;
    }
  };

  const handleOne = (): void => {
    const got: number[] = [];
    try {
      readExact(hdrBuf, got, true);
      outcome.lastRequest = requestName(hdrView.getUint32(0, true)); // before decoding: a bad header names its request too
      if (outcome.lastRequest === 'GET_QUEUE_NUM') outcome.askedQueueNum = true;
      const h = decodeHeader(hdrBuf, HEADER_BYTES);
      const body = payload.subarray(0, h.size);
      readExact(body, got, false);
      const msg = decodeMessage(h, body);
      const reply = backend.handle(msg, got.splice(0));
      if (reply !== null) {
        writeAll(io, conn, out, encodeMessage(out, h.request, Flags.VERSION | Flags.REPLY, reply));
      } else if ((h.flags & Flags.NEED_REPLY) !== 0 && backend.replyAck) {
        writeAll(io, conn, out, encodeMessage(out, h.request, Flags.VERSION | Flags.REPLY, u64Payload(0n)));
      }
    } catch (e) {
      for (const fd of got) io.close(fd);
      throw e;
    }
  };

  const rc = o.reconfigure;
  const db = new ConnectionDoorbell(io, conn, backend, rc === undefined ? o.stopped : () => o.stopped() || rc.pending());
  backend.setDoorbell(db);
  try {
    for (;;) {
      if (o.stopped()) return;
      if (rc?.pending() === true) rc.apply(backend);
      const svc = backend.service;
      if (svc !== null) {
        outcome.ranRings = true;
        // The data path runs until control input arrives (or the server stops, or a ring breaks).
        svc.run();
        if (svc.failure !== null) {
          // The driver broke a ring (VirtqueueError): tell the frontend through the vring err
          // fds (vhost-user "SET_VRING_ERR") before the connection is closed.
          backend.signalErrors();
          throw svc.error!;
        }
        if (!db.controlReady) continue;
        db.controlReady = false;
      } else {
        two.rev.fill(0);
        io.poll(two.fds, two.ev, two.rev, IDLE_POLL_MS);
        if (two.rev[1]! !== 0 && backend.hasOwner) refuseNewcomer();
        if (two.rev[0]! === 0) {
          if (!backend.hasOwner && Date.now() - lastMessageMs > handshakeMs) {
            throw new VhostUserError('timeout', `no message for ${handshakeMs} ms before SET_OWNER (handshake timeout): an idle client is closed so it cannot block the next frontend`);
          }
          continue;
        }
      }
      handleOne();
      lastMessageMs = Date.now();
    }
  } finally {
    backend.setDoorbell(null);
  }
}

/**
 * The doorbell of one connection: an FdDoorbell over the started rings' kick fds (waited on, by
 * queue index), their call fds (rung), the port's fd while the device can take a frame, and the
 * connection, whose readability ends the device loop's run so a message is handled between two
 * runs. A loop that never sleeps (a polling driver keeping it busy) still looks at the
 * connection every CONTROL_CHECK_ITERATIONS iterations with a zero-timeout poll.
 */
class ConnectionDoorbell extends FdDoorbell implements VhostDoorbell {
  private iterations = 0;
  private readonly one = new Int32Array(1);
  private readonly ev: Int32Array;
  private readonly rev = new Int32Array(1);

  constructor(
    private readonly io: IoAddon,
    private readonly conn: number,
    backend: VhostUserBackend,
    private readonly stopped: () => boolean,
  ) {
    super({
      io,
      waitFds: () => backend.fds.kickFds(),
      ringFds: () => backend.fds.callFds(),
      ...(backend.port.fd !== undefined ? { inputFd: backend.port.fd } : {}),
      wantInput: () => backend.service?.wantsPortInput() ?? false,
      controlFd: conn,
      stopped,
      idlePollMs: IDLE_POLL_MS,
    });
    this.ev = new Int32Array([io.constants.POLLIN]);
  }

  interrupted(): boolean {
    if (this.controlReady || this.stopped()) return true;
    if ((++this.iterations & (CONTROL_CHECK_ITERATIONS - 1)) !== 0) return false;
    this.one[0] = this.conn;
    if (this.io.poll(this.one, this.ev, this.rev, 0) > 0) this.controlReady = true;
    return this.controlReady;
  }
}

function writeAll(io: IoAddon, conn: number, buf: Uint8Array, len: number): void {
  let off = 0;
  const deadline = Date.now() + 2000;
  while (off < len) {
    const r = io.sendMsg(conn, buf.subarray(off), len - off, new Int32Array(0));
    if (r >= 0) {
      off += r;
      continue;
    }
    if (r !== -io.constants.EAGAIN || Date.now() > deadline) throw new VhostUserError('closed', `sending a reply failed: errno ${-r}`);
    const w = new Int32Array([conn]);
    io.poll(w, new Int32Array([io.constants.POLLOUT]), new Int32Array(1), 100);
  }
}
