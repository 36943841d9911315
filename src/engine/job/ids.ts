/**
 * Ids and seeds exactly as ModelOps computes them (modelops-contracts `make_param_id`,
 * `SimulationStudy.to_simjob`), so a job here reproduces production's `param_id`s and seeds.
 *
 *   param_id = blake2b("contracts:param:v1|" + json.dumps(params, sort_keys, separators=(",", ":"),
 *                      ensure_ascii=False), digest_size=32).hex
 *   seed_i   = int.from_bytes(blake2b(f"{param_id}:{i}", digest_size=8), "big") % 2**32
 *
 * The canonical JSON must match Python's byte for byte: keys sorted by code point, ints as
 * digits (any size), floats in Python's `repr` (`1e-05`, `0.1`, `1e+16`, `1.0`), non-ASCII raw.
 * Parameter values therefore carry their kind: a `PyFloat` is a float even when it is whole.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { PyFloat, pyFloatRepr } from '../pyjson/pyjson';

/** bigint for integers beyond 2^53. */
export type ParamScalar = string | boolean | number | bigint | PyFloat;
export type Params = Record<string, ParamScalar>;

const PARAM_PREFIX = 'contracts:param:v1|';
const encoder = new TextEncoder();

export function paramId(params: Params): string {
  return bytesToHex(blake2b(encoder.encode(PARAM_PREFIX + canonicalJson(params)), { dkLen: 32 }));
}

export function replicateSeed(id: string, index: number): number {
  const digest = blake2b(encoder.encode(`${id}:${index}`), { dkLen: 8 });
  // the low 32 bits of the big-endian 64-bit integer
  return new DataView(digest.buffer, digest.byteOffset, 8).getUint32(4, false);
}

/**
 * Every resume checks each seed of job.json against this (400k replicates: 400k hashes): one
 * hasher's fresh state is copied into a second for each seed (`_cloneInto`, no allocation), and
 * the message is written into one buffer, so a seed costs its compression and little else.
 */
export function replicateSeeds(id: string, count: number): number[] {
  const prefix = encoder.encode(`${id}:`);
  const message = new Uint8Array(prefix.length + 20);
  message.set(prefix);
  const fresh = blake2b.create({ dkLen: 8 });
  const hasher = fresh.clone();
  const digest = new Uint8Array(8);
  const view = new DataView(digest.buffer);
  const seeds = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const digits = String(i);
    for (let d = 0; d < digits.length; d++) message[prefix.length + d] = digits.charCodeAt(d);
    fresh._cloneInto(hasher);
    hasher.update(message.subarray(0, prefix.length + digits.length));
    hasher.digestInto(digest);
    seeds[i] = view.getUint32(4, false); // the low 32 bits of the big-endian 64-bit integer
  }
  return seeds;
}

/** `json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` */
export function canonicalJson(params: Params): string {
  const keys = Object.keys(params).sort(byCodePoint);
  return `{${keys.map((key) => `${JSON.stringify(key)}:${scalarJson(params[key])}`).join(',')}}`;
}

/** A parameter set's values as Python writes them (`1.0` stays `1.0`), by name. */
export function paramTexts(params: Params): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([key, value]) => [key, scalarJson(value)]));
}

export function scalarJson(value: ParamScalar): string {
  if (value instanceof PyFloat) {
    if (!Number.isFinite(value.value)) throw new RangeError(`parameters must be finite, not ${value.value}`);
    return pyFloatRepr(value.value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return pyFloatRepr(value);
    return Number.isSafeInteger(value) ? String(value) : BigInt(value).toString();
  }
  return JSON.stringify(value);
}

/** Python compares str by code point; JS sort compares UTF-16 units (differs above U+FFFF). */
function byCodePoint(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const diff = left[i].codePointAt(0)! - right[i].codePointAt(0)!;
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}
