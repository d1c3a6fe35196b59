// What every engine-run benchmark reads off a finished run: the receiving side's measured window,
// CPU seconds per GB over both sides, trace records dropped, verification errors. Refuses a run
// whose window is too short to mean anything rather than reporting a rate from it.

import type { EngineResult } from '../../src/engine/index.js';

export interface WindowFigures {
  windowMs: number;
  windowPackets: number;
  windowBytes: number;
  /** Guest + host thread CPU seconds per 10^9 payload bytes the receiver took in the window. */
  cpuSecondsPerGB: number;
  droppedRecords: number;
  /** Trace clock reads per packet (whole run, not only the window), per side. */
  clockReadsPerPacket: { guest: number; host: number };
  errors: number;
}

/** `receiver` is the side that counts payload (the host for guest→host runs). */
export function windowFigures(r: EngineResult, label: string, minWindowMs: number, receiver: 'host' | 'guest' = 'host'): WindowFigures {
  const rx = r[receiver];
  if (rx.windowPackets === 0 || rx.windowMs < minWindowMs) {
    throw new Error(`${label}: the measurement window was ${rx.windowMs.toFixed(0)} ms (${rx.windowPackets} packets); raise --ms`);
  }
  const gb = rx.windowBytes / 1e9;
  return {
    windowMs: rx.windowMs,
    windowPackets: rx.windowPackets,
    windowBytes: rx.windowBytes,
    cpuSecondsPerGB: gb > 0 ? (r.host.windowCpuNs + r.guest.windowCpuNs) / 1e9 / gb : NaN,
    droppedRecords: (r.host.extra.traceDroppedRecords ?? 0) + (r.guest.extra.traceDroppedRecords ?? 0),
    clockReadsPerPacket: {
      guest: r.guest.packets > 0 ? (r.guest.extra.traceClockReads ?? 0) / r.guest.packets : 0,
      host: r.host.packets > 0 ? (r.host.extra.traceClockReads ?? 0) / r.host.packets : 0,
    },
    errors: r.host.errors + r.guest.errors,
  };
}
