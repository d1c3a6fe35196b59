// A stand-in for the real net-stream / net-ping workloads, so the study's runner is tested end
// to end without them: the same parameters and the same SideStats contract, with synthetic
// traffic through the real split virtqueues (queue 0 rx, queue 1 tx) between two workers.
//
// stream: the sender fills buffers with [u32 seq][u32 len] + unwritten payload, the receiver
// checks the sequence and counts payload bytes in its window (`windowBytes`). g2h sends on the
// tx queue; h2g writes into the guest's posted rx buffers. No ACKs (a fake).
// ping: the pinging side (guest for g2h, host for h2g) sends [u32 seq][f64 send time] by the
// ping -f rule (FloodPingSchedule); the other side echoes it on the other queue; RTTs in µs go to
// series.rttUs, with extra.sent / extra.received. When done, the pinger stops the engine.
//
// Test hooks: preset 'explode' throws; extra echoes the params it saw (msgBytes, gso, mtu,
// warmupMs, ringSize, eventIdx, isolated, payloadBytes, count) so tests can check the runner.

import { Arena, BufferPool } from '../../src/memory/index.js';
import { DeviceQueue, DriverQueue, DescriptorChain } from '../../src/virtqueue/index.js';
import { layoutOf } from '../../src/engine/setup.js';
import type { SideContext } from '../../src/engine/side.js';
import type { SideStats } from '../../src/engine/types.js';
import { FloodPingSchedule } from '../../src/study/flood-schedule.js';

const RX = 0;
const TX = 1;
const BATCH = 32;

function driver(ctx: SideContext, q: number): DriverQueue<number> {
  const plan = ctx.setup.queues[q]!;
  return new DriverQueue<number>(ctx.mem, layoutOf(plan), { index: q, eventIdx: plan.eventIdx, indirect: false });
}

function device(ctx: SideContext, q: number): DeviceQueue {
  const plan = ctx.setup.queues[q]!;
  return new DeviceQueue(ctx.mem, layoutOf(plan), { index: q, eventIdx: plan.eventIdx, indirect: false });
}

function echoParams(ctx: SideContext): void {
  const e = ctx.stats.extra;
  if (ctx.strParam('preset', '') === 'explode') throw new Error('fake-net: preset "explode" fails on purpose');
  for (const k of ['msgBytes', 'mtu', 'warmupMs', 'payloadBytes', 'count', 'timeoutMs']) {
    const v = ctx.params[k];
    if (typeof v === 'number') e[k] = v;
  }
  e.gso = ctx.params.gso === true ? 1 : 0;
  e.mergeable = ctx.params.mergeable === true ? 1 : 0;
  e.ringSize = ctx.setup.queues[0]!.size;
  e.eventIdx = ctx.setup.queues[0]!.eventIdx ? 1 : 0;
  // Isolated mode runs '<preset>-alone' (that row's change alone on the baseline).
  e.isolated = typeof ctx.params.preset === 'string' && ctx.params.preset.endsWith('-alone') ? 1 : 0;
  e.hasPreset = typeof ctx.params.preset === 'string' ? 1 : 0;
}

function segmentBytes(ctx: SideContext): number {
  const msg = ctx.numParam('msgBytes', 16384);
  const mtu = ctx.numParam('mtu', 1500);
  return Math.max(16, ctx.params.gso === true ? Math.min(msg, 65_000) : Math.min(msg, mtu - 52));
}

function pool(ctx: SideContext, bufBytes: number, count: number): BufferPool {
  const arena = new Arena(ctx.mem, ctx.setup.arenaBase, ctx.setup.arenaBytes);
  const fit = Math.floor(ctx.setup.arenaBytes / 2 / (Math.ceil(bufBytes / 64) * 64));
  return new BufferPool(arena, bufBytes, Math.max(1, Math.min(count, fit)), 64);
}

function maybeOpenWindow(ctx: SideContext, t0: number, warmupMs: number): void {
  if (!ctx.windowIsOpen && performance.now() - t0 >= warmupMs) ctx.openWindow();
}

// ---- stream ---------------------------------------------------------------------------------

/** Driver-side sender on the tx queue (g2h). */
function streamSendGuest(ctx: SideContext): SideStats {
  const seg = segmentBytes(ctx);
  const warmupMs = ctx.numParam('warmupMs', 0);
  const q = driver(ctx, TX);
  const bufs = pool(ctx, seg, ctx.setup.queues[TX]!.size);
  q.disableInterrupts();
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let seq = 0;
  while (!ctx.stopped) {
    maybeOpenWindow(ctx, t0, warmupMs);
    let u;
    while ((u = q.reap()) !== null) bufs.put(u.token);
    let added = 0;
    while (added < BATCH && bufs.available > 0) {
      const addr = bufs.get();
      ctx.mem.writeU32(addr, seq++ >>> 0);
      ctx.mem.writeU32(addr + 4, seg);
      q.add1(addr, seg, false, addr);
      added++;
      ctx.stats.packets++;
      ctx.stats.bytes += seg;
    }
    if (added > 0) {
      q.publish();
      if (q.kickNeeded()) ctx.kick.ring();
      continue;
    }
    const seen = ctx.irq.seq();
    if (!q.enableInterruptsDelayed()) ctx.irq.wait(seen);
    q.disableInterrupts();
  }
  return ctx.finish();
}

/** Device-side receiver on the tx queue (g2h): counts payload, returns buffers. */
function streamRecvHost(ctx: SideContext): SideStats {
  const warmupMs = ctx.numParam('warmupMs', 0);
  const q = device(ctx, TX);
  const chain = new DescriptorChain();
  const e = ctx.stats.extra;
  e.devFlushes = 0;
  e.devFlushPackets = 0;
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let expect = 0;
  for (;;) {
    maybeOpenWindow(ctx, t0, warmupMs);
    q.disableNotification();
    let n = 0;
    let c;
    while ((c = q.pop(chain)) !== null) {
      const addr = c.addrs[0]!;
      const seq = ctx.mem.readU32(addr);
      if (seq !== expect >>> 0) ctx.error(`packet ${expect}: sequence ${seq}`);
      expect++;
      const len = ctx.mem.readU32(addr + 4);
      ctx.stats.packets++;
      ctx.stats.bytes += len;
      q.addUsed(c.head, 0);
      n++;
    }
    if (n > 0) {
      e.devFlushes!++;
      e.devFlushPackets! += n;
      if (q.publishUsed() > 0 && q.needsNotification()) ctx.irq.ring();
    }
    if (ctx.stopped) break;
    const seen = ctx.kick.seq();
    if (q.enableNotification()) continue;
    if (ctx.kick.wait(seen) === 'stopped') break;
  }
  return ctx.finish();
}

/** Driver-side receiver on the rx queue (h2g): posts buffers, counts what comes back. */
function streamRecvGuest(ctx: SideContext): SideStats {
  const seg = segmentBytes(ctx);
  const warmupMs = ctx.numParam('warmupMs', 0);
  const q = driver(ctx, RX);
  const bufs = pool(ctx, seg, ctx.setup.queues[RX]!.size);
  while (bufs.available > 0) {
    const a = bufs.get();
    q.add1(a, seg, true, a);
  }
  q.publish();
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let expect = 0;
  while (!ctx.stopped) {
    maybeOpenWindow(ctx, t0, warmupMs);
    q.disableInterrupts();
    let n = 0;
    let u;
    while ((u = q.reap()) !== null) {
      const addr = u.token;
      const seq = ctx.mem.readU32(addr);
      if (seq !== expect >>> 0) ctx.error(`packet ${expect}: sequence ${seq}`);
      expect++;
      ctx.stats.packets++;
      ctx.stats.bytes += u.len;
      q.add1(addr, seg, true, addr);
      n++;
    }
    if (n > 0) {
      q.publish();
      if (q.kickNeeded()) ctx.kick.ring();
      continue;
    }
    const seen = ctx.irq.seq();
    if (q.enableInterrupts()) continue;
    ctx.irq.wait(seen);
  }
  return ctx.finish();
}

/** Device-side sender into the guest's rx buffers (h2g). */
function streamSendHost(ctx: SideContext): SideStats {
  const seg = segmentBytes(ctx);
  const warmupMs = ctx.numParam('warmupMs', 0);
  const q = device(ctx, RX);
  const chain = new DescriptorChain();
  const e = ctx.stats.extra;
  e.devFlushes = 0;
  e.devFlushPackets = 0;
  if (!ctx.arriveAndWait()) return ctx.finish();
  const t0 = performance.now();
  let seq = 0;
  for (;;) {
    maybeOpenWindow(ctx, t0, warmupMs);
    q.disableNotification();
    let n = 0;
    let c;
    while (n < BATCH * 4 && (c = q.pop(chain)) !== null) {
      const addr = c.addrs[0]!;
      const len = Math.min(seg, c.lens[0]!);
      ctx.mem.writeU32(addr, seq++ >>> 0);
      ctx.mem.writeU32(addr + 4, len);
      q.addUsed(c.head, len);
      ctx.stats.packets++;
      ctx.stats.bytes += len;
      n++;
    }
    if (n > 0) {
      e.devFlushes!++;
      e.devFlushPackets! += n;
      if (q.publishUsed() > 0 && q.needsNotification()) ctx.irq.ring();
      if (ctx.stopped) break;
      continue;
    }
    if (ctx.stopped) break;
    const seen = ctx.kick.seq();
    if (q.enableNotification()) continue;
    if (ctx.kick.wait(seen) === 'stopped') break;
  }
  return ctx.finish();
}

export function streamGuest(ctx: SideContext): SideStats {
  echoParams(ctx);
  return ctx.strParam('direction', 'g2h') === 'g2h' ? streamSendGuest(ctx) : streamRecvGuest(ctx);
}

export function streamHost(ctx: SideContext): SideStats {
  echoParams(ctx);
  return ctx.strParam('direction', 'g2h') === 'g2h' ? streamRecvHost(ctx) : streamSendHost(ctx);
}

// ---- ping -----------------------------------------------------------------------------------

const PING_BUF = 64 + 56;

function finishPinger(ctx: SideContext, s: FloodPingSchedule, rtts: number[]): SideStats {
  ctx.stats.extra.sent = s.sent;
  ctx.stats.extra.received = s.received;
  ctx.stats.series = { rttUs: rtts };
  const out = ctx.finish();
  // The echo side has no count: end the run for it.
  ctx.block.stop();
  return out;
}

/** Guest pings (g2h): request on tx, reply in a posted rx buffer. */
function pingGuestPinger(ctx: SideContext): SideStats {
  const sched = new FloodPingSchedule(ctx.numParam('count', 100), ctx.numParam('timeoutMs', 10));
  const tx = driver(ctx, TX);
  const rx = driver(ctx, RX);
  const txBufs = pool(ctx, PING_BUF, 8);
  const rxBufs = pool(ctx, PING_BUF, 8);
  while (rxBufs.available > 0) {
    const a = rxBufs.get();
    rx.add1(a, PING_BUF, true, a);
  }
  rx.publish();
  tx.disableInterrupts();
  const rtts: number[] = [];
  if (!ctx.arriveAndWait()) return finishPinger(ctx, sched, rtts);
  ctx.openWindow();
  while (!ctx.stopped) {
    let u;
    while ((u = tx.reap()) !== null) txBufs.put(u.token);
    let refilled = 0;
    while ((u = rx.reap()) !== null) {
      const now = performance.now();
      const seq = ctx.mem.readU32(u.token);
      const sentAt = ctx.mem.readU32(u.token + 8) + ctx.mem.readU32(u.token + 12) / 2 ** 32;
      const rttUs = Math.floor((now - sentAt) * 1000);
      if (sched.onReply(seq, rttUs) === 'new') rtts.push(rttUs);
      rx.add1(u.token, PING_BUF, true, u.token);
      refilled++;
      ctx.stats.packets++;
    }
    if (refilled > 0) {
      rx.publish();
      if (rx.kickNeeded()) ctx.kick.ring();
    }
    const now = performance.now();
    if (sched.done(now)) break;
    if (sched.delayMs(now) === 0 && txBufs.available > 0) {
      const a = txBufs.get();
      const seq = sched.onSent(now);
      ctx.mem.writeU32(a, seq);
      const t = performance.now();
      ctx.mem.writeU32(a + 8, Math.floor(t));
      ctx.mem.writeU32(a + 12, Math.floor((t - Math.floor(t)) * 2 ** 32));
      tx.add1(a, PING_BUF, false, a);
      tx.publish();
      if (tx.kickNeeded()) ctx.kick.ring();
      continue;
    }
    const seen = ctx.irq.seq();
    if (rx.enableInterrupts()) continue;
    ctx.irq.wait(seen, sched.nextDeadlineMs(performance.now()));
  }
  return finishPinger(ctx, sched, rtts);
}

/** Host echoes (g2h): pops a request from tx, writes it into an rx buffer. */
function pingHostEcho(ctx: SideContext): SideStats {
  const tx = device(ctx, TX);
  const rx = device(ctx, RX);
  const c1 = new DescriptorChain();
  const c2 = new DescriptorChain();
  const tmp = new Uint8Array(16);
  if (!ctx.arriveAndWait()) return ctx.finish();
  for (;;) {
    tx.disableNotification();
    let c;
    let n = 0;
    while ((c = tx.pop(c1)) !== null) {
      ctx.mem.copyOut(c.addrs[0]!, tmp);
      const r = rx.pop(c2);
      if (r !== null) {
        ctx.mem.copyIn(r.addrs[0]!, tmp);
        rx.addUsed(r.head, 16);
      } else ctx.stats.extra.drops = (ctx.stats.extra.drops ?? 0) + 1;
      tx.addUsed(c.head, 0);
      ctx.stats.packets++;
      n++;
    }
    if (n > 0) {
      const a = rx.publishUsed() > 0 && rx.needsNotification();
      const b = tx.publishUsed() > 0 && tx.needsNotification();
      if (a || b) ctx.irq.ring();
    }
    if (ctx.stopped) break;
    const seen = ctx.kick.seq();
    if (tx.enableNotification()) continue;
    if (ctx.kick.wait(seen) === 'stopped') break;
  }
  return ctx.finish();
}

/** Host pings (h2g): request into a posted rx buffer, reply comes on tx. */
function pingHostPinger(ctx: SideContext): SideStats {
  const sched = new FloodPingSchedule(ctx.numParam('count', 100), ctx.numParam('timeoutMs', 10));
  const tx = device(ctx, TX);
  const rx = device(ctx, RX);
  const c1 = new DescriptorChain();
  const c2 = new DescriptorChain();
  const rtts: number[] = [];
  if (!ctx.arriveAndWait()) return finishPinger(ctx, sched, rtts);
  ctx.openWindow();
  while (!ctx.stopped) {
    tx.disableNotification();
    let c;
    let n = 0;
    while ((c = tx.pop(c1)) !== null) {
      const now = performance.now();
      const a = c.addrs[0]!;
      const seq = ctx.mem.readU32(a);
      const sentAt = ctx.mem.readU32(a + 8) + ctx.mem.readU32(a + 12) / 2 ** 32;
      const rttUs = Math.floor((now - sentAt) * 1000);
      if (sched.onReply(seq, rttUs) === 'new') rtts.push(rttUs);
      tx.addUsed(c.head, 0);
      ctx.stats.packets++;
      n++;
    }
    if (n > 0 && tx.publishUsed() > 0 && tx.needsNotification()) ctx.irq.ring();
    const now = performance.now();
    if (sched.done(now)) break;
    if (sched.delayMs(now) === 0) {
      const r = rx.pop(c2);
      if (r !== null) {
        const a = r.addrs[0]!;
        const seq = sched.onSent(now);
        ctx.mem.writeU32(a, seq);
        const t = performance.now();
        ctx.mem.writeU32(a + 8, Math.floor(t));
        ctx.mem.writeU32(a + 12, Math.floor((t - Math.floor(t)) * 2 ** 32));
        rx.addUsed(r.head, 16);
        if (rx.publishUsed() > 0 && rx.needsNotification()) ctx.irq.ring();
        continue;
      }
    }
    const seen = ctx.kick.seq();
    if (tx.enableNotification() || (sched.delayMs(performance.now()) === 0 && rx.enableNotification())) continue;
    ctx.kick.wait(seen, sched.nextDeadlineMs(performance.now()));
  }
  return finishPinger(ctx, sched, rtts);
}

/** Guest echoes (h2g): reaps a request from rx, sends it back on tx, reposts the rx buffer. */
function pingGuestEcho(ctx: SideContext): SideStats {
  const tx = driver(ctx, TX);
  const rx = driver(ctx, RX);
  const txBufs = pool(ctx, PING_BUF, 8);
  const rxBufs = pool(ctx, PING_BUF, 8);
  while (rxBufs.available > 0) {
    const a = rxBufs.get();
    rx.add1(a, PING_BUF, true, a);
  }
  rx.publish();
  tx.disableInterrupts();
  const tmp = new Uint8Array(16);
  if (!ctx.arriveAndWait()) return ctx.finish();
  while (!ctx.stopped) {
    let u;
    while ((u = tx.reap()) !== null) txBufs.put(u.token);
    let n = 0;
    while (txBufs.available > 0 && (u = rx.reap()) !== null) {
      ctx.mem.copyOut(u.token, tmp);
      const a = txBufs.get();
      ctx.mem.copyIn(a, tmp);
      tx.add1(a, PING_BUF, false, a);
      rx.add1(u.token, PING_BUF, true, u.token);
      ctx.stats.packets++;
      n++;
    }
    if (n > 0) {
      tx.publish();
      rx.publish();
      if (tx.kickNeeded() || rx.kickNeeded()) ctx.kick.ring();
      continue;
    }
    const seen = ctx.irq.seq();
    if (rx.enableInterrupts()) continue;
    ctx.irq.wait(seen, performance.now() + 5);
    rx.disableInterrupts();
  }
  return ctx.finish();
}

export function pingGuest(ctx: SideContext): SideStats {
  echoParams(ctx);
  return ctx.strParam('direction', 'g2h') === 'g2h' ? pingGuestPinger(ctx) : pingGuestEcho(ctx);
}

export function pingHost(ctx: SideContext): SideStats {
  echoParams(ctx);
  return ctx.strParam('direction', 'g2h') === 'g2h' ? pingHostEcho(ctx) : pingHostPinger(ctx);
}
