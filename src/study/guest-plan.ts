// The study's rows against a real Linux guest, as plain data (`virtq study --guest qemu`): which
// rows have their mechanism in the device (virtq's vhost-user backend runs the row's policy) and
// which in the guest driver (fixed by Linux's virtio_net, so the guest cannot show them), which
// QEMU virtio-net-pci settings a row's data path needs (ring sizes, offered features: rows that
// need the same settings share one boot), the per-cell mechanism figures from the device's
// counters, and the parsers of what the guest's iperf3 and ping print. Pure: guest-qemu.ts boots
// and drives the guest.

import type { DataPath, StudyPreset } from './presets-source.js';

/** Where a row's mechanism lives, seen from a real guest. */
export type GuestMechanismHome = 'device' | 'driver';

/**
 * RFC rows whose change is the guest driver's (by policy preset, without `-alone`), with the
 * reason printed in the report. Every other row (the tx timer and its rearm, the ring-full
 * heuristic, notify-on-empty, ring sizes, copies, the mutex, and the modern presets' coalescing,
 * busy polling, bh flush, adaptive walk) is run by the device's DeviceLoop.
 */
const DRIVER_ROWS: Readonly<Record<string, string>> = {
  'rfc-recv-no-notify': 'fixed by the Linux driver: rx refill kicks are the driver\'s (virtio_net refills and kicks per its own rules)',
  'rfc-gso': 'fixed by the Linux driver: segmentation offload is the guest stack\'s (the device only offers the features; this row runs with them offered)',
};

export function guestHome(row: StudyPreset): { home: GuestMechanismHome; note: string } {
  const base = row.policy.endsWith('-alone') ? row.policy.slice(0, -'-alone'.length) : row.policy;
  const why = DRIVER_ROWS[base];
  return why !== undefined ? { home: 'driver', note: why } : { home: 'device', note: 'run by virtq\'s device loop behind vhost-user' };
}

/** QEMU 7.2 refuses virtio-net rx_queue_size below 256 (and above 1024); tx_queue_size likewise for vhost-user. */
export const QEMU_MIN_QUEUE = 256;
export const QEMU_MAX_QUEUE = 1024;

/** The virtio-net-pci settings one boot of the guest needs for a row's data path. */
export interface GuestDeviceSettings {
  /** Both queues' size as QEMU sets it (the row's, clamped into QEMU's 256..1024). */
  queueSize: number;
  /** The row's own ring size, when QEMU could not give it (e.g. the 2008 rows' 128). */
  clampedFrom?: number;
  gso: boolean;
  mergeable: boolean;
  eventIdx: boolean;
}

export function guestDeviceSettings(dp: DataPath): GuestDeviceSettings {
  const q = Math.min(QEMU_MAX_QUEUE, Math.max(QEMU_MIN_QUEUE, dp.ringSize));
  return { queueSize: q, ...(q !== dp.ringSize ? { clampedFrom: dp.ringSize } : {}), gso: dp.gso, mergeable: dp.mergeable, eventIdx: dp.eventIdx };
}

/** One key per distinct set of settings: rows with the same key share a boot. */
export function settingsKey(s: GuestDeviceSettings): string {
  return `q${s.queueSize}${s.gso ? '-gso' : ''}${s.mergeable ? '-mrg' : ''}${s.eventIdx ? '-eidx' : ''}`;
}

/**
 * The `-device` value for QEMU: the queue sizes and, for what the row's data path lacks, the
 * features QEMU must not offer (virtio 1.2 §5.1.3: without CSUM no TSO/ECN/UFO either way;
 * mergeable rx buffers; event idx, §2.7.10). vectors=0: INTx (QEMU 7.2 under TCG crashes in
 * msix_set_vector_notifiers with vhost-user and MSI-X).
 */
export function qemuNetDevice(s: GuestDeviceSettings, netdev = 'n0'): string {
  const off: string[] = [];
  if (!s.gso) {
    for (const f of ['csum', 'guest_csum', 'gso', 'host_tso4', 'host_tso6', 'host_ecn', 'host_ufo', 'guest_tso4', 'guest_tso6', 'guest_ecn', 'guest_ufo']) off.push(`${f}=off`);
  }
  if (!s.mergeable) off.push('mrg_rxbuf=off');
  if (!s.eventIdx) off.push('event_idx=off');
  return ['virtio-net-pci', `netdev=${netdev}`, 'romfile=', 'vectors=0', `rx_queue_size=${s.queueSize}`, `tx_queue_size=${s.queueSize}`, ...off].join(',');
}

/** Rows grouped into boots (first appearance order), each with its settings. */
export function bootGroups(rows: readonly StudyPreset[]): { key: string; settings: GuestDeviceSettings; rows: StudyPreset[] }[] {
  const groups = new Map<string, { key: string; settings: GuestDeviceSettings; rows: StudyPreset[] }>();
  for (const r of rows) {
    const s = guestDeviceSettings(r);
    const k = settingsKey(s);
    const g = groups.get(k) ?? { key: k, settings: s, rows: [] };
    g.rows.push(r);
    groups.set(k, g);
  }
  return [...groups.values()];
}

/** Per-packet figures from the device's counter deltas over one cell (NaN where nothing moved). */
export interface GuestMechanism {
  /** Frames the device moved both ways in the cell. */
  packets: number;
  kicks: number;
  interrupts: number;
  kicksPerPacket: number;
  interruptsPerPacket: number;
  /** Packets per device flush. */
  avgBatch: number;
  timerFiresPerPacket: number;
  ringFullFlushes: number;
}

/** The difference of two counter snapshots as the cell's mechanism figures. */
export function guestMechanism(before: Record<string, number>, after: Record<string, number>): GuestMechanism {
  const d = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
  const packets = d('dev.txFrames') + d('dev.rxFrames');
  const per = (n: number): number => (packets > 0 ? n / packets : NaN);
  const flushes = d('devFlushes');
  return {
    packets,
    kicks: d('kicksSeen'),
    interrupts: d('interrupts'),
    kicksPerPacket: per(d('kicksSeen')),
    interruptsPerPacket: per(d('interrupts')),
    avgBatch: flushes > 0 ? d('devFlushPackets') / flushes : NaN,
    timerFiresPerPacket: per(d('timerFires')),
    ringFullFlushes: d('ringFullFlushes'),
  };
}

/** What iperf3 -J reported for one stream, as the study keeps it. */
export interface GuestIperf {
  /** Receiver's rate, Gb/s (what the receiving end counted over the test). */
  gbps: number;
  bytesReceived: number;
  bytesSent: number;
  seconds: number;
  retransmits: number | null;
}

/** Parses iperf3's -J report (between whatever the console added around it); throws naming what is missing. */
export function parseIperfJson(text: string): GuestIperf {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) throw new SyntaxError(`iperf3 printed no JSON: ${text.trim().slice(-300)}`);
  let j: { error?: string; end?: { sum_sent?: { bytes: number; seconds: number; retransmits?: number }; sum_received?: { bytes: number; bits_per_second: number; seconds: number } } };
  try {
    j = JSON.parse(text.slice(start, end + 1)) as typeof j;
  } catch (e) {
    throw new SyntaxError(`iperf3's JSON does not parse (${(e as Error).message}): ${text.trim().slice(-300)}`);
  }
  if (j.error !== undefined) throw new Error(`iperf3: ${j.error}`);
  const r = j.end?.sum_received;
  const s = j.end?.sum_sent;
  if (r === undefined || s === undefined) throw new SyntaxError('iperf3 JSON without end.sum_received/sum_sent');
  return { gbps: r.bits_per_second / 1e9, bytesReceived: r.bytes, bytesSent: s.bytes, seconds: r.seconds, retransmits: s.retransmits ?? null };
}

/** A UDP run's receiver report (iperf3 -u -J; with -R the guest is the receiver). */
export interface GuestIperfUdp {
  /** Datagrams the sender sent and the receiver found missing (iperf3's sequence numbers). */
  packets: number;
  lostPackets: number;
  lostPercent: number;
  /** What arrived, Gb/s. */
  gbps: number;
}

/** Parses `iperf3 -u -J`'s end.sum (the receiver's count of lost datagrams). */
export function parseIperfUdpJson(text: string): GuestIperfUdp {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) throw new SyntaxError(`iperf3 printed no JSON: ${text.trim().slice(-300)}`);
  let j: { error?: string; end?: { sum?: { packets?: number; lost_packets?: number; lost_percent?: number; bits_per_second?: number } } };
  try {
    j = JSON.parse(text.slice(start, end + 1)) as typeof j;
  } catch (e) {
    throw new SyntaxError(`iperf3's JSON does not parse (${(e as Error).message}): ${text.trim().slice(-300)}`);
  }
  if (j.error !== undefined) throw new Error(`iperf3: ${j.error}`);
  const u = j.end?.sum;
  if (u === undefined || typeof u.packets !== 'number' || typeof u.lost_packets !== 'number' || typeof u.bits_per_second !== 'number') {
    throw new SyntaxError('iperf3 UDP JSON without end.sum.packets/lost_packets/bits_per_second');
  }
  const lostPercent = typeof u.lost_percent === 'number' ? u.lost_percent : u.packets > 0 ? (100 * u.lost_packets) / u.packets : 0;
  return { packets: u.packets, lostPackets: u.lost_packets, lostPercent, gbps: u.bits_per_second / 1e9 };
}

/** What ping -f -q printed as its summary. */
export interface GuestPing {
  transmitted: number;
  received: number;
  timeMs: number;
  minMs: number;
  avgMs: number;
  maxMs: number;
  mdevMs: number;
  /** iputils' ipg/ewma (ms), when printed. */
  ipgMs: number | null;
  ewmaMs: number | null;
}

/** Parses iputils ping's -q summary; throws naming what is missing. */
export function parsePingSummary(text: string): GuestPing {
  const m = /(\d+) packets transmitted, (\d+) received.*?time (\d+)ms/.exec(text);
  const rtt = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms(?:, (?:pipe \d+, )?ipg\/ewma ([\d.]+)\/([\d.]+) ms)?/.exec(text);
  if (m === null) throw new SyntaxError(`ping printed no summary: ${text.trim().slice(-300)}`);
  if (rtt === null) throw new SyntaxError(`ping printed no rtt line (every reply lost?): ${text.trim().slice(-300)}`);
  return {
    transmitted: Number(m[1]),
    received: Number(m[2]),
    timeMs: Number(m[3]),
    minMs: Number(rtt[1]),
    avgMs: Number(rtt[2]),
    maxMs: Number(rtt[3]),
    mdevMs: Number(rtt[4]),
    ipgMs: rtt[5] !== undefined ? Number(rtt[5]) : null,
    ewmaMs: rtt[6] !== undefined ? Number(rtt[6]) : null,
  };
}

/** One stream direction of a row in the guest. */
export interface GuestStreamCell {
  iperf: GuestIperf | null;
  mechanism: GuestMechanism | null;
  error?: string;
}

export interface GuestPingCell {
  count: number;
  ping: GuestPing | null;
  mechanism: GuestMechanism | null;
  error?: string;
}

/** A row's cells against the real guest (RowResult.guest). */
export interface GuestRowResult {
  home: GuestMechanismHome;
  /** Why the row is (not) measured in the guest. */
  note: string;
  /** The settings QEMU ran the row with (its boot). */
  device: GuestDeviceSettings;
  /** Null for a driver row (not run). */
  stream: { g2h: GuestStreamCell | null; h2g: GuestStreamCell | null } | null;
  /** The guest's own ping -f to the host end of the TAP. */
  ping: GuestPingCell | null;
}

/** How the guest part of a study ran (StudyReport.guest). */
export interface GuestStudyInfo {
  vmm: 'qemu';
  /** kvm when /dev/kvm could be used, else tcg (a guest ~10–50× slower: figures not comparable with KVM's). */
  accel: 'kvm' | 'tcg';
  /** Why KVM was not used although /dev/kvm opened (QEMU's own error at the first boot). */
  kvmRefused?: string;
  qemuVersion: string;
  /** The guest image: kernel file and the initramfs version (test/support/build-linux-guest.sh). */
  kernel: string;
  initramfsVersion: string;
  /** iperf3 -t per stream cell, ping -f -c per ping cell. */
  seconds: number;
  count: number;
  /** One boot per distinct device settings (ring size, offered features); presets switch between cells in a boot. */
  boots: { key: string; qemuDevice: string; rows: string[]; bootSeconds: number }[];
  totalSeconds: number;
  /** Why the guest part stopped early or did not run, if it did. */
  error?: string;
}
