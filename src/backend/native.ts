// Loader for the optional native addons in native/ (Node only). `npm ci` never builds them;
// `npm run build:native` (node-gyp) does. Every backend that needs one calls loadIo()/loadShm()
// and gets a NativeAddonError with code 'addon-missing' and the command to run when it is absent,
// so callers (and tests) can say exactly what is missing instead of crashing on a require.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type NativeAddonErrorCode = 'addon-missing' | 'addon-load-failed' | 'syscall';

export class NativeAddonError extends Error {
  override readonly name = 'NativeAddonError';
  constructor(
    readonly code: NativeAddonErrorCode,
    message: string,
    readonly errno = 0,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The N-API addon: TAP ioctls, fd I/O, poll, eventfd, Unix sockets with SCM_RIGHTS, memfd. */
export interface IoAddon {
  tapOpen(name: string, flags: number): { fd: number; name: string } | number;
  setVnetHdrSz(fd: number, bytes: number): number;
  setOffload(fd: number, tunFlags: number): number;
  /** One read(2) into `buf`; bytes read, or -errno (-EAGAIN when nothing is ready). */
  read(fd: number, buf: Uint8Array): number;
  /** One write(2) of buf[0, lenBytes); bytes written or -errno. */
  write(fd: number, buf: Uint8Array, lenBytes: number): number;
  /** poll(2): fills revents[i] for fds[i]; returns the ready count or -errno. */
  poll(fds: Int32Array, events: Int32Array, revents: Int32Array, timeoutMs: number): number;
  close(fd: number): number;
  setNonblock(fd: number): number;
  eventfd(initval: number, nonblock: boolean): number;
  /** The counter (and resets it), or -errno (-EAGAIN when zero on a nonblocking eventfd). */
  eventfdRead(fd: number): number;
  eventfdWrite(fd: number, n: number): number;
  unixListen(path: string): number;
  unixConnect(path: string): number;
  accept(fd: number): number;
  /** recvmsg(2): bytes into buf, received fds into fdsOut (extras closed). */
  recvMsg(fd: number, buf: Uint8Array, fdsOut: Int32Array): { bytes: number; fds: number; truncated: number } | number;
  sendMsg(fd: number, buf: Uint8Array, lenBytes: number, fds: Int32Array): number;
  memfd(name: string, sizeBytes: number): number;
  readonly constants: {
    IFF_TAP: number;
    IFF_NO_PI: number;
    IFF_VNET_HDR: number;
    TUN_F_CSUM: number;
    TUN_F_TSO4: number;
    TUN_F_TSO6: number;
    TUN_F_TSO_ECN: number;
    TUN_F_UFO: number;
    POLLIN: number;
    POLLOUT: number;
    POLLERR: number;
    POLLHUP: number;
    EAGAIN: number;
    EINTR: number;
  };
}

/** The V8-API addon (rebuild per Node major): an fd mapped MAP_SHARED as a SharedArrayBuffer. */
export interface ShmAddon {
  mmapShared(fd: number, lengthBytes: number, offsetBytes: number): SharedArrayBuffer;
  /**
   * Releases a mapping of mmapShared now: the file mapping is replaced, in one mmap(MAP_FIXED),
   * by anonymous private pages that a stale view reads as zeros (never a SIGSEGV); the
   * placeholder goes with the buffer's last reference. 1: released; 0: released before;
   * -EINVAL: not a mapping of mmapShared; other -errno: mmap refused.
   */
  releaseShared(buffer: SharedArrayBuffer): number;
}

// Says what works both in a checkout and where virtq is a dependency (npm explore runs the
// script inside node_modules/virtq, which ships native/ and the script).
const BUILD_HINT =
  'build it with `npm run build:native` in a virtq checkout, or `npm explore virtq -- npm run build:native` in a project that depends on virtq ' +
  "(node-gyp against the running Node's headers; needs g++, make, python3)";

/** Where the built .node files live: $VIRTQ_NATIVE_DIR, else <package>/native/build/Release. */
export function nativeDir(): string {
  const env = process.env['VIRTQ_NATIVE_DIR'];
  if (env !== undefined && env !== '') return resolve(env);
  // This file is dist/src/backend/native.js (or src/backend/native.ts under a TS loader).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return join(dir, 'native', 'build', 'Release');
    dir = dirname(dir);
  }
  return join(process.cwd(), 'native', 'build', 'Release');
}

const cache = new Map<string, unknown>();

function load<T>(file: string, what: string): T {
  const hit = cache.get(file);
  if (hit !== undefined) return hit as T;
  const path = join(nativeDir(), file);
  if (!existsSync(path)) {
    throw new NativeAddonError('addon-missing', `native addon not built: ${path} is missing (${what}); ${BUILD_HINT}`);
  }
  let mod: T;
  try {
    mod = createRequire(import.meta.url)(path) as T;
  } catch (e) {
    throw new NativeAddonError('addon-load-failed', `native addon ${path} failed to load (${String(e)}); rebuild it for this Node: ${BUILD_HINT}`, 0, { cause: e });
  }
  cache.set(file, mod);
  return mod;
}

export function loadIo(): IoAddon {
  return load<IoAddon>('virtq_io.node', 'TAP ioctls, fd I/O, Unix sockets with SCM_RIGHTS');
}

export function loadShm(): ShmAddon {
  const shm = load<ShmAddon>('virtq_shm.node', 'mmap of a file descriptor as a SharedArrayBuffer');
  if (typeof shm.releaseShared !== 'function') {
    // A build from before explicit release: mappings would live until garbage collection.
    throw new NativeAddonError('addon-load-failed', `native addon ${join(nativeDir(), 'virtq_shm.node')} predates releaseShared; ${BUILD_HINT}`);
  }
  return shm;
}

/** Releases a mapping of ShmAddon.mmapShared now (see releaseShared); throws NativeAddonError if refused. */
export function releaseMapping(shm: ShmAddon, buffer: SharedArrayBuffer): void {
  check(shm.releaseShared(buffer), 'releasing a shared mapping (mmap MAP_FIXED over it)');
}

/** Null when both addons load, else the reason (for tests that skip). */
export function nativeUnavailable(): string | null {
  try {
    loadIo();
    loadShm();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Throws a NativeAddonError for a negative errno result; returns the value otherwise. */
export function check(result: number, what: string): number {
  if (result < 0) throw new NativeAddonError('syscall', `${what} failed: errno ${-result}`, -result);
  return result;
}
