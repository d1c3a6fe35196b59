// Multiqueue steering (virtio 1.2 §5.1.6.5.5, "Automatic receive steering in multiqueue mode"):
// one NetPort shared by N queue pairs. Frames the driver sends on any pair's transmit queue go
// to the port; each frame from the port goes to exactly one active pair's receive queue. The
// pair is the one the driver last transmitted that flow on (what §5.1.6.5.5 describes for
// automatic receive steering: a flow's packets arrive on the receive queue paired with the
// transmit queue the driver last used for it), else a flow hash. The flow key is symmetric (the two endpoints sorted), so a reply hashes like its
// request. Only IPv4/IPv6 TCP/UDP frames have flows; everything else goes to pair 0.
// Each pair sees its own NetPort view: peekRx returns the port's next frame only when it is
// steered to that pair, so frames stay in order and in the port while their pair has no buffers.
// Runs in Web Workers too: no `node:` imports.

import type { VirtioNetHdr } from './header.js';
import { portHasRx, type NetPort, type PortRxFrame } from './port.js';
import { rssInput, toeplitz, type RssConfig } from './rss.js';

/** Slots of the flow → pair table (a power of 2); a collision only moves a flow to another pair. */
const FLOW_TABLE_SLOTS = 4096;

export interface SteeringStats {
  /** Frames from the port steered to each pair. */
  rxPerPair: number[];
  /** Frames the driver sent on each pair's transmit queue. */
  txPerPair: number[];
  /** Rx frames steered by a flow the driver transmitted (the rest by hash or to pair 0). */
  rxByTxFlow: number;
  /** Rx frames steered by the RSS indirection table, and by its unclassified_queue. */
  rxByRss: number;
  rxRssUnclassified: number;
}

/** Splits one port into per-pair views and decides which pair receives each frame. */
export class PortSteering {
  readonly views: NetPort[];
  readonly stats: SteeringStats;
  /** Pairs in use (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET): frames go only to pairs below it. */
  private active = 1;
  // flow hash slot → pair + 1 (0: never transmitted)
  private readonly flowPair = new Uint16Array(FLOW_TABLE_SLOTS);
  // The steering of the port's head frame, cached until it is consumed.
  private headPair = -1;
  /** RSS_CONFIG in effect (virtio 1.2 §5.1.6.5.7), or null: automatic steering. */
  private rss: RssConfig | null = null;
  private readonly rssScratch = new Uint8Array(40);

  constructor(
    readonly inner: NetPort,
    readonly pairs: number,
  ) {
    this.stats = { rxPerPair: new Array<number>(pairs).fill(0), txPerPair: new Array<number>(pairs).fill(0), rxByTxFlow: 0, rxByRss: 0, rxRssUnclassified: 0 };
    this.views = Array.from({ length: pairs }, (_, i) => new PairView(this, i));
  }

  get activePairs(): number {
    return this.active;
  }

  /**
   * RSS steering (RSS_CONFIG) or back to automatic steering (null). With RSS every frame goes to
   * indirection_table[hash & mask], or unclassified_queue when no enabled hash type applies
   * (§5.1.6.5.7.2); the config's queues were checked against the pairs.
   */
  setRss(c: RssConfig | null): void {
    this.rss = c !== null && c.indirection.length > 0 ? c : null;
    this.headPair = -1;
  }

  /** Frames now go to pairs 0…n-1 only (§5.1.6.5.5: none on receive queues ≥ virtqueue_pairs). */
  setActivePairs(n: number): void {
    this.active = Math.max(1, Math.min(this.pairs, n));
    this.headPair = -1;
  }

  /**
   * The pair the port's head frame is steered to, when a frame was peeked and not consumed yet
   * (-1: none known). A loop waiting on the port's fd asks for input only when that pair can
   * take it: polling a readable fd for a pair without buffers would spin.
   */
  get headPairKnown(): number {
    return this.headPair;
  }

  /** @internal A frame sent on pair `pair`'s transmit queue. */
  send(pair: number, frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.stats.txPerPair[pair]!++;
    if (this.pairs > 1) {
      const h = flowHash(frame, offset, lenBytes);
      if (h >= 0) this.flowPair[h & (FLOW_TABLE_SLOTS - 1)] = pair + 1;
    }
    this.inner.send(frame, offset, lenBytes, hdr);
  }

  /** @internal The port's next frame when it is steered to `pair`, else null. */
  peekRx(pair: number): PortRxFrame | null {
    const f = this.inner.peekRx();
    if (f === null) return null;
    return this.steer(f) === pair ? f : null;
  }

  /** @internal */
  rxReady(pair: number): boolean {
    if (!portHasRx(this.inner)) return false;
    if (this.headPair >= 0) return this.headPair === pair;
    return this.peekRx(pair) !== null;
  }

  /** @internal The frame peeked for `pair` was delivered or dropped. */
  consumeRx(pair: number): void {
    this.stats.rxPerPair[pair]!++;
    this.headPair = -1;
    this.inner.consumeRx();
  }

  /** The pair the frame goes to (cached for the head frame until consumed). */
  private steer(f: PortRxFrame): number {
    if (this.headPair >= 0) return this.headPair;
    let pair = 0;
    const rss = this.rss;
    if (rss !== null) {
      const input = rssInput(f.bytes, f.offset, f.lenBytes, rss.hashTypes, this.rssScratch);
      if (input === null) {
        pair = rss.unclassifiedQueue;
        this.stats.rxRssUnclassified++;
      } else {
        pair = rss.indirection[toeplitz(rss.key, this.rssScratch, input.lenBytes) & (rss.indirection.length - 1)]!;
        this.stats.rxByRss++;
      }
      // Checked against max_virtqueue_pairs; the service may run fewer (a driver that set up fewer).
      if (pair >= this.pairs) pair = 0;
    } else if (this.active > 1) {
      const h = flowHash(f.bytes, f.offset, f.lenBytes);
      if (h >= 0) {
        const p = this.flowPair[h & (FLOW_TABLE_SLOTS - 1)]! - 1;
        if (p >= 0 && p < this.active) {
          pair = p;
          this.stats.rxByTxFlow++;
        } else {
          pair = h % this.active;
        }
      }
    }
    this.headPair = pair;
    return pair;
  }
}

/** One pair's view of the shared port. */
class PairView implements NetPort {
  constructor(
    private readonly s: PortSteering,
    private readonly pair: number,
  ) {}
  get acceptsGso(): boolean {
    return this.s.inner.acceptsGso;
  }
  get acceptsPartialCsum(): boolean {
    return this.s.inner.acceptsPartialCsum;
  }
  get fd(): number | undefined {
    return this.s.inner.fd;
  }
  negotiated(features: bigint): void {
    // One port, told once (by pair 0's device).
    if (this.pair === 0) this.s.inner.negotiated?.(features);
  }
  send(frame: Uint8Array, offset: number, lenBytes: number, hdr: Readonly<VirtioNetHdr>): void {
    this.s.send(this.pair, frame, offset, lenBytes, hdr);
  }
  peekRx(): PortRxFrame | null {
    return this.s.peekRx(this.pair);
  }
  consumeRx(): void {
    this.s.consumeRx(this.pair);
  }
  rxReady(): boolean {
    return this.s.rxReady(this.pair);
  }
}

/**
 * A symmetric hash of an Ethernet frame's IPv4/IPv6 TCP/UDP flow (both endpoints, sorted, and
 * the protocol), a non-negative 31-bit integer; -1 when the frame is not such a flow (ARP, ICMP,
 * fragments, truncated headers). A single 802.1Q tag is skipped.
 */
export function flowHash(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return -1;
  let l3 = off + 12;
  let type = (b[l3]! << 8) | b[l3 + 1]!;
  if (type === 0x8100) {
    if (len < 18) return -1;
    l3 += 4;
    type = (b[l3]! << 8) | b[l3 + 1]!;
  }
  l3 += 2;
  const end = off + len;
  let proto: number;
  let l4: number;
  let addrOff: number;
  let addrLen: number;
  if (type === 0x0800) {
    if (end - l3 < 20) return -1;
    const ihl = (b[l3]! & 0x0f) * 4;
    // Fragments other than the first carry no ports; fragments of one datagram must stay together.
    const frag = ((b[l3 + 6]! & 0x3f) << 8) | b[l3 + 7]!;
    proto = b[l3 + 9]!;
    if (ihl < 20 || frag !== 0) return -1;
    l4 = l3 + ihl;
    addrOff = l3 + 12;
    addrLen = 4;
  } else if (type === 0x86dd) {
    if (end - l3 < 40) return -1;
    proto = b[l3 + 6]!;
    l4 = l3 + 40;
    addrOff = l3 + 8;
    addrLen = 16;
  } else {
    return -1;
  }
  if ((proto !== 6 && proto !== 17) || end - l4 < 4) return -1;
  // Endpoint A = (src addr, src port), B = (dst addr, dst port): hash min(A,B) then max(A,B).
  const sPort = (b[l4]! << 8) | b[l4 + 1]!;
  const dPort = (b[l4 + 2]! << 8) | b[l4 + 3]!;
  let cmp = 0;
  for (let i = 0; i < addrLen && cmp === 0; i++) cmp = b[addrOff + i]! - b[addrOff + addrLen + i]!;
  if (cmp === 0) cmp = sPort - dPort;
  const first = cmp <= 0 ? addrOff : addrOff + addrLen;
  const second = cmp <= 0 ? addrOff + addrLen : addrOff;
  let h = 0x811c9dc5 ^ proto;
  for (let i = 0; i < addrLen; i++) h = Math.imul(h ^ b[first + i]!, 0x01000193);
  h = Math.imul(h ^ (cmp <= 0 ? sPort : dPort), 0x01000193);
  for (let i = 0; i < addrLen; i++) h = Math.imul(h ^ b[second + i]!, 0x01000193);
  h = Math.imul(h ^ (cmp <= 0 ? dPort : sPort), 0x01000193);
  // Final avalanche (murmur3 fmix) so `h % pairs` uses every bit.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & 0x7fffffff;
}
