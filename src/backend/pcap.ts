// Classic libpcap capture files (the "pcap" format of tcpdump and Wireshark): a 24-byte global
// header (magic 0xa1b2c3d4 for microsecond or 0xa1b23c4d for nanosecond timestamps, version 2.4,
// snaplen, link type) and per packet a 16-byte record header (seconds, sub-second units, captured
// length, original length) followed by the captured bytes. All fields are written little-endian
// (readers detect the byte order from the magic). Writes go to a sink function, so this module
// runs anywhere (worker, browser); `pcap-file.ts` adds a Node file sink.

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_DEFAULT_SNAPLEN = 262144;
/** LINKTYPE_ETHERNET. */
export const LINKTYPE_ETHERNET = 1;
export const PCAP_GLOBAL_HEADER_BYTES = 24;
export const PCAP_RECORD_HEADER_BYTES = 16;

/** Receives each chunk the writer produces; it owns the chunk (the writer never reuses it). */
export type PcapSink = (chunk: Uint8Array) => void;

export interface PcapOptions {
  /** Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds. Default false. */
  nanosecond?: boolean;
  /** Bytes kept per packet; longer packets are truncated (original length recorded). */
  snaplenBytes?: number;
  linkType?: number;
}

export type PcapErrorCode = 'bad-argument' | 'closed';

/** Errors of the pcap writer: a stable `code` and a message naming the bad value. */
export class PcapError extends Error {
  override readonly name = 'PcapError';
  constructor(
    readonly code: PcapErrorCode,
    detail: string,
  ) {
    super(`pcap: ${detail}`);
  }
}

function put32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

function put16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

export class PcapWriter {
  readonly nanosecond: boolean;
  readonly snaplenBytes: number;
  readonly linkType: number;
  private headerWritten = false;
  /** Packets written so far. */
  packets = 0;

  constructor(
    private readonly sink: PcapSink,
    opts: PcapOptions = {},
  ) {
    this.nanosecond = opts.nanosecond ?? false;
    this.snaplenBytes = opts.snaplenBytes ?? PCAP_DEFAULT_SNAPLEN;
    this.linkType = opts.linkType ?? LINKTYPE_ETHERNET;
    if (!Number.isInteger(this.snaplenBytes) || this.snaplenBytes <= 0 || this.snaplenBytes > 0x7fffffff) {
      throw new PcapError('bad-argument', `snaplen ${this.snaplenBytes} must be a positive 31-bit integer`);
    }
  }

  /** Emits the global header (once; later calls do nothing). */
  writeHeader(): void {
    if (this.headerWritten) return;
    this.headerWritten = true;
    const h = new Uint8Array(PCAP_GLOBAL_HEADER_BYTES);
    put32le(h, 0, this.nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US);
    put16le(h, 4, PCAP_VERSION_MAJOR);
    put16le(h, 6, PCAP_VERSION_MINOR);
    put32le(h, 8, 0); // thiszone: timestamps are UTC
    put32le(h, 12, 0); // sigfigs
    put32le(h, 16, this.snaplenBytes);
    put32le(h, 20, this.linkType);
    this.sink(h);
  }

  /**
   * Emits one record: timestamp `tsNs` in nanoseconds since the Unix epoch (bigint for full
   * precision; a number is accepted), and `bytes[offset…offset+lenBytes)` truncated to the
   * snaplen. Copies the bytes, so the caller may reuse its buffer at once. Writes the global
   * header first if it has not been written.
   */
  writePacket(tsNs: bigint | number, bytes: Uint8Array, offset = 0, lenBytes = bytes.length - offset): void {
    if (offset < 0 || lenBytes < 0 || offset + lenBytes > bytes.length) {
      throw new PcapError('bad-argument', `packet [${offset}, +${lenBytes}) outside a ${bytes.length}-byte buffer`);
    }
    this.writeHeader();
    const ns = typeof tsNs === 'bigint' ? tsNs : BigInt(Math.round(tsNs));
    if (ns < 0n) throw new PcapError('bad-argument', `negative timestamp ${ns} ns`);
    const sec = ns / 1_000_000_000n;
    const subNs = Number(ns % 1_000_000_000n);
    const incl = Math.min(lenBytes, this.snaplenBytes);
    const rec = new Uint8Array(PCAP_RECORD_HEADER_BYTES + incl);
    put32le(rec, 0, Number(sec & 0xffffffffn));
    put32le(rec, 4, this.nanosecond ? subNs : Math.floor(subNs / 1000));
    put32le(rec, 8, incl);
    put32le(rec, 12, lenBytes);
    rec.set(bytes.subarray(offset, offset + incl), PCAP_RECORD_HEADER_BYTES);
    this.sink(rec);
    this.packets++;
  }
}

/** A sink that keeps every chunk in memory; `bytes()` concatenates them into one file image. */
export class PcapMemorySink {
  readonly chunks: Uint8Array[] = [];
  readonly sink: PcapSink = (chunk) => {
    this.chunks.push(chunk);
  };

  get lengthBytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.lengthBytes);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
