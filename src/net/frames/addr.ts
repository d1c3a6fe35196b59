// Address helpers for frame builders and tests: MAC addresses as 6-byte Uint8Arrays, IPv4
// addresses as unsigned 32-bit integers (host arithmetic, no allocation on the data path), IPv6
// addresses as 16-byte Uint8Arrays. Text forms are for configuration and logs, not hot paths.

import { NetError } from '../errors.js';
import { get16 } from './bytes.js';

export const MAC_BYTES = 6;
export const IPV6_ADDR_BYTES = 16;

/** The Ethernet broadcast address ff:ff:ff:ff:ff:ff (a fresh copy each call). */
export function broadcastMac(): Uint8Array {
  return new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}

/** Parses "02:00:5e:10:00:01" (or with '-') into 6 bytes; throws `bad-argument` otherwise. */
export function macFromString(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  const out = new Uint8Array(MAC_BYTES);
  if (parts.length !== MAC_BYTES) {
    throw new NetError('bad-argument', 'mac', `"${text}" is not six hex octets`);
  }
  parts.forEach((p, i) => {
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) {
      throw new NetError('bad-argument', 'mac', `"${text}": octet ${i} "${p}" is not hex`);
    }
    out[i] = parseInt(p, 16);
  });
  return out;
}

/** "02:00:5e:10:00:01" for the 6 bytes at `offset`. */
export function macToString(buf: Uint8Array, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < MAC_BYTES; i++) parts.push(buf[offset + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** True when the 6 bytes at `aOff` in `a` equal those at `bOff` in `b`. */
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff = 0): boolean {
  for (let i = 0; i < MAC_BYTES; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** Parses dotted-quad "10.0.2.15" into an unsigned 32-bit integer; throws `bad-argument`. */
export function ipv4FromString(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new NetError('bad-argument', 'ipv4', `"${text}" is not a dotted-quad IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

export function ipv4ToString(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff].join('.');
}

/** Parses an IPv6 address ("fd00::1", full form, "::ffff:10.0.0.1" not supported) into 16 bytes. */
export function ipv6FromString(text: string): Uint8Array {
  const bad = (why: string): NetError =>
    new NetError('bad-argument', 'ipv6', `"${text}" is not an IPv6 address: ${why}`);
  const halves = text.split('::');
  if (halves.length > 2) throw bad('more than one "::"');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) throw bad('wrong number of groups');
  const all = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const out = new Uint8Array(IPV6_ADDR_BYTES);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad(`group "${g}" is not 1-4 hex digits`);
    const v = parseInt(g, 16);
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952 text form of the 16 bytes at `offset` (longest zero run of ≥ 2 groups as "::"). */
export function ipv6ToString(buf: Uint8Array, offset = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(get16(buf, offset + 2 * i));
  let bestAt = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Throws `bad-argument` unless `port` is an integer in 0..65535. For builders. */
export function checkPort(layer: string, what: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new NetError('bad-argument', layer, `${what} port ${port} outside 0..65535`);
  }
}
