// Feature bits and negotiation (virtio 1.2 §5.1.3, §5.1.3.1): every dependency rule, violated,
// yields a named feature-dependency error; consistent sets pass unchanged; the device-style
// variant drops exactly the bits that must go.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  NetF,
  VirtioF,
  FEATURE_RULES,
  negotiate,
  negotiateDropDependents,
  violatedRules,
  describeFeatures,
  describeRule,
  featureName,
  hasFeature,
  type FeatureRule,
} from '../src/net/features.js';
import { NetError } from '../src/net/errors.js';

const SEED = Number(process.env.FC_SEED ?? 20240601);
const ALL_BITS = [...Object.values(NetF), ...Object.values(VirtioF)];

/** Adds every bit each present feature requires, until nothing changes. */
function closeUnder(features: bigint): bigint {
  for (let changed = true; changed; ) {
    changed = false;
    for (const r of FEATURE_RULES) {
      if (!(features & r.feature)) continue;
      for (const m of r.requires) {
        if ((features & m) === 0n) {
          features |= m;
          changed = true;
        }
      }
    }
  }
  return features;
}

test('the spec bit numbers are the ones of virtio 1.2 §5.1.3 and §6', () => {
  assert.equal(NetF.CSUM, 1n);
  assert.equal(NetF.GUEST_CSUM, 2n);
  assert.equal(NetF.MRG_RXBUF, 1n << 15n);
  assert.equal(NetF.CTRL_VQ, 1n << 17n);
  assert.equal(NetF.NOTF_COAL, 1n << 53n);
  assert.equal(NetF.HASH_REPORT, 1n << 57n);
  assert.equal(VirtioF.NOTIFY_ON_EMPTY, 1n << 24n);
  assert.equal(VirtioF.EVENT_IDX, 1n << 29n);
  assert.equal(VirtioF.VERSION_1, 1n << 32n);
  assert.equal(VirtioF.IN_ORDER, 1n << 35n);
});

test('describeFeatures names set bits lowest first and shows unassigned bits by number', () => {
  const names = describeFeatures(NetF.CSUM | NetF.MRG_RXBUF | VirtioF.VERSION_1 | (1n << 44n));
  assert.deepEqual(names, ['VIRTIO_NET_F_CSUM', 'VIRTIO_NET_F_MRG_RXBUF', 'VIRTIO_F_VERSION_1', 'bit 44']);
  assert.deepEqual(describeFeatures(0n), []);
  assert.equal(featureName(VirtioF.EVENT_IDX), 'VIRTIO_F_EVENT_IDX');
  assert.ok(hasFeature(NetF.CSUM | NetF.MAC, NetF.MAC));
});

test('GUEST_TSO4 without GUEST_CSUM fails with an error naming the rule', () => {
  const r = negotiate(NetF.GUEST_TSO4 | NetF.GUEST_CSUM, NetF.GUEST_TSO4);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.ok(r.error instanceof NetError);
  assert.equal(r.error.code, 'feature-dependency');
  assert.match(r.error.message, /VIRTIO_NET_F_GUEST_TSO4 requires VIRTIO_NET_F_GUEST_CSUM/);
  assert.match(r.error.message, /driver accepted/);
  assert.match(r.error.message, /§5\.1\.3\.1/);
});

test('an offer that already breaks a rule is blamed on the device', () => {
  const r = negotiate(NetF.HOST_TSO4, NetF.HOST_TSO4 | NetF.CSUM);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.error.message, /device offered.*HOST_TSO4 requires VIRTIO_NET_F_CSUM/);
});

test('ECN needs one of the two TSO bits, either one is enough', () => {
  const base = NetF.GUEST_CSUM | NetF.CSUM;
  const all = (1n << 128n) - 1n;
  assert.equal(negotiate(all, base | NetF.GUEST_ECN).ok, false);
  assert.equal(negotiate(all, base | NetF.GUEST_ECN | NetF.GUEST_TSO6).ok, true);
  assert.equal(negotiate(all, base | NetF.HOST_ECN | NetF.HOST_TSO4).ok, true);
  const r = negotiate(all, base | NetF.HOST_ECN);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.error.message, /HOST_ECN requires VIRTIO_NET_F_HOST_TSO4 or VIRTIO_NET_F_HOST_TSO6/);
});

test('every CTRL_* style feature requires CTRL_VQ', () => {
  const all = (1n << 128n) - 1n;
  for (const f of [
    NetF.CTRL_RX,
    NetF.CTRL_VLAN,
    NetF.GUEST_ANNOUNCE,
    NetF.MQ,
    NetF.CTRL_MAC_ADDR,
    NetF.CTRL_GUEST_OFFLOADS,
    NetF.NOTF_COAL,
    NetF.VQ_NOTF_COAL,
    NetF.RSS,
  ]) {
    const r = negotiate(all, f);
    assert.equal(r.ok, false, featureName(f));
    if (!r.ok) assert.equal(r.rule.feature, f);
    assert.equal(negotiate(all, f | NetF.CTRL_VQ).ok, true, featureName(f));
  }
});

for (const rule of FEATURE_RULES) {
  test(`rule "${describeRule(rule)}" is enforced, and holds once its requirements are met`, () => {
    const all = (1n << 128n) - 1n;
    const satisfied = closeUnder(rule.feature);
    assert.deepEqual(violatedRules(satisfied), []);
    const ok = negotiate(all, satisfied);
    assert.ok(ok.ok);
    if (ok.ok) assert.equal(ok.features, satisfied);
    for (const need of rule.requires) {
      const broken = satisfied & ~need;
      const violated = violatedRules(broken);
      assert.ok(violated.includes(rule), `${describeRule(rule)} not reported for ${describeFeatures(broken)}`);
      const r = negotiate(all, broken);
      assert.equal(r.ok, false);
      if (r.ok) continue;
      assert.equal(r.error.code, 'feature-dependency');
      assert.equal(r.rule, violated[0]);
      assert.ok(r.error.message.includes(describeRule(violated[0] as FeatureRule)));
      // The device-style variant never fails and drops the dependant.
      const lenient = negotiateDropDependents(all, broken);
      assert.equal(lenient.features & rule.feature, 0n);
      assert.deepEqual(violatedRules(lenient.features), []);
    }
  });
}

test('the 2008 QEMU tap offer with a Linux 2.6.27 guest negotiates unchanged', () => {
  const offered =
    NetF.MAC | NetF.CSUM | NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN |
    NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN | NetF.MRG_RXBUF | VirtioF.NOTIFY_ON_EMPTY;
  const accepted = offered | NetF.STATUS | VirtioF.EVENT_IDX; // driver wishes more than offered
  const r = negotiate(offered, accepted);
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.features, offered);
  assert.deepEqual(negotiateDropDependents(offered, accepted), { features: offered, dropped: 0n });
});

test('dropping GUEST_CSUM cascades to GUEST_TSO4/6 and then GUEST_ECN', () => {
  const offered = NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN | NetF.MAC;
  const r = negotiateDropDependents(offered, offered);
  assert.equal(r.features, NetF.MAC);
  assert.equal(r.dropped, NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN);
});

test('property: lenient negotiation yields the largest consistent subset, strict agrees when it succeeds', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const mask = fc
    .array(fc.constantFrom(...ALL_BITS), { maxLength: ALL_BITS.length })
    .map((bits) => bits.reduce((a, b) => a | b, 0n));
  fc.assert(
    fc.property(mask, mask, (offered, accepted) => {
      const both = offered & accepted;
      const lenient = negotiateDropDependents(offered, accepted);
      assert.equal(lenient.features & ~both, 0n);
      assert.equal(lenient.features | lenient.dropped, both);
      assert.deepEqual(violatedRules(lenient.features), []);
      // Maximal: putting back any one dropped bit breaks a rule.
      for (const b of ALL_BITS) {
        if (lenient.dropped & b) assert.notDeepEqual(violatedRules(lenient.features | b), []);
      }
      const strict = negotiate(offered, accepted);
      if (strict.ok) {
        assert.equal(strict.features, both);
        assert.equal(lenient.dropped, 0n);
      } else {
        assert.notEqual(lenient.dropped, 0n);
        assert.ok(violatedRules(both).includes(strict.rule));
      }
    }),
    { seed: SEED, numRuns: 500 },
  );
});
