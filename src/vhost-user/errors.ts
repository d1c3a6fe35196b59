// Errors of the vhost-user backend: one class, a stable `code`, a message naming the request and
// the offending value. A VhostUserError ends the connection (the frontend broke the protocol);
// it never ends the process. Runs in Web Workers too: no `node:` imports.

export type VhostUserErrorCode =
  | 'truncated' // fewer bytes than the header or the request's payload needs
  | 'bad-version' // header flags without protocol version 1
  | 'bad-size' // payload size wrong for the request
  | 'unknown-request' // a request number this backend does not implement
  | 'unsupported' // a known request this backend refuses (SET_LOG_BASE, kick without fd, …)
  | 'bad-fds' // wrong number of file descriptors attached
  | 'bad-memory' // memory regions that overlap, are empty, misaligned or cannot be mapped
  | 'bad-queue' // queue index out of range, size not a power of 2, addresses outside memory
  | 'bad-state' // a request out of order (features after DRIVER_OK, ring use before memory…)
  | 'timeout' // a message was started but not finished in time
  | 'closed' // the frontend closed the connection
  | 'busy' // a second frontend connected while one is served: closed at once
  | 'socket-in-use' // --socket names a socket another server listens on (probed with connect)
  | 'not-a-socket'; // --socket names an existing file that is not a socket (left untouched)

export class VhostUserError extends Error {
  override readonly name = 'VhostUserError';
  constructor(
    readonly code: VhostUserErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
