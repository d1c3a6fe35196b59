// What the TAP demo's main thread and its two workers (src/engine/tap-demo-worker.ts) exchange: the
// worker data and the messages back, and the layout of the shared control words. Types and
// constants only, so the main thread can import it without starting a worker.

import type { EndpointStats } from '../net/endpoint.js';
import type { SharedSetup } from './types.js';
import type { PolicyConfig } from '../policy/config.js';
import type { TracerSetup } from '../trace/tracer.js';
import type { TapPortStats } from '../backend/tap-port.js';

/**
 * Int32 control words shared by the main thread and both workers, one 64-byte line per writer:
 * line 0 the global lock (both loops, BIG_LOCK_WORDS), line 1 the guest's per-queue kick
 * counters (the QueueNotify payload), line 2 the stop word (main thread, or a failing host),
 * line 3 the guest's doorbell words (its kick sequence, its asleep-in-poll flag), line 4 the
 * host's (its interrupt sequence, its flag): FdDoorbell's shared words, so a ring writes an
 * eventfd only while the other side sleeps in poll(2).
 */
export const TAP_CTRL_BYTES = 320;
export const TAP_LOCK_WORD0 = 0;
export const TAP_KICK_WORD0 = 16;
export const TAP_STOP_WORD = 32;
export const TAP_GUEST_RING_SEQ_WORD = 48;
export const TAP_GUEST_SLEEPING_WORD = 49;
export const TAP_HOST_RING_SEQ_WORD = 64;
export const TAP_HOST_SLEEPING_WORD = 65;

export interface TapWorkerData {
  role: 'host' | 'guest';
  setup: SharedSetup;
  ctrl: SharedArrayBuffer;
  kickFd: number;
  callFd: number;
  features: bigint;
  policy: PolicyConfig;
  guestAddress: string;
  guestMac: string;
  /** The TAP's own address (the guest's peer; 0.0.0.0 when none was set). */
  hostAddress: string;
  mtu: number;
  rxMemoryBytes: number;
  txMemoryBytes: number;
  /** host only */
  tapFd?: number;
  tapName?: string;
  pcapPath?: string;
  trace?: TracerSetup;
}

export type TapWorkerMessage =
  | { kind: 'up' }
  | {
      kind: 'stats';
      role: 'host';
      device: Record<string, number>;
      tap: TapPortStats;
      pcap?: { recorded: number; errors: number };
      failure: string | null;
    }
  | { kind: 'stats'; role: 'guest'; guest: Record<string, number>; endpoint: EndpointStats };
