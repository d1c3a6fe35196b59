// v86 (an x86 PC emulator compiled to WebAssembly, npm `v86`) boots Linux headless in Node with
// virtq as its network path, the in-memory host stack at 10.0.2.2 behind virtq's device. Route 1
// (default, src/v86/adapter.ts): every frame the guest's NIC (v86's own, --nic) sends
// (`net0-send`) goes through virtq's driver queue to the one NetDevice, on a worker thread
// (default) or inline; frames for the guest come back through `net0-receive`. Route 2 (--pci,
// src/v86/pci.ts): v86's NIC is off and virtq's device is the guest's PCI virtio-net (virtio-pci
// modern), inline, its rings in v86's memory, driven by the guest's own virtio_net. The guest is test/support/build-v86-guest.sh's (Debian i386 kernel + busybox,
// built once into ~/.cache/virtq/v86-guest): it arpings and pings the host stack (`ping -A`)
// and powers off. Prints the guest's console lines that matter, the boot and ping times, and
// the adapter's and the device's counters.
//
//   bash test/support/build-v86-guest.sh ~/.cache/virtq/v86-guest
//   node dist/examples/v86/boot.js [--count 1000] [--size 56] [--inline] [--preset vhost] [--nic virtio|ne2k] [--guest DIR]
//   node dist/examples/v86/boot.js --pci [--count 1000] [--preset vhost]
//   node dist/examples/v86/boot.js --own   # v86's own virtio-net and no network behind it: boot time only

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V86 } from 'v86';
import { V86NetAdapter, V86VirtioPci } from '../../src/v86/index.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}
const COUNT = process.argv.includes('--own') ? 1 : Number(arg('--count', '1000'));
const SIZE = Number(arg('--size', '56'));
const PRESET = arg('--preset', 'vhost');
const NIC = arg('--nic', 'virtio') as 'virtio' | 'ne2k';
const DIR = arg('--guest', join(homedir(), '.cache', 'virtq', 'v86-guest'));
const INLINE = process.argv.includes('--inline');
const PCI = process.argv.includes('--pci');
const OWN = process.argv.includes('--own');

const file = (name: string): { buffer: ArrayBuffer } => {
  const b = readFileSync(join(DIR, name));
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
};
const emu = new V86({
  wasm_path: fileURLToPath(new URL('v86.wasm', import.meta.resolve('v86'))),
  bios: file('bios.bin'),
  vga_bios: file('vgabios.bin'),
  bzimage: file('vmlinuz'),
  initrd: file('initramfs.gz'),
  cmdline: `console=ttyS0 quiet tsc=reliable mitigations=off random.trust_cpu=on VQCOUNT=${COUNT} VQSIZE=${SIZE}`,
  memory_size: 128 << 20,
  autostart: false,
  disable_keyboard: true,
  disable_mouse: true,
  disable_speaker: true,
  net_device: { type: PCI ? ('none' as 'virtio') : NIC },
});
// v86 loads its images asynchronously: run() (and the PCI attach) wait for `emulator-loaded`.
const loaded = new Promise<void>((resolve) => emu.add_listener('emulator-loaded', () => resolve()));
const device = { preset: PRESET, backend: { type: 'host-stack', hostIp: '10.0.2.2', guestIp: '10.0.2.15' } } as const;
let net: V86NetAdapter | null = null;
let pci: V86VirtioPci | null = null;
if (PCI) {
  // Route 2: on v86's PCI bus before the BIOS runs.
  await loaded;
  pci = V86VirtioPci.attach(emu, { device });
  console.log(`virtq device as the guest's PCI virtio-net (inline), preset ${PRESET}`);
} else if (!OWN) {
  net = await V86NetAdapter.attach(emu, { runner: INLINE ? 'inline' : 'worker', device, onError: (m) => console.error(`device worker: ${m}`) });
  console.log(`virtq device ${INLINE ? 'inline' : 'on a worker'}, preset ${PRESET}, v86 NIC ${NIC}; virtq driver ↔ device features: ${net.featureNames.join(' ')}`);
} else {
  console.log(`v86's own ${NIC} and nothing behind it (pings go unanswered): boot time only`);
}

const t0 = performance.now();
let line = '';
let pingAt = 0;
emu.add_listener('serial0-output-byte', (b: number) => {
  const c = String.fromCharCode(b);
  if (c !== '\n') {
    if (c !== '\r') line += c;
    return;
  }
  const s = line;
  line = '';
  const at = ((performance.now() - t0) / 1000).toFixed(1);
  if (s === 'VQ-PING-BEGIN') {
    pingAt = performance.now();
    console.log(`${at} s  guest up, pinging 10.0.2.2`);
  } else if (/^VQ-ARP|^VQ-FEATURES|packets transmitted|round-trip/.test(s)) {
    console.log(`${at} s  ${s}`);
  } else if (s === 'VQ-PING-END') {
    console.log(`${at} s  ${COUNT} pings took ${((performance.now() - pingAt) / 1000).toFixed(2)} s`);
  } else if (s === 'VQ-DONE') {
    void finish();
  }
});

async function finish(): Promise<void> {
  const st = net !== null ? await net.deviceState() : pci !== null ? await pci.deviceState() : null;
  if (net !== null) console.log(`adapter: ${JSON.stringify(net.stats)}`);
  if (pci !== null) console.log(`pci: ${pci.accesses} BAR accesses, ${pci.interrupts} interrupts, guest features 0x${pci.driverFeatures.toString(16)}`);
  if (st) console.log(`device: ${st.stats.txFrames} frames from the guest, ${st.stats.rxFrames} to it, ${st.stats.txDropped + st.stats.rxDropped} dropped`);
  await net?.close();
  await pci?.close();
  await emu.destroy();
  process.exit(0);
}
setTimeout(() => {
  console.error('the guest did not finish within 300 s');
  process.exit(1);
}, 300_000).unref();
await loaded;
await emu.run();
