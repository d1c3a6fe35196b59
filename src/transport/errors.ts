// Errors of the transport layer. Guest accesses never throw (they are counted, see mmio.ts);
// these are for the embedding program's mistakes: an impossible device description, a snapshot
// that does not fit, a worker that does not answer.

export type TransportErrorCode =
  | 'bad-device' // a frontend the transport cannot present (id 0, bad queue sizes, no VERSION_1)
  | 'bad-snapshot' // a snapshot of another format or device
  | 'unknown-kind' // no device kind registered under that name
  | 'worker-timeout' // the device thread did not answer a control command in time
  | 'worker-failed'; // the device thread reported an error

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    detail: string,
  ) {
    super(`virtio-mmio: ${detail}`);
  }
}
