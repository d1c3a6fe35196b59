// virtq's device as v86's own NIC (issue 21, route 2): the one virtio-net device (NetDevice under
// the DeviceLoop with a preset's policy and a port behind it) presented to the guest through the
// virtio-pci modern transport (src/transport/pci.ts, virtio 1.2 §4.1) as a PCI function on v86's
// bus, so the guest's own virtio_net driver negotiates with virtq and places its rings in v86's
// memory. The device runs inline on the emulator's thread (InlineRunner: one non-blocking turn
// of the device loop inside each notify write), over a GuestMemory that is a view of v86's
// WebAssembly memory (a plain ArrayBuffer: Atomics loads and stores are valid on it, nothing waits
// on it). A poll timer (`pollMs`) runs the loop for frames a port receives by itself (a TAP) and
// for the policy's deadlines. Turn v86's own NIC off (`net_device: { type: 'none' }`) and attach
// after v86 has loaded (the `emulator-loaded` event) and before it runs, so the BIOS finds the
// device. This reaches into v86's internals (`emulator.v86.cpu`: its I/O port table, PCI bus,
// interrupt lines and memory), which v86 does not declare public.

import { GuestMemory } from '../memory/index.js';
import {
  InlineRunner,
  MmioTransport,
  VirtioNetBackend,
  VirtioNetFrontend,
  VirtioPciTransport,
  PCI_BAR_BYTES,
  type NetPortFactory,
  type VirtioNetOptions,
  type VirtioNetState,
} from '../transport/index.js';
import { V86AdapterError } from './errors.js';
import { readDeviceState } from './device-state.js';

type Read = () => number;
type Write = (v: number) => void;
/** The parts of v86's CPU this uses (internal to v86, reachable as `emulator.v86.cpu`). */
export interface V86Cpu {
  io: {
    register_read(port: number, device: object, r8?: Read, r16?: Read, r32?: Read): void;
    register_write(port: number, device: object, w8?: Write, w16?: Write, w32?: Write): void;
  };
  devices: { pci: { register_device(d: { pci_id: number; pci_space: number[]; pci_bars: { size: number }[]; name: string }): unknown; raise_irq(id: number): void; lower_irq(id: number): void } };
  /** v86's RAM view (a Proxy that makes a fresh view of the current WebAssembly buffer on each access). */
  mem8: Uint8Array;
  wasm_memory: { buffer: ArrayBuffer };
}

export interface V86PciOptions {
  /** The virtq device: preset, MAC, MTU, queue size, withheld features, port ('host-stack' default). */
  device?: VirtioNetOptions;
  /** The port behind the device, for any NetPort (a TapPort…); overrides device.backend. */
  port?: NetPortFactory;
  /** PCI device number on bus 0 (default 13; v86 uses 5, 7, 10–12). */
  slot?: number;
  /** I/O port base of the BAR (default 0xE800, 512 ports). */
  ioBase?: number;
  /** Poll period of the device loop for port input and deadlines, ms (default 2). */
  pollMs?: number;
}

export class V86VirtioPci {
  /** Guest accesses to the BAR and interrupt edges raised (for tests and diagnostics). */
  accesses = 0;
  interrupts = 0;
  private readonly timer: ReturnType<typeof setInterval>;
  private closed = false;

  private constructor(
    readonly mem: GuestMemory,
    readonly mmio: MmioTransport,
    readonly pci: VirtioPciTransport,
    readonly runner: InlineRunner,
    pollMs: number,
    fresh: () => void,
  ) {
    this.timer = setInterval(() => (fresh(), runner.poll()), pollMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Registers virtq's virtio-net as a PCI function of a loaded, not yet running, v86. */
  static attach(emulator: unknown, opts: V86PciOptions = {}): V86VirtioPci {
    const cpu = (emulator as { v86?: { cpu?: V86Cpu } } | null)?.v86?.cpu;
    if (cpu === undefined || typeof cpu.io?.register_read !== 'function' || typeof cpu.devices?.pci?.register_device !== 'function' || !(cpu.wasm_memory?.buffer instanceof ArrayBuffer)) {
      throw new V86AdapterError('bad-emulator', 'no v86 CPU at emulator.v86.cpu (attach after the emulator-loaded event)');
    }
    const slot = opts.slot ?? 13;
    const ioBase = opts.ioBase ?? 0xe800;
    const pollMs = opts.pollMs ?? 2;
    if (!Number.isInteger(slot) || slot < 2 || slot > 31) throw new V86AdapterError('bad-options', `slot ${slot}: a PCI device number 2–31`);
    if (!Number.isInteger(ioBase) || ioBase < 0x1000 || ioBase % PCI_BAR_BYTES !== 0 || ioBase + PCI_BAR_BYTES > 0x10000) {
      throw new V86AdapterError('bad-options', `ioBase 0x${ioBase.toString(16)}: a multiple of 0x${PCI_BAR_BYTES.toString(16)} in 0x1000–0xffff`);
    }
    if (!(pollMs > 0)) throw new V86AdapterError('bad-options', `pollMs ${String(opts.pollMs)}: need a number > 0`);
    // v86's RAM: guest-physical 0 at mem8's offset in the WebAssembly memory (not shared). A
    // grown WebAssembly memory has a new buffer: the region is re-pointed before the device runs
    // (the rings' views follow GuestMemory.generation).
    const region = (): { guestAddr: number; buffer: ArrayBuffer; byteOffset: number; length: number } => ({
      guestAddr: 0,
      buffer: cpu.wasm_memory.buffer,
      byteOffset: cpu.mem8.byteOffset,
      length: cpu.mem8.length,
    });
    const mem = new GuestMemory([region()]);
    const fresh = (): void => {
      if (mem.regionTable[0]!.buffer !== cpu.wasm_memory.buffer) mem.setRegions([region()]);
    };
    const device = opts.device ?? {};
    const runner = new InlineRunner(new VirtioNetBackend(device, opts.port), mem);
    const mmio = new MmioTransport({ mem, device: new VirtioNetFrontend(device), runner });
    const pci = new VirtioPciTransport(mmio, { barBase: ioBase, io: true });
    const pciId = slot << 3;
    const self = new V86VirtioPci(mem, mmio, pci, runner, pollMs, fresh);
    pci.onInterrupt = (asserted) => {
      if (asserted) {
        self.interrupts++;
        cpu.devices.pci.raise_irq(pciId);
      } else cpu.devices.pci.lower_irq(pciId);
    };
    for (let i = 0; i < PCI_BAR_BYTES; i++) {
      const off = i;
      cpu.io.register_read(
        ioBase + i,
        self,
        () => (self.accesses++, pci.read(off, 1)),
        () => (self.accesses++, pci.read(off, 2)),
        () => (self.accesses++, pci.read(off, 4)),
      );
      cpu.io.register_write(
        ioBase + i,
        self,
        (v) => (self.accesses++, fresh(), pci.write(off, v, 1)),
        (v) => (self.accesses++, fresh(), pci.write(off, v, 2)),
        (v) => (self.accesses++, fresh(), pci.write(off, v, 4)),
      );
    }
    cpu.devices.pci.register_device({ pci_id: pciId, pci_space: Array.from(pci.configSpace()), pci_bars: [{ size: PCI_BAR_BYTES }], name: 'virtq-net' });
    return self;
  }

  /** The feature bits the guest's driver accepted (after FEATURES_OK). */
  get driverFeatures(): bigint {
    return this.mmio.negotiatedFeatures;
  }

  /** The device's state (counters; the host stack's when it stands behind), null before DRIVER_OK. */
  async deviceState(): Promise<VirtioNetState | null> {
    return readDeviceState(this.runner);
  }

  /** Stops the poll timer and the device (the guest sees a dead NIC afterwards). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.runner.close();
  }
}
