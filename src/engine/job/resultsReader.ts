/**
 * Reading a results folder without writing to it or locking it, for views of a job that may
 * still be running (the editor's results documents). The layout is the store's (results.ts
 * names the files) and a record counts only if it passes the same checks a resume applies
 * (resultSchema.ts); every answer says whether the result is there, not there yet, or
 * unreadable and why, so a view never shows a guess.
 */
import { lstat } from 'node:fs/promises';
import * as path from 'node:path';
import { Failure, isFailure } from '../failure';
import { readInputFile } from '../inputFile';
import { parsePythonJson, stringifyWireJson } from '../pyjson/pyjson';
import type { AggRecord, OutputRecord, SimRecord } from './records';
import { aggResultFile, simResultFile } from './results';
import { checkAggRecord, checkSimRecord, type Checked } from './resultSchema';
import { jobFromResultsJson, type JobSpec, type ParameterSet } from './spec';

const PRETTY_MAX_LINES = 40;
/** Result files read at once. */
const READ_BATCH = 64;
/** A binary output's first bytes shown, 16 to a line. */
const HEX_BYTES = 256;

export type ReadResult<T> =
  | { state: 'found'; file: string; record: T }
  | { state: 'missing'; file: string }
  | { state: 'unreadable'; file: string; why: string };

/**
 * A results folder's `job.json`, checked as a resume checks it (param_ids and seeds recomputed).
 * Throws bad-input, saying why, for a folder that is not a job's.
 */
export async function readJobJson(folder: string): Promise<{ job: JobSpec; bundleDigest?: string }> {
  const dir = path.resolve(folder);
  const file = path.join(dir, 'job.json');
  const notAJob = (why: string) => new Failure('bad-input', `${dir} is not a results folder of a job (${why}).`);
  let text: string;
  try {
    text = await readInputFile(file, "a results folder's job.json"); // a regular file only: a FIFO in its place would wait for ever
  } catch (error) {
    const missing = await lstat(file).then(
      () => false,
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
    );
    throw notAJob(missing ? 'no job.json' : isFailure(error) ? error.message.replace(/\.$/, '') : String(error));
  }
  let raw: unknown;
  try {
    raw = parsePythonJson(text);
  } catch (error) {
    throw notAJob(`job.json is not valid JSON: ${(error as Error).message}`);
  }
  return jobFromResultsJson(file, raw, path.basename(dir));
}

export function readAggResult(dir: string, set: ParameterSet): Promise<ReadResult<AggRecord>> {
  return readChecked(aggResultFile(dir, set.paramId), (value) => checkAggRecord(value, set));
}

export function readSimResult(dir: string, set: ParameterSet, replicate: number): Promise<ReadResult<SimRecord>> {
  return readChecked(simResultFile(dir, set.paramId, replicate), (value) => checkSimRecord(value, set, replicate));
}

/**
 * One answer per replicate of the set, in replicate order, for the first `limit` replicates (a
 * set may have millions: a view reads what it shows), a few dozen files at a time.
 */
export async function readSimResults(
  dir: string,
  set: ParameterSet,
  limit = Infinity,
): Promise<ReadResult<SimRecord>[]> {
  const count = Math.min(limit, set.seeds.length);
  const found: ReadResult<SimRecord>[] = [];
  for (let from = 0; from < count; from += READ_BATCH) {
    const batch = Array.from({ length: Math.min(READ_BATCH, count - from) }, (_, i) =>
      readSimResult(dir, set, from + i),
    );
    found.push(...(await Promise.all(batch)));
  }
  return found;
}

async function readChecked<T>(file: string, check: (value: unknown) => Checked<T>): Promise<ReadResult<T>> {
  let text: string;
  try {
    await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing', file };
  }
  try {
    text = await readInputFile(file, 'a result file'); // a regular file only: never a FIFO that waits for ever
  } catch (error) {
    return { state: 'unreadable', file, why: isFailure(error) ? error.message.replace(/\.$/, '') : String(error) };
  }
  let value: unknown;
  try {
    value = parsePythonJson(text);
  } catch (error) {
    return {
      state: 'unreadable',
      file,
      why: `it is not JSON (${isFailure(error) ? error.message : (error as Error).message})`,
    };
  }
  const checked = check(value);
  return 'why' in checked
    ? { state: 'unreadable', file, why: `it is not a result of this task: ${checked.why}` }
    : { state: 'found', file, record: checked.record };
}

/** An output's bytes for a reader: JSON decoded, else text (cut at `limit` characters), else its first bytes in hex. */
export type DecodedOutput = { size: number; truncated: boolean } & (
  { as: 'json'; text: string } | { as: 'text'; text: string } | { as: 'binary'; hex: string }
);

export function decodeOutput(output: OutputRecord, limit = 2000): DecodedOutput {
  const bytes = Buffer.from(output.inline, 'base64');
  const size = output.size;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  // eslint-disable-next-line no-control-regex -- a control character other than \t \n \v \f \r means binary
  const isText = !text.includes('\uFFFD') && !/[\u0000-\u0008\u000E-\u001F]/.test(text);
  if (isText) {
    let shown: string | undefined;
    try {
      // as Python wrote it (1.0 stays 1.0); indented when that stays short, else as it came
      const pretty = stringifyWireJson(parsePythonJson(text), 2);
      shown = pretty.split('\n').length <= PRETTY_MAX_LINES ? pretty : text;
    } catch {
      shown = undefined; // not JSON: shown as text
    }
    return {
      size,
      as: shown === undefined ? 'text' : 'json',
      text: (shown ?? text).slice(0, limit),
      truncated: (shown ?? text).length > limit,
    };
  }
  const head = bytes.subarray(0, HEX_BYTES);
  const rows = Array.from({ length: Math.ceil(head.length / 16) }, (_, row) =>
    head
      .subarray(row * 16, row * 16 + 16)
      .toString('hex')
      .replace(/(..)(?!$)/g, '$1 '),
  );
  return { size, as: 'binary', hex: rows.join('\n'), truncated: head.length < bytes.length };
}
