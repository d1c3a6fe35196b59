// Wiring of one run: allocates the shared state, starts the guest and host processors as two
// long-running piscina tasks (one pool, two threads) or as two plain worker_threads Workers,
// stops them on request, on a deadline or when either side fails, and gathers their stats. A
// failing or crashing side becomes a rejected `done` carrying that side's error, never a hang:
// the failure stops the doorbell block, which wakes every wait of the other side.

import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { planSharedSetup, openDoorbells, type QueueRequest } from './setup.js';
import type { ProcessorTask, Role, SharedSetup, SideStats, WaitSettings } from './types.js';
import type { TraceSession } from '../trace/session.js';
import { sideLogger, type Logger, type LogLevel } from '../trace/log.js';

export type Runner = 'piscina' | 'worker';

export interface EngineOptions {
  /** Registered workload name, or a file URL / absolute path of a workload module. */
  workload: string;
  /** Parameters for both sides; `guestParams`/`hostParams` override per side. */
  params?: Record<string, unknown>;
  guestParams?: Record<string, unknown>;
  hostParams?: Record<string, unknown>;
  queues: QueueRequest[];
  /** Guest RAM for driver buffers, bytes (default 8 MiB). */
  arenaBytes?: number;
  /** Wait strategy of both sides (default hybrid); `guestWait`/`hostWait` override. */
  wait?: WaitSettings;
  guestWait?: WaitSettings;
  hostWait?: WaitSettings;
  /** How the processors are hosted (default piscina). */
  runner?: Runner;
  /**
   * Stop both sides this long (ms) after both passed the start barrier, so thread start-up (tens
   * of ms, more on a busy machine) never eats the run. Without it the workload ends by itself.
   */
  durationMs?: number;
  /** Fail (and stop) if the run has not ended this long after start (ms). Default 10 min. */
  timeoutMs?: number;
  /** Trace this run into the session's buffers (see src/trace and docs/tracing.md). */
  trace?: TraceSession;
  /** Operational log level of the engine and both sides (default VIRTQ_LOG_LEVEL or warn). */
  logLevel?: LogLevel;
}

export interface EngineResult {
  guest: SideStats;
  host: SideStats;
  runner: Runner;
  /** From start() until both sides passed the start barrier, ms. */
  startupMs: number;
  /** From start() until both sides ended, ms. */
  elapsedMs: number;
}

export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly code: 'side-failed' | 'timeout' | 'worker-exit',
    message: string,
    readonly side?: Role,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** How long sides get to notice a stop after a timeout before their threads are terminated. */
const STOP_GRACE_MS = 2000;

const PROCESSOR_URL = new URL('../../workers/processor.js', import.meta.url);
// piscina loads this CommonJS shim, which imports the ESM processor (see the shim's comment).
const PISCINA_ENTRY_URL = new URL('../../workers/processor-entry.cjs', import.meta.url);

export class Engine {
  readonly setup: SharedSetup;
  readonly done: Promise<EngineResult>;
  private readonly startEpochMs: number;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly block;
  private readonly log: Logger;

  private constructor(readonly options: EngineOptions) {
    this.startEpochMs = performance.timeOrigin + performance.now();
    this.log = sideLogger('engine', options.logLevel);
    this.setup = planSharedSetup(options.queues, options.arenaBytes ?? 8 << 20);
    this.block = openDoorbells(this.setup);
    this.done = this.run();
  }

  /** Starts a run; await `done` for the result. */
  static start(options: EngineOptions): Engine {
    return new Engine(options);
  }

  /** Convenience: start and await the result. */
  static async run(options: EngineOptions): Promise<EngineResult> {
    return Engine.start(options).done;
  }

  /** Asks both sides to stop: sets the stop word and wakes every doorbell. Idempotent. */
  stop(): void {
    this.block.stop();
  }

  private task(role: Role): ProcessorTask {
    const o = this.options;
    const params = { ...(o.params ?? {}), ...((role === 'guest' ? o.guestParams : o.hostParams) ?? {}) };
    const wait = (role === 'guest' ? o.guestWait : o.hostWait) ?? o.wait ?? { strategy: 'hybrid' };
    const task: ProcessorTask = { role, workload: o.workload, setup: this.setup, wait, params };
    if (o.trace) task.trace = o.trace.setupFor(role);
    if (o.logLevel) task.logLevel = o.logLevel;
    return task;
  }

  private async run(): Promise<EngineResult> {
    const o = this.options;
    const runner = o.runner ?? 'piscina';
    let ended = false;
    const durationMs = o.durationMs;
    if (durationMs !== undefined) {
      void this.bothReady().then((ready) => {
        if (ready && !ended) this.timers.push(setTimeout(() => this.stop(), durationMs));
      });
    }
    const timeoutMs = o.timeoutMs ?? 600_000;
    // On timeout: stop, give the sides a grace period to notice, then give up on them (close()
    // terminates the threads, so a side stuck in a loop that ignores the stop word still ends).
    let timeoutTimer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timeoutTimer = setTimeout(() => {
        this.stop();
        this.timers.push(setTimeout(() => resolve('timeout'), STOP_GRACE_MS));
      }, timeoutMs);
    });
    this.log.info({ workload: o.workload, runner, queues: o.queues, wait: o.wait, durationMs: o.durationMs, traced: o.trace !== undefined, trace: o.trace?.options }, 'run starting');
    o.trace?.start();
    const sides = runner === 'piscina' ? this.startPiscina() : this.startWorkers();
    // When either side fails, stop the other so it cannot wait forever.
    const guarded = sides.promises.map((p, i) =>
      p.catch((e: unknown) => {
        this.stop();
        throw new EngineError('side-failed', `${i === 0 ? 'guest' : 'host'} side failed: ${e instanceof Error ? e.message : String(e)}`, i === 0 ? 'guest' : 'host', { cause: e });
      }),
    );
    try {
      const settled = await Promise.race([Promise.allSettled(guarded), timedOut]);
      if (settled === 'timeout') throw new EngineError('timeout', `run did not end within ${timeoutMs} ms (+${STOP_GRACE_MS} ms grace after stop)`);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) {
        this.log.error({ err: failed.reason }, 'run failed');
        throw failed.reason;
      }
      const [guest, host] = settled.map((s) => (s as PromiseFulfilledResult<SideStats>).value) as [SideStats, SideStats];
      const end = performance.timeOrigin + performance.now();
      this.log.info({ guestPackets: guest.packets, hostPackets: host.packets, errors: guest.errors + host.errors, elapsedMs: end - this.startEpochMs }, 'run stopped');
      const ready = Math.max(guest.extra.readyEpochMs ?? 0, host.extra.readyEpochMs ?? 0);
      return { guest, host, runner, startupMs: ready > 0 ? ready - this.startEpochMs : NaN, elapsedMs: end - this.startEpochMs };
    } finally {
      ended = true;
      clearTimeout(timeoutTimer);
      for (const t of this.timers) clearTimeout(t);
      // A side that failed leaves its peer stopped; make sure both threads are gone.
      guarded.forEach((g) => g.catch(() => undefined));
      await sides.close();
      // Both threads are gone: read what their tracers left (also after a failure).
      o.trace?.stop();
    }
  }

  /**
   * Resolves true once both sides passed the start barrier, false if the engine stopped first.
   * Polls every millisecond on the main thread's event loop (the duration starts at most ~1 ms
   * late, which the sides' own windows do not depend on: they time themselves).
   */
  private async bothReady(): Promise<boolean> {
    const control = new Int32Array(this.setup.controlSab);
    for (;;) {
      // Pairs with SideContext.arriveAndWait's Atomics.add of the ready count.
      if (Atomics.load(control, 0) >= 2) return true;
      if (this.block.stopped) return false;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  private startPiscina(): { promises: Promise<SideStats>[]; close: () => Promise<void> } {
    const pool = new Piscina({
      filename: PISCINA_ENTRY_URL.href,
      minThreads: 2,
      maxThreads: 2,
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
      // The tasks block in their own Atomics waits; piscina's task-wait path is not used.
      atomics: 'disabled',
    });
    const promises = [pool.run(this.task('guest')) as Promise<SideStats>, pool.run(this.task('host')) as Promise<SideStats>];
    return { promises, close: () => pool.destroy() };
  }

  private startWorkers(): { promises: Promise<SideStats>[]; close: () => Promise<void> } {
    const workers: Worker[] = [];
    const promises = (['guest', 'host'] as Role[]).map(
      (role) =>
        new Promise<SideStats>((resolve, reject) => {
          const w = new Worker(PROCESSOR_URL, { workerData: { virtqPlainTask: this.task(role) } });
          workers.push(w);
          let settled = false;
          w.once('message', (m: { ok: boolean; stats: SideStats }) => {
            settled = true;
            resolve(m.stats);
          });
          w.once('error', (e) => {
            settled = true;
            reject(e);
          });
          w.once('exit', (code) => {
            if (!settled) reject(new EngineError('worker-exit', `${role} worker exited with code ${code} before reporting`, role));
          });
        }),
    );
    return { promises, close: async () => void (await Promise.all(workers.map((w) => w.terminate()))) };
  }
}
