// Timer-lateness benchmark for tx-mitigation timers (50 / 150 / 250 µs) in a worker thread:
// (a) a plain Atomics.wait timeout, (b) the doorbell's precise-deadline mode (Doorbell.waitUntil:
// block until guardUs before the deadline, spin the rest) and, as the reference, (c) a pure spin
// to the deadline. Reports lateness (achieved − requested) min / p50 / p99 / max in µs and the
// worker's CPU time per timer. Methods and intervals are interleaved in blocks within one run so
// the rows are comparable. CPU time is per timer and as a share of the cell's wall time, so a
// precise timer's spinning cost is visible next to its accuracy. Nothing rings the doorbell: every wait ends at its deadline.
//
//   node dist/bench/timer-lateness.js [--samples N] [--guard-us N] [--timerslack-ns N] [--json]
//
// --timerslack-ns sets the main thread's Linux timer slack before the worker is spawned (threads
// inherit it; the default is 50 µs, which is most of Atomics.wait's overshoot) and restores it.

import { Command } from 'commander';
import { nonNegativeInt, nonNegativeNumber, positiveInt, usageExit } from '../src/cli/args.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DEFAULT_GUARD_US, DoorbellBlock, LatenessRecorder } from '../src/notify/index.js';

const INTERVALS_US = [50, 150, 250] as const;
const METHODS = ['atomics-wait', 'precise', 'spin'] as const;
type Method = (typeof METHODS)[number];
const METHOD_LABEL: Record<Method, string> = {
  'atomics-wait': 'Atomics.wait(timeout)',
  precise: 'Doorbell.waitUntil (precise)',
  spin: 'spin to deadline (reference)',
};
// Samples per (method, interval) before rotating to the next one: interleaves the cells over the
// run while keeping the CPU-time reads (a getrusage syscall each) out of all but 2 in BLOCK timers.
const BLOCK = 50;
const TIMERSLACK_PATH = '/proc/self/timerslack_ns';

// CPU time in ns. Process-wide on purpose: /proc/thread-self/schedstat only advances at scheduler
// ticks and context switches, so a spinning thread's per-block reads alias badly, whereas
// getrusage (process.cpuUsage) first brings the calling thread's runtime up to date. The main
// thread sits blocked waiting for the report, so nearly all of it is the worker's.
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

interface BenchConfig {
  samples: number;
  guardUs: number;
}

interface Cell {
  method: Method;
  label: string;
  intervalUs: number;
  samples: number;
  latenessUs: { min: number; p50: number; p99: number; max: number; mean: number };
  /** CPU time per timer, µs, and as a share of the wall time the cell took. */
  cpuUsPerTimer: number;
  cpuShare: number;
}

interface WorkerReport {
  cells: Cell[];
  wallMs: number;
}

function runWorker(config: BenchConfig): WorkerReport {
  const db = DoorbellBlock.allocate(1).doorbell(0, { strategy: 'block', guardUs: config.guardUs });
  const scratch = new Int32Array(new SharedArrayBuffer(4));
  const cells = new Map<string, { rec: LatenessRecorder; cpuNs: number; wallNs: number }>();
  for (const m of METHODS) {
    for (const i of INTERVALS_US) cells.set(`${m}/${i}`, { rec: new LatenessRecorder(config.samples), cpuNs: 0, wallNs: 0 });
  }

  // One timer of `intervalUs`; returns its lateness in ns.
  const once = (method: Method, intervalUs: number): number => {
    const seen = db.seq();
    const deadlineMs = performance.now() + intervalUs / 1000;
    switch (method) {
      case 'atomics-wait':
        // Never notified: only the timeout ends it (scratch[0] stays 0).
        Atomics.wait(scratch, 0, 0, intervalUs / 1000);
        break;
      case 'precise':
        db.waitUntil(seen, deadlineMs);
        break;
      case 'spin':
        db.configure({ strategy: 'spin' });
        db.wait(seen, deadlineMs);
        db.configure({ strategy: 'block' });
        break;
    }
    return (performance.now() - deadlineMs) * 1e6;
  };

  const runBlock = (method: Method, intervalUs: number, n: number, record: boolean): void => {
    const cell = cells.get(`${method}/${intervalUs}`)!;
    const cpu0 = cpuNs();
    const t0 = performance.now();
    for (let k = 0; k < n; k++) {
      const lateNs = once(method, intervalUs);
      if (record) cell.rec.record(lateNs);
    }
    if (!record) return;
    cell.wallNs += (performance.now() - t0) * 1e6;
    cell.cpuNs += cpuNs() - cpu0;
  };

  const start = performance.now();
  for (const m of METHODS) for (const i of INTERVALS_US) runBlock(m, i, 20, false); // warm-up
  for (let done = 0; done < config.samples; done += BLOCK) {
    const n = Math.min(BLOCK, config.samples - done);
    for (const i of INTERVALS_US) for (const m of METHODS) runBlock(m, i, n, true);
  }
  const wallMs = performance.now() - start;

  const out: Cell[] = [];
  for (const m of METHODS) {
    for (const i of INTERVALS_US) {
      const { rec, cpuNs, wallNs } = cells.get(`${m}/${i}`)!;
      const s = rec.summary();
      out.push({
        method: m,
        label: METHOD_LABEL[m],
        intervalUs: i,
        samples: s.count,
        latenessUs: { min: s.minNs / 1e3, p50: s.p50Ns / 1e3, p99: s.p99Ns / 1e3, max: s.maxNs / 1e3, mean: s.meanNs / 1e3 },
        cpuUsPerTimer: cpuNs / 1e3 / s.count,
        cpuShare: wallNs > 0 ? cpuNs / wallNs : NaN,
      });
    }
  }
  return { cells: out, wallMs };
}

function readSlackNs(): number | null {
  try {
    return Number(readFileSync(TIMERSLACK_PATH, 'latin1').trim());
  } catch {
    return null;
  }
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

function printTable(report: WorkerReport, meta: Record<string, string | number | null>): void {
  console.log(Object.entries(meta).map(([k, v]) => `${k}=${v ?? 'n/a'}`).join('  '));
  const head = ['method', 'timer µs', 'n', 'late min', 'p50', 'p99', 'max', 'cpu µs/timer', 'cpu/wall'];
  const rows = report.cells.map((c) => [
    c.label,
    String(c.intervalUs),
    String(c.samples),
    fmt(c.latenessUs.min),
    fmt(c.latenessUs.p50),
    fmt(c.latenessUs.p99),
    fmt(c.latenessUs.max),
    fmt(c.cpuUsPerTimer),
    `${fmt(c.cpuShare * 100, 0)} %`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log('lateness in µs (achieved − requested); cpu = process CPU time during the cell (main thread idle)');
}

async function main(): Promise<void> {
  const program = new Command()
    .name('timer-lateness')
    .description('lateness of 50/150/250 µs timers: Atomics.wait timeout vs the precise-deadline mode')
    .exitOverride(usageExit)
    .option('--samples <n>', 'timers per method and interval', positiveInt, 2000)
    .option('--guard-us <n>', 'precise mode: stop blocking this many µs before the deadline', nonNegativeNumber, DEFAULT_GUARD_US)
    .option('--timerslack-ns <n>', 'set the Linux timer slack inherited by the worker (restored afterwards)', nonNegativeInt)
    .option('--json', 'print JSON instead of a table', false)
    .parse();
  const opts = program.opts<{ samples: number; guardUs: number; timerslackNs?: number; json: boolean }>();
  const config: BenchConfig = { samples: opts.samples, guardUs: opts.guardUs };

  const slackBeforeNs = readSlackNs();
  if (opts.timerslackNs !== undefined) writeFileSync(TIMERSLACK_PATH, `${opts.timerslackNs}\n`);
  const slackNs = readSlackNs();
  let report: WorkerReport;
  try {
    const worker = new Worker(new URL(import.meta.url), { workerData: config });
    report = await new Promise<WorkerReport>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`bench worker exited with code ${code} before reporting`)));
    });
    await worker.terminate();
  } finally {
    if (opts.timerslackNs !== undefined && slackBeforeNs !== null) writeFileSync(TIMERSLACK_PATH, `${slackBeforeNs}\n`);
  }

  const meta = {
    node: process.version,
    timerslackNs: slackNs,
    guardUs: config.guardUs,
    samples: config.samples,
    wallS: Number((report.wallMs / 1000).toFixed(2)),
    command: `node dist/bench/timer-lateness.js ${process.argv.slice(2).join(' ')}`.trim(),
  };
  if (opts.json) console.log(JSON.stringify({ ...meta, cells: report.cells }, null, 2));
  else printTable(report, meta);
}

if (isMainThread) {
  await main();
} else if (parentPort !== null) {
  parentPort.postMessage(runWorker(workerData as BenchConfig));
}
