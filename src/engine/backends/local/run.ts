/**
 * The local backend: the bundle's venv on this machine, a pool of warm runners, and the
 * scheduler that feeds them (aggregations first, then retries, then new replicates).
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { WarmPool } from './pool';
import type { BackendRun, RunOptions } from '../contract';
import { pollutionWarning } from '../../diagnose/stdoutBlame';
import { Failure, unexpectedFailure } from '../../failure';
import { AggregateRequest, ExecuteRequest, type SerializedSimReturn } from '../../protocol';
import {
  NOT_STARTED,
  WarmProcess,
  type RequestUsage,
  type StderrSpan,
  type TranscriptEntry,
} from '../../process/warmProcess';
import { lingeringWarnings } from '../../process/lingering';
import { settingLimitKb } from '../../process/memory';
import { prepareRunner, runnerLaunch, type PreparedRunner } from '../../runtime/prepare';
import { addResources, JobBook, RETRYABLE, taskResources, type SetState } from '../../job/book';
import type { JobEventBody } from '../../job/events';
import type { OutputRecord, StderrRange, TaskResources } from '../../job/records';
import { outputChecksum, runnerStderrLog, type ResultsStore } from '../../job/results';
import type { JobSpec } from '../../job/spec';
import { simKey } from '../../job/taskKeys';

interface SimTask {
  state: SetState;
  replicate: number;
  attempt: number;
}

/** The embedded backend: the bundle's venv here, a pool of warm runners, the Scheduler below. */
export async function runLocally(book: JobBook, options: RunOptions): Promise<BackendRun> {
  const { job, store } = book;
  let prepared: PreparedRunner | undefined;
  let pool: WarmPool | undefined;
  let fatal: Failure | undefined;
  let interrupted = false;
  try {
    prepared = await prepareRunner({
      ...options,
      bundleDir: job.bundleDir,
      digest: store.bundleDigest,
      venv: { ...options.venv, onEvent: (event) => book.emit({ type: 'venv', event }) },
    });
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
      python: prepared
        ? { venv_python: prepared.python, base: prepared.base?.realPath, version: prepared.base?.version }
        : undefined,
      venv: prepared?.lease
        ? {
            key: prepared.lease.key,
            path: prepared.lease.path,
            built: prepared.lease.built,
            reason: prepared.lease.reason,
          }
        : undefined,
      runner: prepared?.runnerScript,
    },
  };
}

function makePool(
  prepared: PreparedRunner,
  store: ResultsStore,
  options: RunOptions,
  emit: (e: JobEventBody) => void,
): WarmPool {
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
      // assigned once the process exists: the callbacks handed to start() read it later
      // eslint-disable-next-line prefer-const
      let pid: number | undefined;
      const process = WarmProcess.start({
        ...runnerLaunch(prepared),
        env: options.env,
        maxFrameBytes: options.maxFrameBytes,
        recordTranscript: options.trace,
        nice: options.runnerNice,
        memoryLimitKb: settingLimitKb(options.memoryLimitMb),
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
          if (warning)
            emit({ type: 'warning', kind: 'stdout-pollution', ...warning, ...(task ? { key: task, pid } : {}) });
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
      emit({
        type: 'process-end',
        pid: process.pid,
        why,
        uses: process.uses,
        exit_code: process.exitInfo?.code ?? null,
        signal: process.exitInfo?.signal ?? null,
      });
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
  /** Wakes the loop waiting in oneSettles (a race of all in flight cost a reaction on each, per task). */
  private wake: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  /** A task that threw while nothing waited. */
  private threw: { error: unknown } | undefined;

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
        // the pool's depth follows how long tasks take (depth 'auto'): so does what is in flight
        if (this.inflight.size >= this.options.workers * this.pool.depth) {
          await this.oneSettles();
          continue;
        }
        const work = this.next();
        if (!work) {
          if (this.inflight.size === 0) break;
          await this.oneSettles();
          continue;
        }
        const promise: Promise<void> = work().then(
          () => this.settled(promise),
          (error: unknown) => this.settled(promise, { error }),
        );
        this.inflight.add(promise);
      }
      await Promise.allSettled([...this.inflight]);
      if (this.threw) throw this.threw.error;
    } finally {
      this.options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A task in flight settled; one that threw (an engine bug: tasks keep their failures) ends the run with it. */
  private settled(promise: Promise<void>, threw?: { error: unknown }): void {
    this.inflight.delete(promise);
    const wake = this.wake;
    this.wake = undefined;
    if (threw) {
      if (wake) wake.reject(threw.error);
      else this.threw ??= threw;
    } else wake?.resolve();
  }

  /** Until a task in flight settles (called with one in flight at least). */
  private oneSettles(): Promise<void> {
    if (this.threw) return Promise.reject(this.threw.error);
    return new Promise((resolve, reject) => (this.wake = { resolve, reject }));
  }

  /** Aggregations first (results appear as early as they can), then retries, then new replicates. */
  private next(): (() => Promise<void>) | undefined {
    const state = this.readyToAggregate.shift();
    if (state) return () => this.aggregate(state);
    const retry = this.retries.shift();
    if (retry) return () => this.simulate(retry);
    while (this.setCursor < this.states.length) {
      const current = this.states[this.setCursor];
      while (this.replicateCursor < current.set.seeds.length && current.outcomes.has(this.replicateCursor))
        this.replicateCursor++;
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
    const key = simKey(state.set.paramId, replicate);
    const seed = state.set.seeds[replicate];
    let pid: number | undefined;
    const queued = performance.now();
    // when its runner began it: requests queued in a runner's pipe (queue depth) are not running
    // yet, so neither their start nor their time counts from when they were sent
    let begun: number | undefined;
    const span: StderrSpan = {};
    const usage: RequestUsage = {};
    const onBegin = (atMs: number) => {
      begun = atMs;
      this.book.taskStarted(key, task.attempt, pid, performance.timeOrigin + atMs);
    };
    try {
      const outputs = await this.pool.run((process) => {
        pid = process.pid;
        return process.request(
          ExecuteRequest.type,
          { entrypoint: this.job.entrypoint, params: state.wireParams as never, seed },
          { timeoutMs: this.options.taskTimeoutMs, tag: key, span, usage, onBegin },
        );
      });
      // from when its runner began it (as known when the answer came: never less than the runner's
      // own wall time), to now, when its end is stamped (t − ms is when it began)
      const elapsed = performance.now() - (usage.beganAtMs ?? begun ?? queued);
      this.book.simSucceeded(state, replicate, outputs, {
        attempts: task.attempt,
        pid,
        ms: Math.round(elapsed),
        endedAt: Date.now(),
        stderr: stderrRange(span, pid),
        resources: taskResources(usage, performance.now() - queued),
      });
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
        this.emit({
          type: 'task-retry',
          key,
          attempt: task.attempt + 1,
          kind: failure.kind,
          message: failure.message,
          pid,
          ms: Math.round(performance.now() - (begun ?? queued)),
        });
        this.retries.push({ ...task, attempt: task.attempt + 1 });
        return;
      }
      const elapsed = performance.now() - (begun ?? queued);
      this.book.simFailed(state, replicate, failure, {
        attempts: task.attempt,
        pid,
        ms: Math.round(elapsed),
        endedAt: Date.now(),
        stderr: stderrRange(span, pid),
        resources: taskResources(usage, performance.now() - queued),
      });
      this.queueAggregation(state);
    }
  }

  private queueAggregation(state: SetState): void {
    if (this.book.awaitsAggregation(state)) this.readyToAggregate.push(state);
  }

  private async aggregate(state: SetState): Promise<void> {
    const plan = this.book.planAggregation(state);
    if (!plan) return;
    const { record, ok, begun } = plan;
    const { set } = state;
    const key = record.key;
    const simReturns: SerializedSimReturn[] = this.job.targets.length
      ? ok.map(([i, o]) => serializedSimReturn(set.paramId, set.seeds[i], o.outputs ?? {}))
      : [];
    let resources: TaskResources | undefined;
    let pid: number | undefined;
    for (const target of this.job.targets) {
      const queued = performance.now();
      const usage: RequestUsage = {};
      try {
        const result = await this.pool.run((process) => {
          pid = process.pid;
          return process.request(
            AggregateRequest.type,
            { target_entrypoint: target, sim_returns: simReturns, target_data: this.job.targetData },
            { timeoutMs: this.options.taskTimeoutMs, tag: key, usage },
          );
        });
        resources = addResources(resources, taskResources(usage, performance.now() - queued));
        record.targets[target] = {
          status: 'ok',
          loss: result.loss,
          diagnostics: result.diagnostics,
          n_replicates: result.n_replicates,
        };
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
    this.book.finishAgg(state, record, begun, { resources, pid });
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
function serializedSimReturn(
  paramId: string,
  seed: number | bigint,
  outputs: Record<string, OutputRecord>,
): SerializedSimReturn {
  const serialized: SerializedSimReturn['outputs'] = {};
  for (const [name, output] of Object.entries(outputs)) {
    serialized[name] = {
      size: output.size,
      checksum: outputChecksum(Buffer.from(output.inline, 'base64')),
      inline: output.inline,
    };
  }
  return { task_id: taskId(paramId, seed, outputs), outputs: serialized };
}

/** Production's task_id (isolated_warm.py): blake2b-256 of "{param_id[:16]}-{seed}-{sorted output names}". */
function taskId(paramId: string, seed: number | bigint, outputs: Record<string, OutputRecord>): string {
  const text = `${paramId.slice(0, 16)}-${seed}-${Object.keys(outputs).sort().join(',')}`;
  return bytesToHex(blake2b(new TextEncoder().encode(text), { dkLen: 32 }));
}
