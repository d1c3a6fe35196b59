// Errors of the notification layer: one class for every misplaced, unopenable or misconfigured
// doorbell, with a stable `code` for programs and a message that names the byte offset involved.

export type DoorbellErrorCode =
  | 'not-shared' // the buffer is not a SharedArrayBuffer, so Atomics.wait/notify cannot work on it
  | 'misaligned' // a control block or doorbell offset that is not on a 64-byte line
  | 'out-of-bounds' // a control block or doorbell that does not fit in the buffer
  | 'overlap' // two doorbells, or a doorbell and its control block, share bytes
  | 'bad-count' // a doorbell count outside [1, MAX_DOORBELLS]
  | 'bad-index' // a doorbell index the block does not have
  | 'not-initialised' // open() found no doorbell (or control block) at that offset
  | 'bad-option' // a wait strategy, spin budget or guard that makes no sense
  | 'unsupported'; // the platform lacks a primitive the call needs (Atomics.waitAsync)

export class DoorbellError extends Error {
  override readonly name = 'DoorbellError';
  readonly code: DoorbellErrorCode;
  /** Byte offset in the SharedArrayBuffer the error is about, or -1 when none applies. */
  readonly byteOffset: number;

  constructor(code: DoorbellErrorCode, byteOffset: number, detail: string) {
    super(DoorbellError.describe(code, byteOffset, detail));
    this.code = code;
    this.byteOffset = byteOffset;
  }

  private static describe(code: DoorbellErrorCode, byteOffset: number, detail: string): string {
    const at = byteOffset >= 0 ? ` at byte ${byteOffset}` : '';
    const base: Record<DoorbellErrorCode, string> = {
      'not-shared': 'doorbells need a SharedArrayBuffer',
      misaligned: `doorbell memory${at} is not on a 64-byte line`,
      'out-of-bounds': `doorbell memory${at} does not fit in the buffer`,
      overlap: `doorbell memory${at} overlaps another doorbell or the control block`,
      'bad-count': 'invalid doorbell count',
      'bad-index': `no such doorbell in the control block${at}`,
      'not-initialised': `no initialised doorbell memory${at}`,
      'bad-option': 'invalid doorbell option',
      unsupported: 'this platform lacks a primitive the doorbell needs',
    };
    return `${base[code]}: ${detail}`;
  }
}
