// The virtio-net control virtqueue's command format (virtio 1.2 §5.1.6.5): class and command
// numbers, the ack values, and a parser that turns the device-readable bytes of one control
// chain into a typed command or a typed rejection. Pure: no ring, no state; what a command does
// lives in NetControl (control-queue.ts). The driver is untrusted: every length is checked
// exactly against what the command carries (QEMU's virtio-net checks the same way), a command
// whose feature was not negotiated is refused, and nothing is allocated beyond the MAC tables'
// capped entries. Also encodes commands, for the driver side and for tests.
// Runs in Web Workers too: no `node:` imports.

import { NetF } from './features.js';
import { parseRssConfig, encodeRssConfig, type RssConfig } from './rss.js';

/** `ack` values the device writes (virtio 1.2 §5.1.6.5). */
export const CTRL_OK = 0;
export const CTRL_ERR = 1;

/** Command classes (virtio 1.2 §5.1.6.5.1–.6, 1.3 §5.1.6.5.9 for NOTF_COAL). */
export const CtrlClass = { RX: 0, MAC: 1, VLAN: 2, ANNOUNCE: 3, MQ: 4, GUEST_OFFLOADS: 5, NOTF_COAL: 6 } as const;
/** VIRTIO_NET_CTRL_RX commands (§5.1.6.5.1). */
export const CtrlRx = { PROMISC: 0, ALLMULTI: 1, ALLUNI: 2, NOMULTI: 3, NOUNI: 4, NOBCAST: 5 } as const;
/** VIRTIO_NET_CTRL_MAC commands (§5.1.6.5.2). */
export const CtrlMac = { TABLE_SET: 0, ADDR_SET: 1 } as const;
/** VIRTIO_NET_CTRL_VLAN commands (§5.1.6.5.3). */
export const CtrlVlan = { ADD: 0, DEL: 1 } as const;
/** VIRTIO_NET_CTRL_ANNOUNCE commands (§5.1.6.5.4). */
export const CtrlAnnounce = { ACK: 0 } as const;
/** VIRTIO_NET_CTRL_MQ commands (§5.1.6.5.5). */
export const CtrlMq = { VQ_PAIRS_SET: 0, RSS_CONFIG: 1, HASH_CONFIG: 2 } as const;
/** VIRTIO_NET_CTRL_GUEST_OFFLOADS commands (§5.1.6.5.6). */
export const CtrlOffloads = { SET: 0 } as const;
/** VIRTIO_NET_CTRL_NOTF_COAL commands (1.3 §5.1.6.5.9). */
export const CtrlNotfCoal = { TX_SET: 0, RX_SET: 1, VQ_SET: 2, VQ_GET: 3 } as const;

/** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN/MAX (§5.1.6.5.5). */
export const VQ_PAIRS_MIN = 1;
export const VQ_PAIRS_MAX = 0x8000;
/**
 * MAC filter table entries kept per table (unicast, multicast). A longer table is accepted and
 * turns that table into "accept every address of the kind", as QEMU does (MAC_TABLE_ENTRIES 64):
 * the filter is best-effort (§5.1.6.5.2), and passing more is allowed, losing frames is not.
 */
export const MAC_TABLE_ENTRIES = 64;

/**
 * Offload bits CTRL_GUEST_OFFLOADS_SET may carry (§5.1.6.5.6.1: the feature bits of the receive
 * offloads): GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO, GUEST_USO4/6.
 */
export const GUEST_OFFLOAD_MASK: bigint =
  NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.GUEST_UFO | NetF.GUEST_USO4 | NetF.GUEST_USO6;

/** The head of every control command: class and command bytes (§5.1.6.5). */
export const CTRL_HEADER_BYTES = 2;

export type RxModeName = 'promisc' | 'allmulti' | 'alluni' | 'nomulti' | 'nouni' | 'nobcast';
const RX_MODES: readonly RxModeName[] = ['promisc', 'allmulti', 'alluni', 'nomulti', 'nouni', 'nobcast'];

/** A control command as the device applies it. */
export type ControlCommand =
  | { kind: 'rx-mode'; mode: RxModeName; on: boolean }
  /** MAC filter tables (capped to MAC_TABLE_ENTRIES; `*Overflow` when the driver sent more). */
  | { kind: 'mac-table'; unicast: Uint8Array[]; multicast: Uint8Array[]; unicastOverflow: boolean; multicastOverflow: boolean }
  | { kind: 'mac-addr'; mac: Uint8Array }
  | { kind: 'vlan'; add: boolean; vid: number }
  | { kind: 'announce-ack' }
  | { kind: 'mq-pairs'; pairs: number }
  /** RSS_CONFIG (`steering`: RSS, virtio 1.2 §5.1.6.5.7) or HASH_CONFIG (hash reports only, §5.1.6.5.6.4). */
  | { kind: 'rss'; steering: boolean; config: RssConfig }
  | { kind: 'guest-offloads'; offloads: bigint }
  | { kind: 'coalesce'; direction: 'tx' | 'rx'; maxPackets: number; maxUsecs: number };

/** Why a control command was refused (answered with VIRTIO_NET_ERR and counted). */
export type ControlRejectReason =
  | 'too-short' // fewer readable bytes than class + command
  | 'unknown-class'
  | 'unknown-command'
  | 'not-negotiated' // the class or command needs a feature the driver did not accept
  | 'bad-length' // the command-specific data is not the size the command carries
  | 'bad-value'; // a value out of range (on/off byte not 0/1, VLAN id ≥ 4096, pairs outside 1..0x8000, offloads not negotiated)

/** A refused control command: the reason, the class/command bytes seen (-1: absent), a sentence. */
export class ControlRejection {
  constructor(
    readonly reason: ControlRejectReason,
    readonly cls: number,
    readonly cmd: number,
    readonly detail: string,
  ) {}
  get message(): string {
    return `control command class ${this.cls} command ${this.cmd}: ${this.detail}`;
  }
}

const CLASS_FEATURE: Readonly<Record<number, bigint>> = {
  [CtrlClass.RX]: NetF.CTRL_RX,
  // TABLE_SET comes with CTRL_RX, ADDR_SET with CTRL_MAC_ADDR (§5.1.6.5.2): either opens the class.
  [CtrlClass.MAC]: NetF.CTRL_RX | NetF.CTRL_MAC_ADDR,
  [CtrlClass.VLAN]: NetF.CTRL_VLAN,
  [CtrlClass.ANNOUNCE]: NetF.GUEST_ANNOUNCE,
  // VQ_PAIRS_SET comes with MQ, RSS_CONFIG with RSS, HASH_CONFIG with HASH_REPORT.
  [CtrlClass.MQ]: NetF.MQ | NetF.RSS | NetF.HASH_REPORT,
  [CtrlClass.GUEST_OFFLOADS]: NetF.CTRL_GUEST_OFFLOADS,
  [CtrlClass.NOTF_COAL]: NetF.NOTF_COAL,
};

/**
 * Parses the device-readable bytes `bytes[0…len)` of one control chain (class, command,
 * command-specific data; the ack lives in the writable part) under the negotiated `features`.
 * Returns the command, or a ControlRejection saying why it must be answered VIRTIO_NET_ERR.
 */
export function parseControl(bytes: Uint8Array, len: number, features: bigint): ControlCommand | ControlRejection {
  if (len < CTRL_HEADER_BYTES || bytes.length < CTRL_HEADER_BYTES) {
    return new ControlRejection('too-short', len >= 1 ? bytes[0]! : -1, -1, `${len} readable bytes, a command needs at least ${CTRL_HEADER_BYTES}`);
  }
  const cls = bytes[0]!;
  const cmd = bytes[1]!;
  const dataLen = Math.min(len, bytes.length) - CTRL_HEADER_BYTES;
  const d = bytes.subarray(CTRL_HEADER_BYTES, CTRL_HEADER_BYTES + dataLen);
  const reject = (reason: ControlRejectReason, detail: string): ControlRejection => new ControlRejection(reason, cls, cmd, detail);
  const need = CLASS_FEATURE[cls];
  if (need === undefined) return reject('unknown-class', 'no such class');
  if ((features & need) === 0n) return reject('not-negotiated', `class ${cls} needs a feature the driver did not accept`);
  const exact = (n: number): ControlRejection | null => (dataLen === n ? null : reject('bad-length', `${dataLen} data bytes, the command carries ${n}`));
  const u16 = (o: number): number => d[o]! | (d[o + 1]! << 8);
  const u32 = (o: number): number => (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0;

  switch (cls) {
    case CtrlClass.RX: {
      if (cmd > CtrlRx.NOBCAST) return reject('unknown-command', 'no such rx mode');
      // PROMISC and ALLMULTI come with CTRL_RX; the other four with CTRL_RX_EXTRA (§5.1.6.5.1).
      if (cmd >= CtrlRx.ALLUNI && (features & NetF.CTRL_RX_EXTRA) === 0n) return reject('not-negotiated', `${RX_MODES[cmd]} needs VIRTIO_NET_F_CTRL_RX_EXTRA`);
      const e = exact(1);
      if (e !== null) return e;
      if (d[0]! > 1) return reject('bad-value', `on/off byte is ${d[0]}, not 0 or 1`);
      return { kind: 'rx-mode', mode: RX_MODES[cmd]!, on: d[0] === 1 };
    }
    case CtrlClass.MAC: {
      if (cmd === CtrlMac.ADDR_SET) {
        if ((features & NetF.CTRL_MAC_ADDR) === 0n) return reject('not-negotiated', 'MAC_ADDR_SET needs VIRTIO_NET_F_CTRL_MAC_ADDR');
        const e = exact(6);
        if (e !== null) return e;
        return { kind: 'mac-addr', mac: d.slice(0, 6) };
      }
      if (cmd !== CtrlMac.TABLE_SET) return reject('unknown-command', 'no such MAC command');
      if ((features & NetF.CTRL_RX) === 0n) return reject('not-negotiated', 'MAC_TABLE_SET needs VIRTIO_NET_F_CTRL_RX');
      // Two struct virtio_net_ctrl_mac back to back: le32 entries, then entries × 6 bytes.
      const tables: Uint8Array[][] = [[], []];
      const overflow = [false, false];
      let at = 0;
      for (let t = 0; t < 2; t++) {
        if (dataLen - at < 4) return reject('bad-length', `${t === 0 ? 'unicast' : 'multicast'} table has no entry count at data offset ${at}`);
        const entries = u32(at);
        at += 4;
        if (entries > (dataLen - at) / 6) return reject('bad-length', `${t === 0 ? 'unicast' : 'multicast'} table claims ${entries} entries, ${dataLen - at} bytes remain`);
        if (entries > MAC_TABLE_ENTRIES) overflow[t] = true;
        else for (let k = 0; k < entries; k++) tables[t]!.push(d.slice(at + 6 * k, at + 6 * k + 6));
        at += 6 * entries;
      }
      if (at !== dataLen) return reject('bad-length', `${dataLen - at} bytes after the multicast table`);
      return { kind: 'mac-table', unicast: tables[0]!, multicast: tables[1]!, unicastOverflow: overflow[0]!, multicastOverflow: overflow[1]! };
    }
    case CtrlClass.VLAN: {
      if (cmd !== CtrlVlan.ADD && cmd !== CtrlVlan.DEL) return reject('unknown-command', 'no such VLAN command');
      const e = exact(2);
      if (e !== null) return e;
      const vid = u16(0);
      if (vid >= 4096) return reject('bad-value', `VLAN id ${vid} is not below 4096`);
      return { kind: 'vlan', add: cmd === CtrlVlan.ADD, vid };
    }
    case CtrlClass.ANNOUNCE: {
      if (cmd !== CtrlAnnounce.ACK) return reject('unknown-command', 'no such announce command');
      const e = exact(0);
      if (e !== null) return e;
      return { kind: 'announce-ack' };
    }
    case CtrlClass.MQ: {
      if (cmd === CtrlMq.RSS_CONFIG || cmd === CtrlMq.HASH_CONFIG) {
        const steering = cmd === CtrlMq.RSS_CONFIG;
        if ((features & (steering ? NetF.RSS : NetF.HASH_REPORT)) === 0n) return reject('not-negotiated', steering ? 'RSS_CONFIG needs VIRTIO_NET_F_RSS' : 'HASH_CONFIG needs VIRTIO_NET_F_HASH_REPORT');
        // Pairs are checked against max_virtqueue_pairs by the device (NetControl); here the wire limit.
        const c = parseRssConfig(d, steering, VQ_PAIRS_MAX);
        if (typeof c === 'string') return reject(c.includes('bytes') ? 'bad-length' : 'bad-value', c);
        return { kind: 'rss', steering, config: c };
      }
      if (cmd !== CtrlMq.VQ_PAIRS_SET) return reject('unknown-command', 'no such MQ command');
      if ((features & NetF.MQ) === 0n) return reject('not-negotiated', 'VQ_PAIRS_SET needs VIRTIO_NET_F_MQ');
      const e = exact(2);
      if (e !== null) return e;
      const pairs = u16(0);
      if (pairs < VQ_PAIRS_MIN || pairs > VQ_PAIRS_MAX) return reject('bad-value', `${pairs} queue pairs outside ${VQ_PAIRS_MIN}..${VQ_PAIRS_MAX}`);
      return { kind: 'mq-pairs', pairs };
    }
    case CtrlClass.GUEST_OFFLOADS: {
      if (cmd !== CtrlOffloads.SET) return reject('unknown-command', 'no such offloads command');
      const e = exact(8);
      if (e !== null) return e;
      const offloads = BigInt(u32(0)) | (BigInt(u32(4)) << 32n);
      // §5.1.6.5.6.1: the driver MUST NOT enable an offload it did not negotiate.
      const extra = offloads & ~(features & GUEST_OFFLOAD_MASK);
      if (extra !== 0n) return reject('bad-value', `offloads 0x${offloads.toString(16)} include bits 0x${extra.toString(16)} not negotiated`);
      return { kind: 'guest-offloads', offloads };
    }
    case CtrlClass.NOTF_COAL: {
      if (cmd === CtrlNotfCoal.VQ_SET || cmd === CtrlNotfCoal.VQ_GET) return reject('not-negotiated', 'per-queue coalescing needs VIRTIO_NET_F_VQ_NOTF_COAL');
      if (cmd !== CtrlNotfCoal.TX_SET && cmd !== CtrlNotfCoal.RX_SET) return reject('unknown-command', 'no such coalescing command');
      const e = exact(8);
      if (e !== null) return e;
      // struct virtio_net_ctrl_coal { le32 max_packets; le32 max_usecs; }
      return { kind: 'coalesce', direction: cmd === CtrlNotfCoal.TX_SET ? 'tx' : 'rx', maxPackets: u32(0), maxUsecs: u32(4) };
    }
    default:
      return reject('unknown-class', 'no such class');
  }
}

/** Encodes `cmd` as the readable bytes of a control chain (class, command, data), for drivers and tests. */
export function encodeControl(cmd: ControlCommand): Uint8Array {
  const head = (cls: number, c: number, data: Uint8Array): Uint8Array => {
    const out = new Uint8Array(CTRL_HEADER_BYTES + data.length);
    out[0] = cls;
    out[1] = c;
    out.set(data, CTRL_HEADER_BYTES);
    return out;
  };
  const le = (n: number, bytes: number): Uint8Array => {
    const b = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) b[i] = Math.floor(n / 2 ** (8 * i)) & 0xff;
    return b;
  };
  switch (cmd.kind) {
    case 'rx-mode':
      return head(CtrlClass.RX, RX_MODES.indexOf(cmd.mode), Uint8Array.of(cmd.on ? 1 : 0));
    case 'mac-table': {
      const data = new Uint8Array(8 + 6 * (cmd.unicast.length + cmd.multicast.length));
      let at = 0;
      for (const t of [cmd.unicast, cmd.multicast]) {
        data.set(le(t.length, 4), at);
        at += 4;
        for (const m of t) {
          data.set(m.subarray(0, 6), at);
          at += 6;
        }
      }
      return head(CtrlClass.MAC, CtrlMac.TABLE_SET, data);
    }
    case 'mac-addr':
      return head(CtrlClass.MAC, CtrlMac.ADDR_SET, cmd.mac.subarray(0, 6));
    case 'vlan':
      return head(CtrlClass.VLAN, cmd.add ? CtrlVlan.ADD : CtrlVlan.DEL, le(cmd.vid, 2));
    case 'announce-ack':
      return head(CtrlClass.ANNOUNCE, CtrlAnnounce.ACK, new Uint8Array(0));
    case 'mq-pairs':
      return head(CtrlClass.MQ, CtrlMq.VQ_PAIRS_SET, le(cmd.pairs, 2));
    case 'rss':
      return head(CtrlClass.MQ, cmd.steering ? CtrlMq.RSS_CONFIG : CtrlMq.HASH_CONFIG, encodeRssConfig(cmd.config, cmd.steering));
    case 'guest-offloads': {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigUint64(0, cmd.offloads, true);
      return head(CtrlClass.GUEST_OFFLOADS, CtrlOffloads.SET, data);
    }
    case 'coalesce': {
      const data = new Uint8Array(8);
      data.set(le(cmd.maxPackets, 4), 0);
      data.set(le(cmd.maxUsecs, 4), 4);
      return head(CtrlClass.NOTF_COAL, cmd.direction === 'tx' ? CtrlNotfCoal.TX_SET : CtrlNotfCoal.RX_SET, data);
    }
  }
}
