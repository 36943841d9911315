/**
 * JSON as Python's `json` module writes and reads it, without losing a number.
 *
 * - Python emits the non-standard tokens `NaN`, `Infinity` and `-Infinity`; they are read.
 * - Integers beyond 2^53 (seeds go to 2^64-1) stay exact as `bigint`.
 * - A float stays a float: `PyFloat` marks a number that Python holds as `float`, so `1.0`
 *   is written `1.0` (Python's `repr`) and a C++ model never receives an int it did not ask for.
 */
import { isLosslessNumber, parse as losslessParse } from 'lossless-json';

/** A Python float, even when whole (`1.0`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** JSON text to be written as it is (already encoded once, e.g. a parameter set). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** Python's `repr(float)`: shortest round-trip digits; exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = Math.abs(value).toExponential().split('e');
  const exponent = Number(exponentText);
  const digits = mantissa.replace('.', '');
  const sign = value < 0 ? '-' : '';
  if (exponent < -4 || exponent >= 16) {
    const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${body}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction || '0'}`;
}

// ---- reading ---------------------------------------------------------------------------------

/** Matches a JSON string (kept as is) or one of Python's non-finite tokens outside strings. */
const STRING_OR_NON_FINITE = /"(?:[^"\\]|\\.)*"|-Infinity|Infinity|NaN/g;
/** Text that the plain, fast `JSON.parse` would get wrong or reject. */
const NEEDS_CAREFUL_PARSE = /NaN|Infinity|\d{16,}/;
const SENTINEL_PREFIX = '\u0000pyjson:';
const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

function isIntegerText(text: string): boolean {
  return /^-?\d+$/.test(text);
}

function parseWithNonFinite(text: string, parseNumber: (text: string) => unknown, nonFinite: (token: string) => unknown): unknown {
  const quoted = text.replace(STRING_OR_NON_FINITE, (token) => (token.startsWith('"') ? token : JSON.stringify(SENTINEL_PREFIX + token)));
  return losslessParse(
    quoted,
    (_key, value) => (typeof value === 'string' && value.startsWith(SENTINEL_PREFIX) ? nonFinite(value.slice(SENTINEL_PREFIX.length)) : value),
    parseNumber,
  );
}

/** A runner's message: numbers as JS numbers, bigints beyond 2^53. Fast path for the usual case. */
export function parseWireJson(text: string): unknown {
  if (!NEEDS_CAREFUL_PARSE.test(text)) return JSON.parse(text);
  return parseWithNonFinite(
    text,
    (t) => {
      if (!isIntegerText(t)) return Number(t);
      const asNumber = Number(t);
      return Number.isSafeInteger(asNumber) ? asNumber : BigInt(t);
    },
    (token) => NON_FINITE[token],
  );
}

/**
 * User input (job files, parameters): every number keeps its Python kind — ints as numbers
 * (bigint beyond 2^53), floats as `PyFloat`, and `NaN`/`Infinity` as `PyFloat` so that
 * validation can name the field instead of failing to parse.
 */
export function parsePythonJson(text: string): unknown {
  return parseWithNonFinite(
    text,
    (t) => {
      if (!isIntegerText(t)) return new PyFloat(Number(t));
      const asNumber = Number(t);
      return Number.isSafeInteger(asNumber) ? asNumber : BigInt(t);
    },
    (token) => new PyFloat(NON_FINITE[token]),
  );
}

// ---- writing ---------------------------------------------------------------------------------

const RAW_TOKEN = /"\\u0000raw:(\d+)"/g;

/** The exact text of values JSON.stringify would get wrong; undefined for everything else. */
function rawTextOf(value: unknown): string | undefined {
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (value instanceof RawJson) return value.text;
  if (typeof value === 'bigint') return value.toString();
  if (isLosslessNumber(value)) return (value as { value: string }).value;
  return undefined;
}

/**
 * Compact JSON. Floats, bigints and raw JSON are spliced in as text after one fast
 * `JSON.stringify` (a placeholder string stands in for each during it).
 */
export function stringifyWireJson(value: unknown, indent?: number): string {
  const raws: string[] = [];
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      const raw = rawTextOf(v);
      if (raw === undefined) return v;
      raws.push(raw);
      return `\u0000raw:${raws.length - 1}`;
    },
    indent,
  );
  return raws.length ? text.replace(RAW_TOKEN, (_match, index: string) => raws[Number(index)]) : text;
}
