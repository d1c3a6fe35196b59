// Operational logs (start, stop, configuration, errors) through pino, the project's only logger:
// one root logger per thread writing NDJSON to stderr, and a child per side ("engine", "guest",
// "host"). Never used per packet (that is what the tracer is for). The level comes from the
// caller, else VIRTQ_LOG_LEVEL, else "warn", so tests and benchmarks stay quiet by default.

import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
let root: Logger | undefined;

/** The level used when none is given: VIRTQ_LOG_LEVEL if valid, else "warn". */
export function defaultLogLevel(): LogLevel {
  const env = typeof process !== 'undefined' ? process.env.VIRTQ_LOG_LEVEL : undefined;
  return env !== undefined && (LEVELS as readonly string[]).includes(env) ? (env as LogLevel) : 'warn';
}

/** This thread's root logger (created once; writes synchronously to stderr). */
export function rootLogger(): Logger {
  // 'trace' at the root so each child's own level decides; sync so a worker's last lines are not
  // lost when its thread ends.
  root ??= pino({ level: 'trace', base: { pid: typeof process !== 'undefined' ? process.pid : 0 } }, pino.destination({ fd: 2, sync: true }));
  return root;
}

/** A child logger for one side of a run ("engine", "guest", "host", …). */
export function sideLogger(side: string, level: LogLevel = defaultLogLevel()): Logger {
  return rootLogger().child({ side }, { level });
}
