/**
 * Running a job to a definite end on the local backend: every simulation gets a result or a
 * failure kind, every parameter set gets an aggregation (or a skip that names the failed
 * replicates), and the manifest says how it went — whatever the runners do.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WarmPool } from '../backends/local/pool';
import { showBytes } from '../diagnose/classify';
import { isInside, locate } from '../diagnose/pythonTrace';
import { breaksProduction } from '../diagnose/stdoutBlame';
import { exitCodeFor, ExitCode, Failure, isFailure, type FailureKind, type SourceLocation } from '../failure';
import { AggregateRequest, ExecuteRequest, type SerializedSimReturn } from '../protocol';
import { RawJson, stringifyWireJson } from '../pyjson/pyjson';
import { NOT_STARTED, WarmProcess, type TranscriptEntry } from '../process/warmProcess';
import { prepareRunner, type PreparedRunner, type RuntimeOptions } from '../runtime/prepare';
import type { JobCounts, JobEvent, JobEventBody, JobStatus } from './events';
import { canonicalJson } from './ids';
import { WRITE_BACKLOG_LIMIT, type AggRecord, type OutputRecord, type ResultsStore, type SimRecord } from './results';
import type { JobSpec, ParameterSet } from './spec';
import { summarize } from './summary';

export interface RunOptions extends Omit<RuntimeOptions, 'bundleDir'> {
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

/** The kinds a new attempt can cure: the process died under the task. */
const RETRYABLE: ReadonlySet<FailureKind> = new Set(['process-crashed']);

interface SetState {
  set: ParameterSet;
  /** The parameters once encoded, sent as they are with every replicate. */
  wireParams: RawJson;
  outcomes: Map<number, { ok: boolean; outputs?: Record<string, OutputRecord>; kind?: FailureKind; message?: string }>;
  aggregated: boolean;
  /** How an earlier run's aggregation ended, when resuming. */
  earlierAgg?: AggRecord['status'];
}

interface SimTask {
  state: SetState;
  replicate: number;
  attempt: number;
}

export async function runJob(job: JobSpec, store: ResultsStore, options: RunOptions): Promise<JobOutcome> {
  const started = performance.now();
  const emit = (body: JobEventBody) => {
    const event = { t: new Date().toISOString(), ...body } as JobEvent;
    store.appendEvent(event);
    options.onEvent?.(event);
  };
  const states = job.parameterSets.map((set) => loadState(set, store));
  const counts = initialCounts(states, job);
  emit({
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
  });
  for (const note of job.notes) emit({ type: 'warning', kind: 'bad-input', message: note });

  let prepared: PreparedRunner | undefined;
  let pool: WarmPool | undefined;
  let fatal: Failure | undefined;
  let interrupted = false;
  try {
    prepared = await prepareRunner({ ...options, bundleDir: job.bundleDir, venv: { ...options.venv, onEvent: (event) => emit({ type: 'venv', event }) } });
    pool = makePool(prepared, store, options, emit);
    const scheduler = new Scheduler(job, states, counts, store, pool, options, emit);
    await scheduler.run();
    fatal = scheduler.fatal;
    interrupted = scheduler.interrupted;
  } catch (error) {
    fatal = isFailure(error) ? error : new Failure('protocol-error', `Unexpected engine error: ${String(error)}`);
  } finally {
    if (interrupted) await pool?.kill();
    else await pool?.close();
    await prepared?.lease?.release();
  }

  try {
    await store.drain(); // the manifest is written once every result is on disk
  } catch (error) {
    fatal ??= isFailure(error) ? error : new Failure('protocol-error', String(error));
  }
  const ms = Math.round(performance.now() - started);
  const anyFailed = counts.sims.failed + counts.aggregations.failed + counts.aggregations.skipped > 0;
  const status: JobStatus = interrupted ? 'interrupted' : fatal ? 'aborted' : anyFailed ? 'failed' : 'succeeded';
  const exitCode = interrupted ? ExitCode.interrupted : fatal ? exitCodeFor(fatal.kind) : anyFailed ? ExitCode.failedWork : ExitCode.ok;
  store.writeJson('manifest.json', {
    job_id: job.jobId,
    status,
    exit_code: exitCode,
    counts,
    failure: fatal?.toJSON(),
    started_at: new Date(Date.now() - ms).toISOString(),
    finished_at: new Date().toISOString(),
    ms,
    resumed: options.resumed,
    options: { workers: options.workers, depth: options.depth, executor: options.executor, max_reuse: options.maxReuse, retries: options.retries, task_timeout_ms: options.taskTimeoutMs, allow_partial: options.allowPartial },
    environment: {
      engine: 'modelops-debugger 0.1.0',
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      host: os.hostname(),
      bundle: { dir: job.bundleDir, digest: prepared?.digest },
      python: prepared ? { venv_python: prepared.python, base: prepared.base?.realPath, version: prepared.base?.version } : undefined,
      venv: prepared?.lease ? { key: prepared.lease.key, path: prepared.lease.path, built: prepared.lease.built, reason: prepared.lease.reason } : undefined,
      runner: prepared?.runnerScript,
    },
    notes: job.notes,
  });
  emit({ type: 'job-done', job_id: job.jobId, status, counts, ms, exit_code: exitCode });
  await store.close();
  return { status, counts, exitCode, dir: store.dir, ms, failure: fatal };
}

function makePool(prepared: PreparedRunner, store: ResultsStore, options: RunOptions, emit: (e: JobEventBody) => void): WarmPool {
  const venv = prepared.lease?.key ?? prepared.venv;
  const warned = new Set<string>();
  return new WarmPool({
    size: options.workers,
    depth: options.depth,
    executor: options.executor,
    maxReuse: options.maxReuse,
    spawn: async () => {
      const stderrFile = store.newStderrLog();
      const follow = options.onRunnerStderr;
      let pid: number | undefined;
      const process = WarmProcess.start({
        python: prepared.python,
        runnerScript: prepared.runnerScript,
        bundleDir: prepared.bundleDir,
        venvPath: prepared.venv,
        bundleDigest: prepared.digest,
        env: options.env,
        recordTranscript: options.trace,
        nice: options.runnerNice,
        onTrace: options.onRunnerTrace && ((entry: TranscriptEntry) => options.onRunnerTrace?.(pid, entry)),
        ...(follow
          ? {
              onStderr: (chunk: Buffer, task: string | undefined) => {
                writeSync(stderrFile.fd, chunk);
                follow(pid, chunk, task);
              },
            }
          : { stderrFile }),
        onCapture: (capture) => {
          // our runner absorbed it; production's would have broken on it: say so once per line
          if (!breaksProduction(capture)) return;
          const location = locate(capture.stack, prepared.bundleDir);
          const where = location ? `${location.file}:${location.line}` : capture.text;
          if (warned.has(where)) return;
          warned.add(where);
          emit({ type: 'warning', kind: 'stdout-pollution', message: `stdout write during ${capture.phase} ("${showBytes(Buffer.from(capture.bytes_b64, 'base64'), 80)}") would corrupt the production runner's frames`, location });
        },
      });
      pid = process.pid;
      store.adoptStderrLog(stderrFile, process.pid, { keepOpen: Boolean(follow) });
      try {
        await process.ready(options.readyTimeoutMs);
        return process;
      } catch (error) {
        await process.kill();
        process.closeStderr();
        if (options.trace) store.writeTranscript(process);
        throw error;
      }
    },
    onProcessStart: (process) => emit({ type: 'process-start', pid: process.pid, venv }),
    onProcessEnd: (process, why) => {
      process.closeStderr();
      if (options.trace) store.writeTranscript(process);
      emit({ type: 'process-end', pid: process.pid, why, uses: process.uses, exit_code: process.exitInfo?.code ?? null, signal: process.exitInfo?.signal ?? null });
    },
  });
}

function loadState(set: ParameterSet, store: ResultsStore): SetState {
  const earlierAgg = store.aggStatus(set.paramId);
  const state: SetState = { set, wireParams: new RawJson(canonicalJson(set.params)), outcomes: new Map(), aggregated: earlierAgg !== undefined, earlierAgg };
  for (const [replicate, record] of store.existingSims(set.paramId)) {
    if (replicate >= set.seeds.length) continue;
    // an aggregated set's outputs are summarised already: keep only how each replicate ended
    const outputs = state.aggregated ? undefined : record.outputs;
    state.outcomes.set(replicate, { ok: record.status === 'ok', outputs, kind: record.kind, message: record.message });
  }
  return state;
}

function initialCounts(states: SetState[], job: JobSpec): JobCounts {
  const counts: JobCounts = {
    sims: { total: 0, ok: 0, failed: 0, pending: 0 },
    aggregations: { total: job.parameterSets.length, ok: 0, failed: 0, skipped: 0, pending: job.parameterSets.length },
  };
  for (const state of states) {
    counts.sims.total += state.set.seeds.length;
    for (const outcome of state.outcomes.values()) outcome.ok ? counts.sims.ok++ : counts.sims.failed++;
    if (state.earlierAgg) {
      counts.aggregations.pending--;
      counts.aggregations[state.earlierAgg]++;
    }
  }
  counts.sims.pending = counts.sims.total - counts.sims.ok - counts.sims.failed;
  return counts;
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

  constructor(
    private readonly job: JobSpec,
    private readonly states: SetState[],
    private readonly counts: JobCounts,
    private readonly store: ResultsStore,
    private readonly pool: WarmPool,
    private readonly options: RunOptions,
    private readonly emit: (event: JobEventBody) => void,
  ) {
    for (const state of states) if (!state.aggregated && state.outcomes.size === state.set.seeds.length) this.readyToAggregate.push(state);
  }

  async run(): Promise<void> {
    const capacity = this.options.workers * Math.max(1, this.options.depth);
    const onAbort = () => {
      this.interrupted = true;
      void this.pool.kill();
    };
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
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
    try {
      const outputs = await this.pool.run((process) => {
        pid = process.pid;
        begun = performance.now();
        this.emit({ type: 'task-start', key, attempt: task.attempt, pid });
        return process.request(ExecuteRequest.type, { entrypoint: this.job.entrypoint, params: state.wireParams as never, seed }, { timeoutMs: this.options.taskTimeoutMs, tag: key });
      });
      const ms = Math.round(performance.now() - begun);
      const record: SimRecord = { key, status: 'ok', param_id: state.set.paramId, replicate, seed, attempts: task.attempt, pid, ms, outputs: outputRecords(outputs) };
      this.finishSim(state, replicate, record);
      this.emit({ type: 'task-done', key, status: 'ok', attempt: task.attempt, pid, ms });
    } catch (error) {
      const failure = isFailure(error) ? error : new Failure('protocol-error', String(error));
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
      const ms = Math.round(performance.now() - begun);
      const record: SimRecord = {
        key,
        status: 'failed',
        param_id: state.set.paramId,
        replicate,
        seed,
        attempts: task.attempt,
        pid,
        ms,
        kind: failure.kind,
        message: failure.message,
        location: failure.location,
        evidence: trimEvidence(failure),
      };
      this.finishSim(state, replicate, record);
      this.emit({ type: 'task-done', key, status: 'failed', attempt: task.attempt, pid, ms, kind: failure.kind, message: failure.message, location: failure.location, callers: callers(failure, this.job.bundleDir) });
    }
  }

  private finishSim(state: SetState, replicate: number, record: SimRecord): void {
    this.store.writeSim(record);
    state.outcomes.set(replicate, { ok: record.status === 'ok', outputs: record.outputs, kind: record.kind, message: record.message });
    this.counts.sims.pending--;
    record.status === 'ok' ? this.counts.sims.ok++ : this.counts.sims.failed++;
    if (state.outcomes.size === state.set.seeds.length && !state.aggregated) this.readyToAggregate.push(state);
  }

  private async aggregate(state: SetState): Promise<void> {
    const { set } = state;
    const key = `agg-${set.paramId}`;
    const begun = performance.now();
    const replicates = [...state.outcomes.entries()].sort(([a], [b]) => a - b);
    const failed = replicates.filter(([, o]) => !o.ok);
    const ok = replicates.filter(([, o]) => o.ok);
    const record: AggRecord = { key, status: 'ok', param_id: set.paramId, params: set.params, n_replicates: ok.length, ms: 0, targets: {} };
    if (failed.length) {
      record.failed_replicates = failed.map(([i, o]) => ({ replicate: i, key: `sim-${set.paramId}-${i}`, kind: o.kind, message: o.message }));
    }
    if ((failed.length && !this.options.allowPartial) || ok.length === 0) {
      record.status = 'skipped';
      record.kind = 'aggregation-skipped';
      const named = failed.slice(0, 5).map(([i, o]) => `${i} (${o.kind})`).join(', ');
      record.message = `${failed.length} of ${replicates.length} replicates failed (replicates ${named}${failed.length > 5 ? ', …' : ''})${ok.length ? '; --allow-partial aggregates the others' : ''}`;
      this.finishAgg(state, record, begun);
      return;
    }
    this.emit({ type: 'agg-start', key, pid: undefined });
    record.summary = summarize(ok.map(([, o]) => decodeOutputs(o.outputs ?? {})));
    const simReturns: SerializedSimReturn[] = this.job.targets.length ? ok.map(([i, o]) => serializedSimReturn(set.paramId, set.seeds[i], o.outputs ?? {})) : [];
    for (const target of this.job.targets) {
      try {
        const result = await this.pool.run((process) =>
          process.request(AggregateRequest.type, { target_entrypoint: target, sim_returns: simReturns, target_data: this.job.targetData }, { timeoutMs: this.options.taskTimeoutMs, tag: key }),
        );
        record.targets[target] = { status: 'ok', loss: result.loss, diagnostics: result.diagnostics, n_replicates: result.n_replicates };
      } catch (error) {
        const failure = isFailure(error) ? error : new Failure('aggregation-failed', String(error));
        if (this.interrupted) return;
        if (notStarted(failure)) {
          this.readyToAggregate.push(state); // try the whole aggregation again on a live runner
          return;
        }
        record.targets[target] = { status: 'failed', kind: failure.kind, message: failure.message, location: failure.location };
        record.status = 'failed';
        record.kind ??= failure.kind;
        record.message ??= `${target}: ${failure.message}`;
      }
    }
    this.finishAgg(state, record, begun);
  }

  private finishAgg(state: SetState, record: AggRecord, begun: number): void {
    record.ms = Math.round(performance.now() - begun);
    this.store.writeAgg(record);
    state.aggregated = true;
    state.outcomes.clear(); // the outputs are on disk; keep memory flat on long jobs
    this.counts.aggregations.pending--;
    if (record.status === 'ok') this.counts.aggregations.ok++;
    else if (record.status === 'skipped') this.counts.aggregations.skipped++;
    else this.counts.aggregations.failed++;
    this.emit({ type: 'agg-done', key: record.key, status: record.status, ms: record.ms, kind: record.kind, message: record.message, location: firstFailedLocation(record) });
  }
}

/** The frames of a failure's traceback inside the bundle, but the one it is located at. */
function callers(failure: Failure, bundleDir: string): SourceLocation[] | undefined {
  const inside = (failure.evidence.frames ?? []).filter((frame) => isInside(frame.file, bundleDir));
  const others = inside.filter((frame) => frame.file !== failure.location?.file || frame.line !== failure.location?.line);
  return others.length ? others.map((frame) => ({ file: path.resolve(bundleDir, frame.file), line: frame.line, function: frame.function })) : undefined;
}

function notStarted(failure: Failure): boolean {
  return failure.kind === 'cancelled' && (failure.evidence.notes ?? []).includes(NOT_STARTED);
}

function outputRecords(outputs: Record<string, string>): Record<string, OutputRecord> {
  const records: Record<string, OutputRecord> = {};
  for (const [name, inline] of Object.entries(outputs)) records[name] = { size: base64Size(inline), inline };
  return records;
}

function base64Size(b64: string): number {
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

/**
 * A replicate as production's aggregation receives it (isolated_warm.py
 * `_serialize_sim_returns`): its task_id and each output's size, BLAKE2b-256 checksum and bytes.
 * Built only when a target needs it; the checksums cost ~20 µs an output in JavaScript.
 */
function serializedSimReturn(paramId: string, seed: number | bigint, outputs: Record<string, OutputRecord>): SerializedSimReturn {
  const serialized: SerializedSimReturn['outputs'] = {};
  for (const [name, output] of Object.entries(outputs)) {
    serialized[name] = { size: output.size, checksum: bytesToHex(blake2b(Buffer.from(output.inline, 'base64'), { dkLen: 32 })), inline: output.inline };
  }
  return { task_id: taskId(paramId, seed, outputs), outputs: serialized };
}

function decodeOutputs(outputs: Record<string, OutputRecord>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(outputs).map(([name, o]) => [name, Buffer.from(o.inline, 'base64')]));
}

/** Production's task_id (isolated_warm.py): blake2b-256 of "{param_id[:16]}-{seed}-{sorted output names}". */
function taskId(paramId: string, seed: number | bigint, outputs: Record<string, OutputRecord>): string {
  const text = `${paramId.slice(0, 16)}-${seed}-${Object.keys(outputs).sort().join(',')}`;
  return bytesToHex(blake2b(new TextEncoder().encode(text), { dkLen: 32 }));
}

/** What a sim result file keeps of a failure's evidence: enough to act on, bounded in size. */
function trimEvidence(failure: Failure): Record<string, unknown> {
  const { exception, frames, exitCode, signal, phase, stderrTail, stacks, stdoutNoise, notes, elapsedMs, timeoutMs } = failure.evidence;
  return JSON.parse(stringifyWireJson({ exception, frames, exitCode, signal, phase, stderrTail: stderrTail?.slice(-2000), stacks: stacks?.slice(-4000), stdoutNoise, notes, elapsedMs, timeoutMs })) as Record<string, unknown>;
}

function firstFailedLocation(record: AggRecord) {
  for (const result of Object.values(record.targets)) if (result.status === 'failed' && result.location) return result.location;
  return undefined;
}
