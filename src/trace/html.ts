// The HTML view of a trace report: one self-contained file (inline CSS and SVG, no scripts, no
// network) with a row per stage (counts, percentiles and a log2 latency histogram) and the
// slowest packets as timelines coloured by stage. Pure: returns a string.

import { BIN_COUNT, BIN_MIN_LOG2, fmtNs, slowestTitle, type LatencyStats, type SlowPacket, type TraceReport } from './analyze.js';
import { PACKET_POINTS } from './schema.js';

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// One colour per stage start point, so the same stage has the same colour everywhere.
const COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
function colourOf(stage: string): string {
  const from = stage.split('→')[0]!;
  const i = (PACKET_POINTS as readonly string[]).indexOf(from);
  return COLOURS[(i < 0 ? 0 : i) % COLOURS.length]!;
}

function histogramSvg(s: LatencyStats): string {
  const W = 270;
  const H = 36;
  const bw = W / BIN_COUNT;
  const max = Math.max(1, ...s.bins);
  const bars = s.bins
    .map((c, i) => {
      if (c === 0) return '';
      const h = Math.max(1, Math.round((Math.log1p(c) / Math.log1p(max)) * (H - 2)));
      const lo = fmtNs(2 ** (i + BIN_MIN_LOG2));
      return `<rect x="${(i * bw).toFixed(1)}" y="${H - h}" width="${(bw - 1).toFixed(1)}" height="${h}" fill="${colourOf(s.name)}"><title>${esc(`${lo}–${fmtNs(2 ** (i + 1 + BIN_MIN_LOG2))}: ${c}`)}</title></rect>`;
    })
    .join('');
  return `<svg class="hist" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(s.name)} latency histogram (log2 bins, log counts)">${bars}<line x1="0" y1="${H - 0.5}" x2="${W}" y2="${H - 0.5}" stroke="#999"/></svg>`;
}

function statsRow(s: LatencyStats, cls: string): string {
  return (
    `<tr class="${cls}" data-stage="${esc(s.name)}"><th scope="row">${cls === 'stage-row' ? `<span class="sw" style="background:${colourOf(s.name)}"></span>` : ''}${esc(s.name)}</th>` +
    `<td>${s.count}</td><td>${fmtNs(s.p50Ns)}</td><td>${fmtNs(s.p90Ns)}</td><td>${fmtNs(s.p99Ns)}</td><td>${fmtNs(s.maxNs)}</td><td>${histogramSvg(s)}</td></tr>`
  );
}

function timelineSvg(p: SlowPacket, scaleNs: number): string {
  const W = 900;
  const H = 22;
  const t0 = p.points[0]!.tNs;
  const x = (t: number): number => ((t - t0) / scaleNs) * W;
  let segs = '';
  let prevT = t0;
  for (const s of p.stages) {
    const x0 = x(prevT);
    const w = Math.max(0.5, x(prevT + s.ns) - x0);
    segs += `<rect class="seg" data-stage="${esc(s.name)}" x="${x0.toFixed(2)}" y="3" width="${w.toFixed(2)}" height="${H - 6}" fill="${colourOf(s.name)}"><title>${esc(`${s.name}: ${fmtNs(s.ns)}`)}</title></rect>`;
    prevT += s.ns;
  }
  return `<svg class="timeline" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="packet ${p.seq} timeline">${segs}</svg>`;
}

function packetBlock(p: SlowPacket, scaleNs: number): string {
  const rows = p.stages.map((s) => `<tr class="packet-stage" data-stage="${esc(s.name)}"><td><span class="sw" style="background:${colourOf(s.name)}"></span>${esc(s.name)}</td><td>${fmtNs(s.ns)}</td><td>${((s.ns / Math.max(1, p.e2eNs)) * 100).toFixed(1)} %</td></tr>`).join('');
  return (
    `<details class="packet" data-seq="${p.seq}"><summary>seq ${p.seq} · ${fmtNs(p.e2eNs)} end to end · ${p.lenBytes} B</summary>` +
    `${timelineSvg(p, scaleNs)}<table class="stages"><thead><tr><th>stage</th><th>duration</th><th>share</th></tr></thead><tbody>${rows}</tbody></table></details>`
  );
}

/** Renders the report as a self-contained HTML page. */
export function renderHtml(r: TraceReport, title = 'virtq trace'): string {
  const scale = Math.max(1, ...r.slowest.map((p) => p.e2eNs));
  const run = Object.entries(r.run)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(typeof v === 'object' ? JSON.stringify(v) : String(v))}</td></tr>`)
    .join('');
  const events = Object.entries(r.events).map(([k, v]) => `<li>${esc(k)}: ${v}</li>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
th[scope=row],td:first-child{text-align:left}.sw{display:inline-block;width:10px;height:10px;margin-right:6px;vertical-align:middle}
tr.e2e-row th,tr.e2e-row td{font-weight:600;border-top:2px solid #ccc}details.packet{margin:6px 0}summary{cursor:pointer}
.note{color:#666;max-width:60em}
</style></head><body>
<h1>${esc(title)}</h1>
<p class="note">${r.packets} packets · out of order ${r.outOfOrder} · stage sums not matching end to end ${r.sumMismatches}. A stage is the time between two consecutive points of a packet; optional points (kick, wakes, interrupt) appear only when they caused the packet's progress. Histograms: log2 bins from ${fmtNs(2 ** BIN_MIN_LOG2)}, log counts.</p>
<h2>Stages</h2>
<table id="stages"><thead><tr><th>stage</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>histogram (log2 bins, ${fmtNs(2 ** BIN_MIN_LOG2)} … ${fmtNs(2 ** (BIN_MIN_LOG2 + BIN_COUNT))})</th></tr></thead>
<tbody>${r.stages.map((s) => statsRow(s, 'stage-row')).join('')}${statsRow(r.e2e, 'e2e-row')}</tbody></table>
<h2 id="slowest-title">${esc(slowestTitle(r).replace(/^s/, 'S'))}</h2>
<div id="slowest">${r.slowest.map((p, i) => packetBlock(p, scale).replace('<details', i === 0 ? '<details open' : '<details')).join('')}</div>
<h2>Events</h2><ul id="events">${events || '<li>none</li>'}</ul>
<h2>Run</h2><table id="run">${run}</table>
</body></html>
`;
}
