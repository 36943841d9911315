/** Option value parsers shared by the commands: a bad value is a usage error (exit 2). */
import { InvalidArgumentError } from 'commander';
import { Failure } from '../engine/failure';

const MAX_SEED = 2n ** 64n - 1n;

export function wholeNumber(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number.');
  return Number(text);
}

/** A queue depth: a whole number of at least 1, or `auto`. */
export function queueDepth(text: string): number | 'auto' {
  if (text === 'auto') return 'auto';
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('expected auto or a whole number ≥ 1.');
  return Number(text);
}

export function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('expected a positive number.');
  return value;
}

/** Node keeps a timer for at most 2^31-1 ms; a longer one would fire at once. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A timeout in seconds: positive (fractions are fine: 0.05), and no longer than a timer can wait. */
export function timeoutSeconds(text: string): number {
  const value = positiveNumber(text);
  if (value > MAX_TIMEOUT_SECONDS)
    throw new InvalidArgumentError(
      `expected at most ${MAX_TIMEOUT_SECONDS} seconds (24.8 days), the longest a timer can wait.`,
    );
  return value;
}

export function nonNegative(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError('expected a number, 0 or more.');
  return value;
}

/** For repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A replicate's seed, 0 to 2^64-1: a number, or a bigint beyond 2^53 (bad input otherwise). */
export function parseSeed(text: string, option = '--seed'): number | bigint {
  if (!/^\d+$/.test(text.trim()))
    throw new Failure('bad-input', `${option} must be a whole number from 0 to 2^64-1, not ${JSON.stringify(text)}.`);
  const seed = BigInt(text.trim());
  if (seed > MAX_SEED) throw new Failure('bad-input', `${option} ${text} is above 2^64-1.`);
  return seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed;
}

export function portNumber(text: string): number {
  const value = wholeNumber(text);
  if (value < 1 || value > 65535) throw new InvalidArgumentError('expected a port, 1 to 65535.');
  return value;
}

/** A Dask scheduler address like tcp://HOST:PORT (a bad one is bad input, exit 2). */
export function checkSchedulerAddress(address: string): string {
  if (!/^[a-z][a-z0-9+]*:\/\/[^\s/]+$/i.test(address))
    throw new Failure(
      'bad-input',
      `--scheduler ${JSON.stringify(address)} is not a scheduler address like tcp://HOST:PORT.`,
    );
  return address;
}
