/**
 * The results of a job on disk, as DESIGN.md lays them out, under `<out>/<job_id>/`:
 * `job.json`, `manifest.json`, `sims/<param16>/<i>.json`, `aggs/<param16>.json`,
 * `events.jsonl`, `logs/` (each runner's full stderr), `transcripts/`.
 * Every file is written whole (temporary file + rename), so a reader — or a resume after a
 * kill — never sees half of one. One process writes a folder at a time (its lock), and a disk
 * that stops taking writes ends the job as `results-unwritable`, never as a crash.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
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
import { Worker } from 'node:worker_threads';
import { Failure, isFailure } from '../failure';
import type { DirLock } from '../lock/dirLock';
import { parsePythonJson, pyFloatRepr, RawJson, stringifyWireJson } from '../pyjson/pyjson';
import type { WarmProcess } from '../process/warmProcess';
import type { JobEvent } from './events';
import type { Params } from './ids';
import type { AggRecord, SimRecord } from './records';
import { checkAggRecord, checkSimRecord, type Checked } from './resultSchema';
import { checkFolderItself, inspectFolder, lockResultsFolder, makeFolders, unwritable } from './resultsFolder';
import type { JobInput, JobSpec, ParameterSet } from './spec';

/**
 * A runner's stderr log in a job's `logs/`: `runner-<pid>.stderr` for a runner on this machine,
 * `dask-<worker>-runner-<pid>.stderr` for one on a Dask worker (pids repeat across machines).
 */
export function runnerStderrLog(pid: number | undefined, worker?: string): string {
  const runner = `runner-${pid ?? 'unknown'}.stderr`;
  return worker ? `dask-${worker.replace(/^[a-z]+:\/\//, '').replace(/[^A-Za-z0-9.-]+/g, '_')}-${runner}` : runner;
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
const WRITE_BATCH = 256;
const WRITE_GATHER_MS = 10;
/** Waiters for room are woken once the backlog falls below this. */
const WRITE_BACKLOG_LOW = 1024;
/** The scheduler starts no new work while this many result files wait to be written. */
export const WRITE_BACKLOG_LIMIT = 4096;

/**
 * The result writer's thread: each batch of [file, text] written whole (temp + rename), in
 * order. After the first failed write (its temporary file removed) it writes nothing more, so
 * what is on disk is every result up to a point, and a resume runs the rest.
 */
const WRITER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const made = new Set();
let failed = false;
parentPort.on('message', (batch) => {
  let error;
  for (const [file, text] of batch) {
    if (failed) continue;
    const temp = file + '.tmp-' + process.pid;
    try {
      const dir = path.dirname(file);
      if (!made.has(dir)) { fs.mkdirSync(dir, { recursive: true }); made.add(dir); }
      fs.writeFileSync(temp, text);
      fs.renameSync(temp, file);
    } catch (e) {
      failed = true;
      try { fs.rmSync(temp, { force: true }); } catch {}
      error = { code: e && e.code, message: String(e && e.message || e), file };
    }
  }
  parentPort.postMessage({ error });
});
`;
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

type WriteError = { code?: string; message: string; file: string };

/** `sims/<param16>/<i>.json` of the results folder `dir`. */
export function simResultFile(dir: string, paramId: string, replicate: number): string {
  return path.join(dir, 'sims', paramDir(paramId), `${replicate}.json`);
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

  simFile(set: ParameterSet | string, replicate: number): string {
    return simResultFile(this.dir, typeof set === 'string' ? set : set.paramId, replicate);
  }

  aggFile(paramId: string): string {
    return path.join(this.dir, 'aggs', `${paramDir(paramId)}.json`);
  }

  /**
   * Replicates of a parameter set that already have a result, from an earlier run. A file that
   * is not a result of this replicate (resultSchema.ts) is left out, so its task runs again,
   * and noted once.
   */
  existingSims(set: ParameterSet): Map<number, SimRecord> {
    const found = new Map<number, SimRecord>();
    const dir = path.join(this.dir, 'sims', paramDir(set.paramId));
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
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw unwritable(this.dir, error, file, 'reading');
    }
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
  events(): { events: JobEvent[]; torn: number } {
    const file = path.join(this.dir, 'events.jsonl');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], torn: 0 };
      throw unwritable(this.dir, error, file, 'reading');
    }
    const events: JobEvent[] = [];
    let torn = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        events.push(JSON.parse(line) as JobEvent);
      } catch {
        torn++;
      }
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
  private readonly writer: Worker;
  private batch: [string, string][] = [];
  private batchScheduled = false;
  private unacked = 0;
  /** Files handed to the writer and not yet written. */
  private pendingFiles = 0;
  private readonly batchSizes: number[] = [];
  private readonly drained: (() => void)[] = [];
  private readonly roomWaiters: (() => void)[] = [];
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
    this.writer = new Worker(WRITER_SOURCE, { eval: true });
    this.writer.on('message', (message: { error?: WriteError }) => this.onWritten(message));
    this.writer.on('error', (error) => this.onWritten({ error: { message: error.message, file: dir } }));
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
      store = new ResultsStore(dir, lock, notices, bundleDigest);
      store.writeJson('job.json', normalise(job, bundleDigest));
      return store;
    } catch (error) {
      if (store) await store.close();
      else await lock.release().catch(() => undefined);
      throw error;
    }
  }

  /** An earlier run's folder, checked and locked (see resume.ts): `notices` say what was found. */
  static reopen(dir: string, lock: DirLock, notices: string[], bundleDigest: string): ResultsStore {
    return new ResultsStore(dir, lock, notices, bundleDigest);
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
   * Result files are written by a worker thread, in order, in batches: creating a file costs
   * 25–175 µs of system time here, and on the event loop that time would hold up the runners'
   * answers (a thread-pool write per file costs more still: four thread hand-offs each). A
   * result counts as done only once its file is in place, so a kill loses nothing a resume
   * would not run again.
   */
  writeSim(record: SimRecord): void {
    this.enqueue(this.simFile(record.param_id, record.replicate), plainJson(record));
  }

  /** Every queued file written (or, after a failed write, given up: see `failure`). */
  async drain(): Promise<void> {
    this.flushWrites();
    while (this.unacked > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
  }

  /**
   * Resolves once fewer than `limit` files wait to be written. The scheduler waits on this
   * before starting more work, so a slow disk bounds memory instead of a growing queue.
   */
  waitForRoom(limit: number): Promise<void> | undefined {
    if (this.pendingFiles < limit) return undefined;
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private enqueue(file: string, text: string): void {
    // after any failed write (an event, a log) no more results are written: the space given back
    // is for the manifest, and the manifest counts what is on disk (a resume runs the rest)
    if (this.writeFailure) return;
    this.pendingFiles++;
    this.batch.push([file, text]);
    if (this.batch.length >= WRITE_BATCH) this.flushWrites();
    else if (!this.batchScheduled) {
      // a message to the writer costs ~40 µs here: gather a few milliseconds' worth first
      this.batchScheduled = true;
      setTimeout(() => this.flushWrites(), WRITE_GATHER_MS);
    }
  }

  private flushWrites(): void {
    this.batchScheduled = false;
    if (this.batch.length === 0) return;
    if (this.writeFailure) {
      this.pendingFiles -= this.batch.length;
      this.batch = [];
      return;
    }
    this.unacked++;
    this.batchSizes.push(this.batch.length);
    this.writer.postMessage(this.batch);
    this.batch = [];
  }

  private onWritten(message: { error?: WriteError }): void {
    if (message.error)
      this.fail(Object.assign(new Error(message.error.message), { code: message.error.code }), message.error.file);
    this.unacked--;
    this.pendingFiles -= this.batchSizes.shift() ?? 0;
    if (this.pendingFiles < WRITE_BACKLOG_LOW) for (const resolve of this.roomWaiters.splice(0)) resolve();
    if (this.unacked === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Through the same ordered queue as the simulations it summarises. */
  writeAgg(record: AggRecord): void {
    this.enqueue(this.aggFile(record.param_id), stringifyWireJson(withFloatLosses(record), 2));
  }

  /** Whole (temp + rename); a failure is results-unwritable, thrown, with no temp file left. */
  writeJson(name: string, value: unknown): void {
    const file = path.join(this.dir, name);
    this.guard(() => atomicWrite(file, `${stringifyWireJson(value, 2)}\n`), file);
  }

  /**
   * Forget every failed result, and the aggregation of each parameter set that had one (or
   * whose aggregation failed), so that a resume runs exactly those again.
   */
  forgetFailures(job: JobSpec): { sims: number; aggregations: number } {
    let sims = 0;
    let aggregations = 0;
    for (const set of job.parameterSets) {
      const dir = path.join(this.dir, 'sims', paramDir(set.paramId));
      let forgot = false;
      for (const name of existsSync(dir) ? readdirSync(dir) : []) {
        const match = /^(\d+)\.json$/.exec(name);
        if (!match) continue;
        const file = path.join(dir, name);
        const replicate = Number(match[1]);
        const record =
          replicate < set.seeds.length
            ? this.readChecked(file, (value) => checkSimRecord(value, set, replicate))
            : undefined;
        if (record?.status === 'ok') continue;
        this.guard(() => rmSync(file, { force: true }), file); // failed, or not a result: it goes
        forgot = true;
        sims++;
      }
      const agg = this.aggFile(set.paramId);
      if (existsSync(agg) && (forgot || this.aggStatus(set) !== 'ok')) {
        this.guard(() => rmSync(agg, { force: true }), agg);
        aggregations++;
      }
    }
    return { sims, aggregations };
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
    await this.drain();
    await this.writer.terminate();
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

/** Temp + rename; a failed write leaves no temporary file behind. */
function atomicWrite(file: string, text: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(temp, text);
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
