// virtio-net feature bits and their negotiation. Owns the bit numbers of the network device
// (virtio 1.2 §5.1.3, plus the later bits of virtio 1.4 §5.1.3) and the device-independent
// transport bits (virtio 1.2 §6), as bigint masks because bits reach past 32; the dependency
// rules of virtio 1.2 §5.1.3.1 (extended by 1.4) and two ways of applying them: `negotiate`
// fails with the violated rule (what a strict driver or a validating device does before
// FEATURES_OK), `negotiateDropDependents` clears dependants until the set is consistent (what a
// forgiving device does). Knows nothing of transports, config space or queues.

import { NetError } from './errors.js';

const bit = (n: number): bigint => 1n << BigInt(n);

/** Network device feature bits (virtio 1.2 §5.1.3; bits ≥ 50 other than 56/57/59–63 are 1.4). */
export const NetF = {
  CSUM: bit(0),
  GUEST_CSUM: bit(1),
  CTRL_GUEST_OFFLOADS: bit(2),
  MTU: bit(3),
  MAC: bit(5),
  /** Legacy only (virtio 1.2 §5.1.3.2): "any GSO type", superseded by the per-type bits. */
  GSO: bit(6),
  GUEST_TSO4: bit(7),
  GUEST_TSO6: bit(8),
  GUEST_ECN: bit(9),
  GUEST_UFO: bit(10),
  HOST_TSO4: bit(11),
  HOST_TSO6: bit(12),
  HOST_ECN: bit(13),
  HOST_UFO: bit(14),
  MRG_RXBUF: bit(15),
  STATUS: bit(16),
  CTRL_VQ: bit(17),
  CTRL_RX: bit(18),
  CTRL_VLAN: bit(19),
  CTRL_RX_EXTRA: bit(20),
  GUEST_ANNOUNCE: bit(21),
  MQ: bit(22),
  CTRL_MAC_ADDR: bit(23),
  DEVICE_STATS: bit(50),
  HASH_TUNNEL: bit(51),
  VQ_NOTF_COAL: bit(52),
  NOTF_COAL: bit(53),
  GUEST_USO4: bit(54),
  GUEST_USO6: bit(55),
  HOST_USO: bit(56),
  HASH_REPORT: bit(57),
  GUEST_HDRLEN: bit(59),
  RSS: bit(60),
  RSC_EXT: bit(61),
  STANDBY: bit(62),
  SPEED_DUPLEX: bit(63),
  RSS_CONTEXT: bit(64),
  GUEST_UDP_TUNNEL_GSO: bit(65),
  GUEST_UDP_TUNNEL_GSO_CSUM: bit(66),
  HOST_UDP_TUNNEL_GSO: bit(67),
  HOST_UDP_TUNNEL_GSO_CSUM: bit(68),
} as const;

/** Device-independent (transport / ring) feature bits (virtio 1.2 §6). */
export const VirtioF = {
  /** Legacy only (virtio 1.2 §6.3). */
  NOTIFY_ON_EMPTY: bit(24),
  /** Legacy only (virtio 1.2 §6.3); implied by VERSION_1. */
  ANY_LAYOUT: bit(27),
  INDIRECT_DESC: bit(28),
  EVENT_IDX: bit(29),
  VERSION_1: bit(32),
  ACCESS_PLATFORM: bit(33),
  RING_PACKED: bit(34),
  IN_ORDER: bit(35),
  ORDER_PLATFORM: bit(36),
  SR_IOV: bit(37),
  NOTIFICATION_DATA: bit(38),
  NOTIF_CONFIG_DATA: bit(39),
  RING_RESET: bit(40),
} as const;

export type NetFeatureName = keyof typeof NetF;
export type VirtioFeatureName = keyof typeof VirtioF;

/** True when every bit of `mask` is set in `features`. */
export function hasFeature(features: bigint, mask: bigint): boolean {
  return (features & mask) === mask;
}

const NAMES: ReadonlyArray<readonly [bigint, string]> = [
  ...Object.entries(NetF).map(([k, v]) => [v, `VIRTIO_NET_F_${k}`] as const),
  ...Object.entries(VirtioF).map(([k, v]) => [v, `VIRTIO_F_${k}`] as const),
].sort((a, b) => (a[0] < b[0] ? -1 : 1));

/** Spec name of a single-bit mask (`VIRTIO_NET_F_CSUM`), or `bit N` when the bit is unassigned. */
export function featureName(mask: bigint): string {
  for (const [m, name] of NAMES) if (m === mask) return name;
  let n = 0;
  while (mask > 1n) {
    mask >>= 1n;
    n++;
  }
  return `bit ${n}`;
}

/** Names of the set bits, lowest bit first; unassigned bits appear as `bit N`. */
export function describeFeatures(features: bigint): string[] {
  if (features < 0n) throw new NetError('bad-argument', 'features', 'feature mask is negative');
  const out: string[] = [];
  for (let n = 0, rest = features; rest !== 0n; n++, rest >>= 1n) {
    if (rest & 1n) out.push(featureName(bit(n)));
  }
  return out;
}

/**
 * One feature-bit requirement. `requires` is a conjunction of alternatives: for each mask in the
 * list, at least one of its bits must be present ("requires A or B" is one mask A|B; "requires
 * A and B" is two masks).
 */
export interface FeatureRule {
  readonly feature: bigint;
  readonly requires: readonly bigint[];
  /** Where the rule comes from, e.g. "virtio 1.2 §5.1.3.1". */
  readonly source: string;
}

const S12 = 'virtio 1.2 §5.1.3.1';
const S14 = 'virtio 1.4 §5.1.3.1';

/**
 * The dependency rules: virtio 1.2 §5.1.3.1 as written, the later ones of 1.4 for the 1.4 bits,
 * and CTRL_GUEST_OFFLOADS → CTRL_VQ, which the list omits but which follows from the offloads
 * command travelling on the control queue (virtio 1.2 §5.1.6.5, "Offloads State Configuration").
 */
export const FEATURE_RULES: readonly FeatureRule[] = [
  { feature: NetF.GUEST_TSO4, requires: [NetF.GUEST_CSUM], source: S12 },
  { feature: NetF.GUEST_TSO6, requires: [NetF.GUEST_CSUM], source: S12 },
  { feature: NetF.GUEST_ECN, requires: [NetF.GUEST_TSO4 | NetF.GUEST_TSO6], source: S12 },
  { feature: NetF.GUEST_UFO, requires: [NetF.GUEST_CSUM], source: S12 },
  { feature: NetF.GUEST_USO4, requires: [NetF.GUEST_CSUM], source: S14 },
  { feature: NetF.GUEST_USO6, requires: [NetF.GUEST_CSUM], source: S14 },
  {
    feature: NetF.GUEST_UDP_TUNNEL_GSO,
    requires: [NetF.GUEST_TSO4, NetF.GUEST_TSO6, NetF.GUEST_USO4, NetF.GUEST_USO6],
    source: S14,
  },
  { feature: NetF.GUEST_UDP_TUNNEL_GSO_CSUM, requires: [NetF.GUEST_UDP_TUNNEL_GSO], source: S14 },
  { feature: NetF.HOST_TSO4, requires: [NetF.CSUM], source: S12 },
  { feature: NetF.HOST_TSO6, requires: [NetF.CSUM], source: S12 },
  { feature: NetF.HOST_ECN, requires: [NetF.HOST_TSO4 | NetF.HOST_TSO6], source: S12 },
  { feature: NetF.HOST_UFO, requires: [NetF.CSUM], source: S12 },
  { feature: NetF.HOST_USO, requires: [NetF.CSUM], source: S12 },
  {
    feature: NetF.HOST_UDP_TUNNEL_GSO,
    requires: [NetF.HOST_TSO4, NetF.HOST_TSO6, NetF.HOST_USO],
    source: S14,
  },
  { feature: NetF.HOST_UDP_TUNNEL_GSO_CSUM, requires: [NetF.HOST_UDP_TUNNEL_GSO], source: S14 },
  { feature: NetF.CTRL_RX, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.CTRL_VLAN, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.GUEST_ANNOUNCE, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.MQ, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.CTRL_MAC_ADDR, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.RSC_EXT, requires: [NetF.HOST_TSO4 | NetF.HOST_TSO6], source: S12 },
  { feature: NetF.RSS, requires: [NetF.CTRL_VQ], source: S12 },
  { feature: NetF.NOTF_COAL, requires: [NetF.CTRL_VQ], source: S14 },
  { feature: NetF.VQ_NOTF_COAL, requires: [NetF.CTRL_VQ], source: S14 },
  {
    feature: NetF.HASH_TUNNEL,
    requires: [NetF.CTRL_VQ, NetF.RSS | NetF.HASH_REPORT],
    source: S14,
  },
  { feature: NetF.RSS_CONTEXT, requires: [NetF.CTRL_VQ, NetF.RSS], source: S14 },
  {
    feature: NetF.CTRL_GUEST_OFFLOADS,
    requires: [NetF.CTRL_VQ],
    source: 'virtio 1.2 §5.1.6.5 (offloads are set over the control queue)',
  },
];

/** "VIRTIO_NET_F_GUEST_ECN requires VIRTIO_NET_F_GUEST_TSO4 or VIRTIO_NET_F_GUEST_TSO6". */
export function describeRule(rule: FeatureRule): string {
  const alt = rule.requires.map((m) => describeFeatures(m).join(' or '));
  return `${featureName(rule.feature)} requires ${alt.join(' and ')}`;
}

function ruleHolds(rule: FeatureRule, features: bigint): boolean {
  if ((features & rule.feature) === 0n) return true;
  for (const m of rule.requires) if ((features & m) === 0n) return false;
  return true;
}

/** Every rule `features` violates, in table order (empty when the set is consistent). */
export function violatedRules(features: bigint): FeatureRule[] {
  return FEATURE_RULES.filter((r) => !ruleHolds(r, features));
}

export type NegotiationResult =
  | { readonly ok: true; readonly features: bigint }
  | { readonly ok: false; readonly error: NetError; readonly rule: FeatureRule };

/**
 * Strict negotiation: the result is `offered ∩ accepted`, and it must satisfy every dependency
 * rule, else the first violated rule is returned as a `feature-dependency` error (a device
 * refuses FEATURES_OK in that case, virtio 1.2 §2.2.2). The message says whether the
 * device's own offer was already inconsistent ("device MUST NOT offer a feature which requires
 * another feature which was not offered", virtio 1.2 §2.2.2) or the driver's selection broke it.
 */
export function negotiate(offered: bigint, accepted: bigint): NegotiationResult {
  const features = offered & accepted;
  for (const rule of FEATURE_RULES) {
    if (ruleHolds(rule, features)) continue;
    const who = ruleHolds(rule, offered) ? 'driver accepted' : 'device offered';
    const error = new NetError(
      'feature-dependency',
      'features',
      `${who} an inconsistent set: ${describeRule(rule)} (${rule.source})`,
    );
    return { ok: false, error, rule };
  }
  return { ok: true, features };
}

export interface LenientNegotiation {
  /** `offered ∩ accepted` minus every bit whose requirements were not met. */
  readonly features: bigint;
  /** Bits removed to make the set consistent (0n when nothing was dropped). */
  readonly dropped: bigint;
}

/**
 * Device-style negotiation: take `offered ∩ accepted` and clear every feature whose requirement
 * is missing, repeating until nothing changes (dropping GUEST_CSUM takes GUEST_TSO4 with it,
 * which in turn takes GUEST_ECN). Never fails.
 */
export function negotiateDropDependents(offered: bigint, accepted: bigint): LenientNegotiation {
  const start = offered & accepted;
  let features = start;
  for (let changed = true; changed; ) {
    changed = false;
    for (const rule of FEATURE_RULES) {
      if (!ruleHolds(rule, features)) {
        features &= ~rule.feature;
        changed = true;
      }
    }
  }
  return { features, dropped: start & ~features };
}
