// Node-only: runs the analyzer over a trace file line by line (files of millions of packets do
// not have to fit in memory as text) and writes the HTML view.

import { createReadStream, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { TraceAnalyzer, TraceFormatError, type TraceReport } from './analyze.js';
import { renderHtml } from './html.js';

/** Reads and analyzes a trace file. A line that is not JSON is a TraceFormatError naming it. */
export async function analyzeTraceFile(path: string, opts: { slowest?: number; warmupPackets?: number } = {}): Promise<TraceReport> {
  const a = new TraceAnalyzer(opts.slowest ?? 10, opts.warmupPackets);
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      throw new TraceFormatError('bad-line', `${path}:${n}: not a JSON line`);
    }
    a.add(o);
  }
  return a.report();
}

/** Writes the HTML view of a report. */
export function writeTraceHtml(report: TraceReport, path: string, title?: string): void {
  writeFileSync(path, renderHtml(report, title));
}
