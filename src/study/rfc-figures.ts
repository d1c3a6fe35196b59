// The 2008 virtio_net RFC's own figures (kvm mailing list, Mark McLoughlin: kvm-71-26-g6152996,
// Linux v2.6.26-5752-g93ded9b guest, host tap, no bridge), as data, row by row in the RFC's
// order. Each figure is [min, avg, max, stddev]: throughput in Gb/s (netperf TCP_STREAM,
// 10 × 20 s), latency in ms (ping -f -c 100000: min/avg/max/mdev). null = not measured.
// 2008 hardware under KVM: shown beside our figures for shape, never as a target.

export type RfcFigure = readonly [min: number, avg: number, max: number, stddev: number];

export interface RfcRowFigures {
  row: string;
  throughputGbps: { g2h: RfcFigure; h2g: RfcFigure };
  pingMs: { g2h: RfcFigure | null; h2g: RfcFigure | null };
}

export const RFC_SOURCE = 'virtio_net RFC, kvm list 2008 (kvm-71-26-g6152996, Linux v2.6.26-5752-g93ded9b; 2008 hardware under KVM)';

const T: [string, RfcFigure, RfcFigure][] = [
  ['baseline', [1.52, 1.573, 1.61, 0.034], [1.16, 1.357, 1.63, 0.165]],
  ['50us tx timer + rearm', [1.05, 1.086, 1.11, 0.017], [1.71, 1.832, 1.96, 0.092]],
  ['250us tx timer + rearm', [1.7, 1.764, 1.88, 0.064], [0.9, 1.203, 1.58, 0.205]],
  ['150us tx timer + rearm', [1.52, 1.602, 1.69, 0.044], [1.67, 1.928, 2.15, 0.141]],
  ['no ring-full heuristic', [1.48, 1.569, 1.71, 0.066], [1.61, 1.857, 2.14, 0.153]],
  ['VIRTIO_F_NOTIFY_ON_EMPTY', [1.47, 1.554, 1.65, 0.054], [1.77, 1.96, 2.17, 0.119]],
  ['recv NO_NOTIFY', [1.53, 1.604, 1.68, 0.047], [1.78, 1.944, 2.19, 0.129]],
  ['GSO', [4.12, 4.323, 4.42, 0.099], [6.54, 7.033, 7.34, 0.244]],
  ['ring size == 256', [4.05, 4.406, 4.56, 0.143], [6.28, 7.236, 8.28, 0.613]],
  ['ring size == 512', [4.42, 4.6, 4.96, 0.14], [6.47, 7.205, 7.51, 0.314]],
  ['drop mutex during tapfd read', [4.32, 4.578, 4.79, 0.161], [8.37, 8.589, 8.73, 0.12]],
  ['aligouri zero-copy', [4.51, 4.694, 4.96, 0.148], [8.43, 8.614, 8.84, 0.142]],
];

const P: [string, RfcFigure | null, RfcFigure | null][] = [
  ['baseline', [0.06, 0.459, 7.602, 0.846], [0.067, 0.331, 2.517, 0.057]],
  ['50us tx timer + rearm', [0.081, 0.143, 7.436, 0.374], [0.093, 0.133, 1.883, 0.026]],
  ['250us tx timer + rearm', [0.302, 0.463, 7.58, 0.849], [0.297, 0.344, 2.128, 0.028]],
  ['150us tx timer + rearm', [0.197, 0.323, 7.671, 0.74], [0.199, 0.245, 7.836, 0.037]],
  ['no ring-full heuristic', [0.182, 0.324, 7.688, 0.753], [0.199, 0.243, 2.197, 0.03]],
  ['VIRTIO_F_NOTIFY_ON_EMPTY', [0.197, 0.321, 7.447, 0.73], [0.196, 0.242, 2.218, 0.032]],
  ['recv NO_NOTIFY', [0.186, 0.321, 7.52, 0.732], [0.2, 0.233, 2.216, 0.028]],
  ['GSO', [0.178, 0.324, 7.667, 0.736], [0.147, 0.246, 1.361, 0.024]],
  ['ring size == 256', [0.184, 0.323, 7.674, 0.728], [0.199, 0.243, 2.181, 0.028]],
  ['ring size == 512', null, null],
  ['drop mutex during tapfd read', [0.183, 0.323, 7.82, 0.733], [0.202, 0.242, 2.219, 0.027]],
  ['aligouri zero-copy', [0.185, 0.325, 7.863, 0.736], [0.202, 0.245, 7.844, 0.036]],
];

/** The RFC's rows in its order (row names spelled as in the RFC, "aligouri" included). */
export const RFC_FIGURES: readonly RfcRowFigures[] = T.map(([row, g2h, h2g], i) => {
  const p = P[i]!;
  if (p[0] !== row) throw new Error(`rfc-figures: row ${i} is "${row}" in one table and "${p[0]}" in the other`);
  return { row, throughputGbps: { g2h, h2g }, pingMs: { g2h: p[1], h2g: p[2] } };
});

/** The RFC's five conclusions, in its words (abridged). */
export const RFC_CONCLUSIONS: readonly string[] = [
  'The length of the tx mitigation timer makes quite a difference to throughput; a heuristic to adjust it on the fly is probably needed.',
  'GSO support in tun/tap gives a huge boost, much more so on the host->guest side.',
  'Adjusting the virtio_net ring sizes makes a small difference, not as much as one might expect.',
  'Dropping the global mutex while reading GSO packets from the tap interface gives a nice speedup (the global mutex is a general performance issue).',
  'Eliminating an extra copy on the host->guest path makes a barely measurable difference.',
];

export function rfcFiguresFor(row: string): RfcRowFigures | null {
  return RFC_FIGURES.find((r) => r.row === row) ?? null;
}
