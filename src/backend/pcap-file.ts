// Node-only helper: a PcapWriter whose sink appends to a file with synchronous writes (a capture
// taken beside a test or benchmark must be complete when the process exits). Everything else of
// the format lives in pcap.ts, which stays free of `node:` modules.

import { openSync, writeSync, closeSync } from 'node:fs';
import { PcapWriter, PcapError, type PcapOptions } from './pcap.js';

export interface PcapFile {
  readonly writer: PcapWriter;
  readonly path: string;
  close(): void;
}

/** Creates (or truncates) `path`, writes the pcap global header, and returns the writer. */
export function openPcapFile(path: string, opts: PcapOptions = {}): PcapFile {
  const fd = openSync(path, 'w');
  let open = true;
  const writer = new PcapWriter((chunk) => {
    if (!open) throw new PcapError('closed', `file ${path} is closed`);
    let done = 0;
    while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
  }, opts);
  writer.writeHeader();
  return {
    writer,
    path,
    close(): void {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
