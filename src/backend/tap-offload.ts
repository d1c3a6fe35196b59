// Which TUNSETOFFLOAD flags a negotiated virtio-net feature set allows. TUNSETOFFLOAD tells the
// kernel what the reader of the TAP accepts, i.e. what the *guest* accepts on its receive queue:
// the GUEST_* bits (virtio 1.2 §5.1.3). The kernel refuses TSO/UFO flags without TUN_F_CSUM, so
// they are dropped when GUEST_CSUM is absent (GUEST_TSO* also require GUEST_CSUM, §5.1.3.1).
// Pure: no addon needed, so it is unit-tested everywhere.

import { NetF } from '../net/features.js';

/** linux/if_tun.h values (stable kernel ABI). */
export const TunF = { CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, UFO: 0x10 } as const;

export function tunOffloadFlags(features: bigint): number {
  if ((features & NetF.GUEST_CSUM) === 0n) return 0;
  let f: number = TunF.CSUM;
  if (features & NetF.GUEST_TSO4) f |= TunF.TSO4;
  if (features & NetF.GUEST_TSO6) f |= TunF.TSO6;
  if (features & NetF.GUEST_ECN && f & (TunF.TSO4 | TunF.TSO6)) f |= TunF.TSO_ECN;
  if (features & NetF.GUEST_UFO) f |= TunF.UFO;
  return f;
}
