// The study chart as one self-contained SVG (no scripts, fonts or external references): per
// row, throughput bars (average Gb/s, whiskers min–max over runs) for guest→host and
// host→guest on a linear axis, and beside them flood-ping latency bars (average RTT, whiskers
// min–p99, max as a number) on a log axis; the RFC's 2008 averages as hollow diamonds. Every
// row is one <g class="row-group" data-row="…">. Pure string building.

import type { Direction } from './measure.js';
import type { RowResult, StudyReport } from './report.js';

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const LABEL_W = 230;
const TP_X = LABEL_W + 10;
const TP_W = 390;
const LAT_X = TP_X + TP_W + 60;
const LAT_W = 310;
const TOP = 84;
const MAX_FONT = 9;
// An upper bound on a sans-serif glyph's advance in em (digits and lower case are ~0.55): the
// "max … ms" labels are sized from it so the longest one fits inside the viewBox.
const EM_ADVANCE = 0.65;
const ROW_H = 34;
const BAR_H = 11;
const COLORS: Record<Direction, string> = { g2h: '#3b6fb6', h2g: '#d9822b' };

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
const num = (x: number): string => (Math.round(x * 10) / 10).toString();

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function diamond(cx: number, cy: number, r: number, title: string): string {
  return `<path class="rfc-mark" d="M${num(cx)} ${num(cy - r)}L${num(cx + r)} ${num(cy)}L${num(cx)} ${num(cy + r)}L${num(cx - r)} ${num(cy)}Z" fill="none" stroke="#222" stroke-width="1.2"><title>${xmlEscape(title)}</title></path>`;
}

function whisker(x1: number, x2: number, y: number): string {
  if (!Number.isFinite(x1) || !Number.isFinite(x2)) return '';
  return `<path class="whisker" d="M${num(x1)} ${num(y)}H${num(x2)}M${num(x1)} ${num(y - 4)}V${num(y + 4)}M${num(x2)} ${num(y - 4)}V${num(y + 4)}" stroke="#111" stroke-width="1"/>`;
}

/** Renders the report's rows as the study chart. */
export function renderSvg(report: StudyReport): string {
  const rows = report.rows;
  const H = TOP + rows.length * ROW_H + 70;
  const maxLabel = (us: number): string => `max ${us >= 1000 ? `${fmt(us / 1000, 1)} ms` : `${us} µs`}`;
  let labelChars = 0;
  for (const r of rows) for (const d of ['g2h', 'h2g'] as Direction[]) {
    const p = r.ping[d]?.result;
    if (p && p.rtt.count > 0) labelChars = Math.max(labelChars, maxLabel(p.rtt.maxUs).length);
  }
  // The widest label starts at most 4 px right of the latency axis; the chart is that much wider.
  const W = LAT_X + LAT_W + 4 + Math.ceil(labelChars * MAX_FONT * EM_ADVANCE) + 10;
  let tpMax = 0;
  let latMaxUs = 1;
  for (const r of rows) {
    for (const d of ['g2h', 'h2g'] as Direction[]) {
      const s = r.stream[d];
      if (s && Number.isFinite(s.gbps.max)) tpMax = Math.max(tpMax, s.gbps.max);
      if (r.rfc) tpMax = Math.max(tpMax, r.rfc.throughputGbps[d][1]);
      const p = r.ping[d]?.result;
      if (p && Number.isFinite(p.p99Us)) latMaxUs = Math.max(latMaxUs, p.p99Us, p.rtt.avgUs);
      const rp = r.rfc?.pingMs[d];
      if (rp) latMaxUs = Math.max(latMaxUs, rp[1] * 1000);
    }
  }
  const tpTop = niceMax(tpMax);
  const tpx = (g: number): number => TP_X + (Math.max(0, g) / tpTop) * TP_W;
  const decades = Math.max(1, Math.ceil(Math.log10(latMaxUs)));
  const latx = (us: number): number => LAT_X + (Math.log10(Math.max(1, us)) / decades) * LAT_W;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<title>virtq study: throughput and flood-ping latency per preset</title>`);
  out.push(`<desc>${xmlEscape(`${report.generatedAt}; ${report.plan.runs} x ${report.plan.seconds} s stream runs, ${report.plan.count} pings; RFC 2008 averages as diamonds (2008 hardware under KVM)`)}</desc>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  // Each panel's title is short enough to end well before the next panel starts; what the
  // marks mean goes on the line below it.
  out.push(`<text class="panel-title" x="${TP_X}" y="20" font-size="13" font-weight="bold">Throughput, Gb/s</text>`);
  out.push(`<text x="${TP_X}" y="36" fill="#555">bar = avg, whiskers = min–max over runs</text>`);
  out.push(`<text class="panel-title" x="${LAT_X}" y="20" font-size="13" font-weight="bold">Flood-ping RTT, µs, log scale</text>`);
  out.push(`<text x="${LAT_X}" y="36" fill="#555">bar = avg, whiskers = min–p99, number = max</text>`);
  // Legend.
  out.push(`<g class="legend"><rect x="${TP_X}" y="46" width="12" height="${BAR_H}" fill="${COLORS.g2h}"/><text x="${TP_X + 16}" y="56">guest→host</text>`);
  out.push(`<rect x="${TP_X + 100}" y="46" width="12" height="${BAR_H}" fill="${COLORS.h2g}"/><text x="${TP_X + 116}" y="56">host→guest</text>`);
  out.push(`${diamond(TP_X + 215, 52, 5, 'RFC 2008 average')}<text x="${TP_X + 225}" y="56">RFC 2008 avg (2008 hardware, KVM)</text></g>`);
  // Axes and grid.
  const axisY = TOP + rows.length * ROW_H + 6;
  out.push('<g class="axes" stroke="#ccc">');
  for (let i = 0; i <= 5; i++) {
    const v = (tpTop * i) / 5;
    const x = tpx(v);
    out.push(`<line x1="${num(x)}" y1="${TOP - 6}" x2="${num(x)}" y2="${axisY}"/><text x="${num(x)}" y="${axisY + 14}" text-anchor="middle" stroke="none" fill="#333">${fmt(v, v < 10 ? 1 : 0)}</text>`);
  }
  for (let k = 0; k <= decades; k++) {
    const x = latx(10 ** k);
    out.push(`<line x1="${num(x)}" y1="${TOP - 6}" x2="${num(x)}" y2="${axisY}"/><text x="${num(x)}" y="${axisY + 14}" text-anchor="middle" stroke="none" fill="#333">${10 ** k >= 1000 ? `${10 ** (k - 3)} ms` : `${10 ** k}`}</text>`);
  }
  out.push('</g>');

  rows.forEach((r: RowResult, i: number) => {
    const y0 = TOP + i * ROW_H;
    out.push(`<g class="row-group" data-row="${xmlEscape(r.name)}">`);
    out.push(`<text class="row-label" x="${LABEL_W}" y="${y0 + 16}" text-anchor="end"${r.kind === 'modern' ? ' font-style="italic"' : ''}>${xmlEscape(r.name)}</text>`);
    (['g2h', 'h2g'] as Direction[]).forEach((d, j) => {
      const y = y0 + 2 + j * (BAR_H + 2);
      const cy = y + BAR_H / 2;
      const s = r.stream[d];
      if (s && Number.isFinite(s.gbps.avg)) {
        out.push(`<rect class="bar tp ${d}" x="${TP_X}" y="${y}" width="${num(Math.max(1, tpx(s.gbps.avg) - TP_X))}" height="${BAR_H}" fill="${COLORS[d]}"><title>${xmlEscape(`${r.name} ${d}: avg ${fmt(s.gbps.avg, 3)} Gb/s (min ${fmt(s.gbps.min, 3)}, max ${fmt(s.gbps.max, 3)}, ${s.gbps.n} runs)`)}</title></rect>`);
        out.push(whisker(tpx(s.gbps.min), tpx(s.gbps.max), cy));
      } else {
        out.push(`<text x="${TP_X + 4}" y="${y + 9}" fill="#a00">${xmlEscape(s?.error ? 'error' : 'not run')}</text>`);
      }
      if (r.rfc) out.push(diamond(tpx(r.rfc.throughputGbps[d][1]), cy, 4, `RFC 2008 ${d}: ${r.rfc.throughputGbps[d][1]} Gb/s`));
      const p = r.ping[d]?.result;
      if (p && p.rtt.count > 0) {
        out.push(`<rect class="bar lat ${d}" x="${LAT_X}" y="${y}" width="${num(Math.max(1, latx(p.rtt.avgUs) - LAT_X))}" height="${BAR_H}" fill="${COLORS[d]}" fill-opacity="0.8"><title>${xmlEscape(`${r.name} ping ${d}: ${p.rtt.line}; p50 ${p.p50Us} µs, p99 ${p.p99Us} µs`)}</title></rect>`);
        out.push(whisker(latx(p.rtt.minUs), latx(p.p99Us), cy));
        out.push(`<text x="${num(Math.min(LAT_X + LAT_W, latx(p.p99Us)) + 4)}" y="${y + 9}" font-size="${MAX_FONT}" fill="#555">${xmlEscape(maxLabel(p.rtt.maxUs))}</text>`);
      } else {
        out.push(`<text x="${LAT_X + 4}" y="${y + 9}" fill="#a00">${xmlEscape(r.ping[d]?.error ? 'error' : 'no replies')}</text>`);
      }
      const rp = r.rfc?.pingMs[d];
      if (rp) out.push(diamond(latx(rp[1] * 1000), cy, 4, `RFC 2008 ping ${d}: avg ${rp[1]} ms`));
    });
    out.push('</g>');
  });
  out.push(`<text x="10" y="${H - 12}" fill="#555">${xmlEscape(`${report.rfcSource}. Ours: ${report.machine.cpus} CPUs (${report.machine.cpuModel}), node ${report.machine.node}, ${report.plan.mode} presets.`)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
