/**
 * The results of a job on disk, as DESIGN.md lays them out, under `<out>/<job_id>/`:
 * `job.json`, `manifest.json`, `sims/<param16>/<i>.json`, `aggs/<param16>.json`,
 * `events.jsonl`, `logs/` (each runner's full stderr), `transcripts/`.
 * Every file is written whole (temporary file + rename), so a reader — or a resume after a
 * kill — never sees half of one.
 */
import { appendFileSync, closeSync, existsSync, rmSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Failure, type FailureKind, type SourceLocation } from '../failure';
import { parsePythonJson, stringifyWireJson } from '../pyjson/pyjson';
import type { WarmProcess } from '../process/warmProcess';
import type { JobEvent } from './events';
import type { Params } from './ids';
import type { JobSpec, ParameterSet } from './spec';


/**
 * A runner's stderr log in a job's `logs/`: `runner-<pid>.stderr` for a runner on this machine,
 * `dask-<worker>-runner-<pid>.stderr` for one on a Dask worker (pids repeat across machines).
 */
export function runnerStderrLog(pid: number | undefined, worker?: string): string {
  const runner = `runner-${pid ?? 'unknown'}.stderr`;
  return worker ? `dask-${worker.replace(/^[a-z]+:\/\//, '').replace(/[^A-Za-z0-9.-]+/g, '_')}-${runner}` : runner;
}

export interface OutputRecord {
  size: number;
  /** Standard padded base64 of the bytes. */
  inline: string;
}

export interface SimRecord {
  key: string;
  status: 'ok' | 'failed';
  param_id: string;
  replicate: number;
  seed: number | bigint;
  attempts: number;
  pid?: number;
  /** The Dask worker it ran on (dask backend). */
  worker?: string;
  ms: number;
  outputs?: Record<string, OutputRecord>;
  kind?: FailureKind;
  message?: string;
  location?: SourceLocation;
  evidence?: Record<string, unknown>;
}

export interface AggRecord {
  key: string;
  status: 'ok' | 'failed' | 'skipped';
  param_id: string;
  params: Params;
  n_replicates: number;
  ms: number;
  /** Target entrypoint → its result or failure. */
  targets: Record<string, { status: 'ok'; loss: number; diagnostics: unknown; n_replicates: number } | { status: 'failed'; kind: FailureKind; message: string; location?: SourceLocation }>;
  summary?: unknown;
  kind?: FailureKind;
  message?: string;
  /** For a skipped aggregation: the replicates that failed. */
  failed_replicates?: { replicate: number; key: string; kind?: FailureKind; message?: string }[];
}

/** `job.json`: the normalised job. */
export interface NormalisedJob {
  job_id: string;
  bundle: string;
  entrypoint: string;
  source: string;
  targets: string[];
  target_data: unknown;
  notes: string[];
  parameter_sets: { param_id: string; params: Params; seeds: (number | bigint)[] }[];
}

const EVENT_FLUSH_BYTES = 64 * 1024;
const WRITE_BATCH = 256;
const WRITE_GATHER_MS = 10;
/** Waiters for room are woken once the backlog falls below this. */
const WRITE_BACKLOG_LOW = 1024;
/** The scheduler starts no new work while this many result files wait to be written. */
export const WRITE_BACKLOG_LIMIT = 4096;

/** The result writer's thread: each batch of [file, text] written whole (temp + rename), in order. */
const WRITER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const made = new Set();
parentPort.on('message', (batch) => {
  let error;
  for (const [file, text] of batch) {
    try {
      const dir = path.dirname(file);
      if (!made.has(dir)) { fs.mkdirSync(dir, { recursive: true }); made.add(dir); }
      const temp = file + '.tmp-' + process.pid;
      fs.writeFileSync(temp, text);
      fs.renameSync(temp, file);
    } catch (e) { error = error || String(e && e.message || e); }
  }
  parentPort.postMessage({ error });
});
`;
const EVENT_FLUSH_MS = 100;

export function paramDir(paramId: string): string {
  return paramId.slice(0, 16);
}

export class ResultsStore {
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
  private writeError: string | undefined;

  private constructor(readonly dir: string) {
    for (const sub of ['sims', 'aggs', 'logs']) mkdirSync(path.join(dir, sub), { recursive: true });
    this.eventFd = openSync(path.join(dir, 'events.jsonl'), 'a');
    this.writer = new Worker(WRITER_SOURCE, { eval: true });
    this.writer.on('message', (message: { error?: string }) => this.onWritten(message));
    this.writer.on('error', (error) => this.onWritten({ error: error.message }));
  }

  /** A new results directory; refuses to write over an earlier run's results. */
  static create(out: string, job: JobSpec): ResultsStore {
    const dir = path.join(path.resolve(out), job.jobId);
    if (existsSync(path.join(dir, 'job.json'))) {
      throw new Failure('bad-input', `Results of job ${job.jobId} already exist in ${dir}; resume them with --resume ${dir}, or choose another job_id or --out.`);
    }
    const store = new ResultsStore(dir);
    store.writeJson('job.json', normalise(job));
    return store;
  }

  /** An earlier run's directory, to finish. */
  static open(dir: string): { store: ResultsStore; job: NormalisedJob } {
    const file = path.join(dir, 'job.json');
    let job: NormalisedJob;
    try {
      job = parsePythonJson(readFileSync(file, 'utf8')) as NormalisedJob;
    } catch {
      throw new Failure('bad-input', `${dir} is not a results directory of a job (no readable job.json).`);
    }
    return { store: new ResultsStore(dir), job };
  }

  simFile(set: ParameterSet | string, replicate: number): string {
    return path.join(this.dir, 'sims', paramDir(typeof set === 'string' ? set : set.paramId), `${replicate}.json`);
  }

  aggFile(paramId: string): string {
    return path.join(this.dir, 'aggs', `${paramDir(paramId)}.json`);
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

  /** Every queued file written; the first write error, if any, is thrown here. */
  async drain(): Promise<void> {
    this.flushWrites();
    while (this.unacked > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    if (this.writeError) throw new Failure('bad-input', `Cannot write results in ${this.dir}: ${this.writeError}`);
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
    this.unacked++;
    this.batchSizes.push(this.batch.length);
    this.writer.postMessage(this.batch);
    this.batch = [];
  }

  private onWritten(message: { error?: string }): void {
    if (message.error) this.writeError ??= message.error;
    this.unacked--;
    this.pendingFiles -= this.batchSizes.shift() ?? 0;
    if (this.pendingFiles < WRITE_BACKLOG_LOW) for (const resolve of this.roomWaiters.splice(0)) resolve();
    if (this.unacked === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Through the same ordered queue as the simulations it summarises. */
  writeAgg(record: AggRecord): void {
    this.enqueue(this.aggFile(record.param_id), stringifyWireJson(record, 2));
  }

  writeJson(name: string, value: unknown): void {
    atomicWrite(path.join(this.dir, name), `${stringifyWireJson(value, 2)}\n`);
  }

  /** Replicates of a parameter set that already have a result, from an earlier run. */
  existingSims(paramId: string): Map<number, SimRecord> {
    const found = new Map<number, SimRecord>();
    const dir = path.join(this.dir, 'sims', paramDir(paramId));
    if (!existsSync(dir)) return found;
    for (const name of readdirSync(dir)) {
      const match = /^(\d+)\.json$/.exec(name);
      if (!match) continue;
      try {
        found.set(Number(match[1]), parsePythonJson(readFileSync(path.join(dir, name), 'utf8')) as SimRecord);
      } catch {
        // unreadable: run it again
      }
    }
    return found;
  }

  /**
   * Forget every failed result, and the aggregation of each parameter set that had one (or
   * whose aggregation failed), so that a resume runs exactly those again.
   */
  forgetFailures(): { sims: number; aggregations: number } {
    let sims = 0;
    let aggregations = 0;
    const sets = new Set<string>();
    const simsDir = path.join(this.dir, 'sims');
    for (const set of existsSync(simsDir) ? readdirSync(simsDir) : []) {
      for (const name of readdirSync(path.join(simsDir, set))) {
        if (!name.endsWith('.json')) continue;
        const file = path.join(simsDir, set, name);
        try {
          if ((JSON.parse(readFileSync(file, 'utf8')) as SimRecord).status === 'ok') continue;
        } catch {
          // unreadable: it goes too
        }
        rmSync(file, { force: true });
        sets.add(set);
        sims++;
      }
    }
    const aggsDir = path.join(this.dir, 'aggs');
    for (const name of existsSync(aggsDir) ? readdirSync(aggsDir) : []) {
      const file = path.join(aggsDir, name);
      let failed = sets.has(name.replace(/\.json$/, ''));
      try {
        failed ||= (JSON.parse(readFileSync(file, 'utf8')) as AggRecord).status !== 'ok';
      } catch {
        failed = true;
      }
      if (failed) {
        rmSync(file, { force: true });
        aggregations++;
      }
    }
    return { sims, aggregations };
  }

  /** The status of an earlier run's aggregation of this parameter set, if it has one. */
  aggStatus(paramId: string): AggRecord['status'] | undefined {
    const file = this.aggFile(paramId);
    if (!existsSync(file)) return undefined;
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as AggRecord).status;
    } catch {
      return undefined; // unreadable: aggregate again
    }
  }

  /** `transcripts/runner-<pid>.json`: every frame both ways, in the format `handshake --replay` reads. */
  writeTranscript(process: WarmProcess): void {
    mkdirSync(path.join(this.dir, 'transcripts'), { recursive: true });
    this.writeJson(`transcripts/runner-${process.pid ?? 'unknown'}.json`, { version: 1, bundle: process.bundleDir, python: process.python, runner: process.runnerScript, recordedAt: new Date().toISOString(), entries: process.transcript });
  }

  /**
   * A new, empty stderr file for a runner about to start; `adoptStderrLog` names it after the
   * runner's pid once it has one (the runner keeps writing to it through the rename).
   */
  newStderrLog(): { path: string; fd: number } {
    const file = path.join(this.dir, 'logs', `runner-starting-${process.pid}-${++this.logCounter}.stderr`);
    return { path: file, fd: openSync(file, 'a') };
  }

  /**
   * Names the log after its runner. When the runner has the file as its stderr, our descriptor
   * is closed; when the engine writes what it reads from the runner (`keepOpen`), it stays
   * open until close().
   */
  adoptStderrLog(log: { path: string; fd: number }, pid: number | undefined, { keepOpen = false } = {}): void {
    if (keepOpen) this.openLogs.push(log.fd);
    else closeSync(log.fd);
    if (pid !== undefined) renameSync(log.path, path.join(this.dir, 'logs', runnerStderrLog(pid)));
  }

  /**
   * Appends to `logs/<name>`, kept open until close(): the Dask backend's runners live on
   * workers, and their stderr arrives with each task's result. `name` never leaves logs/.
   */
  appendLog(name: string, text: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Failure('protocol-error', `Refusing the log name ${JSON.stringify(name)}: not a plain file name`);
    let fd = this.appendedLogs.get(name);
    if (fd === undefined) {
      fd = openSync(path.join(this.dir, 'logs', name), 'a');
      this.appendedLogs.set(name, fd);
      this.openLogs.push(fd);
    }
    writeSync(fd, text);
  }

  /** Events are buffered and written in batches; `close` writes the rest. */
  appendEvent(event: JobEvent): void {
    this.eventBuffer += `${plainJson(event)}\n`;
    if (this.eventBuffer.length >= EVENT_FLUSH_BYTES) this.flushEvents();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flushEvents(), EVENT_FLUSH_MS);
  }

  flushEvents(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.eventBuffer) return;
    if (this.eventFd === undefined) {
      // an event after close (a straggler): still recorded, never lost
      appendFileSync(path.join(this.dir, 'events.jsonl'), this.eventBuffer);
    } else {
      writeSync(this.eventFd, this.eventBuffer);
    }
    this.eventBuffer = '';
  }

  async close(): Promise<void> {
    for (const fd of this.openLogs.splice(0)) closeSync(fd);
    this.appendedLogs.clear();
    await this.drain();
    await this.writer.terminate();
    this.flushEvents();
    if (this.eventFd !== undefined) closeSync(this.eventFd);
    this.eventFd = undefined;
  }
}

function normalise(job: JobSpec): NormalisedJob {
  return {
    job_id: job.jobId,
    bundle: job.bundleDir,
    entrypoint: job.entrypoint,
    source: job.source,
    targets: job.targets,
    target_data: job.targetData,
    notes: job.notes,
    parameter_sets: job.parameterSets.map((set) => ({ param_id: set.paramId, params: set.params, seeds: set.seeds })),
  };
}

/** The job of a results directory, as it was run. */
export function jobFromNormalised(job: NormalisedJob): JobSpec {
  return {
    jobId: job.job_id,
    bundleDir: job.bundle,
    entrypoint: job.entrypoint,
    source: job.source as JobSpec['source'],
    targets: job.targets,
    targetData: job.target_data,
    notes: job.notes,
    parameterSets: job.parameter_sets.map((set, index) => ({ index, paramId: set.param_id, params: set.params, seeds: set.seeds })),
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

function atomicWrite(file: string, text: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, text);
  renameSync(temp, file);
}
