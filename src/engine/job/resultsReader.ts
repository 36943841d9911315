/**
 * Reading a results folder without writing to it or locking it, for views of a job that may
 * still be running (the editor's results documents). The layout is the store's (results.ts
 * names the files) and a record counts only if it passes the same checks a resume applies
 * (resultSchema.ts); every answer says whether the result is there, not there yet, or
 * unreadable and why, so a view never shows a guess.
 */
import { readFileSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import * as path from 'node:path';
import { Failure, isFailure } from '../failure';
import { readInputFile } from '../inputFile';
import { parsePythonJson, stringifyWireJson } from '../pyjson/pyjson';
import type { AggRecord, OutputRecord, SimRecord } from './records';
import { aggResultFile, jobJsonDigest, layout1SimsDir, parseSetLines, simsFile, type SetLines } from './results';
import { checkAggRecord, checkSimRecord, type Checked } from './resultSchema';
import { jobFromResultsJson, type JobSpec, type ParameterSet } from './spec';

const PRETTY_MAX_LINES = 40;
/** Layout 1's result files read at once. */
const READ_BATCH = 64;
/** A binary output's first bytes shown, 16 to a line. */
const HEX_BYTES = 256;

export type ReadResult<T> =
  | { state: 'found'; file: string; record: T }
  /** `why`: how it is missing, when not simply "does not exist" (a set's file without a line for the replicate). */
  | { state: 'missing'; file: string; why?: string }
  | { state: 'unreadable'; file: string; why: string };

/**
 * A results folder's `job.json`, checked as a resume checks it (param_ids and seeds recomputed;
 * not, when the manifest of the last run recorded these very bytes' sha256: that run checked or
 * wrote them, and 400k seeds cost a second to hash again).
 * Throws bad-input, saying why, for a folder that is not a job's.
 */
export async function readJobJson(
  folder: string,
): Promise<{ job: JobSpec; bundleDigest?: string; jobJsonSha256: string }> {
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
  const jobJsonSha256 = jobJsonDigest(text);
  const checked = recordedJobJsonDigest(dir) === jobJsonSha256;
  return { ...jobFromResultsJson(file, raw, path.basename(dir), checked), jobJsonSha256 };
}

/**
 * The sha256 of job.json that the last run that ended recorded in its manifest, if any: the
 * bytes it checked (or wrote) itself. Anything unreadable is no record, and job.json is checked
 * whole.
 */
function recordedJobJsonDigest(dir: string): string | undefined {
  try {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as unknown;
    const digest = (manifest as { job_json_sha256?: unknown } | null)?.job_json_sha256;
    return typeof digest === 'string' ? digest : undefined;
  } catch {
    return undefined; // no manifest (a first run killed), or not one we can read: no shortcut
  }
}

export function readAggResult(dir: string, set: ParameterSet): Promise<ReadResult<AggRecord>> {
  return readChecked(aggResultFile(dir, set.paramId), (value) => checkAggRecord(value, set));
}

export async function readSimResult(dir: string, set: ParameterSet, replicate: number): Promise<ReadResult<SimRecord>> {
  return (await readSimResults(dir, set, replicate + 1, replicate))[0];
}

/**
 * One answer per replicate of the set, in replicate order, from `from` up to the first `limit`
 * replicates (a set may have millions: a view reads what it shows). The set's `sims/<param>.jsonl`
 * is read once (the last complete line of a replicate wins, a line still being written is left
 * out); a replicate without a line there is looked for in layout 1's `sims/<param>/<i>.json`.
 */
export async function readSimResults(
  dir: string,
  set: ParameterSet,
  limit = Infinity,
  from = 0,
): Promise<ReadResult<SimRecord>[]> {
  const count = Math.min(limit, set.seeds.length);
  const file = simsFile(dir, set.paramId);
  const lines = await readSetFile(file, set);
  const lastBad = new Map<number, string>();
  if ('parsed' in lines)
    for (const bad of lines.parsed.bad)
      if (bad.replicate !== undefined && !lines.parsed.records.has(bad.replicate))
        lastBad.set(bad.replicate, `line ${bad.line}: it is not a result of this task: ${bad.why}`);
  const layout1 = layout1SimsDir(dir, set.paramId);
  const hasLayout1 = await lstat(layout1).then(
    () => true,
    () => false,
  );
  const found: ReadResult<SimRecord>[] = [];
  const fromLayout1: number[] = [];
  for (let replicate = from; replicate < count; replicate++) {
    const record = 'parsed' in lines ? lines.parsed.records.get(replicate) : undefined;
    const bad = lastBad.get(replicate);
    if (record) found.push({ state: 'found', file, record });
    else if (bad) found.push({ state: 'unreadable', file, why: bad });
    else if (hasLayout1) {
      fromLayout1.push(found.length);
      found.push({ state: 'missing', file });
    } else if ('why' in lines) found.push({ state: 'unreadable', file, why: lines.why });
    else
      found.push({
        state: 'missing',
        file,
        why: lines.missing ? 'does not exist' : `has no line for replicate ${replicate}`,
      });
  }
  for (let at = 0; at < fromLayout1.length; at += READ_BATCH) {
    const batch = fromLayout1.slice(at, at + READ_BATCH);
    const reads = await Promise.all(
      batch.map((index) => {
        const replicate = from + index;
        return readChecked(path.join(layout1, `${replicate}.json`), (value) => checkSimRecord(value, set, replicate));
      }),
    );
    batch.forEach((index, i) => (found[index] = reads[i]));
  }
  return found;
}

/** A result file's text, or that it does not exist, or why it cannot be read. */
async function readResultText(file: string): Promise<{ text: string } | { missing: true } | { why: string }> {
  try {
    await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
  }
  try {
    return { text: await readInputFile(file, 'a result file') }; // a regular file only: never a FIFO that waits for ever
  } catch (error) {
    return { why: isFailure(error) ? error.message.replace(/\.$/, '') : String(error) };
  }
}

/** A set's `.jsonl` parsed, or missing, or why it cannot be read. */
async function readSetFile(
  file: string,
  set: ParameterSet,
): Promise<{ parsed: SetLines; missing?: undefined } | { missing: true } | { why: string }> {
  const read = await readResultText(file);
  return 'text' in read ? { parsed: parseSetLines(read.text, set) } : read;
}

async function readChecked<T>(file: string, check: (value: unknown) => Checked<T>): Promise<ReadResult<T>> {
  const read = await readResultText(file);
  if ('missing' in read) return { state: 'missing', file };
  if ('why' in read) return { state: 'unreadable', file, why: read.why };
  const { text } = read;
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
