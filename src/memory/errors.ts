// Errors of the guest-memory layer: one class for every failed translation or access, with a
// stable `code` for programs and a message that names the guest address and length.

export type GuestMemoryErrorCode =
  | 'out-of-range' // [addr, addr+len) is not covered by the region table
  | 'overflow' // addr + len wraps past 2^64
  | 'unsafe-address' // address beyond 2^53: no JavaScript region can hold it
  | 'misaligned' // a typed view or atomic access whose address is not naturally aligned
  | 'bad-region' // a region description that is itself invalid
  | 'overlap' // two regions claim the same guest addresses
  | 'out-of-space' // the arena allocator has no room left
  | 'split-view'; // a view asked across adjacent regions of different buffers (no one view covers it)

/** Formats a guest address (number or 64-bit bigint) as 0x-prefixed hex. */
export function hexAddr(addr: number | bigint): string {
  return '0x' + addr.toString(16);
}

export class GuestMemoryError extends Error {
  override readonly name = 'GuestMemoryError';
  readonly code: GuestMemoryErrorCode;
  readonly addr: number | bigint;
  readonly len: number;

  constructor(code: GuestMemoryErrorCode, addr: number | bigint, len: number, detail?: string) {
    super(GuestMemoryError.describe(code, addr, len, detail));
    this.code = code;
    this.addr = addr;
    this.len = len;
  }

  private static describe(
    code: GuestMemoryErrorCode,
    addr: number | bigint,
    len: number,
    detail?: string,
  ): string {
    const where = `[${hexAddr(addr)}, +${len})`;
    const base: Record<GuestMemoryErrorCode, string> = {
      'out-of-range': `guest memory access ${where} is outside every memory region`,
      overflow: `guest memory access ${where} overflows the 64-bit address space`,
      'unsafe-address': `guest address ${hexAddr(addr)} (len ${len}) is beyond 2^53 and cannot be mapped`,
      misaligned: `guest memory access ${where} is not naturally aligned`,
      'bad-region': `invalid memory region at ${hexAddr(addr)} (len ${len})`,
      overlap: `memory region ${where} overlaps another region`,
      'out-of-space': `arena cannot allocate ${len} bytes`,
      'split-view': `guest memory ${where} spans adjacent regions backed by different buffers: no single view covers it`,
    };
    return detail ? `${base[code]}: ${detail}` : base[code];
  }
}
