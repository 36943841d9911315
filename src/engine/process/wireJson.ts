/**
 * JSON as Python's `json` module writes and reads it, without losing numbers.
 *
 * - Python emits the non-standard tokens `NaN`, `Infinity` and `-Infinity`; we accept them.
 * - Integers beyond 2^53 (seeds go to 2^64-1) stay exact as `bigint`.
 * - Numbers parsed from user input as lossless numbers keep their text, so `1.0` is sent as
 *   `1.0` and Python sees a float, not an int.
 */
import { isLosslessNumber, parse as losslessParse, stringify as losslessStringify } from 'lossless-json';

/** Matches a JSON string (skipped as is) or one of Python's non-finite tokens outside strings. */
const STRING_OR_NON_FINITE = /"(?:[^"\\]|\\.)*"|-Infinity|Infinity|NaN/g;
/** Text that the plain, fast `JSON.parse` would get wrong or reject. */
const NEEDS_CAREFUL_PARSE = /NaN|Infinity|\d{16,}/;
const SENTINEL_PREFIX = '\u0000wire-json:';

const NON_FINITE: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
};

function parseNumber(text: string): number | bigint {
  if (/^-?\d+$/.test(text)) {
    const asNumber = Number(text);
    return Number.isSafeInteger(asNumber) ? asNumber : BigInt(text);
  }
  return Number(text);
}

export function parseWireJson(text: string): unknown {
  if (!NEEDS_CAREFUL_PARSE.test(text)) {
    return JSON.parse(text);
  }
  const quoted = text.replace(STRING_OR_NON_FINITE, (token) =>
    token.startsWith('"') ? token : JSON.stringify(SENTINEL_PREFIX + token),
  );
  return losslessParse(
    quoted,
    (_key, value) =>
      typeof value === 'string' && value.startsWith(SENTINEL_PREFIX) ? NON_FINITE[value.slice(SENTINEL_PREFIX.length)] : value,
    parseNumber,
  );
}

/** Compact JSON; bigints and lossless numbers are written digit for digit. */
export function stringifyWireJson(value: unknown): string {
  let needsLossless = false;
  const plain = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint' || isLosslessNumber(v)) {
      needsLossless = true;
      return null;
    }
    return v;
  });
  // Only the rare message with a bigint seed or a user-typed `1.0` pays for lossless-json.
  return needsLossless ? (losslessStringify(value) ?? 'null') : plain;
}
