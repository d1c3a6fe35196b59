// Builds per-packet timelines from the records of a driver thread and a device thread. Pure
// functions over plain arrays: runs anywhere.
//
// Within one thread, batch events are attributed by order: a publish covers the adds since the
// previous publish and a kick covers the publish just before it; `used` covers the packets done
// since the previous used and an interrupt the used just before it. Across threads, an optional
// point joins a packet's timeline only when it can have caused the packet's progress: a kick
// before the device popped the packet, a device wake after the publish (or kick) and before the
// pop, an interrupt before the reap, a driver wake after the used (or interrupt) and before the
// reap. Required points (add, publish, pop, done, used, reap) are always kept, so a cross-thread
// pair out of order (pop before publish, reap before used) shows a clock or recording fault and
// is counted, never hidden. A Gap record (the buffer dropped records there) ends every batch in
// progress on its thread: packets waiting for a publish or a used are counted incomplete rather
// than given a later batch's time. Both sides state the packet's length (reap and done); when
// they disagree the two identities named different packets: the packet is counted `mismatched`
// and left out, never shown as one timeline made of two packets.

import type { TraceChunk } from './buffer.js';
import { DROP_REASONS, ERROR_CODES, FLAG_HAS_ID, KIND_INFO, PACKET_POINTS, REQUIRED_POINTS, TraceKind, type PacketPoint } from './schema.js';

export type Side = 'guest' | 'host';

/** One decoded record. */
export interface TraceRecord {
  side: Side;
  kind: number;
  queue: number;
  /** Packet seq, or undefined. */
  id: number | undefined;
  tNs: number;
  arg: number;
}

/** A packet's points (ns since the run's origin) in path order; absent optional points omitted. */
export interface PacketTimeline {
  seq: number;
  queue: number;
  points: Partial<Record<PacketPoint, number>>;
  lenBytes: number;
  e2eNs: number;
}

export interface TimelineResult {
  packets: PacketTimeline[];
  /** Packets missing a required point (a dropped record, or the run stopped mid-flight). */
  incomplete: number;
  /** Complete packets whose points are not in time order (cross-thread clock fault). */
  outOfOrder: number;
  /** Packets whose driver (reap) and device (done) lengths differ: an identity fault, left out. */
  mismatched: number;
  /** Non-packet events (policy, drops, errors), time-ordered. */
  events: TraceRecord[];
}

/** Decodes chunks of one thread into records, ordered by time (stable for equal times). */
export function decodeChunks(side: Side, chunks: readonly TraceChunk[]): TraceRecord[] {
  const out: TraceRecord[] = [];
  for (const c of chunks) {
    for (let k = 0; k < c.tNs.length; k++) {
      const meta = c.meta[k]!;
      out.push({ side, kind: meta & 0xff, queue: (meta >>> 8) & 0xff, id: (meta >>> 16) & FLAG_HAS_ID ? c.id[k]! : undefined, tNs: c.tNs[k]!, arg: c.arg[k]! });
    }
  }
  // Records are written in time order except remembered wakes, written just before the next
  // sampled packet; a stable sort restores time order.
  return out.map((r, i) => ({ r, i })).sort((a, b) => a.r.tNs - b.r.tNs || a.i - b.i).map((x) => x.r);
}

interface Partial_ {
  tainted?: boolean;
  /** The device's length differs from the driver's. */
  lenDiffers?: boolean;
  seq: number;
  queue: number;
  lenBytes: number;
  points: Partial<Record<PacketPoint, number>>;
}

/** Joins a driver thread's and a device thread's records into packet timelines. */
export function buildTimelines(guest: readonly TraceRecord[], host: readonly TraceRecord[]): TimelineResult {
  const pk = new Map<number, Partial_>();
  const events: TraceRecord[] = [];
  // A packet is its (tx queue, identity): with several queue pairs each transmit queue numbers
  // its frames from 0 on its own (NetDriver/NetDevice count per queue).
  const get = (seq: number, queue: number): Partial_ => {
    const key = queue * 0x1_0000_0000 + seq;
    let p = pk.get(key);
    if (p === undefined) {
      p = { seq, queue, lenBytes: 0, points: {} };
      pk.set(key, p);
    }
    return p;
  };
  // Loop-level points (publish, kick, used, interrupt) name their queue: per-queue batches.
  const batch = (m: Map<number, Partial_[]>, q: number): Partial_[] => {
    let b = m.get(q);
    if (b === undefined) m.set(q, (b = []));
    return b;
  };
  const take = (m: Map<number, Partial_[]>, q: number): Partial_[] => {
    const b = m.get(q) ?? [];
    m.set(q, []);
    return b;
  };
  // Driver thread.
  const adds = new Map<number, Partial_[]>();
  const lastPublished = new Map<number, Partial_[]>();
  let driverWakeNs = -1;
  for (const r of guest) {
    switch (r.kind) {
      case TraceKind.Add: {
        const p = get(r.id!, r.queue);
        p.points.add = r.tNs;
        batch(adds, r.queue).push(p);
        break;
      }
      case TraceKind.Publish: {
        const published = take(adds, r.queue);
        for (const p of published) p.points.publish = r.tNs;
        lastPublished.set(r.queue, published);
        break;
      }
      case TraceKind.Kick:
        for (const p of take(lastPublished, r.queue)) p.points.kick = r.tNs;
        break;
      case TraceKind.DriverWake:
        driverWakeNs = r.tNs;
        break;
      case TraceKind.Gap:
        for (const b of adds.values()) for (const p of b) p.tainted = true;
        adds.clear();
        lastPublished.clear();
        driverWakeNs = -1;
        events.push(r);
        break;
      case TraceKind.Reap: {
        const p = get(r.id!, r.queue);
        p.points.reap = r.tNs;
        p.lenBytes = r.arg;
        if (driverWakeNs >= 0) p.points['driver-wake'] = driverWakeNs;
        break;
      }
      default:
        events.push(r);
    }
  }
  // Device thread.
  const done = new Map<number, Partial_[]>();
  const lastUsed = new Map<number, Partial_[]>();
  let deviceWakeNs = -1;
  for (const r of host) {
    switch (r.kind) {
      case TraceKind.DeviceWake:
        deviceWakeNs = r.tNs;
        break;
      case TraceKind.Gap:
        for (const b of done.values()) for (const p of b) p.tainted = true;
        done.clear();
        lastUsed.clear();
        deviceWakeNs = -1;
        events.push(r);
        break;
      case TraceKind.Pop: {
        const p = get(r.id!, r.queue);
        p.points.pop = r.tNs;
        if (deviceWakeNs >= 0) p.points['device-wake'] = deviceWakeNs;
        break;
      }
      case TraceKind.Done: {
        const p = get(r.id!, r.queue);
        p.points.done = r.tNs;
        if (p.lenBytes === 0) p.lenBytes = r.arg;
        else if (p.points.reap !== undefined && r.arg !== p.lenBytes) p.lenDiffers = true;
        batch(done, r.queue).push(p);
        break;
      }
      case TraceKind.Used: {
        const used = take(done, r.queue);
        for (const p of used) p.points.used = r.tNs;
        lastUsed.set(r.queue, used);
        break;
      }
      case TraceKind.Interrupt:
        for (const p of take(lastUsed, r.queue)) p.points.interrupt = r.tNs;
        break;
      default:
        events.push(r);
    }
  }
  const packets: PacketTimeline[] = [];
  let incomplete = 0;
  let outOfOrder = 0;
  let mismatched = 0;
  for (const p of pk.values()) {
    const seq = p.seq;
    const t = p.points;
    if (p.tainted || REQUIRED_POINTS.some((k) => t[k] === undefined)) {
      incomplete++;
      continue;
    }
    if (p.lenDiffers) {
      mismatched++;
      continue;
    }
    // Keep optional points only where they can have caused the packet's progress.
    if (t.kick !== undefined && !(t.kick >= t.publish! && t.kick <= t.pop!)) delete t.kick;
    const wakeFloor = t.kick ?? t.publish!;
    if (t['device-wake'] !== undefined && !(t['device-wake'] >= wakeFloor && t['device-wake'] <= t.pop!)) delete t['device-wake'];
    if (t.interrupt !== undefined && !(t.interrupt >= t.used! && t.interrupt <= t.reap!)) delete t.interrupt;
    const dwFloor = t.interrupt ?? t.used!;
    if (t['driver-wake'] !== undefined && !(t['driver-wake'] >= dwFloor && t['driver-wake'] <= t.reap!)) delete t['driver-wake'];
    let prev = -Infinity;
    let ordered = true;
    for (const k of PACKET_POINTS) {
      const v = t[k];
      if (v === undefined) continue;
      if (v < prev) ordered = false;
      prev = v;
    }
    if (!ordered) outOfOrder++;
    packets.push({ seq, queue: p.queue, points: t, lenBytes: p.lenBytes, e2eNs: t.reap! - t.add! });
  }
  packets.sort((a, b) => a.points.add! - b.points.add!);
  events.sort((a, b) => a.tNs - b.tNs);
  return { packets, incomplete, outOfOrder, mismatched, events };
}

/** The stages of a timeline: consecutive present points, as [from, to, durationNs]. */
export function stagesOf(p: PacketTimeline): { name: string; from: PacketPoint; to: PacketPoint; ns: number }[] {
  const out: { name: string; from: PacketPoint; to: PacketPoint; ns: number }[] = [];
  let prev: PacketPoint | undefined;
  for (const k of PACKET_POINTS) {
    if (p.points[k] === undefined) continue;
    if (prev !== undefined) out.push({ name: `${prev}→${k}`, from: prev, to: k, ns: p.points[k]! - p.points[prev]! });
    prev = k;
  }
  return out;
}

/** An event as an NDJSON-friendly object. */
export function eventFields(r: TraceRecord): Record<string, string | number> {
  const info = KIND_INFO[r.kind];
  const o: Record<string, string | number> = { ev: info?.name ?? `kind-${r.kind}`, side: r.side, q: r.queue, tNs: Math.round(r.tNs) };
  if (r.id !== undefined) o.seq = r.id;
  if (r.kind === TraceKind.Drop) o.reason = DROP_REASONS[r.arg] ?? 'other';
  else if (r.kind === TraceKind.Error) o.code = ERROR_CODES[r.arg] ?? 'other';
  else if (r.kind === TraceKind.TimerFired) o.latenessNs = r.arg;
  else if (r.kind === TraceKind.TimerArmed) o.intervalNs = r.arg;
  else if (r.kind === TraceKind.RingFull) o.inFlight = r.arg;
  else if (r.kind === TraceKind.Gap) o.droppedRecords = r.arg;
  return o;
}
