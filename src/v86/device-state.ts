// The one way both v86 attachments read their device's state: a save() of the device between two
// passes (it holds still meanwhile), then resume.

import type { DeviceRunner, VirtioNetState } from '../transport/index.js';

/** The device's counters (and the host stack's, when it stands behind), null before DRIVER_OK. */
export async function readDeviceState(runner: DeviceRunner): Promise<VirtioNetState | null> {
  const snap = await runner.save();
  runner.resume();
  return (snap.device as VirtioNetState | null) ?? null;
}
