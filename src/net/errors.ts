// Errors of the virtio-net data layer (feature negotiation, virtio_net_hdr codec, frame builders
// and parsers, software GSO): one class for the whole family, with a stable `code` for programs
// and a message that names the layer, the offset and what was wrong. Parsers *return* these on
// malformed input (guest and wire data is untrusted, so a bad frame is an expected outcome, not
// an exception); builders and encoders *throw* them when the caller's output buffer is too small.
// Runs in Web Workers too: no `node:` imports.

export type NetErrorCode =
  | 'truncated' // the input ends before the header or field being read
  | 'malformed' // a field holds an impossible value (IP version, header length, total length…)
  | 'unsupported' // well-formed but outside what this module handles (ARP hardware type, …)
  | 'no-room' // a builder/encoder was given an output buffer too small for what it writes
  | 'bad-argument' // a caller-supplied value out of range (port > 65535, MAC of 5 bytes, …)
  | 'feature-dependency' // a feature set violates virtio 1.2 §5.1.3.1 (feature bit requirements)
  | 'bad-csum-offsets' // csum_start/csum_offset do not lie inside the frame (virtio 1.2 §5.1.6.2)
  | 'bad-gso'; // a frame that cannot be segmented as its virtio_net_hdr asks

export class NetError extends Error {
  override readonly name = 'NetError';
  readonly code: NetErrorCode;
  /** Which layer or structure the error is about: 'ipv4', 'tcp', 'virtio_net_hdr', 'features', … */
  readonly layer: string;
  /** Byte offset in the input where the offending structure starts (-1 when not applicable). */
  readonly offset: number;

  constructor(code: NetErrorCode, layer: string, detail: string, offset = -1) {
    super(offset >= 0 ? `${layer} at offset ${offset}: ${detail}` : `${layer}: ${detail}`);
    this.code = code;
    this.layer = layer;
    this.offset = offset;
  }
}

/** The error a parser returns when `need` bytes at `offset` are not all inside `[0, end)`. */
export function truncated(layer: string, offset: number, need: number, end: number): NetError {
  const have = Math.max(0, end - offset);
  return new NetError('truncated', layer, `needs ${need} bytes, only ${have} available`, offset);
}

/** Throws `no-room` unless `[offset, offset + need)` fits inside `buf`. For builders. */
export function ensureRoom(layer: string, buf: Uint8Array, offset: number, need: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + need > buf.length) {
    throw new NetError(
      'no-room',
      layer,
      `needs ${need} bytes of output, buffer has ${Math.max(0, buf.length - offset)}`,
      offset,
    );
  }
}
