// Errors of the v86 adapter: the embedding program's mistakes (a value that is not a v86
// instance, bad options) and a device that would not initialise. Never the guest's: frames
// v86's guest sends are counted, not thrown. Runs in browsers too: no `node:` imports.

export type V86AdapterErrorCode = 'bad-emulator' | 'bad-options' | 'init-failed';

export class V86AdapterError extends Error {
  override readonly name = 'V86AdapterError';
  constructor(
    readonly code: V86AdapterErrorCode,
    detail: string,
  ) {
    super(`virtq/v86: ${detail}`);
  }
}
