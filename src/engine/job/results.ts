/**
 * The results of a job on disk, as DESIGN.md lays them out, under `<out>/<job_id>/` (layout 2):
 * `job.json`, `manifest.json`, `sims/<param16>.jsonl`, `aggs/<param16>.json`, `events.jsonl`,
 * `logs/` (each runner's full stderr), `transcripts/`.
 * A set's simulations are appended to its `.jsonl`, one line per finished attempt (the last
 * complete line of a replicate wins; a torn last line is never read, and a resume cuts it);
 * every other file is written whole (temporary file + rename). One process writes a folder at a
 * time (its lock), and a disk that stops taking writes ends the job as `results-unwritable`,
 * never as a crash. Folders of layout 1 (`sims/<param16>/<i>.json`, modelops-debugger 0.1.0
 * before layout 2) are still read, and a resume converts them.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  rmSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';
import { Failure, isFailure } from '../failure';
import type { DirLock } from '../lock/dirLock';
import { parsePythonJson, pyFloatRepr, RawJson, stringifyWireJson } from '../pyjson/pyjson';
import type { WarmProcess } from '../process/warmProcess';
import type { JobEvent } from './events';
import type { Params } from './ids';
import type { AggRecord, SimRecord } from './records';
import { checkAggRecord, checkSimRecord, type Checked } from './resultSchema';
import {
  checkFolderItself,
  cutTornLine,
  inspectFolder,
  lockResultsFolder,
  makeFolders,
  unwritable,
} from './resultsFolder';
import type { JobInput, JobSpec, ParameterSet } from './spec';

/**
 * A runner's stderr log in a job's `logs/`: `runner-<pid>.stderr` for a runner on this machine,
 * `dask-<worker>-runner-<pid>.stderr` for one on a Dask worker (pids repeat across machines).
 */
export function runnerStderrLog(pid: number | undefined, worker?: string): string {
  const runner = `runner-${pid ?? 'unknown'}.stderr`;
  return worker ? `dask-${worker.replace(/^[a-z]+:\/\//, '').replace(/[^A-Za-z0-9.-]+/g, '_')}-${runner}` : runner;
}

/** An event as `skimEvents` gives it: whole, or only its type and key. */
export type SkimmedEvent = JobEvent | { type: JobEvent['type']; key: string; skimmed: true };

const LINE_START = '{"t":';
const TYPE_MARK = ',"type":"';
const KEY_MARK = '","key":"';

/**
 * The type and key of the event on text[start, end) when its type is not wanted whole and the
 * line reads as the engine writes it (t, type, key first; a whole line, ending in `}`); else
 * undefined, and the line is parsed.
 */
function skim(text: string, start: number, end: number, whole: ReadonlySet<string>): SkimmedEvent | undefined {
  if (end - start < 20 || !text.startsWith(LINE_START, start) || text.charCodeAt(end - 1) !== 0x7d) return undefined;
  const typeAt = text.indexOf(TYPE_MARK, start);
  if (typeAt < 0 || typeAt > start + 48) return undefined; // t is a number or an ISO string: short
  const typeEnd = text.indexOf('"', typeAt + TYPE_MARK.length);
  const type = text.slice(typeAt + TYPE_MARK.length, typeEnd) as JobEvent['type'];
  if (whole.has(type) || !text.startsWith(KEY_MARK, typeEnd)) return undefined;
  const keyAt = typeEnd + KEY_MARK.length;
  const keyEnd = text.indexOf('"', keyAt);
  if (keyEnd < 0 || keyEnd >= end || text.charCodeAt(keyEnd - 1) === 0x5c) return undefined; // an escape: parse it
  return { type, key: text.slice(keyAt, keyEnd), skimmed: true };
}

/** The sha256 of job.json's bytes (hex): what a manifest records of the job it ran. */
export function jobJsonDigest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `job.json`: the normalised job. */
export interface NormalisedJob {
  job_id: string;
  bundle: string;
  /** The bundle's digest when the job was created: a resume refuses a bundle that changed since. */
  bundle_digest?: string;
  entrypoint: string;
  source: string;
  targets: string[];
  target_data: unknown;
  notes: string[];
  parameter_sets: { param_id: string; params: Params; seeds: (number | bigint)[] }[];
  /** What the job was made from (a job file, or a parameters file and a count): how to make it again. */
  input?: JobInput;
}

const EVENT_FLUSH_BYTES = 64 * 1024;
/** Simulation lines gathered before they are appended (or WRITE_GATHER_MS, whichever comes first). */
const WRITE_BATCH = 256;
const WRITE_GATHER_MS = 10;
/** The results layout this version writes (manifest.json `layout`). */
export const RESULTS_LAYOUT = 2;
/** Which version wrote layout 1, for the notice of a conversion. */
const LAYOUT1_WRITER = 'modelops-debugger 0.1.0 before results layout 2';
/** A set's `.jsonl` is appended to, never followed through a symbolic link. */
const SIMS_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0);
/**
 * Space kept aside in every results folder while a job runs, given back the moment a write
 * fails: a full disk still leaves room for the manifest and the last events.
 */
const RESERVE_FILE = '.space-reserve';
const RESERVE_BYTES = 128 * 1024;
/** events.jsonl is never followed through a symbolic link. */
const EVENTS_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0);
const EVENT_FLUSH_MS = 100;

/** A parameter set's name in the folder; a param_id is 64 hex digits, never a path. */
export function paramDir(paramId: string): string {
  if (!/^[0-9a-f]{64}$/.test(paramId))
    throw new Failure('bad-input', `${JSON.stringify(paramId)} is not a param_id (64 hex digits).`);
  return paramId.slice(0, 16);
}

/** Where a parameter set's aggregation lives in a results folder (the store writes it, resultsReader.ts reads it). */
export function aggResultFile(dir: string, paramId: string): string {
  return path.join(dir, 'aggs', `${paramDir(paramId)}.json`);
}

/**
 * A new run's results folder holds an earlier run of the same job id: never written over. Each
 * consumer says what to do about it (the CLI: --resume or another job_id; the editor asks).
 */
export class ResultsExist extends Failure {
  constructor(
    readonly jobId: string,
    readonly dir: string,
  ) {
    super('bad-input', `Results of job ${jobId} already exist in ${dir}.`);
  }
}

/** `sims/<param16>.jsonl` of the results folder `dir`: every simulation of the set, one line per attempt. */
export function simsFile(dir: string, paramId: string): string {
  return path.join(dir, 'sims', `${paramDir(paramId)}.jsonl`);
}

/** Layout 1's folder of a set, `sims/<param16>/` (one `<i>.json` per replicate): read, and converted on resume. */
export function layout1SimsDir(dir: string, paramId: string): string {
  return path.join(dir, 'sims', paramDir(paramId));
}

/** A line that may hold a float or an integer beyond 2^53 (anything that JSON.parse would read otherwise). */
const MAYBE_PYTHON_NUMBER = /\d[.eE]|\d{16}/;

/** A set's `.jsonl` as read: the last complete line of each replicate, and what was not a result. */
export interface SetLines {
  records: Map<number, SimRecord>;
  /** The winning line's text, by replicate (`keepLines`): a rewrite copies lines, never serialises again. */
  lines?: Map<number, string>;
  /** Complete lines that are not a result of this set: line number (from 1), replicate when known, why. */
  bad: { line: number; replicate?: number; why: string }[];
  /** Characters after the last newline: a torn line left by a kill mid-write, never read. */
  torn: number;
}

/**
 * Parses a set's JSON Lines. A line that is not a result of its replicate (resultSchema.ts)
 * cancels that replicate's earlier lines, so its task runs again; the bytes after the last
 * newline are a line still being written (or torn by a kill) and are left out.
 */
export function parseSetLines(text: string, set: ParameterSet, keepLines = false): SetLines {
  const records = new Map<number, SimRecord>();
  const lines = keepLines ? new Map<number, string>() : undefined;
  const bad: SetLines['bad'] = [];
  const end = text.lastIndexOf('\n') + 1;
  let line = 0;
  for (let from = 0; from < end;) {
    const to = text.indexOf('\n', from);
    const raw = text.slice(from, to);
    from = to + 1;
    line++;
    if (!raw) continue;
    let value: unknown;
    try {
      // a seed above 2^53 stays exact, a float stays a float: JSON.parse reads a line with neither
      // the same (a float has a digit before its . or exponent; an unsafe integer has 16 digits)
      value = MAYBE_PYTHON_NUMBER.test(raw) ? parsePythonJson(raw) : JSON.parse(raw);
    } catch (error) {
      bad.push({ line, why: isFailure(error) ? error.message : 'not JSON' });
      continue;
    }
    const replicate = (value as { replicate?: unknown } | null)?.replicate;
    if (
      typeof replicate !== 'number' ||
      !Number.isInteger(replicate) ||
      replicate < 0 ||
      replicate >= set.seeds.length
    ) {
      bad.push({ line, why: `replicate is ${JSON.stringify(String(replicate))}, not one of this set's` });
      continue;
    }
    const checked = checkSimRecord(value, set, replicate);
    if ('why' in checked) {
      bad.push({ line, replicate, why: checked.why });
      records.delete(replicate);
      lines?.delete(replicate);
      continue;
    }
    records.set(replicate, checked.record);
    lines?.set(replicate, raw);
  }
  return { records, lines, bad, torn: text.length - end };
}

/** A result file read and checked (resultSchema.ts): the record, or why it is not one. Never writes. */
export function readResultFile<T>(file: string, check: (value: unknown) => Checked<T>): Checked<T> {
  let value: unknown;
  try {
    value = parsePythonJson(readFileSync(file, 'utf8'));
  } catch (error) {
    return { why: isFailure(error) ? error.message : 'not JSON' };
  }
  return check(value);
}

/**
 * An output's checksum as production sends it to aggregations (isolated_warm.py
 * `_serialize_sim_returns`): BLAKE2b-256 of its bytes, hex.
 */
export function outputChecksum(bytes: Uint8Array): string {
  return bytesToHex(blake2b(bytes, { dkLen: 32 }));
}

/**
 * Reading a results folder: where each result lives and which files are results. The store
 * below writes through the same paths; readers that must not lock or write (the editor opening
 * a job from disk, onDisk.ts) use this alone, so a new layout changes only this file.
 */
export class ResultsReader {
  /** Files that were not results, by name relative to the folder, with why (each once, however often read). */
  readonly notResults = new Set<string>();

  constructor(readonly dir: string) {}

  simsFile(set: ParameterSet | string): string {
    return simsFile(this.dir, typeof set === 'string' ? set : set.paramId);
  }

  aggFile(paramId: string): string {
    return path.join(this.dir, 'aggs', `${paramDir(paramId)}.json`);
  }

  /**
   * Replicates of a parameter set that already have a result, from an earlier run: layout 1's
   * files first, then the `.jsonl`'s lines (the last complete line of a replicate wins). What is
   * not a result of its replicate (resultSchema.ts) is left out, so its task runs again, and
   * noted once.
   */
  existingSims(set: ParameterSet): Map<number, SimRecord> {
    const found = this.layout1Sims(set);
    const file = this.simsFile(set);
    const text = this.readIfPresent(file);
    if (text === undefined) return found;
    const parsed = parseSetLines(text, set);
    for (const { line, replicate, why } of parsed.bad) {
      if (replicate !== undefined) found.delete(replicate);
      this.notResults.add(
        `${path.relative(this.dir, file)} line ${line}${replicate === undefined ? '' : `, replicate ${replicate}`} (${why})`,
      );
    }
    for (const [replicate, record] of parsed.records) found.set(replicate, record);
    if (parsed.torn) this.tornLine(file, parsed.torn);
    return found;
  }

  /** A file of the folder, or undefined when it does not exist; any other error is results-unwritable. */
  protected readIfPresent(file: string): string | undefined {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw unwritable(this.dir, error, file, 'reading');
    }
  }

  /** A torn last line of a set's `.jsonl`: a reader leaves it out; the store (which holds the lock) cuts it. */
  protected tornLine(_file: string, _bytes: number): void {}

  /** Layout 1's `sims/<param16>/<i>.json` of a set, each file checked. */
  protected layout1Sims(set: ParameterSet): Map<number, SimRecord> {
    const found = new Map<number, SimRecord>();
    const dir = layout1SimsDir(this.dir, set.paramId);
    if (!existsSync(dir)) return found;
    for (const name of readdirSync(dir)) {
      const match = /^(\d+)\.json$/.exec(name);
      if (!match) continue;
      const replicate = Number(match[1]);
      if (replicate >= set.seeds.length) continue;
      const checked = this.readChecked(path.join(dir, name), (value) => checkSimRecord(value, set, replicate));
      if (checked) found.set(replicate, checked);
    }
    return found;
  }

  protected readChecked<T>(file: string, check: (value: unknown) => Checked<T>): T | undefined {
    const checked = readResultFile(file, check);
    if ('why' in checked) {
      this.notResults.add(`${path.relative(this.dir, file)} (${checked.why})`);
      return undefined;
    }
    return checked.record;
  }

  /** An earlier run's aggregation of this parameter set, if it has a valid one. */
  existingAgg(set: ParameterSet): AggRecord | undefined {
    const file = this.aggFile(set.paramId);
    if (!existsSync(file)) return undefined;
    return this.readChecked(file, (value) => checkAggRecord(value, set)); // not one: aggregate again
  }

  /** The status of an earlier run's aggregation of this parameter set, if it has a valid one. */
  aggStatus(set: ParameterSet): AggRecord['status'] | undefined {
    return this.existingAgg(set)?.status;
  }

  /** `manifest.json` as the last run to end wrote it; undefined when there is none yet. */
  manifest(): unknown {
    const file = path.join(this.dir, 'manifest.json');
    const text = this.readIfPresent(file);
    if (text === undefined) return undefined;
    try {
      return parsePythonJson(text);
    } catch (error) {
      throw new Failure('bad-input', `${file} is not valid JSON: ${(error as Error).message}`);
    }
  }

  /**
   * `events.jsonl`, each whole line parsed, in order. A torn last line (a kill mid-write) is
   * left out, as a resume cuts it; so is any other line that is not JSON, counted in `torn`.
   */
  /**
   * events.jsonl for a reader that needs only some events whole (a 400 000-task job's file is
   * 65 MB, nearly all of it task-done lines): the first event and those of the `whole` types
   * parsed, every other one reduced to its type and key, read off the line as the engine writes it
   * (`{"t":…,"type":"…","key":"…",…}`). A line that does not read so is parsed whole; one that is
   * not JSON counts as torn.
   */
  skimEvents(whole: ReadonlySet<JobEvent['type']>): { events: SkimmedEvent[]; torn: number } {
    const text = this.readIfPresent(path.join(this.dir, 'events.jsonl'));
    if (text === undefined) return { events: [], torn: 0 };
    const events: SkimmedEvent[] = [];
    let torn = 0;
    for (let start = 0; start < text.length;) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const skimmed = events.length > 0 ? skim(text, start, end, whole) : undefined;
      if (skimmed) events.push(skimmed);
      else if (end > start) {
        try {
          events.push(JSON.parse(text.slice(start, end)) as JobEvent);
        } catch {
          torn++;
        }
      }
      start = end + 1;
    }
    return { events, torn };
  }
}

export class ResultsStore extends ResultsReader {
  private eventBuffer = '';
  private eventFd: number | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private logCounter = 0;
  private readonly openLogs: number[] = [];
  private readonly appendedLogs = new Map<string, number>();
  /** Simulation lines gathered per set's file, appended at the next flush. */
  private readonly gathered = new Map<string, string[]>();
  private gatheredLines = 0;
  private gatherTimer: NodeJS.Timeout | undefined;
  private writeFailure: Failure | undefined;
  /** Bytes of events.jsonl known to be whole lines: a failed write is cut back to here. */
  private eventBytes = 0;

  /**
   * Things the user should know about the folder (a lock taken over, files that were not
   * results): runJob emits them as `results-folder` events once the job starts.
   */
  readonly notices: string[];

  private constructor(
    dir: string,
    private readonly lock: DirLock | undefined,
    notices: string[] = [],
    /** The digest of the bundle this run runs, hashed once when the folder was opened (job.json records it). */
    readonly bundleDigest?: string,
    /** The sha256 of job.json as this run wrote or checked it: the manifest records it (readJobJson). */
    readonly jobJsonSha256?: string,
  ) {
    super(dir);
    this.notices = notices;
    this.guard(() => {
      for (const sub of ['sims', 'aggs', 'logs']) mkdirSync(path.join(dir, sub), { recursive: true });
      writeFileSync(path.join(dir, RESERVE_FILE), randomBytes(RESERVE_BYTES));
    });
    const events = path.join(dir, 'events.jsonl');
    this.eventFd = this.guard(() => openSync(events, EVENTS_FLAGS, 0o644), events);
    this.eventBytes = fstatSync(this.eventFd).size;
  }

  /**
   * A new results folder, locked; refuses to write over an earlier run's results. `--out` that
   * is a file (or under one) is bad input; a disk that refuses the folder is results-unwritable.
   */
  static async create(out: string, job: JobSpec, bundleDigest?: string): Promise<ResultsStore> {
    const root = path.resolve(out);
    if (existsSync(root) && !statSync(root).isDirectory())
      throw new Failure('bad-input', `The results folder ${root} (--out) is a file, not a folder.`);
    const dir = path.join(root, job.jobId);
    try {
      makeFolders(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR' || code === 'EEXIST')
        throw new Failure('bad-input', `The results folder ${root} (--out) cannot be made: a part of it is a file.`);
      throw unwritable(dir, error);
    }
    checkFolderItself(dir); // <out>/<job_id> may have been there already: a folder, no links in it
    inspectFolder(dir);
    const notices: string[] = [];
    const lock = await lockResultsFolder(dir, `running job ${job.jobId}`, (notice) => notices.push(notice));
    let store: ResultsStore | undefined;
    try {
      if (existsSync(path.join(dir, 'job.json'))) {
        throw new ResultsExist(job.jobId, dir);
      }
      const text = `${stringifyWireJson(normalise(job, bundleDigest), 2)}\n`;
      store = new ResultsStore(dir, lock, notices, bundleDigest, jobJsonDigest(text));
      const file = path.join(dir, 'job.json');
      store.guard(() => atomicWrite(file, text), file);
      return store;
    } catch (error) {
      if (store) await store.close();
      else await lock.release().catch(() => undefined);
      throw error;
    }
  }

  /** An earlier run's folder, checked and locked (see resume.ts): `notices` say what was found. */
  static reopen(
    dir: string,
    lock: DirLock,
    notices: string[],
    bundleDigest: string,
    jobJsonSha256: string,
  ): ResultsStore {
    return new ResultsStore(dir, lock, notices, bundleDigest, jobJsonSha256);
  }

  /** The first write that failed, as `results-unwritable`: the job stops and says so. */
  get failure(): Failure | undefined {
    return this.writeFailure;
  }

  /** Records the first failed write and gives back the reserve, so the manifest still fits. */
  private fail(error: unknown, file?: string): Failure {
    const failure = unwritable(this.dir, error, file);
    if (!this.writeFailure) {
      this.writeFailure = failure;
      rmSync(path.join(this.dir, RESERVE_FILE), { force: true });
    }
    return failure;
  }

  /** Runs a write; its error becomes results-unwritable (recorded, and thrown). */
  private guard<T>(write: () => T, file?: string): T {
    try {
      return write();
    } catch (error) {
      throw this.fail(error, file);
    }
  }

  /**
   * A simulation's record, serialised once: that string is the line appended to its set's
   * `.jsonl`. Lines are gathered for a few milliseconds and appended synchronously on the event
   * loop, one write per set per batch (a file per result cost 75–546 µs, a writer thread ~46 µs
   * of CPU a result on top). A record counts as on disk once appended; a kill before that loses
   * only what a resume runs again.
   */
  writeSim(record: SimRecord): void {
    if (this.writeFailure) return; // the space given back is for the manifest, which counts what is on disk
    const file = this.simsFile(record.param_id);
    const lines = this.gathered.get(file);
    if (lines) lines.push(`${plainJson(record)}\n`);
    else this.gathered.set(file, [`${plainJson(record)}\n`]);
    if (++this.gatheredLines >= WRITE_BATCH) this.flushSims();
    else this.gatherTimer ??= setTimeout(() => this.flushSims(), WRITE_GATHER_MS);
  }

  /**
   * Appends the gathered lines, one write per set (or, after a failed write, gives them up: see
   * `failure`). Appends are synchronous and at most WRITE_BATCH lines wait, so a slow disk holds
   * up the event loop itself rather than growing a queue. Never throws: it runs from timers.
   */
  flushSims(): void {
    if (this.gatherTimer) clearTimeout(this.gatherTimer);
    this.gatherTimer = undefined;
    for (const [file, lines] of this.gathered) {
      this.gathered.delete(file);
      if (!this.writeFailure) this.appendLines(file, lines.join(''));
    }
    this.gatheredLines = 0;
  }

  /**
   * One append of whole lines. The file is opened for each batch and closed after it: no
   * descriptor is held however many sets a job has (a batch is a few milliseconds of results, so
   * the open costs next to nothing), and a permission taken away is met at the next batch. A
   * write that fails part-way is cut back to the last whole line (the file stays JSON Lines) and
   * ends the job as results-unwritable. `sync`: the file is `fdatasync`ed after the append.
   */
  private appendLines(file: string, text: string, sync = false): void {
    let fd: number | undefined;
    let whole = 0;
    try {
      fd = openSync(file, SIMS_FLAGS, 0o644);
      whole = fstatSync(fd).size;
      const data = Buffer.from(text);
      for (let written = 0; written < data.length;) written += writeSync(fd, data, written);
      if (sync) fdatasyncSync(fd);
    } catch (error) {
      if (fd !== undefined) {
        try {
          ftruncateSync(fd, whole);
        } catch {
          // the disk refuses even that: resume cuts the torn line
        }
      }
      this.fail(error, file);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * A set's aggregation, written whole once its simulations are appended and `fdatasync`ed: an
   * aggregation on disk always has its simulations on disk (a resume counts the set from it).
   */
  writeAgg(record: AggRecord): void {
    if (this.writeFailure) return;
    const lines = this.simsFile(record.param_id);
    const pending = this.gathered.get(lines) ?? [];
    this.gathered.delete(lines);
    this.gatheredLines -= pending.length;
    this.appendLines(lines, pending.join(''), true);
    if (this.writeFailure) return;
    const file = this.aggFile(record.param_id);
    try {
      atomicWrite(file, stringifyWireJson(withFloatLosses(record), 2));
    } catch (error) {
      this.fail(error, file); // never thrown: the job ends as results-unwritable, the manifest says what is on disk
    }
  }

  /** Whole (temp + rename); a failure is results-unwritable, thrown, with no temp file left. */
  writeJson(name: string, value: unknown): void {
    const file = path.join(this.dir, name);
    this.guard(() => atomicWrite(file, `${stringifyWireJson(value, 2)}\n`), file);
  }

  /**
   * Forget every failed result, and the aggregation of each parameter set that had one (or
   * whose aggregation failed), so that a resume runs exactly those again. A set's `.jsonl` is
   * rewritten whole (temp + rename) with only the last line of each replicate that succeeded,
   * copied as it was. A set whose aggregation is `ok` with every replicate used has no failure
   * to forget and is not read.
   */
  forgetFailures(job: JobSpec): { sims: number; aggregations: number } {
    let sims = 0;
    let aggregations = 0;
    for (const set of job.parameterSets) {
      const agg = this.existingAgg(set);
      if (agg?.status === 'ok' && !agg.failed_replicates?.length && agg.n_replicates === set.seeds.length) continue;
      const file = this.simsFile(set);
      const parsed = parseSetLines(this.guard(() => this.readIfPresent(file)) ?? '', set, true);
      const kept = [...parsed.lines!].filter(([replicate]) => parsed.records.get(replicate)!.status === 'ok');
      const forgot = kept.length !== parsed.lines!.size || parsed.bad.length > 0 || parsed.torn > 0;
      if (forgot) {
        sims += parsed.lines!.size - kept.length + parsed.bad.filter((bad) => bad.replicate !== undefined).length;
        kept.sort(([a], [b]) => a - b);
        this.guard(() => atomicWrite(file, kept.map(([, line]) => `${line}\n`).join(''), true), file);
      }
      const aggFile = this.aggFile(set.paramId);
      if (existsSync(aggFile) && (forgot || agg?.status !== 'ok')) {
        this.guard(() => rmSync(aggFile, { force: true }), aggFile);
        aggregations++;
      }
    }
    return { sims, aggregations };
  }

  /**
   * Layout 1's `sims/<param16>/` folders of this job, each turned into its `sims/<param16>.jsonl`
   * (its valid records in replicate order, then the lines the `.jsonl` already had, so the last
   * line still wins), written whole, then the folder removed; a kill in between leaves both, and
   * the next resume converts again to the same file. Returns how many sets were converted.
   */
  convertLayout1(job: JobSpec): number {
    let converted = 0;
    // one listing of sims/ says whether there is anything to convert (a set's folder is layout 1's)
    const folders = new Set(
      this.guard(() => readdirSync(path.join(this.dir, 'sims'), { withFileTypes: true }))
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name),
    );
    for (const set of folders.size ? job.parameterSets : []) {
      const old = layout1SimsDir(this.dir, set.paramId);
      if (!folders.has(paramDir(set.paramId))) continue;
      const file = this.simsFile(set);
      const records = [...this.layout1Sims(set)].sort(([a], [b]) => a - b);
      let after = this.guard(() => this.readIfPresent(file)) ?? '';
      after = after.slice(0, after.lastIndexOf('\n') + 1); // a torn last line is not kept
      const text = records.map(([, record]) => `${plainJson(record)}\n`).join('') + after;
      this.guard(() => atomicWrite(file, text, true), file);
      this.guard(() => rmSync(old, { recursive: true, force: true }), old);
      converted++;
    }
    if (converted)
      this.notices.push(
        `Converted ${converted} parameter set${converted === 1 ? '' : 's'} from results layout 1 (a file per simulation, written by ${LAYOUT1_WRITER}) to layout 2 (sims/<param>.jsonl).`,
      );
    return converted;
  }

  /** A torn last line of a set's `.jsonl`, found while loading it: cut before anything is appended, and said. */
  protected override tornLine(file: string, _bytes: number): void {
    let cut = 0;
    try {
      cut = cutTornLine(this.dir, file);
    } catch (error) {
      this.fail(error, file); // never thrown: a recount after a failed write reads sets too
    }
    if (cut)
      this.notices.push(
        `Cut a torn last line (${cut} bytes) off ${path.relative(this.dir, file)}, left by a run that was stopped mid-write; its replicate runs again.`,
      );
  }

  /** `transcripts/runner-<pid>.json`: every frame both ways, in the format `handshake --replay` reads. */
  writeTranscript(process: WarmProcess): void {
    if (this.writeFailure) return;
    this.guard(() => mkdirSync(path.join(this.dir, 'transcripts'), { recursive: true }));
    this.writeJson(`transcripts/runner-${process.pid ?? 'unknown'}.json`, {
      version: 1,
      bundle: process.bundleDir,
      python: process.python,
      runner: process.runnerScript,
      recordedAt: new Date().toISOString(),
      entries: process.transcript,
    });
  }

  /**
   * A new, empty stderr file for a runner about to start; `adoptStderrLog` names it after the
   * runner's pid once it has one (the runner keeps writing to it through the rename).
   */
  newStderrLog(): { path: string; fd: number } {
    const file = path.join(this.dir, 'logs', `runner-starting-${process.pid}-${++this.logCounter}.stderr`);
    return { path: file, fd: this.guard(() => openSync(file, 'a'), file) };
  }

  /**
   * Names the log after its runner. When the runner has the file as its stderr, our descriptor
   * is closed; when the engine writes what it reads from the runner (`keepOpen`), it stays
   * open until close().
   */
  adoptStderrLog(log: { path: string; fd: number }, pid: number | undefined, { keepOpen = false } = {}): void {
    if (keepOpen) this.openLogs.push(log.fd);
    else closeSync(log.fd);
    if (pid !== undefined)
      this.guard(() => renameSync(log.path, path.join(this.dir, 'logs', runnerStderrLog(pid))), log.path);
  }

  /** A chunk of a runner's stderr, into its log; a disk that refuses it ends the job, not the engine. */
  writeLog(log: { path: string; fd: number }, chunk: Buffer): void {
    try {
      writeSync(log.fd, chunk);
    } catch (error) {
      this.fail(error, log.path);
    }
  }

  /**
   * Appends to `logs/<name>`, kept open until close(): the Dask backend's runners live on
   * workers, and their stderr arrives with each task's result. `name` never leaves logs/.
   */
  appendLog(name: string, text: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
      throw new Failure('protocol-error', `Refusing the log name ${JSON.stringify(name)}: not a plain file name`);
    const file = path.join(this.dir, 'logs', name);
    try {
      let fd = this.appendedLogs.get(name);
      if (fd === undefined) {
        fd = openSync(file, 'a');
        this.appendedLogs.set(name, fd);
        this.openLogs.push(fd);
      }
      writeSync(fd, text);
    } catch (error) {
      this.fail(error, file); // a log is not worth a crash: the job ends as results-unwritable
    }
  }

  /** Events are buffered and written in batches; `close` writes the rest. */
  appendEvent(event: JobEvent): void {
    this.eventBuffer += `${plainJson(event)}\n`;
    if (this.eventBuffer.length >= EVENT_FLUSH_BYTES) this.flushEvents();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flushEvents(), EVENT_FLUSH_MS);
  }

  /**
   * Writes the buffered events as whole lines. A write that fails part-way is cut back to the
   * last whole line (events.jsonl stays valid JSON Lines) and the events are kept to try again
   * at the next flush; the failure ends the job as results-unwritable. Never throws: it runs
   * from timers.
   */
  flushEvents(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.eventBuffer) return;
    const file = path.join(this.dir, 'events.jsonl');
    const data = Buffer.from(this.eventBuffer);
    // an event after close (a straggler) is still recorded, never lost
    const straggler = this.eventFd === undefined;
    let fd: number | undefined;
    try {
      fd = this.eventFd ?? openSync(file, EVENTS_FLAGS, 0o644);
      if (straggler) this.eventBytes = fstatSync(fd).size;
      for (let written = 0; written < data.length;) written += writeSync(fd, data, written);
      this.eventBytes += data.length;
      this.eventBuffer = '';
    } catch (error) {
      if (fd !== undefined) {
        try {
          ftruncateSync(fd, this.eventBytes);
        } catch {
          // the disk refuses even that: resume cuts the torn line (resultsFolder.cutTornLine)
        }
      }
      this.fail(error, file);
    } finally {
      if (straggler && fd !== undefined) closeSync(fd);
    }
  }

  /** Everything written that can be, the reserve given back, the lock released. Never throws. */
  async close(): Promise<void> {
    for (const fd of this.openLogs.splice(0)) closeSync(fd);
    this.appendedLogs.clear();
    this.flushSims();
    this.flushEvents();
    if (this.eventFd !== undefined) closeSync(this.eventFd);
    this.eventFd = undefined;
    rmSync(path.join(this.dir, RESERVE_FILE), { force: true });
    await this.lock?.release().catch(() => undefined);
  }
}

function normalise(job: JobSpec, bundleDigest: string | undefined): NormalisedJob {
  return {
    job_id: job.jobId,
    bundle: job.bundleDir,
    bundle_digest: bundleDigest,
    entrypoint: job.entrypoint,
    source: job.source,
    targets: job.targets,
    target_data: job.targetData,
    notes: job.notes,
    parameter_sets: job.parameterSets.map((set) => ({ param_id: set.paramId, params: set.params, seeds: set.seeds })),
    ...(job.input ? { input: job.input } : {}),
  };
}

/**
 * For values with no Python floats or raw JSON in them (events, simulation records): the fast
 * `JSON.stringify`, and the careful writer only when a bigint (a seed above 2^53) is present.
 */
function plainJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return stringifyWireJson(value);
  }
}

/**
 * Temp + rename; a failed write leaves no temporary file behind. `durable`: the temporary file is
 * `fdatasync`ed before the rename, for a file that replaces results already on disk.
 */
function atomicWrite(file: string, text: string, durable = false): void {
  const temp = `${file}.tmp-${process.pid}`;
  try {
    if (durable) {
      const fd = openSync(temp, 'w', 0o644);
      try {
        writeFileSync(fd, text);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } else writeFileSync(temp, text);
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/**
 * The record with each target's loss written as the float it is: the runner sends `float(loss)`,
 * which JSON.parse turns into a plain number, so a loss of 2.0 would otherwise be written `2`
 * where production writes `2.0`.
 */
function withFloatLosses(record: AggRecord): AggRecord {
  const targets = Object.fromEntries(
    Object.entries(record.targets).map(([name, target]) => [
      name,
      target.status === 'ok' && typeof target.loss === 'number'
        ? { ...target, loss: new RawJson(pyFloatRepr(target.loss)) as unknown as number }
        : target,
    ]),
  );
  return { ...record, targets };
}
