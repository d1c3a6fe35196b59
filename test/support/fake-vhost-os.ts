// A fake OS for the vhost-user backend in tests: "fds" are numbers standing for memfds
// (SharedArrayBuffers) and eventfds; mappings, releases, closes and signals are recorded.

import type { VhostOs } from '../../src/vhost-user/backend.js';

export class FakeOs implements VhostOs {
  files = new Map<number, SharedArrayBuffer>();
  closed: number[] = [];
  signals: number[] = [];
  private next = 100;
  memfd(sizeBytes: number): number {
    const fd = this.next++;
    this.files.set(fd, new SharedArrayBuffer(sizeBytes));
    return fd;
  }
  eventfd(): number {
    return this.next++;
  }
  fileSize(fd: number): number {
    return this.files.get(fd)?.byteLength ?? 0;
  }
  mmapShared(fd: number, len: number, off: number): SharedArrayBuffer {
    const f = this.files.get(fd);
    if (!f || off !== 0 || len > f.byteLength) throw new Error('fake mmap: only whole-file mappings');
    // A distinct object over the same memory, as each real mmap is a distinct buffer.
    const m = structuredClone(f);
    this.mapped.push(m);
    return m;
  }
  mapped: SharedArrayBuffer[] = [];
  unmapped: SharedArrayBuffer[] = [];
  unmap(buffer: SharedArrayBuffer): void {
    this.unmapped.push(buffer);
  }
  close(fd: number): void {
    this.closed.push(fd);
  }
  signal(fd: number): void {
    this.signals.push(fd);
  }
}
