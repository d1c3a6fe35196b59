// The registry of built-in workloads, by name. A workload is a module with a `guest` and a
// `host` function, each running one side's loop to completion inside its worker. Users may name
// a module of their own by file URL or absolute path instead of a registered name.

import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';

export interface Workload {
  guest(ctx: SideContext): SideStats | Promise<SideStats>;
  host(ctx: SideContext): SideStats | Promise<SideStats>;
}

const BUILT_IN: Record<string, string> = {
  stream: './stream.js',
  pingpong: './pingpong.js',
  'policy-stream': './policy-stream.js',
  'net-stream': './net-stream.js',
  'net-ping': './net-ping.js',
};

export function builtInWorkloads(): string[] {
  return Object.keys(BUILT_IN);
}

/** Loads a workload by registered name, file URL or absolute path. */
export async function loadWorkload(name: string): Promise<Workload> {
  const rel = BUILT_IN[name];
  let spec: string;
  if (rel !== undefined) spec = new URL(rel, import.meta.url).href;
  else if (name.startsWith('file:')) spec = name;
  else if (isAbsolute(name)) spec = pathToFileURL(name).href;
  else throw new Error(`unknown workload "${name}" (built in: ${builtInWorkloads().join(', ')}; or pass a file URL or absolute path)`);
  const mod = (await import(spec)) as Partial<Workload>;
  if (typeof mod.guest !== 'function' || typeof mod.host !== 'function') {
    throw new Error(`workload module ${spec} must export guest(ctx) and host(ctx)`);
  }
  return mod as Workload;
}
