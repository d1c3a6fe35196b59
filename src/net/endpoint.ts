// A tiny network endpoint that speaks real frames: answers ARP and ICMP/ICMPv6 echo, pings its
// peer, runs one TCP-like stream sink (in-order check, payload count and verification, ACKs at a
// configurable rate) and one stream source (MSS-sized segments or GSO frames, a send window
// opened by the peer's ACKs). It is pull-based on output — `nextFrame` builds the next frame into
// the caller's buffer (a guest tx buffer, or the host stack's rx staging) only when asked — so it
// never queues data. The same class is the in-memory host stack behind a NetPort and the guest
// application on top of a NetDriver. No TCP handshake, retransmission or congestion control: the
// path is lossless or the loss is an error to report. Runs in Web Workers (no `node:` imports).

import { NetError } from './errors.js';
import { copyBytes } from '../memory/copy.js';
import { NetHdrFlags, GsoType, clearNetHdr, type VirtioNetHdr } from './header.js';
import type { PortRxTail } from './port.js';
import {
  ArpOp,
  IcmpType,
  Icmpv6Type,
  IpProto,
  TcpFlags,
  buildArpFrame,
  buildIcmpEchoFrame,
  buildTcpFrame,
  macEquals,
  newFrameLayout,
  newParsedPacket,
  parsePacket,
  verifyL4Checksum,
  type IcmpEchoFrameFields,
  type IpFields,
  type ParsedPacket,
} from './frames/index.js';

/** Period of the stream payload pattern (a prime, so successive frames see different bytes). */
export const PATTERN_PERIOD = 65521;
const PATTERN = makePattern(PATTERN_PERIOD + 65536);

function makePattern(n: number): Uint8Array {
  const p = new Uint8Array(n);
  let x = 0x2545f491;
  for (let i = 0; i < PATTERN_PERIOD; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    p[i] = x & 0xff;
  }
  for (let i = PATTERN_PERIOD; i < n; i++) p[i] = p[i - PATTERN_PERIOD]!;
  return p;
}

/** The `len` pattern bytes of the stream at byte offset `streamOffset` (a view, do not write). */
export function streamPattern(streamOffset: number, len: number): Uint8Array {
  const at = streamOffset % PATTERN_PERIOD;
  return PATTERN.subarray(at, at + len);
}

/**
 * The pattern again from byte `s` of its own buffer, for s in 0…7 (SHIFTED[0] is PATTERN; the
 * others are made on first use). A copy into shared memory runs 8 bytes at a time only when its
 * source and destination agree mod 8 (src/memory/copy.ts): with the copy whose shift suits the
 * destination, the stream source hands out payload at any alignment without a bounce.
 */
const SHIFTED: (Uint8Array | undefined)[] = [PATTERN, undefined, undefined, undefined, undefined, undefined, undefined, undefined];

/**
 * Where the pattern bytes of the stream at `streamOffset` start in a buffer (patternBuffer of the
 * same `align`) whose byte address is `align` mod 8.
 */
function alignedPatternIndex(streamOffset: number, align: number): number {
  const at = streamOffset % PATTERN_PERIOD;
  return at + ((align - at) & 7);
}

function patternBuffer(streamOffset: number, align: number): Uint8Array {
  const shift = (align - (streamOffset % PATTERN_PERIOD)) & 7;
  let p = SHIFTED[shift];
  if (p === undefined) {
    p = new Uint8Array(shift + PATTERN.length);
    p.set(PATTERN, shift);
    SHIFTED[shift] = p;
  }
  return p;
}

export interface EndpointOptions {
  mac: Uint8Array;
  ip: number;
  ip6?: Uint8Array;
  peerMac: Uint8Array;
  peerIp: number;
  peerIp6?: Uint8Array;
  mtu?: number;
  /** Frames this endpoint emits may carry a partial checksum with NEEDS_CSUM (path takes CSUM). */
  partialCsum?: boolean;
  /** Frames this endpoint emits may be TCP GSO frames (path takes TSO4). */
  gso?: boolean;
  /** Queued control frames (ARP/ICMP) before new ones are dropped (default 64). */
  controlQueue?: number;
}

export interface SinkOptions {
  port: number;
  /** Compare every payload byte with the stream pattern (default false: order and count only). */
  verify?: boolean;
  /** Send an ACK once this many bytes are unacknowledged, or on PSH (default 2 × MSS). */
  ackEveryBytes?: number;
  /** Stream length; `done` turns true when it has arrived (0 = unbounded). */
  expectBytes?: number;
  /**
   * Send every ACK that falls due (one per ackEveryBytes crossing, each acknowledging the stream
   * as it stood then), as a stack without receive offload did from inside its receive path
   * (Linux 2.6.26's tcp_rcv_established: more than one full frame unacknowledged → ACK now).
   * Default false: the ACKs due by the next output opportunity go out as one cumulative ACK.
   */
  ackEach?: boolean;
}

export interface SourceOptions {
  srcPort: number;
  dstPort: number;
  /** Payload bytes per send (a netperf message): a frame that ends one carries PSH. */
  msgBytes: number;
  /**
   * Frames carry as much of the queued stream as fits, across sends (default true): a TCP sender
   * with a backlog, as netperf's is, appends each send to the unsent tail and builds TSO frames up
   * to 64 KiB (Linux's size_goal). false: a frame never spans two messages (an application that
   * sends one message and waits).
   */
  coalesce?: boolean;
  /** Stop after this many payload bytes (0 = unbounded). */
  totalBytes?: number;
  /** Unacknowledged bytes allowed in flight (default 4 MiB). */
  windowBytes?: number;
}

export interface EndpointStats {
  framesIn: number;
  framesOut: number;
  arpRequestsIn: number;
  arpRepliesIn: number;
  echoRequestsIn: number;
  echoRepliesIn: number;
  /** Frames that did not parse. */
  parseErrors: number;
  /** Frames for someone else, or of a kind we do not handle. */
  ignored: number;
  /** Control frames dropped because the queue was full or too small. */
  controlDrops: number;
}

export interface SinkState {
  port: number;
  /** Source port of the sender (learned from its segments; ACKs go there). */
  peerPort: number;
  verify: boolean;
  ackEveryBytes: number;
  expectBytes: number;
  started: boolean;
  isn: number;
  payloadBytes: number;
  segments: number;
  acksSent: number;
  unackedBytes: number;
  ackPending: boolean;
  /** ackEach: ACK numbers due and not yet sent, oldest first (a ring; ackPending = count > 0). */
  dueAcks: Uint32Array | null;
  dueHead: number;
  dueCount: number;
  errors: number;
  firstError: string;
  done: boolean;
}

export interface SourceState {
  srcPort: number;
  dstPort: number;
  msgBytes: number;
  totalBytes: number;
  windowBytes: number;
  isn: number;
  sentBytes: number;
  ackedBytes: number;
  msgLeft: number;
  coalesce: boolean;
  frames: number;
  gsoFrames: number;
  acksIn: number;
  badAcks: number;
}

/** Called when an echo reply for our request arrives; `dataOk` is false if its data differs. */
export type EchoReplyCallback = (id: number, seq: number, dataOk: boolean) => void;

interface ControlSlot {
  buf: Uint8Array;
  len: number;
}

/** Control frames are at most one MTU-sized frame (Ethernet + VLAN tag + MTU). */
const controlSlotBytes = (mtu: number): number => Math.max(1600, mtu + 18);
const SINK_ISN = 0x5a5a0000;
/** ackEach: ACKs that can wait for the guest's next transmit before they merge (each covers the ones before). */
const DUE_ACKS = 256;
const SOURCE_ISN = 0xfffff000; // wraps the 32-bit sequence space early in every stream

export class NetEndpoint {
  readonly mac: Uint8Array;
  readonly ip: number;
  readonly ip6: Uint8Array | null;
  peerMac: Uint8Array;
  readonly peerIp: number;
  readonly peerIp6: Uint8Array | null;
  readonly mtu: number;
  readonly mss: number;
  partialCsum: boolean;
  gso: boolean;
  readonly stats: EndpointStats = { framesIn: 0, framesOut: 0, arpRequestsIn: 0, arpRepliesIn: 0, echoRequestsIn: 0, echoRepliesIn: 0, parseErrors: 0, ignored: 0, controlDrops: 0 };
  sink: SinkState | null = null;
  source: SourceState | null = null;
  onEchoReply: EchoReplyCallback | null = null;

  private readonly parsed: ParsedPacket = newParsedPacket();
  private readonly control: ControlSlot[];
  private ctlHead = 0;
  private ctlCount = 0;
  private readonly layoutOut = newFrameLayout();
  private readonly v4: IpFields;
  private readonly v6: IpFields | null;
  private readonly link: { srcMac: Uint8Array; dstMac: Uint8Array };
  private readonly echoData: Uint8Array;
  /** Where the echo reply being built goes: the request's Ethernet and IP source (reused, no allocation). */
  private readonly replyLink: { srcMac: Uint8Array; dstMac: Uint8Array };
  private readonly replyV4: IpFields & { version: 4 };
  private readonly replyV6: (IpFields & { version: 6 }) | null;
  /** The echo frame being built (request or reply): reused, no object per echo. */
  private readonly echoOut: IcmpEchoFrameFields;

  constructor(o: EndpointOptions) {
    this.mac = o.mac;
    this.ip = o.ip;
    this.ip6 = o.ip6 ?? null;
    this.peerMac = o.peerMac;
    this.peerIp = o.peerIp;
    this.peerIp6 = o.peerIp6 ?? null;
    this.mtu = o.mtu ?? 1500;
    this.mss = this.mtu - 40;
    this.partialCsum = o.partialCsum ?? false;
    this.gso = o.gso ?? false;
    const slotBytes = controlSlotBytes(this.mtu);
    this.echoData = new Uint8Array(slotBytes);
    this.control = Array.from({ length: o.controlQueue ?? 64 }, () => ({ buf: new Uint8Array(slotBytes), len: 0 }));
    this.link = { srcMac: this.mac, dstMac: this.peerMac };
    this.v4 = { version: 4, src: this.ip, dst: this.peerIp };
    this.v6 = this.ip6 && this.peerIp6 ? { version: 6, src: this.ip6, dst: this.peerIp6 } : null;
    this.replyLink = { srcMac: this.mac, dstMac: new Uint8Array(6) };
    this.replyV4 = { version: 4, src: this.ip, dst: 0 };
    this.replyV6 = this.ip6 ? { version: 6, src: this.ip6, dst: new Uint8Array(16) } : null;
    this.echoOut = { link: this.link, ip: this.v4, kind: 'request', id: 0, seq: 0, data: this.echoData, dataOffset: 0, dataLength: 0 };
  }

  startSink(o: SinkOptions): SinkState {
    this.sink = {
      port: o.port,
      peerPort: 0,
      verify: o.verify ?? false,
      ackEveryBytes: o.ackEveryBytes ?? 2 * this.mss,
      expectBytes: o.expectBytes ?? 0,
      started: false,
      isn: 0,
      payloadBytes: 0,
      segments: 0,
      acksSent: 0,
      unackedBytes: 0,
      ackPending: false,
      dueAcks: o.ackEach === true ? new Uint32Array(DUE_ACKS) : null,
      dueHead: 0,
      dueCount: 0,
      errors: 0,
      firstError: '',
      done: false,
    };
    return this.sink;
  }

  startSource(o: SourceOptions): SourceState {
    if (!Number.isInteger(o.msgBytes) || o.msgBytes <= 0) throw new NetError('bad-argument', 'endpoint', `msgBytes ${o.msgBytes} must be a positive integer`);
    this.source = {
      srcPort: o.srcPort,
      dstPort: o.dstPort,
      msgBytes: o.msgBytes,
      totalBytes: o.totalBytes ?? 0,
      windowBytes: o.windowBytes ?? 4 << 20,
      isn: SOURCE_ISN,
      sentBytes: 0,
      ackedBytes: 0,
      msgLeft: o.msgBytes,
      coalesce: o.coalesce ?? true,
      frames: 0,
      gsoFrames: 0,
      acksIn: 0,
      badAcks: 0,
    };
    return this.source;
  }

  /** True when the source has sent its totalBytes and all of them were acknowledged. */
  get sourceDone(): boolean {
    const s = this.source;
    return s !== null && s.totalBytes > 0 && s.ackedBytes >= s.totalBytes;
  }

  /** Queues an ARP request for the peer's IPv4 address. */
  sendArpRequest(): boolean {
    const slot = this.controlSlot();
    if (slot === null) return false;
    slot.len = buildArpFrame(slot.buf, 0, { op: ArpOp.REQUEST, srcMac: this.mac, senderIp: this.ip, targetIp: this.peerIp });
    return true;
  }

  /** Queues an ICMP (or ICMPv6) echo request with `payloadBytes` of data derived from `seq`. */
  sendEchoRequest(id: number, seq: number, payloadBytes: number, v6 = false): boolean {
    const ip = v6 ? this.v6 : this.v4;
    if (ip === null) throw new NetError('bad-argument', 'endpoint', 'no IPv6 addresses configured');
    const slot = this.controlSlot();
    if (slot === null) return false;
    if (!(payloadBytes >= 0 && payloadBytes <= this.echoData.length)) {
      this.unqueueLast();
      this.stats.controlDrops++;
      return false;
    }
    fillEchoData(this.echoData, payloadBytes, seq);
    const f = this.echoOut;
    f.link = this.link;
    f.ip = ip;
    f.kind = 'request';
    f.id = id;
    f.seq = seq;
    f.data = this.echoData;
    f.dataOffset = 0;
    f.dataLength = payloadBytes;
    try {
      slot.len = buildIcmpEchoFrame(slot.buf, 0, f);
    } catch {
      this.unqueueLast();
      this.stats.controlDrops++;
      return false;
    }
    return true;
  }

  // ---- input ----

  /** Handles one frame arriving at this endpoint. Never throws on bad input. */
  input(bytes: Uint8Array, offset: number, len: number, hdr: Readonly<VirtioNetHdr>): void {
    this.stats.framesIn++;
    const p = parsePacket(bytes, offset, offset + len, this.parsed, false);
    if (p instanceof NetError) {
      this.stats.parseErrors++;
      return;
    }
    const dst = p.eth.dstOffset;
    if (!macEquals(bytes, dst, this.mac) && !isBroadcast(bytes, dst)) {
      this.stats.ignored++;
      return;
    }
    if (p.l3 === 'arp') return this.onArp(bytes, p);
    if (p.l4 === 'icmp' || p.l4 === 'icmpv6') return this.onIcmp(bytes, p);
    if (p.l4 === 'tcp') return this.onTcp(bytes, p, hdr);
    this.stats.ignored++;
  }

  private onArp(bytes: Uint8Array, p: ParsedPacket): void {
    const a = p.arp;
    if (a.op === ArpOp.REQUEST && a.targetIp === this.ip) {
      this.stats.arpRequestsIn++;
      const slot = this.controlSlot();
      if (slot === null) return;
      const requester = bytes.slice(a.senderMacOffset, a.senderMacOffset + 6);
      // The peer asking tells us its MAC too (RFC 826: merge the sender into the table).
      if (a.senderIp === this.peerIp) {
        this.peerMac = requester;
        this.link.dstMac = requester;
      }
      slot.len = buildArpFrame(slot.buf, 0, { op: ArpOp.REPLY, srcMac: this.mac, dstMac: requester, senderIp: this.ip, targetIp: a.senderIp });
    } else if (a.op === ArpOp.REPLY && a.senderIp === this.peerIp) {
      this.stats.arpRepliesIn++;
      this.peerMac = bytes.slice(a.senderMacOffset, a.senderMacOffset + 6);
      this.link.dstMac = this.peerMac;
    } else {
      this.stats.ignored++;
    }
  }

  private onIcmp(bytes: Uint8Array, p: ParsedPacket): void {
    const m = p.icmp;
    const v6 = p.l4 === 'icmpv6';
    if (!m.checksumOk) {
      this.stats.parseErrors++;
      return;
    }
    const request = v6 ? Icmpv6Type.ECHO_REQUEST : IcmpType.ECHO_REQUEST;
    const reply = v6 ? Icmpv6Type.ECHO_REPLY : IcmpType.ECHO_REPLY;
    if (m.type === request) {
      // The reply goes back to whoever asked (its Ethernet and IP source), as any stack answers:
      // behind a real TAP the asker is the kernel, whose MAC and address were never configured.
      const ip = v6 ? this.replyV6 : this.replyV4;
      if (ip === null || (!v6 && p.ipv4.dst !== this.ip)) {
        this.stats.ignored++;
        return;
      }
      if (ip.version === 4) ip.dst = p.ipv4.src;
      else copyBytes(ip.dst, 0, bytes, p.ipv6.srcOffset, 16);
      copyBytes(this.replyLink.dstMac, 0, bytes, p.eth.srcOffset, 6);
      this.stats.echoRequestsIn++;
      const slot = this.controlSlot();
      if (slot === null) return;
      const f = this.echoOut;
      f.link = this.replyLink;
      f.ip = ip;
      f.kind = 'reply';
      f.id = m.id;
      f.seq = m.seq;
      f.data = bytes;
      f.dataOffset = m.dataOffset;
      f.dataLength = m.dataEnd - m.dataOffset;
      try {
        slot.len = buildIcmpEchoFrame(slot.buf, 0, f);
      } catch {
        this.unqueueLast();
        this.stats.controlDrops++;
      }
      // Keep no reference to the caller's frame buffer.
      f.data = this.echoData;
    } else if (m.type === reply) {
      this.stats.echoRepliesIn++;
      const at = m.dataOffset;
      const len = m.dataEnd - at;
      // Data longer than any request we send cannot be ours.
      let ok = len <= this.echoData.length;
      if (ok) {
        const want = this.echoData;
        fillEchoData(want, len, m.seq);
        for (let i = 0; i < len; i++) if (bytes[at + i] !== want[i]) ok = false;
      }
      this.onEchoReply?.(m.id, m.seq, ok);
    } else {
      this.stats.ignored++;
    }
  }

  private onTcp(bytes: Uint8Array, p: ParsedPacket, hdr: Readonly<VirtioNetHdr>): void {
    const t = p.tcp;
    const sink = this.sink;
    const src = this.source;
    if (sink !== null && t.dstPort === sink.port) return this.sinkSegment(bytes, p, hdr, sink);
    if (src !== null && t.dstPort === src.srcPort && t.flags & TcpFlags.ACK) return this.sourceAck(t.ack, src);
    this.stats.ignored++;
  }

  private sinkSegment(bytes: Uint8Array, p: ParsedPacket, hdr: Readonly<VirtioNetHdr>, s: SinkState): void {
    const t = p.tcp;
    const payload = p.l4End - t.payloadOffset;
    if (!s.started) {
      s.started = true;
      s.isn = t.seq;
    }
    s.peerPort = t.srcPort;
    const expectSeq = (s.isn + s.payloadBytes) >>> 0;
    if (t.seq !== expectSeq) {
      this.sinkError(s, `segment at stream offset ${s.payloadBytes}: seq ${t.seq}, expected ${expectSeq} (lost, duplicated or reordered)`);
      // Resynchronise so one loss is one error, not an error per later segment.
      s.isn = (t.seq - s.payloadBytes) >>> 0;
    }
    if (s.verify) {
      if (!(hdr.flags & (NetHdrFlags.NEEDS_CSUM | NetHdrFlags.DATA_VALID))) {
        const v = p.l3 === 'ipv6' ? 6 : 4;
        if (!verifyL4Checksum(bytes, v, p.ipOffset, IpProto.TCP, p.l4Offset, p.l4End - p.l4Offset)) {
          this.sinkError(s, `segment at stream offset ${s.payloadBytes}: bad TCP checksum`);
        }
      }
      const want = streamPattern(s.payloadBytes, payload);
      const at = t.payloadOffset;
      for (let i = 0; i < payload; i++) {
        if (bytes[at + i] !== want[i]) {
          this.sinkError(s, `payload byte at stream offset ${s.payloadBytes + i} corrupted`);
          break;
        }
      }
    }
    s.payloadBytes += payload;
    s.segments++;
    s.unackedBytes += payload;
    if (s.unackedBytes >= s.ackEveryBytes || t.flags & (TcpFlags.PSH | TcpFlags.FIN)) this.ackDue(s);
    if (s.expectBytes > 0 && s.payloadBytes >= s.expectBytes) {
      s.done = true;
      if (s.dueAcks === null || s.unackedBytes > 0) this.ackDue(s);
      if (s.payloadBytes > s.expectBytes) this.sinkError(s, `received ${s.payloadBytes} bytes, more than the ${s.expectBytes} sent`);
    }
  }

  /** An ACK of the stream as it stands falls due: one more queued (ackEach), else the one pending. */
  private ackDue(s: SinkState): void {
    s.ackPending = true;
    const q = s.dueAcks;
    // Without ackEach the one pending ACK covers everything up to its sending (nextFrame resets the count).
    if (q === null) return;
    s.unackedBytes = 0;
    const ack = (s.isn + s.payloadBytes) >>> 0;
    // A full queue (the guest could not send for DUE_ACKS crossings): the newest replaces the
    // last, which it covers — cumulative, as TCP's ACKs are.
    if (s.dueCount === q.length) q[(s.dueHead + s.dueCount - 1) % q.length] = ack;
    else q[(s.dueHead + s.dueCount++) % q.length] = ack;
  }

  private sinkError(s: SinkState, msg: string): void {
    if (s.errors++ === 0) s.firstError = msg;
  }

  private sourceAck(ack: number, s: SourceState): void {
    s.acksIn++;
    const lastAck = (s.isn + s.ackedBytes) >>> 0;
    const delta = (ack - lastAck) >>> 0;
    const inFlight = s.sentBytes - s.ackedBytes;
    if (delta > inFlight) {
      s.badAcks++;
      return;
    }
    s.ackedBytes += delta;
  }

  // ---- output ----

  /** True when nextFrame would produce a frame now. */
  get hasOutput(): boolean {
    return this.ctlCount > 0 || (this.sink?.ackPending ?? false) || this.sourceReady();
  }

  private sourceReady(): boolean {
    const s = this.source;
    if (s === null) return false;
    if (s.totalBytes > 0 && s.sentBytes >= s.totalBytes) return false;
    return s.sentBytes - s.ackedBytes < s.windowBytes;
  }

  /**
   * Builds the next frame into `buf[offset…offset+capacityBytes)` and its offload request into
   * `hdr`; returns its length, or 0 when there is nothing to send. Control frames go first,
   * then a pending ACK, then stream data while the window is open. With `tail`, a stream frame
   * whose checksum is left partial may come in two parts: its headers in `buf` and its payload
   * described by `tail` (tail.lenBytes > 0; the returned length counts both); else tail is untouched.
   */
  nextFrame(buf: Uint8Array, offset: number, capacityBytes: number, hdr: VirtioNetHdr, tail?: PortRxTail): number {
    clearNetHdr(hdr);
    if (this.ctlCount > 0) {
      const slot = this.control[this.ctlHead]!;
      if (slot.len > capacityBytes) return 0;
      copyBytes(buf, offset, slot.buf, 0, slot.len);
      this.ctlHead = (this.ctlHead + 1) % this.control.length;
      this.ctlCount--;
      this.stats.framesOut++;
      return slot.len;
    }
    const sink = this.sink;
    if (sink !== null && sink.ackPending && sink.started) {
      if (capacityBytes < 64) return 0;
      const n = buildTcpFrame(buf, offset, {
        link: this.link,
        ip: this.v4,
        srcPort: sink.port,
        dstPort: sink.peerPort,
        seq: SINK_ISN,
        ack: sink.dueAcks !== null ? sink.dueAcks[sink.dueHead]! : (sink.isn + sink.payloadBytes) >>> 0,
        flags: TcpFlags.ACK,
        payload: EMPTY,
      });
      if (sink.dueAcks !== null) {
        sink.dueHead = (sink.dueHead + 1) % sink.dueAcks.length;
        sink.ackPending = --sink.dueCount > 0;
      } else {
        sink.ackPending = false;
        sink.unackedBytes = 0;
      }
      sink.acksSent++;
      this.stats.framesOut++;
      return n;
    }
    if (this.sourceReady()) return this.dataFrame(buf, offset, capacityBytes, hdr, this.source!, tail);
    return 0;
  }

  private dataFrame(buf: Uint8Array, offset: number, capacityBytes: number, hdr: VirtioNetHdr, s: SourceState, tail?: PortRxTail): number {
    const headers = 14 + 20 + 20;
    const maxGsoPayload = Math.floor((65535 - 40) / this.mss) * this.mss;
    let chunk = Math.min(this.gso ? maxGsoPayload : this.mss, capacityBytes - headers);
    if (!s.coalesce) chunk = Math.min(chunk, s.msgLeft);
    if (s.totalBytes > 0) chunk = Math.min(chunk, s.totalBytes - s.sentBytes);
    if (chunk <= 0) return 0;
    // PSH on a frame that reaches the end of a send (Linux marks the tail skb of each sendmsg).
    const lastOfMsg = chunk >= s.msgLeft;
    const isGso = chunk > this.mss;
    const partial = this.partialCsum || isGso;
    const layout = this.layoutOut;
    // The payload from the pattern copy that matches where it lands (or would land, for a tail:
    // right after the headers), so its one copy into guest memory runs 8 bytes at a time.
    const align = (buf.byteOffset + offset + headers) & 7;
    const pattern = patternBuffer(s.sentBytes, align);
    const at = alignedPatternIndex(s.sentBytes, align);
    const apart = tail !== undefined && partial;
    const n = buildTcpFrame(
      buf,
      offset,
      {
        link: this.link,
        ip: this.v4,
        srcPort: s.srcPort,
        dstPort: s.dstPort,
        seq: (s.isn + s.sentBytes) >>> 0,
        ack: SINK_ISN,
        flags: TcpFlags.ACK | (lastOfMsg ? TcpFlags.PSH : 0),
        payload: apart ? EMPTY : pattern.subarray(at, at + chunk),
        checksum: partial ? 'partial' : 'full',
        payloadApart: apart ? chunk : 0,
      },
      layout,
    );
    if (apart) {
      tail.bytes = pattern;
      tail.offset = at;
      tail.lenBytes = chunk;
    }
    if (partial) {
      hdr.flags = NetHdrFlags.NEEDS_CSUM;
      hdr.csumStart = layout.l4Offset - offset;
      hdr.csumOffset = 16;
    }
    if (isGso) {
      hdr.gsoType = GsoType.TCPV4;
      hdr.gsoSize = this.mss;
      hdr.hdrLen = layout.payloadOffset - offset;
      s.gsoFrames++;
    }
    s.sentBytes += chunk;
    // What is left of the send the next frame starts in (a coalesced frame may end inside a later one).
    const left = s.msgLeft - chunk;
    s.msgLeft = left > 0 ? left : s.msgBytes - (-left % s.msgBytes);
    s.frames++;
    this.stats.framesOut++;
    return n;
  }

  private controlSlot(): ControlSlot | null {
    if (this.ctlCount === this.control.length) {
      this.stats.controlDrops++;
      return null;
    }
    const slot = this.control[(this.ctlHead + this.ctlCount) % this.control.length]!;
    this.ctlCount++;
    slot.len = 0;
    return slot;
  }

  private unqueueLast(): void {
    this.ctlCount--;
  }
}

const EMPTY = new Uint8Array(0);

function isBroadcast(b: Uint8Array, o: number): boolean {
  return (b[o]! & b[o + 1]! & b[o + 2]! & b[o + 3]! & b[o + 4]! & b[o + 5]!) === 0xff;
}

/** The first `len` bytes of `data` := the echo data of `seq`. */
function fillEchoData(data: Uint8Array, len: number, seq: number): void {
  for (let i = 0; i < len; i++) data[i] = (seq + i * 7) & 0xff;
}

