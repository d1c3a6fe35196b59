// The one set of argument parsers every `virtq` command uses for its numeric, enumerated,
// address, preset and output-path options (commander's argParser). A bad value throws
// commander's InvalidArgumentError, which commander prints as one line naming the option
// ("error: option '--runs <n>' argument 'abc' is invalid. Expected a positive integer.") and
// main.ts turns into exit code 2. Nothing here runs anything: commands get checked values.

import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { listPresets, resolvePolicy, PolicyError } from '../policy/index.js';
import { findPreset } from '../study/index.js';

export type ArgParser<T> = (value: string, previous?: T) => T;

function integer(value: string): number | undefined {
  const x = Number(value);
  return value.trim() !== '' && Number.isInteger(x) ? x : undefined;
}

/** An integer ≥ 1. */
export function positiveInt(value: string): number {
  const x = integer(value);
  if (x === undefined || x < 1) throw new InvalidArgumentError('Expected a positive integer.');
  return x;
}

/** An integer ≥ 0. */
export function nonNegativeInt(value: string): number {
  const x = integer(value);
  if (x === undefined || x < 0) throw new InvalidArgumentError('Expected an integer ≥ 0.');
  return x;
}

/** A finite number > 0 (seconds may be fractional). */
export function positiveNumber(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || x <= 0) throw new InvalidArgumentError('Expected a number > 0.');
  return x;
}

/** A finite number ≥ 0. */
export function nonNegativeNumber(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || x < 0) throw new InvalidArgumentError('Expected a number ≥ 0.');
  return x;
}

/** A power of two in [min, max] (queue sizes, trace buffer capacities, sample blocks). */
export function powerOfTwo(min: number, max: number): ArgParser<number> {
  return (value) => {
    const x = integer(value);
    if (x === undefined || x < min || x > max || (x & (x - 1)) !== 0) throw new InvalidArgumentError(`Expected a power of two in ${min}..${max}.`);
    return x;
  };
}

/** A positive multiple of `step`, at least `min` (payload sizes). */
export function multipleOf(step: number, min: number): ArgParser<number> {
  return (value) => {
    const x = integer(value);
    if (x === undefined || x < min || x % step !== 0) throw new InvalidArgumentError(`Expected a multiple of ${step}, at least ${min}.`);
    return x;
  };
}

/** One of a fixed set of words. */
export function oneOf<T extends string>(choices: readonly T[]): ArgParser<T> {
  return (value) => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`Expected one of: ${choices.join(', ')}.`);
    return value as T;
  };
}

/**
 * Splits at the commas that stand outside braces, brackets and JSON strings, so a list item may
 * be a JSON object with several fields (`--rows rfc-gso,{"base":"vhost","costs":{…}}`).
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  out.push(value.slice(start));
  return out;
}

/** A comma-separated list, each item through `item` (commas inside a JSON item do not split it). */
export function listOf<T>(item: ArgParser<T>): ArgParser<T[]> {
  return (value) => {
    const items = splitList(value).map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new InvalidArgumentError('Expected a comma-separated list.');
    return items.map((s) => item(s));
  };
}

/** A comma-separated list of words, unchecked. */
export const words: ArgParser<string[]> = listOf((s) => s);

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A dotted-quad IPv4 address. */
export function ipv4(value: string): string {
  if (!IPV4.test(value)) throw new InvalidArgumentError('Expected an IPv4 address such as 10.77.0.2.');
  return value;
}

/** An IPv4 address with a prefix length, e.g. 10.77.0.1/24. */
export function ipv4Cidr(value: string): string {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(value);
  if (m === null || !IPV4.test(m[1]!) || Number(m[2]) > 32) throw new InvalidArgumentError('Expected an IPv4 address with a prefix length such as 10.77.0.1/24.');
  return value;
}

/** A MAC address, six colon-separated hex octets. */
export function mac(value: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) throw new InvalidArgumentError('Expected a MAC address such as 52:54:00:12:34:56.');
  return value;
}

/** What `virtq presets` lists, and the other forms --preset takes: the one list every error names. */
export function presetChoices(): string {
  return `${listPresets().map((p) => p.name).join(', ')}; or <rfc preset>-alone, or a JSON object such as '{"base":"vhost"}'`;
}

/**
 * A notification policy: a preset `virtq presets` lists, `<rfc preset>-alone`, a policy JSON
 * object, or a study row's label or slug (what earlier versions took). Returned as a spec
 * resolvePolicy takes: as given, or for a row label or slug its preset's name ("gso" → "rfc-gso").
 */
export function policySpec(value: string): string {
  try {
    resolvePolicy(value);
    return value;
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    if (!value.trim().startsWith('{')) {
      try {
        return findPreset(value, 'cumulative').policy;
      } catch {
        // not a row label or slug either: report the policy's names
      }
    }
    const why = e.code === 'unknown-preset' ? 'Unknown preset' : e.message;
    throw new InvalidArgumentError(`${why}. Choose from: ${presetChoices()}.`);
  }
}

function fsCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? 'error';
}

/** The nearest existing ancestor of `path` (itself if it exists) must be a writable directory. */
function checkWritableAncestor(path: string): void {
  let dir = resolve(path);
  for (;;) {
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) throw new InvalidArgumentError(`${dir} is not a directory (ENOTDIR).`);
      accessSync(dir, constants.W_OK);
      return;
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      if (fsCode(e) !== 'ENOENT' && fsCode(e) !== 'ENOTDIR') throw new InvalidArgumentError(`${dir} is not writable (${fsCode(e)}).`);
    }
    const up = dirname(dir);
    if (up === dir) return;
    dir = up;
  }
}

function checkNotADirectory(path: string): void {
  try {
    if (statSync(path).isDirectory()) throw new InvalidArgumentError(`${path} is a directory (EISDIR).`);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
  }
}

/** A file to write whose directory exists and is writable (trace, pcap, HTML files). */
export function outputFile(value: string): string {
  checkNotADirectory(value);
  const dir = dirname(resolve(value));
  try {
    if (!statSync(dir).isDirectory()) throw new InvalidArgumentError(`${dir} is not a directory (ENOTDIR).`);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    if (fsCode(e) === 'ENOENT') throw new InvalidArgumentError(`Directory ${dir} does not exist (ENOENT).`);
    throw new InvalidArgumentError(`Cannot use directory ${dir} (${fsCode(e)}).`);
  }
  checkWritableAncestor(dir);
  return value;
}

/** A file to write whose missing directories the command creates (the study's reports). */
export function outputFileMkdir(value: string): string {
  checkNotADirectory(value);
  checkWritableAncestor(dirname(resolve(value)));
  return value;
}

/** A directory to write into, created when missing. */
export function outputDir(value: string): string {
  checkWritableAncestor(value);
  return value;
}

/** A Unix socket path to listen on: its directory must exist (bind does not create it). */
export function socketPath(value: string): string {
  return outputFile(value);
}

/** For commander programs of their own (the bench scripts `virtq bench ring|runners|timers` runs): usage errors exit 2, help 0. */
export function usageExit(err: { exitCode: number }): never {
  process.exit(err.exitCode === 0 ? 0 : 2);
}

/** The value of `--json [file]`: true for JSON on stdout, a (checked) path for JSON into a file. */
export type JsonOption = true | string | undefined;

/** The help text of `--json [file]`, the same on every command that reports. */
export function jsonHelp(what: string): string {
  return `print ${what} as JSON instead of text, or with FILE write it into FILE (and print the text)`;
}

/**
 * Writes a command's report as `--json [file]` asks: JSON on stdout (in place of the text), or
 * the text on stdout and the JSON into FILE (reported on stderr), or the text alone.
 */
export function emitReport(json: JsonOption, jsonText: () => string, text: () => string, write: (file: string, data: string) => void): void {
  if (json === true) {
    process.stdout.write(jsonText());
    return;
  }
  process.stdout.write(text());
  if (typeof json === 'string') {
    write(json, jsonText());
    process.stderr.write(`wrote ${json}\n`);
  }
}
