// Skip conditions for tests that need real peers: root, the native addon, and tools on PATH.
// Each returns null when the requirement is met, else a message saying what is missing.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { nativeUnavailable } from '../../src/backend/native.js';

export function needRoot(): string | null {
  return process.getuid?.() === 0 ? null : 'needs root (network namespaces, TAP, DPDK runtime dir)';
}

export function needAddon(): string | null {
  return nativeUnavailable();
}

export function needTool(cmd: string, apt: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`]);
  return r.status === 0 ? null : `${cmd} not found (apt-get install ${apt})`;
}

export function needTun(): string | null {
  return existsSync('/dev/net/tun') ? null : '/dev/net/tun missing';
}

/** The first unmet requirement, or null. */
export function firstMissing(...checks: (string | null)[]): string | null {
  for (const c of checks) if (c !== null) return c;
  return null;
}
