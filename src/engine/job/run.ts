/**
 * Running a job to a definite end: every simulation gets a result or a failure kind, every
 * parameter set gets an aggregation (or a skip that names the failed replicates), and the
 * manifest says how it went — whatever the runners do. The local backend's scheduler is below;
 * the Dask backend is in backends/dask; both keep their books through job/book.ts.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as os from 'node:os';
import * as path from 'node:path';
import { runOnDask, type DaskOptions } from '../backends/dask/run';
import { WarmPool } from '../backends/local/pool';
import { pollutionWarning } from '../diagnose/stdoutBlame';
import { exitCodeFor, exitCodeForStop, ExitCode, Failure, REPORT_REQUEST, unexpectedFailure } from '../failure';
import { AggregateRequest, ExecuteRequest, type SerializedSimReturn } from '../protocol';
import { NOT_STARTED, WarmProcess, type StderrSpan, type TranscriptEntry } from '../process/warmProcess';
import { lingeringWarnings } from '../process/lingering';
import { prepareRunner, runnerLaunch, type PreparedRunner, type RuntimeOptions } from '../runtime/prepare';
import { JobBook, RETRYABLE, type SetState } from './book';
import type { JobCounts, JobEvent, JobEventBody, JobStatus } from './events';
import { outputChecksum, runnerStderrLog, WRITE_BACKLOG_LIMIT, type OutputRecord, type ResultsStore, type StderrRange } from './results';
import type { BundleChange } from './resume';
import { unwritable } from './resultsFolder';
import type { JobSpec } from './spec';
import { DEFAULT_MAX_FRAME_BYTES } from '../process/frameCap';

export interface RunOptions extends Omit<RuntimeOptions, 'bundleDir'> {
  /** Where the tasks run: warm runners on this machine (the default), or an existing Dask cluster. */
  backend?: 'local' | 'dask';
  /** With the dask backend. */
  dask?: DaskOptions;
  workers: number;
  /** Requests kept queued per warm process (1: one at a time; 2: the next waits in the pipe). */
  depth: number;
  executor: 'warm' | 'cold';
  maxReuse: number;
  /** Extra attempts after a runner crash. */
  retries: number;
  taskTimeoutMs: number;
  readyTimeoutMs: number;
  /** Aggregate the replicates that succeeded even when others failed. */
  allowPartial: boolean;
  /** Keep every runner's JSON-RPC frames in transcripts/. */
  trace?: boolean;
  /** Runners' scheduling priority (see WarmProcessOptions.nice). */
  runnerNice?: number;
  /** Every JSON-RPC frame of every runner, as it passes (the editor's protocol trace). */
  onRunnerTrace?: (pid: number | undefined, entry: TranscriptEntry) => void;
  /**
   * Follow runners' stderr live, each chunk with the task it came from. Without it stderr goes
   * straight to the log files, which is cheaper; with it the engine reads it and writes them.
   */
  onRunnerStderr?: (pid: number | undefined, chunk: Buffer, task: string | undefined) => void;
  resumed: boolean;
  /** A resume that runs a bundle changed since the job was created (--allow-bundle-change). */
  bundleChange?: BundleChange;
  onEvent?: (event: JobEvent) => void;
  signal?: AbortSignal;
}

export interface JobOutcome {
  status: JobStatus;
  counts: JobCounts;
  exitCode: number;
  dir: string;
  ms: number;
  failure?: Failure;
}

interface SimTask {
  state: SetState;
  replicate: number;
  attempt: number;
}

export async function runJob(job: JobSpec, store: ResultsStore, options: RunOptions): Promise<JobOutcome> {
  const started = performance.now();
  const book = new JobBook(job, store, options.allowPartial, options.onEvent);
  const { counts } = book;
  const backend = options.backend ?? 'local';
  book.emit({
    type: 'job-start',
    job_id: job.jobId,
    out: store.dir,
    sims: counts.sims.total,
    aggregations: counts.aggregations.total,
    resumed: options.resumed,
    skipped_sims: counts.sims.ok + counts.sims.failed,
    skipped_aggregations: counts.aggregations.ok + counts.aggregations.failed + counts.aggregations.skipped,
    workers: options.workers,
    executor: options.executor,
    backend,
  });
  for (const note of job.notes) book.emit({ type: 'warning', kind: 'bad-input', message: note });
  for (const notice of store.notices) book.emit({ type: 'results-folder', message: notice });
  const notResults = [...store.notResults];
  if (notResults.length) {
    const one = notResults.length === 1;
    const named = `${notResults.slice(0, 3).join('; ')}${notResults.length > 3 ? '; …' : ''}`;
    book.emit({ type: 'results-folder', message: `${notResults.length} file${one ? ' is' : 's are'} not a valid result of this job, so ${one ? 'its task runs' : 'their tasks run'} again: ${named}` });
  }

  const ran = backend === 'dask' ? await runOnDask(book, options) : await runLocally(book, options);
  let fatal = ran.fatal;
  const { interrupted } = ran;
  if (!fatal && !interrupted && counts.sims.pending + counts.aggregations.pending > 0) {
    // a backend that ends with work undone and no reason is a bug: never a silent success
    fatal = new Failure('engine-error', `The ${backend} backend ended with ${counts.sims.pending} simulations and ${counts.aggregations.pending} aggregations without an outcome (${REPORT_REQUEST})`, { engineStack: new Error('backend ended early').stack });
  }

  await store.drain(); // the manifest is written once every result is on disk
  // a disk that stopped taking results ends the job, whatever else happened
  if (store.failure) {
    if (fatal?.kind !== 'results-unwritable') fatal = store.failure;
    book.recountFromDisk();
  }
  const ms = Math.round(performance.now() - started);
  const anyFailed = counts.sims.failed + counts.aggregations.failed + counts.aggregations.skipped > 0;
  const stopped = interrupted && fatal?.kind !== 'results-unwritable'; // an interrupt, unless the disk failed too
  let status: JobStatus = stopped ? 'interrupted' : fatal ? 'aborted' : anyFailed ? 'failed' : 'succeeded';
  // stopped by a signal: 128 + its number (SIGHUP 129, SIGINT 130, SIGTERM 143)
  let exitCode: number = stopped ? exitCodeForStop(options.signal?.reason) : fatal ? exitCodeFor(fatal.kind) : anyFailed ? ExitCode.failedWork : ExitCode.ok;
  const manifest = {
    job_id: job.jobId,
    status,
    exit_code: exitCode,
    counts,
    failure: fatal?.toJSON(),
    started_at: new Date(Date.now() - ms).toISOString(),
    finished_at: new Date().toISOString(),
    ms,
    resumed: options.resumed,
    ...(stopped && typeof options.signal?.reason === 'string' ? { interrupted_by: options.signal.reason } : {}),
    options: { backend, workers: options.workers, depth: options.depth, executor: options.executor, max_reuse: options.maxReuse, retries: options.retries, task_timeout_ms: options.taskTimeoutMs, allow_partial: options.allowPartial, max_frame_bytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, ...(options.dask ? { scheduler: options.dask.scheduler } : {}) },
    environment: {
      engine: 'modelops-debugger 0.1.0',
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      host: os.hostname(),
      ...ran.environment,
    },
    notes: job.notes,
    ...(options.bundleChange ? { bundle_change: { recorded: options.bundleChange.recorded, now: options.bundleChange.now, allowed_by: '--allow-bundle-change' } } : {}),
  };
  try {
    store.writeJson('manifest.json', manifest);
  } catch (error) {
    // no room even for the manifest: the outcome is still said, on the event stream and the exit code
    fatal = unwritable(store.dir, error, path.join(store.dir, 'manifest.json'));
    status = 'aborted';
    exitCode = exitCodeFor(fatal.kind);
  }
  book.emit({ type: 'job-done', job_id: job.jobId, status, counts, ms, exit_code: exitCode, ...(fatal ? { failure: fatal.toJSON() } : {}) });
  await store.close();
  return { status, counts, exitCode, dir: store.dir, ms, failure: fatal };
}

/** How a backend's run ended, and what the manifest says about where it ran. */
export interface BackendRun {
  fatal?: Failure;
  interrupted: boolean;
  environment: Record<string, unknown>;
}

/** The embedded backend: the bundle's venv here, a pool of warm runners, the Scheduler below. */
async function runLocally(book: JobBook, options: RunOptions): Promise<BackendRun> {
  const { job, store } = book;
  let prepared: PreparedRunner | undefined;
  let pool: WarmPool | undefined;
  let fatal: Failure | undefined;
  let interrupted = false;
  try {
    prepared = await prepareRunner({ ...options, bundleDir: job.bundleDir, digest: store.bundleDigest, venv: { ...options.venv, onEvent: (event) => book.emit({ type: 'venv', event }) } });
    pool = makePool(prepared, store, options, (body) => book.emit(body));
    const scheduler = new Scheduler(book, pool, options);
    await scheduler.run();
    fatal = scheduler.fatal;
    interrupted = scheduler.interrupted;
  } catch (error) {
    fatal = unexpectedFailure(error, 'running the job');
  } finally {
    if (interrupted) await pool?.kill();
    else await pool?.close();
    await prepared?.lease?.release();
  }
  return {
    fatal,
    interrupted,
    environment: {
      bundle: { dir: job.bundleDir, digest: prepared?.digest },
      python: prepared ? { venv_python: prepared.python, base: prepared.base?.realPath, version: prepared.base?.version } : undefined,
      venv: prepared?.lease ? { key: prepared.lease.key, path: prepared.lease.path, built: prepared.lease.built, reason: prepared.lease.reason } : undefined,
      runner: prepared?.runnerScript,
    },
  };
}

function makePool(prepared: PreparedRunner, store: ResultsStore, options: RunOptions, emit: (e: JobEventBody) => void): WarmPool {
  const venv = prepared.lease?.key ?? prepared.venv;
  const warned = new Set<string>();
  return new WarmPool({
    size: options.workers,
    depth: options.depth,
    executor: options.executor,
    maxReuse: options.maxReuse,
    spawn: async (killed) => {
      if (killed.aborted) throw new Failure('cancelled', 'the pool was killed');
      const stderrFile = store.newStderrLog();
      const follow = options.onRunnerStderr;
      let pid: number | undefined;
      const process = WarmProcess.start({
        ...runnerLaunch(prepared),
        env: options.env,
        maxFrameBytes: options.maxFrameBytes,
        recordTranscript: options.trace,
        nice: options.runnerNice,
        onTrace: options.onRunnerTrace && ((entry: TranscriptEntry) => options.onRunnerTrace?.(pid, entry)),
        ...(follow
          ? {
              onStderr: (chunk: Buffer, task: string | undefined) => {
                store.writeLog(stderrFile, chunk);
                follow(pid, chunk, task);
              },
            }
          : { stderrFile }),
        onCapture: (capture, task) => {
          // our runner absorbed it; production's would have broken on it: say so once per line,
          // on the task the runner was working on (a thread's print, a child's echo)
          const warning = pollutionWarning(capture, prepared.bundleDir, warned);
          if (warning) emit({ type: 'warning', kind: 'stdout-pollution', ...warning, ...(task ? { key: task, pid } : {}) });
        },
      });
      pid = process.pid;
      const kill = () => void process.kill(); // Ctrl-C while it starts: it goes too
      killed.addEventListener('abort', kill, { once: true });
      try {
        store.adoptStderrLog(stderrFile, process.pid, { keepOpen: Boolean(follow) });
        await process.ready(options.readyTimeoutMs);
        return process;
      } catch (error) {
        await process.kill();
        for (const warning of lingeringWarnings(process.lingering, process.pid)) emit(warning);
        process.closeStderr();
        if (options.trace) store.writeTranscript(process);
        throw error;
      } finally {
        killed.removeEventListener('abort', kill);
      }
    },
    onProcessStart: (process) => emit({ type: 'process-start', pid: process.pid, venv }),
    onProcessEnd: (process, why) => {
      for (const warning of lingeringWarnings(process.lingering, process.pid)) emit(warning);
      process.closeStderr();
      if (options.trace) store.writeTranscript(process);
      emit({ type: 'process-end', pid: process.pid, why, uses: process.uses, exit_code: process.exitInfo?.code ?? null, signal: process.exitInfo?.signal ?? null });
    },
  });
}

// ---- scheduling -------------------------------------------------------------------------------

class Scheduler {
  fatal: Failure | undefined;
  interrupted = false;
  private readonly retries: SimTask[] = [];
  private readonly readyToAggregate: SetState[] = [];
  private setCursor = 0;
  private replicateCursor = 0;
  private readonly inflight = new Set<Promise<void>>();

  private readonly job: JobSpec;
  private readonly store: ResultsStore;
  private readonly states: SetState[];
  private readonly emit: (event: JobEventBody) => void;

  constructor(
    private readonly book: JobBook,
    private readonly pool: WarmPool,
    private readonly options: RunOptions,
  ) {
    this.job = book.job;
    this.store = book.store;
    this.states = book.states;
    this.emit = (body) => book.emit(body);
    for (const state of this.states) if (book.awaitsAggregation(state)) this.readyToAggregate.push(state);
  }

  async run(): Promise<void> {
    const capacity = this.options.workers * Math.max(1, this.options.depth);
    const onAbort = () => {
      this.interrupted = true;
      void this.pool.kill();
    };
    // stopped while the venv was being prepared: an aborted signal never fires 'abort' again
    if (this.options.signal?.aborted) onAbort();
    else this.options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        if (this.store.failure) this.fatal ??= this.store.failure; // no more results can be kept
        if (this.fatal || this.interrupted) break;
        if (this.inflight.size >= capacity) {
          await Promise.race(this.inflight);
          continue;
        }
        const room = this.store.waitForRoom(WRITE_BACKLOG_LIMIT);
        if (room) {
          await room; // the disk is behind: let it catch up rather than queue results in memory
          continue;
        }
        const work = this.next();
        if (!work) {
          if (this.inflight.size === 0) break;
          await Promise.race(this.inflight);
          continue;
        }
        const promise: Promise<void> = work().finally(() => this.inflight.delete(promise));
        this.inflight.add(promise);
      }
      await Promise.allSettled([...this.inflight]);
    } finally {
      this.options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Aggregations first (results appear as early as they can), then retries, then new replicates. */
  private next(): (() => Promise<void>) | undefined {
    const state = this.readyToAggregate.shift();
    if (state) return () => this.aggregate(state);
    const retry = this.retries.shift();
    if (retry) return () => this.simulate(retry);
    while (this.setCursor < this.states.length) {
      const current = this.states[this.setCursor];
      while (this.replicateCursor < current.set.seeds.length && current.outcomes.has(this.replicateCursor)) this.replicateCursor++;
      if (this.replicateCursor < current.set.seeds.length) {
        const task: SimTask = { state: current, replicate: this.replicateCursor++, attempt: 1 };
        return () => this.simulate(task);
      }
      this.setCursor++;
      this.replicateCursor = 0;
    }
    return undefined;
  }

  private async simulate(task: SimTask): Promise<void> {
    const { state, replicate } = task;
    const key = `sim-${state.set.paramId}-${replicate}`;
    const seed = state.set.seeds[replicate];
    let pid: number | undefined;
    let begun = 0;
    const span: StderrSpan = {};
    try {
      const outputs = await this.pool.run((process) => {
        pid = process.pid;
        begun = performance.now();
        this.emit({ type: 'task-start', key, attempt: task.attempt, pid });
        return process.request(ExecuteRequest.type, { entrypoint: this.job.entrypoint, params: state.wireParams as never, seed }, { timeoutMs: this.options.taskTimeoutMs, tag: key, span });
      });
      this.book.simSucceeded(state, replicate, outputs, { attempts: task.attempt, pid, ms: Math.round(performance.now() - begun), stderr: stderrRange(span, pid) });
      this.queueAggregation(state);
    } catch (error) {
      const failure = unexpectedFailure(error, `running ${key}`);
      if (this.interrupted) return; // no result: a resume runs it
      if (notStarted(failure)) {
        this.retries.push(task); // queued behind a request that broke its runner; never began
        return;
      }
      if (pid === undefined) {
        // no process could be started for it: the job cannot go on
        this.fatal ??= failure;
        return;
      }
      if (RETRYABLE.has(failure.kind) && task.attempt <= this.options.retries) {
        this.emit({ type: 'task-retry', key, attempt: task.attempt + 1, kind: failure.kind, message: failure.message });
        this.retries.push({ ...task, attempt: task.attempt + 1 });
        return;
      }
      this.book.simFailed(state, replicate, failure, { attempts: task.attempt, pid, ms: Math.round(performance.now() - begun), stderr: stderrRange(span, pid) });
      this.queueAggregation(state);
    }
  }

  private queueAggregation(state: SetState): void {
    if (this.book.awaitsAggregation(state)) this.readyToAggregate.push(state);
  }

  private async aggregate(state: SetState): Promise<void> {
    const plan = this.book.planAggregation(state, undefined);
    if (!plan) return;
    const { record, ok, begun } = plan;
    const { set } = state;
    const key = record.key;
    const simReturns: SerializedSimReturn[] = this.job.targets.length ? ok.map(([i, o]) => serializedSimReturn(set.paramId, set.seeds[i], o.outputs ?? {})) : [];
    for (const target of this.job.targets) {
      try {
        const result = await this.pool.run((process) =>
          process.request(AggregateRequest.type, { target_entrypoint: target, sim_returns: simReturns, target_data: this.job.targetData }, { timeoutMs: this.options.taskTimeoutMs, tag: key }),
        );
        record.targets[target] = { status: 'ok', loss: result.loss, diagnostics: result.diagnostics, n_replicates: result.n_replicates };
      } catch (error) {
        const failure = unexpectedFailure(error, `aggregating ${key} with ${target}`);
        if (this.interrupted) return;
        if (notStarted(failure)) {
          this.readyToAggregate.push(state); // try the whole aggregation again on a live runner
          return;
        }
        this.book.targetFailed(record, target, failure);
      }
    }
    this.book.finishAgg(state, record, begun);
  }
}

/** Where a task's stderr is in its runner's log, once the runner began and ended it. */
function stderrRange(span: StderrSpan, pid: number | undefined): StderrRange | undefined {
  if (span.start === undefined || span.end === undefined || pid === undefined) return undefined;
  return { log: `logs/${runnerStderrLog(pid)}`, start: span.start, end: span.end };
}

function notStarted(failure: Failure): boolean {
  return failure.kind === 'cancelled' && (failure.evidence.notes ?? []).includes(NOT_STARTED);
}

/**
 * A replicate as production's aggregation receives it (isolated_warm.py
 * `_serialize_sim_returns`): its task_id and each output's size, BLAKE2b-256 checksum and bytes.
 * Built only when a target needs it; the checksums cost ~20 µs an output in JavaScript.
 */
function serializedSimReturn(paramId: string, seed: number | bigint, outputs: Record<string, OutputRecord>): SerializedSimReturn {
  const serialized: SerializedSimReturn['outputs'] = {};
  for (const [name, output] of Object.entries(outputs)) {
    serialized[name] = { size: output.size, checksum: outputChecksum(Buffer.from(output.inline, 'base64')), inline: output.inline };
  }
  return { task_id: taskId(paramId, seed, outputs), outputs: serialized };
}

/** Production's task_id (isolated_warm.py): blake2b-256 of "{param_id[:16]}-{seed}-{sorted output names}". */
function taskId(paramId: string, seed: number | bigint, outputs: Record<string, OutputRecord>): string {
  const text = `${paramId.slice(0, 16)}-${seed}-${Object.keys(outputs).sort().join(',')}`;
  return bytesToHex(blake2b(new TextEncoder().encode(text), { dkLen: 32 }));
}


