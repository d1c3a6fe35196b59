// The receive filter a virtio-net device applies to frames for the driver, as the control queue
// sets it (virtio 1.2 §5.1.6.5.1 rx modes, §5.1.6.5.2 MAC filtering, §5.1.6.5.3 VLAN filtering).
// Owns the rx-mode flags, the unicast and multicast MAC tables and the VLAN bitmap, and the one
// decision per frame: pass, or drop for its destination address or its VLAN. Without
// VIRTIO_NET_F_CTRL_RX every address passes; without VIRTIO_NET_F_CTRL_VLAN every VLAN passes.
// Hot path: a few byte compares per frame, nothing allocated. Runs in Web Workers too.

import { NetF } from './features.js';
import { MAC_TABLE_ENTRIES } from './control.js';

/** An RxFilter as plain, JSON-safe data (MACs as "52:54:00:12:34:56"). */
export interface RxFilterState {
  modes: Record<'promisc' | 'allmulti' | 'alluni' | 'nomulti' | 'nouni' | 'nobcast', boolean>;
  unicast: string[];
  multicast: string[];
  unicastOverflow: boolean;
  multicastOverflow: boolean;
  vlans: number[];
}

/** The filter's verdict on one frame. */
export type RxFilterVerdict = 'pass' | 'rx-filtered-address' | 'rx-filtered-vlan';

const ETH_P_8021Q = 0x8100;
const VLAN_IDS = 4096;

export class RxFilter {
  /**
   * Rx modes (§5.1.6.5.1). The spec gives no reset value for promiscuous mode; like QEMU's device
   * we start promiscuous, so a driver that never sends VIRTIO_NET_CTRL_RX loses nothing (Linux
   * turns it off at open when the interface is not promiscuous).
   */
  promisc = true;
  allmulti = false;
  alluni = false;
  nomulti = false;
  nouni = false;
  nobcast = false;
  /** §5.1.6.5.2: "The device MUST have an empty MAC filtering table on reset." */
  private readonly uni = new Uint8Array(6 * MAC_TABLE_ENTRIES);
  private uniCount = 0;
  private readonly multi = new Uint8Array(6 * MAC_TABLE_ENTRIES);
  private multiCount = 0;
  /** The driver sent more entries than the table keeps: accept every address of that kind. */
  uniOverflow = false;
  multiOverflow = false;
  /** One bit per VLAN id; empty on reset (QEMU's device too): tagged frames pass only once added. */
  private readonly vlans = new Uint32Array(VLAN_IDS / 32);
  private readonly filterAddresses: boolean;
  private readonly filterVlans: boolean;

  /**
   * `features`: the negotiated set (the filters exist only with CTRL_RX / CTRL_VLAN); `mac()`: the
   * device's own address as it is now (config space, or what VIRTIO_NET_CTRL_MAC_ADDR_SET set).
   */
  constructor(
    features: bigint,
    private readonly mac: () => Uint8Array,
  ) {
    this.filterAddresses = (features & NetF.CTRL_RX) !== 0n;
    this.filterVlans = (features & NetF.CTRL_VLAN) !== 0n;
  }

  /** Whether any frame can be dropped at all (false: the device skips the check). */
  get active(): boolean {
    return (this.filterAddresses && !this.promisc) || this.filterVlans;
  }

  setTables(unicast: readonly Uint8Array[], multicast: readonly Uint8Array[], unicastOverflow: boolean, multicastOverflow: boolean): void {
    this.uniCount = Math.min(unicast.length, MAC_TABLE_ENTRIES);
    for (let k = 0; k < this.uniCount; k++) this.uni.set(unicast[k]!.subarray(0, 6), 6 * k);
    this.multiCount = Math.min(multicast.length, MAC_TABLE_ENTRIES);
    for (let k = 0; k < this.multiCount; k++) this.multi.set(multicast[k]!.subarray(0, 6), 6 * k);
    this.uniOverflow = unicastOverflow;
    this.multiOverflow = multicastOverflow;
  }

  get tableSizes(): { unicast: number; multicast: number } {
    return { unicast: this.uniCount, multicast: this.multiCount };
  }

  setVlan(vid: number, on: boolean): void {
    const w = vid >>> 5;
    const b = 1 << (vid & 31);
    if (on) this.vlans[w]! |= b;
    else this.vlans[w]! &= ~b;
  }

  hasVlan(vid: number): boolean {
    return (this.vlans[vid >>> 5]! & (1 << (vid & 31))) !== 0;
  }

  /** The filter as plain data (save/restore). */
  save(): RxFilterState {
    const vlans: number[] = [];
    for (let vid = 0; vid < VLAN_IDS; vid++) if (this.hasVlan(vid)) vlans.push(vid);
    const macs = (t: Uint8Array, n: number): string[] => Array.from({ length: n }, (_, k) => Array.from(t.subarray(6 * k, 6 * k + 6), (b) => b.toString(16).padStart(2, '0')).join(':'));
    return {
      modes: { promisc: this.promisc, allmulti: this.allmulti, alluni: this.alluni, nomulti: this.nomulti, nouni: this.nouni, nobcast: this.nobcast },
      unicast: macs(this.uni, this.uniCount),
      multicast: macs(this.multi, this.multiCount),
      unicastOverflow: this.uniOverflow,
      multicastOverflow: this.multiOverflow,
      vlans,
    };
  }

  /** Restores a saved filter; malformed fields are ignored (the state comes from outside). */
  restore(s: Partial<RxFilterState>): void {
    const m = s.modes;
    if (m !== undefined && m !== null) for (const k of ['promisc', 'allmulti', 'alluni', 'nomulti', 'nouni', 'nobcast'] as const) if (typeof m[k] === 'boolean') this[k] = m[k];
    const parse = (list: unknown): Uint8Array[] =>
      Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(x)).map((x) => Uint8Array.from(x.split(':'), (h) => parseInt(h, 16))) : [];
    this.setTables(parse(s.unicast), parse(s.multicast), s.unicastOverflow === true, s.multicastOverflow === true);
    this.vlans.fill(0);
    if (Array.isArray(s.vlans)) for (const v of s.vlans) if (Number.isInteger(v) && v >= 0 && v < VLAN_IDS) this.setVlan(v, true);
  }

  /** The verdict on the Ethernet frame `bytes[off…off+len)` (len ≥ 14: the device checked). */
  check(bytes: Uint8Array, off: number, len: number): RxFilterVerdict {
    // Promiscuous mode receives everything, whatever the other modes say (§5.1.6.5.1.1).
    if (this.filterAddresses && this.promisc) return 'pass';
    if (this.filterVlans && len >= 18 && ((bytes[off + 12]! << 8) | bytes[off + 13]!) === ETH_P_8021Q) {
      const vid = ((bytes[off + 14]! << 8) | bytes[off + 15]!) & 0xfff;
      if (!this.hasVlan(vid)) return 'rx-filtered-vlan';
    }
    if (!this.filterAddresses) return 'pass';
    const b0 = bytes[off]!;
    if (b0 & 1) {
      if (isBroadcast(bytes, off)) return this.nobcast ? 'rx-filtered-address' : 'pass';
      // NOMULTI wins over ALLMULTI; it does not apply to broadcast (§5.1.6.5.1.1).
      if (this.nomulti) return 'rx-filtered-address';
      if (this.allmulti || this.multiOverflow) return 'pass';
      return inTable(this.multi, this.multiCount, bytes, off) ? 'pass' : 'rx-filtered-address';
    }
    // NOUNI wins over ALLUNI (§5.1.6.5.1.1).
    if (this.nouni) return 'rx-filtered-address';
    if (this.alluni || this.uniOverflow) return 'pass';
    // §5.1.6.5.2.1: drop what matches neither mac (or MAC_ADDR_SET's) nor the table.
    if (sameMac(this.mac(), 0, bytes, off)) return 'pass';
    return inTable(this.uni, this.uniCount, bytes, off) ? 'pass' : 'rx-filtered-address';
  }
}

function isBroadcast(b: Uint8Array, off: number): boolean {
  return (b[off]! & b[off + 1]! & b[off + 2]! & b[off + 3]! & b[off + 4]! & b[off + 5]!) === 0xff;
}

function sameMac(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

function inTable(table: Uint8Array, count: number, b: Uint8Array, off: number): boolean {
  for (let k = 0; k < count; k++) if (sameMac(table, 6 * k, b, off)) return true;
  return false;
}
