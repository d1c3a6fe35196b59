// Errors of the virtqueue layer: every ring or chain violation, by either side, with a stable
// `code` and a message naming the queue, the index and the address involved.

import { hexAddr } from '../memory/errors.js';

export type VirtqueueErrorCode =
  | 'bad-layout' // queue size or ring address invalid at setup
  | 'queue-broken' // the queue already failed; it needs a reset (DEVICE_NEEDS_RESET)
  | 'avail-idx-jump' // avail.idx moved more than the queue size past the device's index
  | 'head-out-of-range' // avail ring entry names a descriptor >= queue size
  | 'next-out-of-range' // a descriptor's next field is outside its table
  | 'descriptor-loop' // the chain revisits a descriptor (longer than its table)
  | 'zero-length-descriptor'
  | 'chain-too-large' // total chain length exceeds 2^32 - 1 bytes
  | 'chain-too-long' // §2.7.5.3.1: more descriptors than the Queue Size (indirect tables included)
  | 'readable-after-writable' // §2.7.4.2: device-readable descriptors must come first
  | 'indirect-not-negotiated'
  | 'nested-indirect' // §2.7.5.3.1: an indirect table must not contain INDIRECT
  | 'indirect-with-next' // §2.7.5.3.1: INDIRECT and NEXT must not both be set
  | 'indirect-bad-length' // table length zero or not a multiple of 16
  | 'indirect-misaligned' // no longer raised: §2.7.5.3 lets a table sit at any address
  | 'bad-address' // a buffer or table outside guest memory (cause: GuestMemoryError)
  | 'used-idx-jump' // driver: used.idx moved more than the queue size
  | 'used-id-out-of-range' // driver: used element id >= queue size
  | 'used-id-not-head' // driver: used element id is not an outstanding chain head
  | 'used-len-too-large' // driver: used length exceeds the chain's writable bytes
  | 'buffer-id-out-of-range' // packed: a chain's buffer id >= queue size (§2.8.6)
  | 'buffer-id-in-use' // packed: a chain reuses the buffer id of a chain still in flight
  | 'bad-argument'; // an API misuse by the caller (not guest input)

export interface VirtqueueErrorContext {
  queue?: number;
  head?: number;
  index?: number;
  addr?: number | bigint;
  len?: number;
  seen?: number;
  size?: number;
  detail?: string;
}

export class VirtqueueError extends Error {
  override readonly name = 'VirtqueueError';
  readonly code: VirtqueueErrorCode;
  readonly context: VirtqueueErrorContext;

  constructor(code: VirtqueueErrorCode, context: VirtqueueErrorContext = {}, options?: { cause?: unknown }) {
    super(VirtqueueError.describe(code, context), options);
    this.code = code;
    this.context = context;
  }

  private static describe(code: VirtqueueErrorCode, c: VirtqueueErrorContext): string {
    const q = `queue ${c.queue ?? '?'}`;
    const head = c.head !== undefined ? ` from head ${c.head}` : '';
    const at = c.addr !== undefined ? ` at ${hexAddr(c.addr)}` : '';
    const detail = c.detail ? `: ${c.detail}` : '';
    switch (code) {
      case 'bad-layout':
        return `${q}: invalid ring layout${at}${detail}`;
      case 'queue-broken':
        return `${q}: queue is broken and needs a reset${detail}`;
      case 'avail-idx-jump':
        return `${q}: avail.idx ${c.index} is ${c.seen} entries ahead of the device, more than queue size ${c.size}`;
      case 'head-out-of-range':
        return `${q}: avail ring entry ${c.index} names head ${c.head}, outside queue size ${c.size}`;
      case 'next-out-of-range':
        return `${q}: descriptor chain${head}: descriptor ${c.index} points to next ${c.seen}, outside its table of ${c.size}`;
      case 'descriptor-loop':
        return `${q}: descriptor chain${head} loops (${c.seen} descriptors seen, table size ${c.size})`;
      case 'zero-length-descriptor':
        return `${q}: descriptor chain${head}: descriptor ${c.index} has length 0`;
      case 'chain-too-long':
        return `${q}: descriptor chain${head} holds ${c.seen} descriptors${c.detail ? ` (${c.detail})` : ''} at descriptor ${c.index}, more than queue size ${c.size}`;
      case 'chain-too-large':
        return `${q}: descriptor chain${head} totals more than 2^32 - 1 bytes`;
      case 'readable-after-writable':
        return `${q}: descriptor chain${head}: readable descriptor ${c.index} follows a writable one`;
      case 'indirect-not-negotiated':
        return `${q}: descriptor chain${head}: descriptor ${c.index} is INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated`;
      case 'nested-indirect':
        return `${q}: descriptor chain${head}: indirect table entry ${c.index} is itself INDIRECT`;
      case 'indirect-with-next':
        return `${q}: descriptor chain${head}: descriptor ${c.index} sets both INDIRECT and NEXT`;
      case 'indirect-bad-length':
        return `${q}: descriptor chain${head}: indirect table${at} has length ${c.len}, not a non-zero multiple of 16`;
      case 'indirect-misaligned':
        return `${q}: descriptor chain${head}: indirect table${at} is not 16-byte aligned`;
      case 'bad-address':
        return `${q}: descriptor chain${head}: descriptor ${c.index} buffer${at} (len ${c.len}) is outside guest memory${detail}`;
      case 'used-idx-jump':
        return `${q}: used.idx ${c.index} is ${c.seen} entries ahead of the driver, more than queue size ${c.size}`;
      case 'used-id-out-of-range':
        return `${q}: used element ${c.index} has id ${c.head}, outside queue size ${c.size}`;
      case 'used-id-not-head':
        return `${q}: used element ${c.index} has id ${c.head}, which is not an outstanding chain head`;
      case 'used-len-too-large':
        return `${q}: used element ${c.index} for head ${c.head} reports ${c.len} bytes, more than the chain's ${c.seen} writable bytes`;
      case 'buffer-id-out-of-range':
        return `${q}: chain at ring position ${c.index} has buffer id ${c.head}, outside queue size ${c.size}`;
      case 'buffer-id-in-use':
        return `${q}: chain at ring position ${c.index} reuses buffer id ${c.head}, which is still in flight`;
      case 'bad-argument':
        return `${q}: ${c.detail ?? 'invalid argument'}`;
    }
  }
}
