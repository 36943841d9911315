/**
 * The Dask backend: the same job, ids, seeds, events and results as locally, with the tasks
 * run on an existing Dask cluster. The driver submits every task at once (production's
 * `sim-{param_id}-{i}` and `agg-{param_id}` keys, the aggregation taking its simulations'
 * futures as positional arguments) and then only reports: the engine waits for notifications,
 * never polls, and a stall watchdog ends a job the cluster stopped answering.
 */
import * as path from 'node:path';
import { bundleDigest, checkBundleDir, listFiles } from '../../bundle/bundleDir';
import { readBundleDeps, type BundleDeps } from '../../bundle/deps';
import { Failure, unexpectedFailure } from '../../failure';
import { stringifyWireJson } from '../../pyjson/pyjson';
import { ourRunnerScript } from '../../process/runnerScript';
import { DEFAULT_MAX_FRAME_BYTES } from '../../process/frameCap';
import { addResources, JobBook, RETRYABLE, runnerResources, type SetState } from '../../job/book';
import type { TaskResources } from '../../job/records';
import { aggKey, simKey } from '../../job/taskKeys';
import { runnerStderrLog } from '../../job/results';
import { RUN_DEFAULTS, type BackendRun, type RunOptions } from '../contract';
import { classifyExit } from '../../diagnose/classify';
import { pollutionWarning } from '../../diagnose/stdoutBlame';
import { locate } from '../../diagnose/pythonTrace';
import { lingeringWarnings } from '../../process/lingering';
import type { LingeringDescendant } from '../../process/descendants';
import { diagnose, relocate } from './diagnose';
import { DaskDriver, findDaskPython } from './driver';
import {
  AggDoneNotification,
  AllDoneNotification,
  CancelRequest,
  CloseRequest,
  ConnectRequest,
  SchedulerLostNotification,
  SimDoneNotification,
  SimsFinishedNotification,
  SubmitRequest,
  TaskErredNotification,
  WorkerChangeNotification,
  WorkerEventNotification,
  type AggResult,
  type PerformanceReportOutcome,
  type SetSubmission,
  type SimResult,
  type TaskErred,
  type TaskSpec,
  type WorkerDescendant,
  type WorkerEvent,
} from './protocol';

const STALL_MARGIN_MS = 60_000;
/** Shipping the bundle and submitting the tasks (thousands of client.submit calls). */
const SUBMIT_TIMEOUT_MS = 300_000;
const CLOSE_TIMEOUT_MS = 10_000;
/** Closing the client when Dask's performance report is open: the scheduler renders it first. */
const REPORT_CLOSE_TIMEOUT_MS = 300_000;

export async function runOnDask(book: JobBook, options: RunOptions & { backend: 'dask' }): Promise<BackendRun> {
  const dask = options.dask;
  const environment: Record<string, unknown> = {
    bundle: { dir: book.job.bundleDir },
    dask: { scheduler: dask?.scheduler },
  };
  let driver: DaskDriver | undefined;
  let session: DaskSession | undefined;
  let fatal: Failure | undefined;
  /** Dask's performance report is open in the driver (--dask-performance-report). */
  let reportOpen = false;
  try {
    if (!dask)
      throw new Failure('bad-input', 'The dask backend needs a scheduler address (--scheduler tcp://HOST:PORT).');
    const bundleDir = await checkBundleDir(book.job.bundleDir);
    const [digest, deps, files] = await Promise.all([
      book.store.bundleDigest ?? bundleDigest(bundleDir),
      readBundleDeps(bundleDir),
      listFiles(bundleDir),
    ]);
    environment.bundle = { dir: bundleDir, digest };
    const python = await findDaskPython(dask.python);
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    driver = new DaskDriver(
      python,
      (chunk) => book.store.appendLog('dask-driver.stderr', chunk.toString('utf8')),
      options.env,
      maxFrameBytes,
    );
    const connected = await driver.request(
      ConnectRequest.type,
      {
        scheduler: dask.scheduler,
        timeout_s: dask.connectTimeoutMs / 1000,
        ...(dask.performanceReport ? { performance_report: dask.performanceReport } : {}),
      },
      dask.connectTimeoutMs + 30_000,
      `connect to ${dask.scheduler}`,
    );
    reportOpen = Boolean(dask.performanceReport);
    environment.dask = {
      scheduler: connected.scheduler,
      dask_version: connected.dask_version,
      driver_python: { path: python, version: connected.python },
      workers: connected.workers,
    };
    book.emit({
      type: 'dask-connected',
      scheduler: connected.scheduler,
      dask_version: connected.dask_version,
      python: connected.python,
      workers: connected.workers,
    });

    const runnerScript = options.runnerScript ? path.resolve(options.runnerScript) : ourRunnerScript();
    const runnerFiles: Record<string, string> = { [path.basename(runnerScript)]: runnerScript };
    if (!options.runnerScript)
      runnerFiles['modelops_debugger_runner.py'] = path.join(path.dirname(runnerScript), 'modelops_debugger_runner.py');
    environment.runner = runnerScript;
    const spec: TaskSpec = {
      digest,
      requires_python: deps.requiresPython?.spec ?? '',
      deps_hash: deps.depsHash,
      deps_source: deps.source,
      requirements: deps.requirements.map((r) => r.spec),
      requirement_options: deps.requirementOptions,
      extra_install_args: options.venv?.extraInstallArgs ?? [],
      install_timeout_s: (options.venv?.installTimeoutMs ?? RUN_DEFAULTS.installTimeoutMs) / 1000,
      base_python: dask.workerPython ?? '',
      entrypoint: book.job.entrypoint,
      retries: options.retries,
      task_timeout_s: options.taskTimeoutMs / 1000,
      ready_timeout_s: options.readyTimeoutMs / 1000,
      env: options.env ?? {},
      runner_file: path.basename(runnerScript),
      max_frame_bytes: maxFrameBytes,
      memory_limit_mb: options.memoryLimitMb ?? null,
    };
    const stallMs =
      dask.stallTimeoutMs ??
      options.taskTimeoutMs +
        options.readyTimeoutMs +
        (options.venv?.installTimeoutMs ?? RUN_DEFAULTS.installTimeoutMs) +
        STALL_MARGIN_MS;
    session = new DaskSession(book, driver, options, bundleDir, deps, stallMs);
    const sets = session.submissions();
    await session.run(() =>
      driver!.request(
        SubmitRequest.type,
        {
          spec,
          runner_files: runnerFiles,
          bundle_dir: bundleDir,
          bundle_files: files,
          sets,
          report_max_bytes: driver!.maxFrameBytes,
        },
        SUBMIT_TIMEOUT_MS,
        'submit the tasks',
      ),
    );
    fatal = session.fatal;
  } catch (error) {
    fatal = unexpectedFailure(error, 'running the job on Dask');
  } finally {
    if (driver) {
      const closing = driver;
      if ((session?.interrupted || fatal) && fatal?.kind !== 'scheduler-lost' && !closing.exitInfo) {
        // nothing more is wanted from the cluster: its queued tasks go
        await closing.request(CancelRequest.type, {}, CLOSE_TIMEOUT_MS, 'cancel the tasks').catch(() => undefined);
      }
      const timeoutMs = dask?.performanceReport ? REPORT_CLOSE_TIMEOUT_MS : CLOSE_TIMEOUT_MS;
      let closed: { performance_report?: PerformanceReportOutcome } | undefined;
      await closing.close(timeoutMs, async () => {
        closed = await closing.request(CloseRequest.type, { timeout_s: 5 }, timeoutMs, 'close the client');
      });
      const report: PerformanceReportOutcome | undefined = reportOpen
        ? (closed?.performance_report ?? {
            file: dask!.performanceReport!,
            error: 'the Dask driver did not close it (it ended, or did not answer): see logs/dask-driver.stderr',
          })
        : undefined;
      if (report) {
        (environment.dask as Record<string, unknown>).performance_report = report;
        if ('error' in report)
          book.emit({
            type: 'warning',
            kind: 'dask-report-unavailable',
            message: `Dask's performance report was not written to ${report.file}: ${report.error}`,
          });
      }
    }
  }
  return { fatal, interrupted: session?.interrupted ?? false, environment };
}

/** One job's tasks on the cluster, from submission to the last outcome. */
class DaskSession {
  fatal: Failure | undefined;
  interrupted = false;
  /** Task key → where its outcome goes. */
  private readonly sims = new Map<string, { state: SetState; replicate: number }>();
  private readonly aggs = new Map<string, SetState>();
  /** Aggregation results that came before the last of their simulations' (gathers race). */
  private readonly earlyAggs = new Map<SetState, AggResult | TaskErred>();
  private readonly started = new Set<string>();
  /** Source lines already warned about (stdout-pollution). */
  private readonly warned = new Set<string>();
  private finish: () => void = () => undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  /** Set once run() has returned: late notifications change nothing and arm no timer. */
  private over = false;

  constructor(
    private readonly book: JobBook,
    private readonly driver: DaskDriver,
    private readonly options: RunOptions,
    private readonly bundleDir: string,
    private readonly deps: BundleDeps,
    private readonly stallMs: number,
  ) {}

  /** What to submit: each set's missing replicates, and its aggregation unless an earlier run did it. */
  submissions(): SetSubmission[] {
    const submissions: SetSubmission[] = [];
    for (const state of this.book.states) {
      const { set } = state;
      const sims: SetSubmission['sims'] = [];
      const done: SetSubmission['done'] = [];
      for (let i = 0; i < set.seeds.length; i++) {
        const earlier = state.outcomes.get(i);
        if (!earlier) {
          const key = simKey(state.set.paramId, i);
          sims.push({ key, replicate: i, seed: set.seeds[i] });
          this.sims.set(key, { state, replicate: i });
        } else if (!state.aggregated) {
          const outputs = Object.fromEntries(
            Object.entries(earlier.outputs ?? {}).map(([name, o]) => [name, o.inline]),
          );
          const key = simKey(state.set.paramId, i);
          done.push({
            replicate: i,
            result: earlier.ok
              ? {
                  key,
                  status: 'ok',
                  outputs,
                  seed: set.seeds[i],
                  pid: 0,
                  worker: '',
                  attempts: [],
                  ms: 0,
                  stderr: '',
                  captures: [],
                }
              : { key, status: 'failed', seed: set.seeds[i], worker: '', attempts: [], ms: 0 },
          });
        }
      }
      const agg = state.aggregated
        ? undefined
        : {
            key: aggKey(set.paramId),
            param_id: set.paramId,
            targets: this.book.job.targets,
            target_data_json: stringifyWireJson(this.book.job.targetData ?? null),
            allow_partial: this.options.allowPartial,
          };
      if (agg) this.aggs.set(agg.key, state);
      if (sims.length || agg)
        submissions.push({
          param_id: set.paramId,
          replicates: set.seeds.length,
          params_json: state.wireParams.text,
          sims,
          done,
          agg,
        });
    }
    return submissions;
  }

  /** Resolves when every task has an outcome, the job cannot go on, or it is interrupted. */
  async run(submit: () => Promise<unknown>): Promise<void> {
    const ended = new Promise<void>((resolve) => (this.finish = resolve));
    this.listen();
    const onAbort = () => {
      this.interrupted = true;
      this.finish();
    };
    // stopped while the driver was starting: an aborted signal never fires 'abort' again
    if (this.options.signal?.aborted) onAbort();
    else this.options.signal?.addEventListener('abort', onAbort, { once: true });
    const driverGone = this.driver.exited.then(() => this.end(this.driver.exitFailure('report the tasks')));
    try {
      const submissions = this.sims.size + this.aggs.size;
      if (submissions === 0) return;
      this.armStall();
      await Promise.race([submit(), ended]);
      await ended;
    } finally {
      this.over = true;
      clearTimeout(this.stallTimer);
      this.options.signal?.removeEventListener('abort', onAbort);
      void driverGone;
    }
    if (!this.fatal && !this.interrupted) this.accountForSilence();
  }

  private listen(): void {
    const driver = this.driver;
    driver.onNotification(WorkerEventNotification.type, (event) => this.guard(() => this.onWorkerEvent(event)));
    driver.onNotification(SimsFinishedNotification.type, ({ keys }) =>
      this.guard(() => keys.forEach((key) => this.book.emit({ type: 'task-finished', key }))),
    );
    driver.onNotification(SimDoneNotification.type, ({ key, result }) => this.guard(() => this.onSimDone(key, result)));
    driver.onNotification(AggDoneNotification.type, ({ key, result }) => this.guard(() => this.onAggDone(key, result)));
    driver.onNotification(TaskErredNotification.type, (erred) => this.guard(() => this.onTaskErred(erred)));
    driver.onNotification(WorkerChangeNotification.type, (change) =>
      this.guard(() => {
        if (change.action === 'added') this.book.emit({ type: 'worker-joined', worker: change.worker });
        else {
          const cause = `the scheduler removed the worker: its connection closed (the process died or was killed, or the network dropped)${change.processing.length ? `; Dask reschedules the ${change.processing.length} tasks it held` : ''}`;
          this.book.emit({ type: 'worker-lost', worker: change.worker, cause, processing: change.processing });
        }
      }),
    );
    driver.onNotification(SchedulerLostNotification.type, ({ scheduler, message }) =>
      this.guard(() => {
        this.book.emit({ type: 'scheduler-lost', scheduler, cause: message });
        this.end(
          new Failure('scheduler-lost', message, {
            notes: ['the tasks without a result did not finish; after the scheduler is back, --resume runs them'],
          }),
        );
      }),
    );
    driver.onNotification(AllDoneNotification.type, () => this.guard(() => this.finish()));
  }

  /** A notification handler that throws ends the job with that failure instead of being lost. */
  private guard(handle: () => void): void {
    if (this.over) return;
    this.armStall();
    try {
      handle();
    } catch (error) {
      this.end(unexpectedFailure(error, "handling the Dask driver's report"));
    }
  }

  private end(failure: Failure): void {
    this.fatal ??= failure;
    this.finish();
  }

  private armStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      const pending = this.book.counts.sims.pending + this.book.counts.aggregations.pending;
      this.end(
        new Failure(
          'dask-stalled',
          `No word from the Dask cluster for ${Math.round(this.stallMs / 1000)} s with ${pending} tasks pending: no worker may be connected, or every worker is stuck`,
          { notes: [`scheduler ${this.options.dask?.scheduler}`] },
        ),
      );
    }, this.stallMs);
  }

  private onWorkerEvent(event: WorkerEvent): void {
    switch (event.type) {
      case 'task-start':
        if (!this.sims.has(event.key) || this.started.has(`${event.key}#${event.attempt}`)) return; // aggregations announce themselves with their result
        this.started.add(`${event.key}#${event.attempt}`);
        this.book.emit({
          type: 'task-start',
          key: event.key,
          attempt: event.attempt,
          pid: event.pid,
          worker: event.worker,
        });
        return;
      case 'task-retry': {
        const failure = classifyExit({
          bundleDir: this.bundleDir,
          method: 'execute',
          exit: event.exit ?? undefined,
          stderrSince: '',
          stderrTail: '',
          stderrBytes: 0,
        });
        if (!RETRYABLE.has(failure.kind)) return;
        this.book.emit({
          type: 'task-retry',
          key: event.key,
          attempt: event.attempt,
          kind: failure.kind,
          message: failure.message,
        });
        return;
      }
      case 'process-start':
        this.book.emit({ type: 'process-start', pid: event.pid, venv: event.venv, worker: event.worker });
        return;
      case 'process-end':
        this.book.emit({
          type: 'process-end',
          pid: event.pid,
          why: event.why,
          uses: event.uses,
          exit_code: event.exit_code,
          signal: event.signal,
          worker: event.worker,
        });
        return;
      case 'venv-built':
        this.book.emit({
          type: 'venv',
          event: {
            type: 'venv-build',
            key: event.key,
            reason: `${event.reason} (built on Dask worker ${event.worker})`,
          },
        });
        return;
    }
  }

  private onSimDone(key: string, result: SimResult): void {
    const target = this.sims.get(key);
    if (!target) return; // a task of another job, or reported twice
    this.sims.delete(key);
    const { state, replicate } = target;
    for (const attempt of result.attempts) {
      if ('pid' in attempt) {
        this.keepStderr(result.worker, attempt.pid, attempt.stderr, key);
        this.warnLingering(result.worker, attempt.bundle_path, attempt.descendants);
      }
    }
    if (result.status === 'ok') {
      this.keepStderr(result.worker, result.pid, result.stderr, key);
      this.warnLingering(result.worker, result.bundle_path, result.descendants);
      for (const capture of result.captures ?? []) {
        // our runner absorbed it; production's would have broken on it: said once per line, at the local path
        const warning = pollutionWarning(
          result.bundle_path ? relocate(capture, result.bundle_path, this.bundleDir) : capture,
          this.bundleDir,
          this.warned,
        );
        if (warning) this.book.emit({ type: 'warning', kind: 'stdout-pollution', ...warning });
      }
      this.announce(key, result.attempts.length + 1, result.pid, result.worker);
      this.book.simSucceeded(state, replicate, result.outputs, {
        attempts: result.attempts.length + 1,
        pid: result.pid,
        ms: Math.round(result.ms),
        worker: result.worker,
        // on a worker the engine sees neither the queue nor the pipes: the runner's measures alone
        ...(result.resources ? { resources: runnerResources(result.resources) } : {}),
      });
    } else {
      const last = result.attempts.at(-1);
      if (!last) throw new Failure('protocol-error', `The Dask worker reported ${key} failed without saying how`);
      const failure = diagnose(last, this.bundleDir, result.worker, this.deps);
      if (last.start_failed) {
        // no runner could be started for it: as locally, the job cannot go on
        this.end(failure);
        return;
      }
      const pid = 'pid' in last ? last.pid : undefined;
      this.announce(key, result.attempts.length, pid, result.worker);
      this.book.simFailed(state, replicate, failure, {
        attempts: result.attempts.length,
        pid,
        ms: Math.round(result.ms),
        worker: result.worker,
      });
    }
    this.aggregateIfDue(state);
  }

  private onAggDone(key: string, result: AggResult): void {
    const state = this.aggs.get(key);
    if (!state) return;
    // its simulations first (those an earlier run finished are not ours to record again)
    for (const sim of result.sims) if (this.sims.has(sim.key)) this.onSimDone(sim.key, sim);
    if (this.fatal) return;
    this.keepStderr(result.worker, result.pid ?? undefined, result.stderr, key);
    this.warnLingering(result.worker, result.bundle_path, result.descendants);
    this.earlyAggs.set(state, result);
    this.aggregateIfDue(state);
  }

  private onTaskErred(erred: TaskErred): void {
    const failure = new Failure(
      'dask-task-erred',
      `Dask failed ${erred.key}: ${erred.exc_type}${erred.message ? `: ${erred.message}` : ''}`,
      {
        exception: { type: erred.exc_type, message: erred.message, traceback: erred.traceback },
        notes:
          erred.exc_type === 'KilledWorker'
            ? ['the workers running this task died too often (distributed.scheduler.allowed-failures)']
            : [],
      },
    );
    this.book.emit({ type: 'dask-task-erred', key: erred.key, exc_type: erred.exc_type, cause: failure.message });
    const sim = this.sims.get(erred.key);
    if (sim) {
      this.sims.delete(erred.key);
      this.book.simFailed(sim.state, sim.replicate, failure, { attempts: 1, pid: undefined, ms: 0 });
      this.aggregateIfDue(sim.state);
      return;
    }
    const state = this.aggs.get(erred.key);
    if (state) {
      this.earlyAggs.set(state, erred);
      this.aggregateIfDue(state);
    }
  }

  /** The aggregation is recorded once its result and every simulation's are in. */
  private aggregateIfDue(state: SetState): void {
    const result = this.earlyAggs.get(state);
    if (!result || !this.book.awaitsAggregation(state)) return;
    this.earlyAggs.delete(state);
    this.aggs.delete(aggKey(state.set.paramId));
    const erred = 'exc_type' in result;
    const plan = this.book.planAggregation(state, erred ? {} : { pid: result.pid ?? undefined, worker: result.worker });
    if (!plan) return; // skipped: replicates failed, and the record names them
    const { record } = plan;
    if (erred) {
      const failure = new Failure(
        'dask-task-erred',
        `Dask failed ${result.key}: ${result.exc_type}${result.message ? `: ${result.message}` : ''}`,
        { exception: { type: result.exc_type, message: result.message, traceback: result.traceback } },
      );
      if (this.book.job.targets.length === 0)
        Object.assign(record, { status: 'failed', kind: failure.kind, message: failure.message });
      for (const target of this.book.job.targets) this.book.targetFailed(record, target, failure);
    } else {
      for (const target of this.book.job.targets) {
        const outcome = result.targets[target];
        if (outcome?.status === 'ok') {
          record.targets[target] = {
            status: 'ok',
            loss: outcome.result.loss,
            diagnostics: outcome.result.diagnostics,
            n_replicates: outcome.result.n_replicates,
          };
        } else if (outcome?.status === 'failed') {
          const failure = diagnose(outcome.facts, this.bundleDir, result.worker, this.deps);
          if (outcome.facts.start_failed) this.end(failure);
          this.book.targetFailed(record, target, failure);
        } else {
          this.book.targetFailed(
            record,
            target,
            new Failure('protocol-error', `The Dask worker ${result.worker} returned no result for target ${target}`),
          );
        }
      }
    }
    // its targets' cost in their runners, as our runner measured it (the engine sees no queue or pipe there)
    const resources = erred
      ? undefined
      : (result.resources ?? []).reduce<TaskResources | undefined>(
          (sum, measured) => addResources(sum, runnerResources(measured)),
          undefined,
        );
    this.book.finishAgg(state, record, performance.now() - (erred ? 0 : result.ms), {
      pid: erred ? undefined : (result.pid ?? undefined),
      worker: erred ? undefined : result.worker,
      ...(resources ? { resources } : {}),
    });
  }

  /** A task-done is always preceded by its task-start, even when the start event came late. */
  private announce(key: string, attempt: number, pid: number | undefined, worker: string): void {
    if (this.started.has(`${key}#${attempt}`)) return;
    this.started.add(`${key}#${attempt}`);
    this.book.emit({ type: 'task-start', key, attempt, pid, worker });
  }

  /** Processes tasks left running on a worker: the same warning as locally, at local paths. */
  private warnLingering(
    worker: string,
    bundlePath: string | undefined,
    descendants: WorkerDescendant[] | undefined,
  ): void {
    if (!descendants?.length) return;
    const byRunner = new Map<number, LingeringDescendant[]>();
    for (const d of descendants) {
      const location = locate(bundlePath ? relocate(d.stack, bundlePath, this.bundleDir) : d.stack, this.bundleDir);
      const local: LingeringDescendant = {
        pid: d.pid,
        command: d.command,
        escaped: d.escaped,
        task: d.task,
        ...(location ? { location } : {}),
      };
      byRunner.set(d.runner_pid, [...(byRunner.get(d.runner_pid) ?? []), local]);
    }
    for (const [pid, group] of byRunner)
      for (const warning of lingeringWarnings(group, pid, worker)) this.book.emit(warning);
  }

  /** A runner's stderr, as it came with a task, into logs/ (one file per worker and runner). */
  private keepStderr(worker: string, pid: number | undefined, stderr: string | undefined, key: string): void {
    if (!stderr) return;
    this.book.store.appendLog(runnerStderrLog(pid, worker), stderr);
    this.options.onRunnerStderr?.(pid, Buffer.from(stderr), key);
  }

  /** The driver said it was done: any task it never reported gets a result that says so. */
  private accountForSilence(): void {
    for (const [key, { state, replicate }] of this.sims) {
      this.book.simFailed(
        state,
        replicate,
        new Failure('dask-task-erred', `The Dask driver finished without reporting ${key}`),
        { attempts: 1, pid: undefined, ms: 0 },
      );
    }
    this.sims.clear();
    for (const [key, state] of this.aggs) {
      if (!this.earlyAggs.has(state))
        this.earlyAggs.set(state, {
          key,
          exc_type: 'Missing',
          message: 'the Dask driver finished without reporting it',
          traceback: '',
        });
      this.aggregateIfDue(state);
    }
  }
}
