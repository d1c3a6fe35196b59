// The rows against a real Linux guest (`virtq study --guest qemu`) as tables beside the
// in-process rows and the RFC's 2008 figures: throughput both ways, the guest's own flood ping,
// and the device's mechanism counters per cell; rows whose mechanism is the guest driver's say
// so. Rows as plain string cells, for the text and the Markdown renderers. Pure.

import type { GuestMechanism, GuestRowResult, GuestStreamCell, GuestStudyInfo } from './guest-plan.js';
import type { RowResult, StudyReport } from './report.js';

function n(x: number | null | undefined, digits: number): string {
  return x !== null && x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : '—';
}

export const GUEST_HEADER = ['row', 'guest g->h Gb/s', 'guest h->g Gb/s', 'guest ping -f avg ms', 'loss', 'in-process g->h / h->g', 'RFC 2008 g->h / h->g', 'queues'];

function rowCells(r: RowResult, g: GuestRowResult): string[] {
  const inProc = `${n(r.stream.g2h?.gbps.avg, 3)} / ${n(r.stream.h2g?.gbps.avg, 3)}`;
  const rfc = r.rfc !== null ? `${n(r.rfc.throughputGbps.g2h?.[1], 3)} / ${n(r.rfc.throughputGbps.h2g?.[1], 3)}` : '—';
  const q = `${g.device.queueSize}${g.device.clampedFrom !== undefined ? ` (row: ${g.device.clampedFrom})` : ''}`;
  if (g.home === 'driver') return [r.name, 'fixed by the Linux driver', '', '', '', inProc, rfc, q];
  const st = (c: GuestStreamCell | null): string => (c === null ? 'not run' : c.iperf !== null ? n(c.iperf.gbps, 3) : 'error');
  const p = g.ping;
  const ping = p === null ? 'not run' : p.ping !== null ? n(p.ping.avgMs, 3) : 'error';
  const loss = p?.ping ? `${p.ping.transmitted - p.ping.received}/${p.ping.transmitted}` : '—';
  return [r.name, st(g.stream?.g2h ?? null), st(g.stream?.h2g ?? null), ping, loss, inProc, rfc, q];
}

/** Rows of the guest table (rows the guest study did not cover are left out). */
export function guestRows(report: StudyReport): string[][] {
  return report.rows.filter((r) => r.guest !== undefined).map((r) => rowCells(r, r.guest!));
}

export const GUEST_MECHANISM_HEADER = ['row', 'cell', 'packets', 'kicks/pkt', 'irqs/pkt', 'batch', 'timer/pkt', 'ring-full flushes'];

function mech(row: string, cell: string, m: GuestMechanism | null | undefined): string[] {
  return [row, cell, m ? String(m.packets) : '—', n(m?.kicksPerPacket, 3), n(m?.interruptsPerPacket, 3), n(m?.avgBatch, 1), n(m?.timerFiresPerPacket, 4), m ? String(m.ringFullFlushes) : '—'];
}

/** The device's counters per guest cell (both queues' frames are the packets). */
export function guestMechanismRows(report: StudyReport): string[][] {
  return report.rows.flatMap((r) => {
    const g = r.guest;
    if (g === undefined || g.home === 'driver') return [];
    return [mech(r.name, 'g->h', g.stream?.g2h?.mechanism), mech(r.name, 'h->g', g.stream?.h2g?.mechanism), mech(r.name, 'ping', g.ping?.mechanism)];
  });
}

/** One paragraph: how the guest ran (QEMU version, KVM or TCG and why, boots, the plan). */
export function guestSummary(info: GuestStudyInfo): string {
  const boots = info.boots.map((b) => `${b.key} (${b.rows.length} row(s), booted in ${b.bootSeconds.toFixed(1)} s)`).join(', ');
  return (
    `Linux virtio_net in QEMU ${info.qemuVersion} under ${info.accel.toUpperCase()}` +
    (info.kvmRefused !== undefined ? ` (/dev/kvm opened but QEMU could not run the guest with it: "${info.kvmRefused}")` : '') +
    (info.accel === 'tcg' ? ' — an emulated CPU: compare rows with each other, not with KVM or 2008 figures' : '') +
    `; guest initramfs ${info.initramfsVersion}; iperf3 -t ${info.seconds} each way and ping -f -c ${info.count} from the guest to the host end of a TAP behind virtq's vhost-user device; ` +
    `presets switched between cells without rebooting; ${info.boots.length} boot(s): ${boots || 'none'}; ${info.totalSeconds.toFixed(1)} s in all.` +
    (info.error !== undefined ? ` Stopped early: ${info.error}` : '')
  );
}

/** Errors of guest cells, one line each. */
export function guestProblems(report: StudyReport): string[] {
  return report.rows.flatMap((r) => {
    const g = r.guest;
    if (g === undefined) return [];
    const out: string[] = [];
    for (const d of ['g2h', 'h2g'] as const) if (g.stream?.[d]?.error !== undefined) out.push(`${r.name} guest stream ${d}: ${g.stream[d]!.error}`);
    if (g.ping?.error !== undefined) out.push(`${r.name} guest ping: ${g.ping.error}`);
    if (g.ping?.ping && g.ping.ping.received < g.ping.ping.transmitted) out.push(`${r.name} guest ping: ${g.ping.ping.transmitted - g.ping.ping.received} of ${g.ping.ping.transmitted} lost`);
    return out;
  });
}
