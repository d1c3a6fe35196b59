// Operational logs (start, stop, configuration, errors) through pino, the project's only logger:
// one root logger per thread writing NDJSON to stderr, and a child per side ("engine", "guest",
// "host"). Never used per packet (that is what the tracer is for). The level comes from the
// caller, else VIRTQ_LOG_LEVEL, else "warn", so tests and benchmarks stay quiet by default.
//
// pino is loaded (synchronously, it is CommonJS) only when a message at an enabled level is
// first logged: importing it costs 30–50 ms per worker here, which every run would otherwise pay
// at start-up to print nothing.

import { createRequire } from 'node:module';
import type { Logger as PinoLogger, LoggerOptions, DestinationStream } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Every level VIRTQ_LOG_LEVEL (and `virtq --log-level`) takes, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const LEVELS = LOG_LEVELS;
const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

type PinoModule = {
  pino: ((opts: LoggerOptions, dest: DestinationStream) => PinoLogger) & { destination(o: { fd: number; sync: boolean }): DestinationStream };
};
const requireHere = createRequire(import.meta.url);
let root: PinoLogger | undefined;

/** The level used when none is given: VIRTQ_LOG_LEVEL if valid, else "warn". */
export function defaultLogLevel(): LogLevel {
  const env = process.env.VIRTQ_LOG_LEVEL;
  return env !== undefined && (LEVELS as readonly string[]).includes(env) ? (env as LogLevel) : 'warn';
}

/** This thread's root pino logger (created on first use; writes synchronously to stderr). */
export function rootLogger(): PinoLogger {
  if (root === undefined) {
    const { pino } = requireHere('pino') as PinoModule;
    // 'trace' at the root so each child's own level decides; sync so a worker's last lines are
    // not lost when its thread ends.
    root = pino({ level: 'trace', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  }
  return root;
}

type LogFn = (obj: object, msg?: string) => void;

/** The operational logger of one side: pino's level methods, pino created on first real use. */
export interface Logger {
  readonly level: LogLevel;
  isLevelEnabled(level: LogLevel): boolean;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
}

class SideLogger implements Logger {
  private child: PinoLogger | undefined;
  private readonly threshold: number;
  readonly trace: LogFn = (o, m) => this.emit('trace', o, m);
  readonly debug: LogFn = (o, m) => this.emit('debug', o, m);
  readonly info: LogFn = (o, m) => this.emit('info', o, m);
  readonly warn: LogFn = (o, m) => this.emit('warn', o, m);
  readonly error: LogFn = (o, m) => this.emit('error', o, m);
  readonly fatal: LogFn = (o, m) => this.emit('fatal', o, m);

  constructor(
    private readonly side: string,
    readonly level: LogLevel,
  ) {
    this.threshold = LEVEL_VALUES[level] ?? LEVEL_VALUES.warn;
  }

  isLevelEnabled(level: LogLevel): boolean {
    return LEVEL_VALUES[level] >= this.threshold;
  }

  private emit(level: Exclude<LogLevel, 'silent'>, obj: object, msg?: string): void {
    if (LEVEL_VALUES[level] < this.threshold) return;
    this.child ??= rootLogger().child({ side: this.side }, { level: this.level });
    this.child[level](obj, msg);
  }
}

/** A child logger for one side of a run ("engine", "guest", "host", …). */
export function sideLogger(side: string, level: LogLevel = defaultLogLevel()): Logger {
  return new SideLogger(side, (LEVELS as readonly string[]).includes(level) ? level : 'warn');
}
