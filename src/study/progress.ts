// The progress line the study and the net benchmarks show on a terminal: one line rewritten in
// place (row, cell, run, elapsed, ETA). Silent when the stream is not a TTY, so piped and CI
// output holds only results.

import type { ProgressEvent } from './report.js';

export interface ProgressSink {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function formatProgress(e: ProgressEvent): string {
  const run = e.runs > 1 ? ` run ${e.run}/${e.runs}` : '';
  return `row ${e.rowIndex + 1}/${e.rowCount} ${e.row} · ${e.cell}${run} · ${duration(e.elapsedMs)} elapsed · ETA ${duration(e.etaMs)}`;
}

export class ProgressLine {
  private shown = false;
  constructor(private readonly sink: ProgressSink) {}

  get active(): boolean {
    return this.sink.isTTY === true;
  }

  update(text: string): void {
    if (!this.active) return;
    const width = Math.max(20, (this.sink.columns ?? 100) - 1);
    this.sink.write(`\r\x1b[2K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
    this.shown = true;
  }

  /** Erases the line (call before printing results). */
  clear(): void {
    if (this.active && this.shown) this.sink.write('\r\x1b[2K');
    this.shown = false;
  }
}
