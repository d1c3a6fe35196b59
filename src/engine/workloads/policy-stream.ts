// The "policy-stream" workload: the stream workload's sequence-numbered, verified payloads, driven
// by the policy layer's DriverLoop and DeviceLoop so that every notification policy (a preset name
// or a config object) runs across real worker threads. Direction g2h: the guest sends on a tx
// ring (tx mitigation applies); h2g: the guest posts rx buffers that the device fills from a
// generated backend (rx kicks, zero-copy and the lock-drop during backend reads apply).
//
// Params: preset (name, default 'vhost') or policy (object or JSON string), direction ('g2h' |
// 'h2g', default g2h), count (packets; 0 = until stopped), frameBytes (default 1500, 65536 with
// GSO), verify ('full' | 'seq'), warmupMs, kickBatch (default: the policy's dataPath.driverTxBatch, 32), napiBudget (default 64),
// modules (file URL of a module whose exports are DeviceModules: the user's own tx / interrupt /
// rx-kick state machines, replacing the built-in ones on the device side), inflight (g2h: most
// packets outstanding; 1 = a flood ping: each packet's round trip guest add → device → used →
// interrupt → guest reap lands in SideStats.series.rttUs and extra.rttP50Us / rttP99Us).
// The engine's queue must match the policy: pass policyQueues(policy, direction) as queues and
// policyArenaBytes(...) as arenaBytes (see docs/policy.md).

import { Arena, BufferPool, type GuestMemory } from '../../memory/index.js';
import { openDeviceQueue, openDriverQueue, DescriptorChain, readFromChain, writeToChain, type Segment } from '../../virtqueue/index.js';
import {
  BIG_LOCK_WORDS,
  bigLockFor,
  DeviceLoop,
  DriverLoop,
  driverTxBatch,
  PolicyError,
  packetLayout,
  performanceClock,
  resolvePolicy,
  type DeviceModules,
  type PolicyConfig,
} from '../../policy/index.js';
import { defaultFrameBytes } from '../../policy/plan.js';
import { layoutOf } from '../setup.js';
import type { SideContext } from '../side.js';
import type { SideStats } from '../types.js';

/** Bytes reserved at the arena's base for the global lock words (one cache line). */
const LOCK_BYTES = 64;
const GUEST_THREAD_ID = 1;
const HOST_THREAD_ID = 2;

/** Word `i` of packet `seq` (words 0 and 1 carry the sequence number and the packet length). */
function patternWord(seq: number, i: number): number {
  return (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
}

interface Params {
  policy: PolicyConfig;
  direction: 'g2h' | 'h2g';
  count: number;
  frameBytes: number;
  verify: 'full' | 'seq';
  warmupMs: number;
  kickBatch: number;
  napiBudget: number;
  inflight: number;
}

function params(ctx: SideContext): Params {
  const raw = ctx.params.policy;
  const spec = raw !== undefined ? (raw as string | Record<string, unknown>) : ctx.strParam('preset', 'vhost');
  const policy = resolvePolicy(spec);
  const direction = ctx.strParam('direction', 'g2h');
  if (direction !== 'g2h' && direction !== 'h2g') throw new RangeError(`policy-stream: direction must be 'g2h' or 'h2g' (got ${direction})`);
  const frameBytes = ctx.numParam('frameBytes', defaultFrameBytes(policy));
  if (!Number.isInteger(frameBytes) || frameBytes < 8 || frameBytes % 4 !== 0) {
    throw new RangeError(`policy-stream: frameBytes must be a multiple of 4 and at least 8 (got ${frameBytes})`);
  }
  const verify = ctx.strParam('verify', 'full');
  if (verify !== 'full' && verify !== 'seq') throw new RangeError(`policy-stream: verify must be 'full' or 'seq' (got ${verify})`);
  const plan = ctx.setup.queues[0];
  const wantSize = direction === 'g2h' ? policy.dataPath.txRingSize : policy.dataPath.rxRingSize;
  const wantEventIdx = policy.interrupts.mode === 'eventIdx';
  if (plan === undefined || plan.size !== wantSize || plan.eventIdx !== wantEventIdx) {
    throw new PolicyError(
      'plan-mismatch',
      '',
      `policy "${policy.name}" needs queue 0 of size ${wantSize} with eventIdx ${wantEventIdx}, the engine planned ${plan ? `size ${plan.size}, eventIdx ${plan.eventIdx}` : 'no queue'} (pass policyQueues(policy, '${direction}') as EngineOptions.queues)`,
    );
  }
  return {
    policy,
    direction,
    count: ctx.numParam('count', 0),
    frameBytes,
    verify,
    warmupMs: ctx.numParam('warmupMs', 0),
    kickBatch: Math.max(1, ctx.numParam('kickBatch', driverTxBatch(policy))),
    napiBudget: Math.max(1, ctx.numParam('napiBudget', 64)),
    inflight: Math.max(0, ctx.numParam('inflight', 0)),
  };
}

/** The global lock's words at the arena base (guest RAM is shared by both sides). */
function lockWords(ctx: SideContext): Int32Array<SharedArrayBuffer> {
  const r = ctx.mem.region(ctx.setup.arenaBase, LOCK_BYTES);
  if (!(r.buffer instanceof SharedArrayBuffer)) throw new RangeError('policy-stream: guest RAM must be shared for the global lock');
  return new Int32Array(r.buffer, r.byteOffset + (ctx.setup.arenaBase - r.guestAddr), BIG_LOCK_WORDS);
}

/** A filler frame for 'seq' mode (copied instead of generating the pattern word by word). */
function sourceFrame(bytes: number): Uint8Array {
  const s = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) s[i] = i & 0xff;
  return s;
}

function windowOpener(ctx: SideContext, warmupMs: number): () => void {
  const t0 = performance.now();
  return () => {
    if (!ctx.windowIsOpen && performance.now() - t0 >= warmupMs) ctx.openWindow();
  };
}

/** Writes packet `seq` (packetBytes) into the segments of a chain or buffer list, word by word. */
function writePacketInPlace(mem: GuestMemory, addrs: readonly number[], lens: readonly number[], from: number, to: number, seq: number, packetBytes: number): void {
  let w = 0;
  for (let k = from; k < to; k++) {
    const addr = addrs[k]!;
    const len = lens[k]!;
    const r = mem.region(addr, len);
    const base = (addr - r.guestAddr) >>> 2;
    const u32 = r.u32;
    for (let j = 0; j < len >>> 2; j++, w++) u32[base + j] = w === 0 ? seq >>> 0 : w === 1 ? packetBytes : patternWord(seq, w);
  }
}

/** Copies `src` across the writable segments [from, to) of a chain, in place. */
function copyInPlace(mem: GuestMemory, addrs: readonly number[], lens: readonly number[], from: number, to: number, src: Uint8Array): void {
  let off = 0;
  for (let k = from; k < to && off < src.length; k++) {
    const n = Math.min(lens[k]!, src.length - off);
    const r = mem.region(addrs[k]!, n);
    r.u8.set(src.subarray(off, off + n), addrs[k]! - r.guestAddr);
    off += n;
  }
}

/** Checks packet `expect` in a contiguous word array; returns an error message or null. */
function checkWords(u32: Uint32Array, base: number, expect: number, packetBytes: number, full: boolean): string | null {
  const seq = u32[base]!;
  if (seq !== expect >>> 0) return `packet ${expect}: sequence ${seq} (lost, duplicated or reordered)`;
  if (u32[base + 1] !== packetBytes) return `packet ${expect}: length word ${u32[base + 1]}`;
  if (full) {
    const words = packetBytes >>> 2;
    for (let i = 2; i < words; i++) if (u32[base + i] !== patternWord(expect, i)) return `packet ${expect}: corrupted word ${i}`;
  }
  return null;
}

const role0 = (p: Params): 'tx' | 'rx' => (p.direction === 'g2h' ? 'tx' : 'rx');

export function guest(ctx: SideContext): SideStats {
  const p = params(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const lay = packetLayout(p.policy, p.frameBytes, plan.size);
  const q = openDriverQueue<number>(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false, inOrder: plan.inOrder ?? false });
  const arena = new Arena(mem, ctx.setup.arenaBase + LOCK_BYTES, ctx.setup.arenaBytes - LOCK_BYTES);
  const pool = new BufferPool(arena, lay.packetBytes, lay.capacityPackets, 64);
  const region = mem.region(pool.base, lay.capacityPackets * Math.ceil(lay.packetBytes / 64) * 64);
  const u32 = region.u32;
  const segs: Segment[] = lay.segments.map((len) => ({ addr: 0, len }));
  const none: Segment[] = [];
  const lock = bigLockFor(p.policy.dataPath, lockWords(ctx), GUEST_THREAD_ID);
  const stats = ctx.stats;
  const full = p.verify === 'full';
  const words = lay.packetBytes >>> 2;
  const u8 = region.u8;
  // 'seq' mode copies each frame from this source (the guest's one copy into its tx buffer).
  const source = sourceFrame(lay.packetBytes);
  let seq = 0;
  let received = 0;
  let completed = 0;
  // Round trips (ping mode): send time by sequence; completions come back in order.
  const ping = role0(p) === 'tx' && p.inflight > 0;
  const sentAtMs = new Float64Array(ping ? lay.capacityPackets * 2 : 0);
  const rttUs: number[] = [];
  const MAX_RTT_SAMPLES = 200_000;
  const room = (): boolean => p.inflight === 0 || q.outstanding < p.inflight;
  const setSegs = (addr: number): void => {
    let a = addr;
    for (const s of segs) {
      s.addr = a;
      a += s.len;
    }
  };
  const role = p.direction === 'g2h' ? 'tx' : 'rx';
  const loop = new DriverLoop({
    policy: p.policy,
    kick: ctx.kick,
    irq: ctx.irq,
    lock,
    stopped: () => ctx.stopped,
    kickBatch: p.kickBatch,
    napiBudget: p.napiBudget,
    onIteration: windowOpener(ctx, p.warmupMs),
    queue: {
      role,
      reap(budget) {
        let n = 0;
        let u;
        while (n < budget && (u = q.reap()) !== null) {
          const addr = u.token;
          if (ping) {
            if (rttUs.length < MAX_RTT_SAMPLES) rttUs.push((performance.now() - sentAtMs[completed % sentAtMs.length]!) * 1000);
            completed++;
          }
          if (role === 'rx') {
            if (u.len !== lay.packetBytes) ctx.error(`packet ${received}: used length ${u.len}, expected ${lay.packetBytes}`);
            else {
              const err = checkWords(u32, (addr - region.guestAddr) >>> 2, received, lay.packetBytes, full);
              if (err !== null) ctx.error(err);
            }
            received++;
            stats.packets++;
            stats.bytes += lay.packetBytes;
          }
          pool.put(addr);
          n++;
        }
        return n;
      },
      fill(max) {
        let added = 0;
        while (added < max && pool.available > 0 && q.numFree >= segs.length && room()) {
          if (role === 'tx' && p.count !== 0 && seq >= p.count) break;
          const addr = pool.get();
          if (role === 'tx') {
            const w = (addr - region.guestAddr) >>> 2;
            if (full) for (let i = 2; i < words; i++) u32[w + i] = patternWord(seq, i);
            else u8.set(source, addr - region.guestAddr);
            u32[w] = seq >>> 0;
            u32[w + 1] = lay.packetBytes;
            if (ping) sentAtMs[seq % sentAtMs.length] = performance.now();
            seq++;
            stats.packets++;
            stats.bytes += lay.packetBytes;
          }
          if (segs.length === 1) q.add1(addr, segs[0]!.len, role === 'rx', addr);
          else {
            setSegs(addr);
            if (role === 'tx') q.add(segs, none, addr);
            else q.add(none, segs, addr);
          }
          added++;
        }
        return added;
      },
      publish: () => q.publish(),
      kickNeeded: () => q.kickNeeded(),
      enableInterrupts: () => q.enableInterrupts(),
      enableInterruptsDelayed: () => q.enableInterruptsDelayed(),
      disableInterrupts: () => q.disableInterrupts(),
      outstanding: () => q.outstanding,
      // Full means no room in the ring or the pool, not the ping's self-imposed in-flight limit.
      ringFull: () => room() && (pool.available === 0 || q.numFree < segs.length),
      done: () => (role === 'tx' ? p.count !== 0 && seq >= p.count && q.outstanding === 0 : p.count !== 0 && received >= p.count),
    },
  });
  if (!ctx.arriveAndWait()) return ctx.finish();
  loop.run();
  loop.toExtra(stats.extra);
  if (lock !== null) stats.extra.lockWaitUs = lock.waitUs;
  if (ping) {
    const sorted = Float64Array.from(rttUs).sort();
    const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
    stats.extra.rttP50Us = at(0.5);
    stats.extra.rttP99Us = at(0.99);
    stats.extra.rttMaxUs = at(1);
    stats.series = { rttUs };
  }
  return ctx.finish();
}

/** Loads the user's DeviceModules (params.modules = a file URL), if any. */
async function userModules(ctx: SideContext): Promise<DeviceModules | undefined> {
  const url = ctx.params.modules;
  if (url === undefined) return undefined;
  if (typeof url !== 'string') throw new RangeError('policy-stream: modules must be a file URL string');
  return (await import(url)) as DeviceModules;
}

export async function host(ctx: SideContext): Promise<SideStats> {
  const p = params(ctx);
  const modules = await userModules(ctx);
  const plan = ctx.setup.queues[0]!;
  const mem = ctx.mem;
  const lay = packetLayout(p.policy, p.frameBytes, plan.size);
  const q = openDeviceQueue(mem, layoutOf(plan), { index: 0, eventIdx: plan.eventIdx, indirect: false, inOrder: plan.inOrder ?? false });
  const staging = new Uint8Array(new SharedArrayBuffer(Math.ceil(lay.packetBytes / 8) * 8));
  const staging32 = new Uint32Array(staging.buffer);
  const stagingView = staging.subarray(0, lay.packetBytes);
  const chain = new DescriptorChain();
  const source = sourceFrame(lay.packetBytes);
  const lock = bigLockFor(p.policy.dataPath, lockWords(ctx), HOST_THREAD_ID);
  const stats = ctx.stats;
  const full = p.verify === 'full';
  const copies = p.policy.dataPath.copies;
  const role = p.direction === 'g2h' ? 'tx' : 'rx';
  let n = 0; // packets consumed (g2h) or produced (h2g)
  let loop: DeviceLoop | null = null;

  const drainTx = (budget: number): number => {
    let k = 0;
    let c;
    while (k < budget && (c = q.pop(chain)) !== null) {
      const len = c.readableBytes;
      if (len !== lay.packetBytes) ctx.error(`packet ${n}: length ${len}, expected ${lay.packetBytes}`);
      else {
        // The backend's write copies the frame out of guest memory (tap writev), whatever the
        // rx copy setting (the RFC's zero-copy row is about host → guest).
        readFromChain(mem, c, stagingView);
        const err = checkWords(staging32, 0, n, lay.packetBytes, full);
        if (err !== null) ctx.error(err);
      }
      n++;
      stats.packets++;
      stats.bytes += len;
      q.addUsed(c.head, 0);
      k++;
    }
    return k;
  };

  const drainRx = (budget: number): number => {
    let k = 0;
    while (k < budget && (p.count === 0 || n < p.count)) {
      const c = q.pop(chain);
      if (c === null) break;
      if (c.writableBytes < lay.packetBytes) {
        ctx.error(`rx buffer ${c.head}: ${c.writableBytes} writable bytes, packet needs ${lay.packetBytes}`);
        q.addUsed(c.head, 0);
        k++;
        continue;
      }
      // The backend read: with the 'dropped' policy the global lock is released around it.
      loop!.beginBackendRead();
      if (copies === 2) {
        // Copy 1: the backend read into a staging buffer (tap read into TAPState.buf).
        if (full) for (let i = 2; i < lay.packetBytes >>> 2; i++) staging32[i] = patternWord(n, i);
        else staging.set(source);
        staging32[0] = n >>> 0;
        staging32[1] = lay.packetBytes;
        loop!.endBackendRead();
        // Copy 2: into the guest's buffers.
        writeToChain(mem, c, stagingView);
      } else if (full) {
        // Zero-copy: the backend writes straight into the guest's posted buffers.
        writePacketInPlace(mem, c.addrs, c.lens, c.readableCount, c.count, n, lay.packetBytes);
        loop!.endBackendRead();
      } else {
        copyInPlace(mem, c.addrs, c.lens, c.readableCount, c.count, source);
        mem.writeU32(c.addrs[c.readableCount]!, n >>> 0);
        mem.writeU32(c.addrs[c.readableCount]! + 4, lay.packetBytes);
        loop!.endBackendRead();
      }
      q.addUsed(c.head, lay.packetBytes);
      n++;
      stats.packets++;
      stats.bytes += lay.packetBytes;
      k++;
    }
    return k;
  };

  loop = new DeviceLoop({
    policy: p.policy,
    kick: ctx.kick,
    irq: ctx.irq,
    lock,
    stopped: () => ctx.stopped,
    packets: () => stats.packets,
    bytes: () => stats.bytes,
    onIteration: windowOpener(ctx, p.warmupMs),
    ...(modules !== undefined ? { modules } : {}),
    queues: [
      {
        role,
        capacityPackets: lay.capacityPackets,
        drain: role === 'tx' ? drainTx : drainRx,
        publish: () => q.publishUsed(),
        needsNotification: () => q.needsNotification(),
        pending: () => q.pending(),
        inFlight: () => q.inFlight,
        disableKicks: () => q.disableNotification(),
        enableKicks: () => q.enableNotification(),
        backendReadable: () => p.count === 0 || n < p.count,
        done: () => p.count !== 0 && n >= p.count,
      },
    ],
  });
  if (!ctx.arriveAndWait()) return ctx.finish();
  loop.run();
  loop.toExtra(stats.extra);
  if (lock !== null) stats.extra.lockWaitUs = lock.waitUs;
  return ctx.finish();
}
