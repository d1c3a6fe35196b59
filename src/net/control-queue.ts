// The virtio-net device's control state and its control virtqueue (virtio 1.2 §5.1.6.5).
// NetControl owns what control commands change and every NetDevice of the device reads: the rx
// filter (modes, MAC tables, VLANs), the guest offloads in effect, the queue pairs in use, the
// announce status bit and the MAC in config space; it tells its owner (the service) about what
// the data path must follow (coalescing, pair count, offloads, config changes) through callbacks.
// ControlQueue pops control chains, parses them (control.ts), applies them and writes the ack.
// The driver is untrusted: a malformed command is answered VIRTIO_NET_ERR and counted, a chain
// with no room for the ack is returned with used length 0 and counted, and only a ring violation
// breaks the control queue (never the data queues). Runs in Web Workers too: no `node:` imports.

import type { GuestMemory } from '../memory/guest-memory.js';
import { GuestMemoryError } from '../memory/errors.js';
import { DescriptorChain, readFromChain, writeToChain } from '../virtqueue/chain.js';
import type { DeviceVirtqueue } from '../virtqueue/index.js';
import { VirtqueueError } from '../virtqueue/errors.js';
import type { NetConfig } from './config.js';
import { CTRL_ERR, CTRL_OK, ControlRejection, GUEST_OFFLOAD_MASK, parseControl, type ControlCommand, type ControlRejectReason } from './control.js';
import { NetF } from './features.js';
import { RxFilter, type RxFilterState } from './rx-filter.js';
import type { RssConfig } from './rss.js';

/** What NetControl.save() keeps (plain, JSON-safe): everything the driver set. */
export interface NetControlState {
  filter: RxFilterState;
  /** Receive offloads in effect, hex. */
  guestOffloads: string;
  pairs: number;
  mac: string;
  announce: boolean;
  /** RSS_CONFIG / HASH_CONFIG in effect (key hex), when set. */
  rss?: SavedRss;
  hashing?: SavedRss;
}

interface SavedRss {
  hashTypes: number;
  key: string;
  indirection: number[];
  unclassifiedQueue: number;
  maxTxVq: number;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const saveRss = (c: RssConfig): SavedRss => ({ hashTypes: c.hashTypes, key: hex(c.key), indirection: Array.from(c.indirection), unclassifiedQueue: c.unclassifiedQueue, maxTxVq: c.maxTxVq });
/** A saved RSS config back, or null when anything in it is malformed or beyond `maxPairs`. */
function loadRss(s: unknown, maxPairs: number): RssConfig | null {
  const r = s as Partial<SavedRss> | null;
  if (r === null || typeof r !== 'object' || !Number.isInteger(r.hashTypes) || typeof r.key !== 'string' || !/^([0-9a-f]{2}){0,40}$/i.test(r.key)) return null;
  const ind = Array.isArray(r.indirection) ? r.indirection : [];
  const n = ind.length;
  if (n > 128 || (n & (n - 1)) !== 0 || !ind.every((q) => Number.isInteger(q) && q >= 0 && q < maxPairs)) return null;
  const u = Number.isInteger(r.unclassifiedQueue) && r.unclassifiedQueue! < maxPairs ? r.unclassifiedQueue! : 0;
  const m = Number.isInteger(r.maxTxVq) && r.maxTxVq! >= 1 && r.maxTxVq! <= maxPairs ? r.maxTxVq! : 1;
  return { hashTypes: r.hashTypes! >>> 0, key: Uint8Array.from(r.key.match(/../g) ?? [], (h) => parseInt(h, 16)), indirection: Uint16Array.from(ind), unclassifiedQueue: u, maxTxVq: m };
}

/** Why a control chain got VIRTIO_NET_ERR or no ack at all. */
export type ControlFailure =
  | ControlRejectReason
  | 'too-many-pairs' // VQ_PAIRS_SET above max_virtqueue_pairs
  | 'too-long' // more readable bytes than any command carries (MAX_CONTROL_BYTES)
  | 'no-ack-room'; // no device-writable byte for the ack: returned with used length 0

export interface NetControlStats {
  /** Control chains handled (each is answered or returned). */
  commands: number;
  ok: number;
  /** Answered VIRTIO_NET_ERR (or returned without an ack), by reason. */
  failed: number;
  failures: Partial<Record<ControlFailure, number>>;
  announceRequests: number;
  announceAcks: number;
  /** Ring violations on the control queue (each breaks it). */
  queueErrors: number;
}

export interface NetControlOptions {
  /** The negotiated features. */
  features: bigint;
  /** The device's config (mac, status): MAC_ADDR_SET and the announce bit change it in place. */
  config: NetConfig;
  /** max_virtqueue_pairs (1 without MQ). */
  maxPairs?: number;
}

/**
 * The largest command: MAC_TABLE_SET with two full tables is 2 + 2·(4 + 6·64) bytes; anything
 * longer only grows an overflowing table. 64 KiB is far above any real driver's table and bounds
 * the work and the scratch one hostile chain can ask for.
 */
export const MAX_CONTROL_BYTES = 65536;

export class NetControl {
  readonly features: bigint;
  readonly config: NetConfig;
  readonly filter: RxFilter;
  readonly maxPairs: number;
  /** Queue pairs the driver uses (VQ_PAIRS_SET; 1 until then, §5.1.6.5.5). */
  pairs = 1;
  /** Receive offloads in effect: every negotiated one until CTRL_GUEST_OFFLOADS_SET (§5.1.6.5.6). */
  guestOffloads: bigint;
  /** RSS steering in effect (RSS_CONFIG), or null: automatic steering (§5.1.6.5.5). */
  rss: RssConfig | null = null;
  /** Hash types and key for hash reports (HASH_CONFIG, or RSS_CONFIG's), or null: no reports. */
  hashing: RssConfig | null = null;
  /** RSS_CONFIG applied (a config) or turned off by VQ_PAIRS_SET (null). */
  onRss: ((rss: RssConfig | null) => void) | null = null;
  readonly stats: NetControlStats = { commands: 0, ok: 0, failed: 0, failures: {}, announceRequests: 0, announceAcks: 0, queueErrors: 0 };
  /** NOTF_COAL TX_SET / RX_SET: new coalescing for every queue of that direction. */
  onCoalesce: ((direction: 'tx' | 'rx', maxPackets: number, maxUsecs: number) => void) | null = null;
  /** VQ_PAIRS_SET applied. */
  onPairs: ((pairs: number) => void) | null = null;
  /** GUEST_OFFLOADS_SET applied (a TAP port re-announces its offloads). */
  onOffloads: ((offloads: bigint) => void) | null = null;
  /** The config bytes changed in a way the driver must be told of (the announce bit). */
  onConfigChange: (() => void) | null = null;

  constructor(o: NetControlOptions) {
    this.features = o.features;
    this.config = o.config;
    this.maxPairs = Math.max(1, o.maxPairs ?? 1);
    this.guestOffloads = o.features & GUEST_OFFLOAD_MASK;
    this.filter = new RxFilter(o.features, () => this.config.mac);
  }

  /**
   * Asks the driver to announce itself (after a migration, a link move): sets
   * VIRTIO_NET_S_ANNOUNCE and signals a config change (§5.1.6.5.4). False without GUEST_ANNOUNCE.
   */
  requestAnnounce(): boolean {
    if ((this.features & NetF.GUEST_ANNOUNCE) === 0n) return false;
    this.stats.announceRequests++;
    this.config.announce = true;
    this.onConfigChange?.();
    return true;
  }

  /** The state the driver's commands set, as plain data (device save). */
  save(): NetControlState {
    return {
      filter: this.filter.save(),
      guestOffloads: this.guestOffloads.toString(16),
      pairs: this.pairs,
      mac: Array.from(this.config.mac, (b) => b.toString(16).padStart(2, '0')).join(':'),
      announce: this.config.announce === true,
      ...(this.rss !== null ? { rss: saveRss(this.rss) } : {}),
      ...(this.hashing !== null ? { hashing: saveRss(this.hashing) } : {}),
    };
  }

  /**
   * Restores saved state (device restore). Values outside what was negotiated are not taken: an
   * offload never negotiated stays off, pairs stay within 1..maxPairs. Callbacks fire for what
   * the data path must follow (pairs, offloads).
   */
  restore(s: Partial<NetControlState>): void {
    if (s.filter !== undefined && s.filter !== null) this.filter.restore(s.filter);
    if (typeof s.guestOffloads === 'string' && /^[0-9a-f]{1,16}$/i.test(s.guestOffloads)) {
      this.guestOffloads = BigInt('0x' + s.guestOffloads) & this.features & GUEST_OFFLOAD_MASK;
      this.onOffloads?.(this.guestOffloads);
    }
    if (Number.isInteger(s.pairs) && s.pairs! >= 1 && s.pairs! <= this.maxPairs) {
      this.pairs = s.pairs!;
      this.onPairs?.(this.pairs);
    }
    if (typeof s.mac === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(s.mac)) this.config.mac = Uint8Array.from(s.mac.split(':'), (h) => parseInt(h, 16));
    if (typeof s.announce === 'boolean') this.config.announce = s.announce && (this.features & NetF.GUEST_ANNOUNCE) !== 0n;
    if (s.hashing !== undefined && (this.features & (NetF.HASH_REPORT | NetF.RSS)) !== 0n) this.hashing = loadRss(s.hashing, this.maxPairs);
    if (s.rss !== undefined && (this.features & NetF.RSS) !== 0n) {
      this.rss = loadRss(s.rss, this.maxPairs);
      this.onRss?.(this.rss);
    }
  }

  /** Applies one parsed command; a ControlRejection when it must be answered VIRTIO_NET_ERR. */
  apply(cmd: ControlCommand): ControlRejection | { reason: 'too-many-pairs'; message: string } | null {
    const f = this.filter;
    switch (cmd.kind) {
      case 'rx-mode':
        f[cmd.mode] = cmd.on;
        return null;
      case 'mac-table':
        // §5.1.6.5.2.1: the table is updated before the command is consumed (used).
        f.setTables(cmd.unicast, cmd.multicast, cmd.unicastOverflow, cmd.multicastOverflow);
        return null;
      case 'mac-addr':
        // §5.1.6.5.2.1: mac in config space is updated before the command is consumed.
        this.config.mac = cmd.mac.slice(0, 6);
        return null;
      case 'vlan':
        f.setVlan(cmd.vid, cmd.add);
        return null;
      case 'announce-ack':
        // §5.1.6.5.4.1: the device MUST clear VIRTIO_NET_S_ANNOUNCE on the ack.
        this.stats.announceAcks++;
        this.config.announce = false;
        return null;
      case 'mq-pairs':
        if (cmd.pairs > this.maxPairs) return { reason: 'too-many-pairs', message: `${cmd.pairs} queue pairs, max_virtqueue_pairs is ${this.maxPairs}` };
        this.pairs = cmd.pairs;
        // Back to automatic steering (§5.1.6.5.5; QEMU turns RSS off the same way).
        if (this.rss !== null) {
          this.rss = null;
          this.onRss?.(null);
        }
        this.onPairs?.(cmd.pairs);
        return null;
      case 'rss': {
        const c = cmd.config;
        const worst = Math.max(c.unclassifiedQueue, c.maxTxVq - 1, ...c.indirection);
        if (cmd.steering && worst >= this.maxPairs) return { reason: 'too-many-pairs', message: `RSS_CONFIG names queue ${worst}, max_virtqueue_pairs is ${this.maxPairs}` };
        this.hashing = c.hashTypes !== 0 ? c : null;
        if (cmd.steering) {
          this.rss = c;
          this.pairs = c.maxTxVq;
          this.onRss?.(c);
          this.onPairs?.(c.maxTxVq);
        }
        return null;
      }
      case 'guest-offloads':
        this.guestOffloads = cmd.offloads;
        this.onOffloads?.(cmd.offloads);
        return null;
      case 'coalesce':
        this.onCoalesce?.(cmd.direction, cmd.maxPackets, cmd.maxUsecs);
        return null;
    }
  }

  /** Counts one failed command. */
  fail(reason: ControlFailure): void {
    this.stats.failed++;
    this.stats.failures[reason] = (this.stats.failures[reason] ?? 0) + 1;
  }

  /** A flat copy of the counters (`ctl.` prefix, failures by reason). */
  flatStats(prefix = 'ctl.'): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.stats)) {
      if (typeof v === 'number') out[prefix + k] = v;
      else for (const [r, n] of Object.entries(v as Record<string, number>)) out[`${prefix}${k}.${r}`] = n;
    }
    return out;
  }
}

/** The control virtqueue's device side: pop, parse, apply, ack. */
export class ControlQueue {
  /** The ring violation that broke the control queue (null while healthy). */
  error: VirtqueueError | null = null;
  /** The last refused command, as a sentence (for logs). */
  lastFailure: string | null = null;
  private readonly chain = new DescriptorChain();
  private readonly scratch = new Uint8Array(MAX_CONTROL_BYTES);
  private readonly ack = new Uint8Array(1);

  constructor(
    private readonly mem: GuestMemory,
    readonly queue: DeviceVirtqueue,
    readonly control: NetControl,
  ) {}

  /** Handles up to `budget` control chains (used entries visible at flush()). Returns how many. */
  process(budget: number): number {
    const q = this.queue;
    if (q.broken) return 0;
    let n = 0;
    try {
      while (n < budget) {
        const c = q.pop(this.chain);
        if (c === null) break;
        n++;
        q.addUsed(c.head, this.handle(c));
      }
    } catch (e) {
      this.queueFailed(e);
    }
    return n;
  }

  /** Publishes used control chains; true when the driver wants an interrupt. */
  flush(): boolean {
    if (this.queue.broken || this.queue.publishUsed() === 0) return false;
    return this.queue.needsNotification();
  }

  /** One chain: the used length (1 when acked, 0 when there was no room for the ack). */
  private handle(c: DescriptorChain): number {
    const ctl = this.control;
    ctl.stats.commands++;
    if (c.writableBytes < 1) {
      // The ack byte is the device-writable part (§5.1.6.5); nothing to answer into.
      ctl.fail('no-ack-room');
      this.lastFailure = `control chain ${c.head} has no device-writable byte for the ack`;
      return 0;
    }
    let status = CTRL_ERR;
    if (c.readableBytes > MAX_CONTROL_BYTES) {
      ctl.fail('too-long');
      this.lastFailure = `control chain ${c.head}: ${c.readableBytes} readable bytes (limit ${MAX_CONTROL_BYTES})`;
    } else {
      // Copy out first: the driver cannot change what was validated while it is applied.
      const len = readFromChain(this.mem, c, this.scratch.subarray(0, c.readableBytes));
      const cmd = parseControl(this.scratch, len, ctl.features);
      const r = cmd instanceof ControlRejection ? cmd : ctl.apply(cmd);
      if (r === null) {
        status = CTRL_OK;
        ctl.stats.ok++;
      } else {
        ctl.fail(r.reason);
        this.lastFailure = r.message;
      }
    }
    this.ack[0] = status;
    writeToChain(this.mem, c, this.ack, 0);
    return 1;
  }

  /**
   * Records a ring violation of the control queue (found here or by the loop reading its ring):
   * the control queue is broken (DEVICE_NEEDS_RESET), the data queues run on. A GuestMemoryError
   * counts as a 'bad-address' violation; anything else is a bug of ours and is rethrown.
   */
  queueFailed(e: unknown): void {
    let err = e;
    if (e instanceof GuestMemoryError) {
      const v = new VirtqueueError('bad-address', { queue: this.queue.index, addr: e.addr, len: e.len, detail: `a control buffer outside guest memory (${e.code})` }, { cause: e });
      this.queue.markBroken(v);
      err = v;
    }
    if (!(err instanceof VirtqueueError)) throw err;
    this.control.stats.queueErrors++;
    this.error ??= err;
  }
}
