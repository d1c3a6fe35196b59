// CPU time of the calling thread, for "CPU seconds per GB moved" figures. Node-only (reads
// /proc through node:fs), which is why it lives in engine/ and not in the browser-safe layers.
// Each worker_threads Worker is its own OS thread and readFileSync runs on the calling thread,
// so /proc/thread-self names the worker that asks. Meant for run start/end, not per packet: one
// read costs a few syscalls (~5 µs on this VM).

import { readFileSync } from 'node:fs';

/** Where the last {@link threadCpuNs} figure came from. `process` is process-wide, not per thread. */
export type ThreadCpuSource = 'schedstat' | 'stat' | 'process';

const SCHEDSTAT_PATH = '/proc/thread-self/schedstat';
const STAT_PATH = '/proc/thread-self/stat';
// USER_HZ is part of the Linux user ABI and is 100 on every architecture Node ships for; Node has
// no sysconf(_SC_CLK_TCK) binding to ask.
const NS_PER_CLOCK_TICK = 10_000_000;

// Per-thread module state: a worker gets its own module instance, so each thread probes once.
let source: ThreadCpuSource | undefined;

function readSchedstatNs(): number {
  // "<ns on cpu> <ns waiting on a runqueue> <timeslices>"
  const text = readFileSync(SCHEDSTAT_PATH, 'latin1');
  const end = text.indexOf(' ');
  const ns = Number(end < 0 ? text.trim() : text.slice(0, end));
  if (!Number.isFinite(ns) || ns < 0) throw new Error(`${SCHEDSTAT_PATH}: unparsable "${text.trim()}"`);
  return ns;
}

function readStatNs(): number {
  const text = readFileSync(STAT_PATH, 'latin1');
  // comm (field 2) may hold spaces and parentheses; fields after the last ')' start at field 3.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utimeTicks = Number(rest[14 - 3]);
  const stimeTicks = Number(rest[15 - 3]);
  if (!Number.isFinite(utimeTicks) || !Number.isFinite(stimeTicks)) {
    throw new Error(`${STAT_PATH}: unparsable utime/stime`);
  }
  return (utimeTicks + stimeTicks) * NS_PER_CLOCK_TICK;
}

function readProcessNs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) * 1000;
}

function probe(): ThreadCpuSource {
  try {
    readSchedstatNs();
    return 'schedstat';
  } catch {
    // schedstat needs CONFIG_SCHED_INFO; fall through to the tick-grained stat file.
  }
  try {
    readStatNs();
    return 'stat';
  } catch {
    return 'process';
  }
}

/**
 * CPU time consumed so far by the calling thread, in nanoseconds. Only differences are
 * meaningful. Resolution: ns with schedstat, 10 ms with stat; with the `process` fallback the
 * figure covers every thread of the process (check {@link threadCpuIsProcessWide}).
 */
export function threadCpuNs(): number {
  if (source === undefined) source = probe();
  switch (source) {
    case 'schedstat':
      return readSchedstatNs();
    case 'stat':
      return readStatNs();
    case 'process':
      return readProcessNs();
  }
}

/** Which source {@link threadCpuNs} uses on this thread. */
export function threadCpuSource(): ThreadCpuSource {
  if (source === undefined) source = probe();
  return source;
}

/** True when {@link threadCpuNs} falls back to process-wide CPU time (no /proc per-thread data). */
export function threadCpuIsProcessWide(): boolean {
  return threadCpuSource() === 'process';
}
