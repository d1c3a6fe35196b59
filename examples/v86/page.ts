// Browser page of the v86 example (route 1): v86 boots the guest of test/support/build-v86-guest.sh
// in the page's thread and virtq's device serves its network on a Web Worker (the adapter's
// Atomics.waitAsync watcher and poll timer keep the page's thread free). Reads ?count=N (pings);
// the result lands in globalThis.__virtqV86 for the headless test. Served by serve.ts.

import { V86NetAdapter } from '../../src/v86/index.js';

interface V86Page {
  add_listener(e: string, f: (v: number) => void): void;
  remove_listener(e: string, f: (v: Uint8Array) => void): void;
  bus?: { send(e: string, v: unknown): void };
  run(): unknown;
  stop(): unknown;
  destroy(): unknown;
}
type V86Ctor = new (o: Record<string, unknown>) => V86Page;

const doc = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } }).document;
const out = doc.getElementById('log');
const log = (s: string): void => {
  out.textContent += `\n${s}`;
};
const g = globalThis as unknown as { __virtqV86?: unknown; location: { search: string } };
const count = Number(new URLSearchParams(g.location.search).get('count') ?? 200);

try {
  // v86's own module, as the server maps it (a URL, not a package name: no bundler here).
  const v86Url = '/v86/libv86.mjs';
  const { V86 } = (await import(v86Url)) as { V86: V86Ctor };
  const emu = new V86({
    wasm_path: '/v86/v86.wasm',
    bios: { url: '/guest/bios.bin' },
    vga_bios: { url: '/guest/vgabios.bin' },
    bzimage: { url: '/guest/vmlinuz' },
    initrd: { url: '/guest/initramfs.gz' },
    cmdline: `console=ttyS0 quiet tsc=reliable mitigations=off random.trust_cpu=on VQCOUNT=${count}`,
    memory_size: 128 << 20,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: { type: 'virtio' },
  });
  // v86 loads its images asynchronously; run() before `emulator-loaded` starts a CPU that is not
  // initialised yet and the guest never boots (seen in CI when the worker started first).
  const loaded = new Promise<void>((resolve) => emu.add_listener('emulator-loaded', () => resolve()));
  const net = await V86NetAdapter.attach(emu as unknown as Parameters<typeof V86NetAdapter.attach>[0], {
    device: { preset: 'vhost', backend: { type: 'host-stack', hostIp: '10.0.2.2', guestIp: '10.0.2.15' } },
    onError: (m) => log(`device worker: ${m}`),
  });
  log(`virtq device on a Web Worker; features ${net.featureNames.join(' ')}`);
  const t0 = performance.now();
  let line = '';
  let text = '';
  const gs = globalThis as unknown as { __virtqV86Serial?: () => string };
  gs.__virtqV86Serial = () => text + line;
  emu.add_listener('serial0-output-byte', (b: number) => {
    const c = String.fromCharCode(b);
    if (c === '\r') return;
    if (c !== '\n') {
      line += c;
      return;
    }
    const s = line;
    line = '';
    text += s + '\n';
    if (/^VQ-|packets transmitted|round-trip/.test(s)) log(`${((performance.now() - t0) / 1000).toFixed(1)} s  ${s}`);
    if (s === 'VQ-DONE') {
      // Counts that stay put: the emulator stopped, every frame it sent taken by the device.
      void Promise.resolve(emu.stop())
        .then(() => net.drain())
        .then(() => net.deviceState())
        .then(async (st) => {
          const m = /(\d+) packets transmitted, (\d+) packets received/.exec(text);
          g.__virtqV86 = {
            ok: m !== null && m[1] === m[2] && Number(m[1]) === count,
            transmitted: Number(m?.[1] ?? 0),
            received: Number(m?.[2] ?? 0),
            arping: /VQ-ARPING Received 1 response/.test(text),
            stats: net.stats,
            deviceTx: st?.stats.txFrames ?? -1,
            deviceRx: st?.stats.rxFrames ?? -1,
            seconds: (performance.now() - t0) / 1000,
          };
          log(`adapter ${JSON.stringify(net.stats)}`);
          await net.close();
          await emu.destroy();
        });
    }
  });
  await loaded;
  log(`${((performance.now() - t0) / 1000).toFixed(1)} s  v86 loaded, running`);
  await emu.run();
} catch (e) {
  const msg = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
  log(`error: ${msg}`);
  g.__virtqV86 = { ok: false, error: msg };
}
