/**
 * JSON as Python's `json` module writes and reads it, without losing a number.
 *
 * - Python emits the non-standard tokens `NaN`, `Infinity` and `-Infinity`; they are read.
 * - Integers beyond 2^53 (seeds go to 2^64-1) stay exact as `bigint`.
 * - A float stays a float: `PyFloat` marks a number that Python holds as `float`, so `1.0`
 *   is written `1.0` (Python's `repr`) and a C++ model never receives an int it did not ask for.
 */
import { isLosslessNumber } from 'lossless-json';

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
//
// Python's JSON differs from what JSON.parse reads in two places only, both outside strings:
// the non-finite tokens, and integers beyond 2^53. One linear pass finds those tokens, jumping
// over strings with indexOf (base64 outputs legitimately hold "NaN", "Infinity" and long digit
// runs *inside* strings; they cost nothing and change nothing). Text without such tokens goes
// to JSON.parse as it is; otherwise each token is replaced by a sentinel string, JSON.parse
// reads the rest natively, and a reviver turns the sentinels back into values.
//
// The same pass takes long strings (base64 outputs, long messages and tracebacks) out of the
// text as slices (V8 shares the characters, nothing is copied; the few escapes of a traceback
// are decoded between them), so that JSON.parse reads only the small rest: a frame of outputs
// costs one scan with indexOf, however large.
// No regular expression ever runs over a whole frame, and no step is worse than linear.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const NON_FINITE: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
};
/** The shortest integer literal that can be beyond 2^53 (9007199254740992 has 16 digits). */
const LONG_DIGITS = 16;
/** Strings at least this long are sliced out instead of parsed… */
const SLICE_STRINGS_FROM = 4096;
/** …unless escapes are dense (more than one per this many characters): JSON.parse does those better. */
const SPARSE_ESCAPES = 64;
const ESCAPED: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** A piece of the text that JSON.parse does not read: [start, end) and what stands there. */
interface Token {
  start: number;
  end: number;
  /** A literal (non-finite token or number), or the content of a string taken out whole. */
  text: string;
  string?: true;
}

/** Index of the quote that closes the string opening at `open`, or -1 if it never closes. */
export function stringEnd(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at >= 0) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}

/**
 * The content of the JSON string between `start` and `end` (its quotes excluded), with its
 * escapes decoded: slices of the text between them, joined once. Undefined when escapes are
 * dense or not valid JSON (JSON.parse then reads it, or says what is wrong).
 */
function unescapeSparse(text: string, start: number, end: number): string | undefined {
  const pieces: string[] = [];
  let from = start;
  for (let at = text.indexOf('\\', start); at >= 0 && at < end; at = text.indexOf('\\', from)) {
    if (pieces.length * SPARSE_ESCAPES > end - start) return undefined;
    const kind = text[at + 1];
    let decoded = ESCAPED[kind];
    let length = 2;
    if (decoded === undefined) {
      const hex = text.slice(at + 2, at + 6);
      if (kind !== 'u' || !/^[0-9a-fA-F]{4}$/.test(hex)) return undefined;
      decoded = String.fromCharCode(Number.parseInt(hex, 16));
      length = 6;
    }
    pieces.push(text.slice(from, at), decoded);
    from = at + length;
  }
  pieces.push(text.slice(from, end));
  return pieces.join('');
}

/** Whether the string that ended just before `after` is an object's key (a colon follows). */
function isKey(text: string, after: number): boolean {
  let i = after;
  while (
    i < text.length &&
    (text.charCodeAt(i) === 0x20 ||
      text.charCodeAt(i) === 0x0a ||
      text.charCodeAt(i) === 0x0d ||
      text.charCodeAt(i) === 0x09)
  )
    i++;
  return text.charCodeAt(i) === 0x3a;
}

function isNumberChar(code: number): boolean {
  // digits, '.', 'e', 'E', '+', '-'
  return (
    (code >= ZERO && code <= NINE) || code === 0x2e || code === 0x65 || code === 0x45 || code === 0x2b || code === MINUS
  );
}

/**
 * The tokens outside strings that JSON.parse would get wrong (non-finite tokens always, number
 * literals when `wantNumber` accepts them), and the long strings without escapes. Invalid JSON
 * is not judged here (JSON.parse does).
 */
function pythonTokens(text: string, wantNumber: (literal: string) => boolean): Token[] {
  const tokens: Token[] = [];
  const length = text.length;
  // the next backslash at or after i, found once per backslash, so the walk stays linear
  let nextBackslash = -1;
  let i = 0;
  while (i < length) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) break; // an unterminated string: JSON.parse will say so
      if (end - i > SLICE_STRINGS_FROM && !isKey(text, end + 1)) {
        if (nextBackslash !== -2 && nextBackslash < i) {
          nextBackslash = text.indexOf('\\', i);
          if (nextBackslash < 0) nextBackslash = -2; // none left in the text
        }
        const content =
          nextBackslash === -2 || nextBackslash > end ? text.slice(i + 1, end) : unescapeSparse(text, i + 1, end);
        if (content !== undefined) tokens.push({ start: i, end: end + 1, text: content, string: true });
        if (nextBackslash !== -2 && nextBackslash < end) nextBackslash = -1; // passed: look again from the next string
      }
      i = end + 1;
    } else if (code === 0x4e /* N */ && text.startsWith('NaN', i)) {
      tokens.push({ start: i, end: i + 3, text: 'NaN' });
      i += 3;
    } else if (code === 0x49 /* I */ && text.startsWith('Infinity', i)) {
      tokens.push({ start: i, end: i + 8, text: 'Infinity' });
      i += 8;
    } else if (code === MINUS && text.startsWith('-Infinity', i)) {
      tokens.push({ start: i, end: i + 9, text: '-Infinity' });
      i += 9;
    } else if ((code >= ZERO && code <= NINE) || code === MINUS) {
      let end = i + 1;
      let digitsOnly = true;
      for (let c = text.charCodeAt(end); end < length && isNumberChar(c); c = text.charCodeAt(++end))
        if (c < ZERO || c > NINE) digitsOnly = false;
      // a short integer (a seed, a count) is what JSON.parse makes of it: no caller wants it, and
      // job.json holds one per replicate, so it is passed over without a slice
      const digits = code === MINUS ? end - i - 1 : end - i;
      if (!digitsOnly || digits >= LONG_DIGITS || digits === 0) {
        const literal = text.slice(i, end);
        if (wantNumber(literal)) tokens.push({ start: i, end, text: literal });
      }
      i = end;
    } else {
      i++;
    }
  }
  return tokens;
}

const INTEGER = /^-?\d+$/;
/** A JSON number literal (tested on one literal at a time, never on a frame). */
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function isIntegerText(text: string): boolean {
  return INTEGER.test(text); // a single number literal, never a frame
}

/** An integer literal that a JS number holds exactly (as JSON.parse reads it). */
function isSafeIntegerText(literal: string): boolean {
  const digits = literal.charCodeAt(0) === MINUS ? literal.length - 1 : literal.length;
  return (digits < LONG_DIGITS || Number.isSafeInteger(Number(literal))) && isIntegerText(literal);
}

/** An integer literal that a JS number cannot hold exactly. */
function isUnsafeInteger(literal: string): boolean {
  const digits = literal.charCodeAt(0) === MINUS ? literal.length - 1 : literal.length;
  return digits >= LONG_DIGITS && isIntegerText(literal) && !Number.isSafeInteger(Number(literal));
}

/** `text` with each token replaced by a sentinel string; JSON.parse's reviver puts them back. */
function parseWithTokens(text: string, tokens: Token[], valueOf: (literal: string) => unknown): unknown {
  // a prefix no runner can have written: a NUL and a fresh random tag
  const prefix = `\u0000pyjson-${Math.random().toString(36).slice(2)}:`;
  const pieces: string[] = [];
  let from = 0;
  tokens.forEach((token, index) => {
    pieces.push(text.slice(from, token.start), JSON.stringify(`${prefix}${index}`));
    from = token.end;
  });
  pieces.push(text.slice(from));
  return JSON.parse(pieces.join(''), (_key, value: unknown) => {
    if (typeof value !== 'string' || !value.startsWith(prefix)) return value;
    const token = tokens[Number(value.slice(prefix.length))];
    return token.string ? token.text : valueOf(token.text);
  });
}

function wireValue(literal: string): unknown {
  return literal in NON_FINITE ? NON_FINITE[literal] : BigInt(literal);
}

/**
 * What a frame shorter than SLICE_STRINGS_FROM must contain for JSON.parse alone to be wrong: a
 * non-finite token or a run of digits long enough to be beyond 2^53. Inside a string it is a
 * false alarm, which only costs the walk below.
 */
const WIRE_SUSPECT = /NaN|Infinity|\d{16}/;

/** A runner's message: numbers as JS numbers, bigints beyond 2^53. Fast path for the usual case. */
export function parseWireJson(text: string): unknown {
  // most answers are short: one native scan instead of walking them character by character
  if (text.length < SLICE_STRINGS_FROM && !WIRE_SUSPECT.test(text)) return JSON.parse(text);
  const tokens = pythonTokens(text, isUnsafeInteger);
  return tokens.length === 0 ? JSON.parse(text) : parseWithTokens(text, tokens, wireValue);
}

function pythonValue(literal: string): unknown {
  if (literal in NON_FINITE) return new PyFloat(NON_FINITE[literal]);
  if (!isIntegerText(literal)) return new PyFloat(Number(literal));
  const asNumber = Number(literal);
  return Number.isSafeInteger(asNumber) ? asNumber : BigInt(literal);
}

/**
 * User input (job files, parameters, result files): every number keeps its Python kind — ints
 * as numbers (bigint beyond 2^53), floats as `PyFloat`, and `NaN`/`Infinity` as `PyFloat` so
 * that validation can name the field instead of failing to parse.
 */
export function parsePythonJson(text: string): unknown {
  // a safe integer is what JSON.parse makes of it already: only floats and big integers need a token
  // (job.json holds a seed per replicate: 400k tokens cost a resume seconds)
  const tokens = pythonTokens(text, (literal) => NUMBER.test(literal) && !isSafeIntegerText(literal));
  return tokens.length === 0 ? JSON.parse(text) : parseWithTokens(text, tokens, pythonValue);
}

// ---- writing ---------------------------------------------------------------------------------

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
 * `JSON.stringify` (a placeholder string stands in for each during it; the splice is one
 * indexOf walk, never a regular expression over the whole text).
 */
export function stringifyWireJson(value: unknown, indent?: number): string {
  const raws: string[] = [];
  const tag = `raw-${Math.random().toString(36).slice(2)}:`;
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      const raw = rawTextOf(v);
      if (raw === undefined) return v;
      raws.push(raw);
      return `\u0000${tag}${raws.length - 1}`;
    },
    indent,
  );
  return raws.length ? spliceRaws(text, `"\\u0000${tag}`, raws) : text;
}

/** `text` with each `"<mark>N"` placeholder replaced by raws[N]. */
function spliceRaws(text: string, mark: string, raws: string[]): string {
  const pieces: string[] = [];
  let from = 0;
  for (let at = text.indexOf(mark); at >= 0; at = text.indexOf(mark, from)) {
    const close = text.indexOf('"', at + mark.length);
    pieces.push(text.slice(from, at), raws[Number(text.slice(at + mark.length, close))]);
    from = close + 1;
  }
  pieces.push(text.slice(from));
  return pieces.join('');
}
