/**
 * Runs jobs on the embedded engine inside the extension host, feeding the model, the tree,
 * the diagnostics and the status bar from the engine's events.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { bundleDigest, checkBundleDir } from '../../engine/bundle/bundleDir';
import { readBundleDeps } from '../../engine/bundle/deps';
import { defaultWorkers, RUN_DEFAULTS } from '../../engine/backends/contract';
import { describeClusterEvent } from '../../engine/backends/dask/describe';
import type { JobEvent } from '../../engine/job/events';
import { freshJobId, readJobFolder, runsOf, type JobOnDisk } from '../../engine/job/onDisk';
import { ResultsExist, ResultsStore } from '../../engine/job/results';
import { readJobJson } from '../../engine/job/resultsReader';
import { openEarlierRun, type BundleChange } from '../../engine/job/resume';
import { runJob, type JobOutcome } from '../../engine/job/run';
import { jobFromParamsFile, loadJobFile, type JobSpec, type ShortcutInput } from '../../engine/job/spec';
import { exitCodeFor, Failure, unexpectedFailure } from '../../engine/failure';
import { locateInJobFile } from '../../engine/job/specLocation';
import { describeVenvEvent } from '../../engine/venv/describe';
import type { VenvEvent } from '../../engine/venv/cache';
import { warningText, type FailedReplicate, type FailureDiagnostics } from '../diagnostics';
import { parseSimKey } from '../../engine/job/taskKeys';
import type { JobInfo, JobModel } from './jobModel';
import type { JobsTreeProvider } from './jobsTree';
import type { ProcessTreeProvider } from '../processes/processTree';
import type { RunnerChannels } from '../output/runnerChannels';
import { backendSettings, readyTimeoutMs, runtimeSettings, seconds } from '../settings';
import { Coalesced } from '../util/coalesce';
import { resultsDir } from '../util/commands';
import type { ProtocolTrace } from '../output/protocolTrace';
import { openAt, type Notices } from '../util/notices';

export interface JobRunResult {
  jobId: string;
  /** Empty for a job that never started (`failure` says why). */
  dir: string;
  status: JobOutcome['status'];
  exitCode: number;
  counts: JobOutcome['counts'];
  /** Why an aborted job stopped, or never started. */
  failure?: ReturnType<Failure['toJSON']>;
}

const NO_COUNTS: JobOutcome['counts'] = {
  sims: { total: 0, ok: 0, failed: 0, pending: 0 },
  aggregations: { total: 0, ok: 0, failed: 0, skipped: 0, pending: 0 },
};

/**
 * What to do when a job file's results exist already (tests and other extensions pass it
 * instead of answering the question): run what has no result yet, start a new run under a
 * fresh job id (the earlier one stays in the tree), or show the earlier run.
 */
export type IfResultsExist = 'resume' | 'new-run' | 'open-previous';

/** A job read from its results folder: what "Open Job Results…" and "Open Previous" return. */
export interface OpenedJob {
  jobId: string;
  dir: string;
  status: JobOnDisk['status'];
  counts: JobOnDisk['counts'];
}

/**
 * Follows the jobs of this editor (the Testing view does): each run from its start to the
 * moment its results folder has been read back, and each job read from disk.
 */
export interface JobWatcher {
  /** A job starts here (a new run, a resume, a rerun); `requested`: what its caller handed to the run. */
  started(job: JobInfo, requested: unknown): JobWatch;
  /** A job read from its results folder, not running here. */
  opened(job: JobInfo): void;
}

export interface JobWatch {
  /** One of the engine's events, once the model has taken it. */
  event(job: JobInfo, event: JobEvent): void;
  /** The job ended and `job` now says what its results folder holds. */
  ended(job: JobInfo): void;
}

export class JobRunner implements vscode.Disposable {
  private readonly running = new Map<string, AbortController>();
  private readonly watchers = new Set<JobWatcher>();
  private readonly statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  /** The job the status bar follows: the latest one started. */
  private statusJob: string | undefined;
  /**
   * Ten a second at most; the first task's count at once (VS Code only defers a status bar change to its next
   * timer turn: extHostStatusBar.ts, update()).
   */
  private readonly status = new Coalesced(() => this.updateStatus(), 100, { leading: true });
  /** Ends the notification of the venv build under way. */
  private building: (() => void) | undefined;

  constructor(
    private readonly model: JobModel,
    private readonly tree: JobsTreeProvider,
    private readonly diagnostics: FailureDiagnostics,
    private readonly log: vscode.LogOutputChannel,
    private readonly processes: ProcessTreeProvider,
    private readonly stderr: RunnerChannels,
    private readonly trace: ProtocolTrace,
    private readonly notices: Notices,
  ) {
    this.statusBar.command = 'workbench.view.extension.modelops';
  }

  /** Told of every job run or opened here, until disposed. */
  watch(watcher: JobWatcher): vscode.Disposable {
    this.watchers.add(watcher);
    return new vscode.Disposable(() => this.watchers.delete(watcher));
  }

  async runJobFile(file: string, ifResultsExist?: IfResultsExist): Promise<JobRunResult | OpenedJob | undefined> {
    return this.runNew(
      file,
      path.basename(file),
      async () => {
        try {
          const job = await loadJobFile(file);
          await checkBundleDir(job.bundleDir);
          return job;
        } catch (error) {
          throw await locateInJobFile(error, file); // the editor puts it at the field's line
        }
      },
      path.dirname(file),
      file,
      ifResultsExist,
    );
  }

  /** A bundle with a parameters file (a JSON list of parameter sets) and a replicate count. */
  async runBundle(
    input: ShortcutInput,
    ifResultsExist?: IfResultsExist,
  ): Promise<JobRunResult | OpenedJob | undefined> {
    return this.runNew(
      input.bundleDir,
      input.jobId ?? path.basename(input.bundleDir),
      async () => {
        await checkBundleDir(input.bundleDir);
        try {
          return await jobFromParamsFile(input);
        } catch (error) {
          throw await locateInJobFile(error, input.paramsFile);
        }
      },
      input.bundleDir,
      input.paramsFile,
      ifResultsExist,
    );
  }

  /**
   * A new job from `origin` (a job file, or a bundle). What refuses it before it can start (a
   * bad job file, a pyproject.toml that is not TOML, a missing bundle, a Dask backend with no
   * scheduler) is said as an aborted job would be: a job row with the cause, a diagnostic at
   * its line, a notification that opens it. A job whose results exist already asks what to do
   * (resultsExist). `source`: the job file or parameters file, under which the tree keeps runs.
   */
  private async runNew(
    origin: string,
    label: string,
    load: () => Promise<JobSpec>,
    near: string,
    source: string,
    ifResultsExist: IfResultsExist | undefined,
  ): Promise<JobRunResult | OpenedJob | undefined> {
    let job: JobSpec | undefined;
    let store: ResultsStore | undefined;
    let backend: ReturnType<typeof backendSettings>;
    let existing: string | undefined;
    this.diagnostics.clearFile(origin);
    try {
      job = await load(); // the bundle directory checked too, so a missing one is said at the job file's "bundle" line
      await readBundleDeps(job.bundleDir);
      backend = backendSettings(); // a dask backend without a scheduler is refused before a results directory is made
      const out = resultsDir(near);
      existing = runsOf(out, job.jobId)[0];
      if (!existing) {
        try {
          store = await ResultsStore.create(out, job, await bundleDigest(job.bundleDir));
        } catch (error) {
          if (!(error instanceof ResultsExist)) throw error;
          existing = error.dir; // made since we looked
        }
      }
    } catch (error) {
      return this.notStarted(origin, job?.jobId ?? label, job?.bundleDir, unexpectedFailure(error, 'starting the job'));
    }
    this.model.forgetNotStarted(origin);
    // no store: the results existed
    if (!store) return this.resultsExist(origin, job, near, source, existing!, ifResultsExist);
    return this.run(job, store, false, backend, undefined, source);
  }

  private notStarted(source: string, jobId: string, bundleDir: string | undefined, failure: Failure): JobRunResult {
    const cause = failure.toJSON();
    this.model.addNotStarted(source, jobId, cause);
    this.tree.scheduleRefresh();
    // what an earlier run said about the bundle no longer stands
    if (bundleDir) this.diagnostics.clearBundle(bundleDir);
    this.diagnostics.addFailure(failure);
    this.diagnostics.flush();
    this.log.error(`job ${jobId} did not start: ${failure.kind}: ${failure.message}`);
    this.sayAborted(jobId, 'did not start', failure);
    return {
      jobId,
      dir: '',
      status: 'aborted',
      exitCode: exitCodeFor(failure.kind),
      counts: NO_COUNTS,
      failure: cause,
    };
  }

  /** An aborted job's notification: its cause, and a button to the line it is at (or to what to change). */
  private sayAborted(jobId: string, what: string, failure: Pick<Failure, 'kind' | 'message' | 'location'>): void {
    const actions: Record<string, () => unknown> = {};
    if (failure.location) actions.Open = () => openAt(failure.location!);
    else if (
      failure.kind === 'interpreter-not-found' ||
      failure.kind === 'python-mismatch' ||
      failure.kind === 'venv-create-failed'
    ) {
      actions['Open Settings'] = () =>
        vscode.commands.executeCommand('workbench.action.openSettings', 'modelopsDebugger.pythonPath');
    }
    actions['Show Output'] = () => this.log.show();
    this.notices.show('error', `ModelOps: job ${jobId} ${what}: ${failure.kind}: ${failure.message}`, actions);
  }

  /** A job file whose results exist: resume the latest run, start a new one, or show it; asked unless given. */
  private async resultsExist(
    origin: string,
    job: JobSpec,
    near: string,
    source: string,
    latest: string,
    given: IfResultsExist | undefined,
  ): Promise<JobRunResult | OpenedJob | undefined> {
    const earlier = await readJobFolder(latest);
    const answer = given ?? (await askIfResultsExist(earlier, freshJobId(resultsDir(near), job.jobId)));
    if (answer === undefined) return undefined;
    if (answer === 'resume') return this.resume(latest, source);
    // the earlier run stays in the tree, under the new one
    const opened = this.running.has(earlier.job.jobId) ? undefined : this.show(earlier, source);
    if (answer === 'open-previous')
      return opened ?? { jobId: earlier.job.jobId, dir: earlier.dir, status: earlier.status, counts: earlier.counts };
    const fresh = { ...job, jobId: freshJobId(resultsDir(near), job.jobId) };
    return this.runNew(origin, fresh.jobId, async () => fresh, near, source, 'new-run');
  }

  /** "Open Job Results…": a job's results folder (`<out>/<job_id>`) into the tree, as the disk says. */
  async openResults(dir: string, source?: string): Promise<OpenedJob> {
    const disk = await readJobFolder(dir);
    if (this.running.has(disk.job.jobId))
      return { jobId: disk.job.jobId, dir: disk.dir, status: 'running', counts: disk.counts }; // live here already
    return this.show(disk, source);
  }

  private show(disk: JobOnDisk, source?: string): OpenedJob {
    const info = this.model.addJob(disk.job, disk.dir, source);
    this.model.applyDisk(info, disk, { runningHere: false });
    for (const watcher of this.watchers) watcher.opened(info);
    for (const problem of disk.problems) this.log.warn(`job ${disk.job.jobId}: ${problem}`);
    this.tree.scheduleRefresh();
    return { jobId: disk.job.jobId, dir: disk.dir, status: disk.status, counts: disk.counts };
  }

  /** The failed tasks of a finished job again (and the aggregations they feed), in place. */
  rerunFailed(dir: string): Promise<JobRunResult> {
    return this.continueJob(dir, true);
  }

  /** An interrupted or killed job: run what has no result yet. */
  resume(dir: string, source?: string): Promise<JobRunResult> {
    return this.continueJob(dir, false, source);
  }

  /**
   * A job of a results folder run again as a new run (a fresh job id next to it, the same
   * params and seeds), whole or only the parameter sets named; it stays under the same job file
   * in the tree. A run of some sets records no input to reproduce it from: its job.json is
   * the whole of it.
   */
  async runAgain(dir: string, paramIds?: readonly string[], requested?: unknown): Promise<JobRunResult> {
    // its job.json alone: the new run reads nothing of the earlier one's results
    const { job: earlier } = await readJobJson(dir);
    const sets = earlier.parameterSets.filter((set) => !paramIds || paramIds.includes(set.paramId));
    if (!sets.length) throw new Failure('bad-input', `Job ${earlier.jobId} has none of the parameter sets asked for.`);
    const out = path.dirname(path.resolve(dir));
    const job: JobSpec = {
      ...earlier,
      jobId: freshJobId(out, earlier.jobId),
      parameterSets: sets.map((set, index) => ({ ...set, index })),
      input: paramIds ? undefined : earlier.input,
    };
    const backend = backendSettings();
    const store = await ResultsStore.create(out, job, await bundleDigest(job.bundleDir));
    const source = this.model.jobs.get(earlier.jobId)?.source;
    return this.run(job, store, false, backend, undefined, source, requested);
  }

  private async continueJob(dir: string, forgetFailures: boolean, source?: string): Promise<JobRunResult> {
    const backend = backendSettings();
    // the same checks as the CLI's --resume and --rerun-failed. Rerunning failed tasks is what one
    // does after fixing the bundle in the editor: a changed bundle is allowed there (the manifest
    // records it), as --allow-bundle-change does; a plain resume refuses one
    const { store, job, bundleChange } = await openEarlierRun(dir, {
      rerunFailed: forgetFailures,
      allowBundleChange: forgetFailures,
    });
    return this.run(job, store, true, backend, bundleChange, source);
  }

  private async run(
    job: JobSpec,
    store: ResultsStore,
    resumed: boolean,
    backend: ReturnType<typeof backendSettings>,
    bundleChange?: BundleChange,
    source?: string,
    requested?: unknown,
  ): Promise<JobRunResult> {
    const config = vscode.workspace.getConfiguration('modelopsDebugger');
    // what earlier runs left (a resume, a rerun): done shows as done from the start
    let disk: JobOnDisk;
    try {
      disk = await readJobFolder(store.dir, job);
    } catch (error) {
      await store.close();
      throw error;
    }
    const info = this.model.addJob(job, store.dir, source);
    this.model.applyDisk(info, disk, { runningHere: true });
    this.diagnostics.clearBundle(job.bundleDir);
    const controller = new AbortController();
    this.running.set(job.jobId, controller);
    this.tree.scheduleRefresh();
    const watches = [...this.watchers].map((watcher) => watcher.started(info, requested));
    let thrown: unknown;
    let abortedBy: JobRunResult['failure'];
    const onEvent = (event: JobEvent) => {
      this.model.apply(info, event);
      for (const watch of watches) watch.event(info, event);
      const news = describeClusterEvent(event);
      if (news) this.log[news.level === 'warning' ? 'warn' : news.level](`job ${job.jobId}: ${news.text}`);
      this.processes.onJobEvent(job.jobId, store.dir, event);
      this.tree.scheduleRefresh();
      if (event.type === 'warning' && event.kind === 'stdout-pollution' && event.key)
        this.stderr.warn(job.bundleDir, event.pid, event.key, warningText(event));
      if (event.type === 'task-done' && event.status === 'failed' && event.kind)
        this.diagnostics.addFailure({
          kind: event.kind,
          message: event.message ?? '',
          location: event.location,
          callers: event.callers,
          replicate: failedReplicate(job, store.dir, event.key),
        });
      else if (event.type === 'agg-done' && event.status === 'failed' && event.kind)
        this.diagnostics.addFailure({ kind: event.kind, message: event.message ?? '', location: event.location });
      else if (event.type === 'warning' && event.location) this.diagnostics.addWarning(event);
      else if (event.type === 'results-folder') this.log.warn(`job ${job.jobId}: ${event.message}`);
      else if (event.type === 'job-done' && event.failure) {
        // a job that could not go on (python-mismatch, deps-install-failed, no wire function…): at its line
        this.log.error(`job ${job.jobId}: ${event.failure.kind}: ${event.failure.message}`);
        this.diagnostics.addFailure(event.failure);
        abortedBy = event.failure;
        if (event.status === 'aborted') this.sayAborted(job.jobId, 'aborted', event.failure);
      } else if (event.type === 'venv') {
        this.log.info(describeVenvEvent(event.event));
        this.venvProgress(event.event);
      } else if (event.type === 'job-start') {
        this.statusJob = info.jobId;
        this.status.schedule();
      } else if (event.type === 'task-done') this.status.schedule();
    };
    try {
      const outcome = await runJob(job, store, {
        ...runtimeSettings(),
        workers: config.get<number>('workers') || defaultWorkers(),
        depth: RUN_DEFAULTS.depth,
        executor: config.get<'warm' | 'cold'>('executor') ?? RUN_DEFAULTS.executor,
        maxReuse: RUN_DEFAULTS.maxReuse,
        retries: config.get<number>('retries') ?? RUN_DEFAULTS.retries,
        taskTimeoutMs: seconds('taskTimeoutSeconds', RUN_DEFAULTS.taskTimeoutMs),
        readyTimeoutMs: readyTimeoutMs(),
        allowPartial: RUN_DEFAULTS.allowPartial,
        runnerNice: config.get<number>('runnerNiceness') ?? RUN_DEFAULTS.runnerNice,
        ...backend,
        resumed,
        bundleChange,
        onEvent,
        onRunnerStderr: (pid, chunk, task) => this.stderr.append(job.bundleDir, pid, chunk, task),
        onRunnerTrace: this.trace.listener(),
        signal: controller.signal,
      });
      this.log.info(`job ${job.jobId} ${outcome.status} in ${(outcome.ms / 1000).toFixed(1)} s → ${outcome.dir}`);
      // the command's answer (for tests and other extensions) says what the views said, from the same event
      return {
        jobId: job.jobId,
        dir: outcome.dir,
        status: outcome.status,
        exitCode: outcome.exitCode,
        counts: outcome.counts,
        failure: abortedBy,
      };
    } catch (error) {
      thrown = error;
      throw error;
    } finally {
      this.running.delete(job.jobId);
      await this.settle(info, job, thrown);
      for (const watch of watches) watch.ended(info);
      this.tree.scheduleRefresh();
      this.diagnostics.flush();
      this.stderr.flush();
      this.trace.flush();
      this.building?.();
      this.building = undefined;
      this.status.cancel(); // shown now, below
      this.updateStatus();
    }
  }

  /**
   * A job that ended, rebuilt from its results folder: every task shows what is on disk, and
   * nothing stays queued or running. A run that threw (an engine bug) is aborted with that cause.
   */
  private async settle(info: JobInfo, job: JobSpec, thrown: unknown): Promise<void> {
    try {
      this.model.applyDisk(info, await readJobFolder(info.dir, job), { runningHere: false });
    } catch (error) {
      // the folder cannot be read back (gone, unreadable): the events said how it ended; nothing stays running
      this.log.error(
        `job ${job.jobId}: its results folder could not be read back: ${error instanceof Error ? error.message : String(error)}`,
      );
      this.model.endRun(info);
    }
    if (thrown !== undefined) {
      const failure = unexpectedFailure(thrown, 'running the job');
      this.model.endRun(info);
      info.status = 'aborted';
      info.failure = { kind: failure.kind, message: failure.message, location: failure.location };
    }
  }

  /** A venv build (minutes, with dependencies) shown as a notification until it is done. */
  private venvProgress(event: VenvEvent): void {
    if (event.type === 'venv-build') {
      this.building?.();
      void vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `ModelOps: building venv ${event.key} (${event.reason})`,
        },
        () => new Promise<void>((resolve) => (this.building = resolve)),
      );
    } else if (event.type === 'venv-built') {
      this.building?.();
      this.building = undefined;
    }
  }

  /** Whether this editor is running the job now. */
  isRunning(jobId: string): boolean {
    return this.running.has(jobId);
  }

  cancel(jobId: string): void {
    this.running.get(jobId)?.abort();
  }

  private updateStatus(): void {
    const job = this.statusJob === undefined ? undefined : this.model.jobs.get(this.statusJob);
    if (!job || job.status !== 'running') {
      this.statusBar.hide();
      return;
    }
    const sets = [...job.sets.values()];
    const done = sets.reduce((sum, s) => sum + s.ok + s.failed, 0);
    const total = sets.reduce((sum, s) => sum + s.tasks.length, 0);
    const failed = sets.reduce((sum, s) => sum + s.failed, 0);
    this.statusBar.text = `$(sync~spin) ${job.jobId}: ${done}/${total}${failed ? ` ($(error) ${failed})` : ''}`;
    this.statusBar.tooltip = `ModelOps job ${job.jobId}: click to show it`;
    this.statusBar.show();
  }

  dispose(): void {
    for (const controller of this.running.values()) controller.abort();
    this.status.dispose();
    this.statusBar.dispose();
  }
}

/** The question "Run Job File…" asks when the job's results exist; undefined when dismissed. */
async function askIfResultsExist(earlier: JobOnDisk, fresh: string): Promise<IfResultsExist | undefined> {
  const { sims } = earlier.counts;
  const done = `${sims.ok + sims.failed}/${sims.total} replicates done${sims.failed ? `, ${sims.failed} failed` : ''}`;
  const RESUME = 'Resume';
  const NEW_RUN = 'New Run';
  const OPEN = 'Open Previous';
  const picked = await vscode.window.showWarningMessage(
    `Job ${earlier.job.jobId} has results already (${earlier.status}, ${done}).`,
    {
      modal: true,
      detail: `${earlier.dir}\n\nResume runs what has no result yet. New Run starts ${fresh} and keeps this run in the Jobs tree. Open Previous shows this run.`,
    },
    RESUME,
    NEW_RUN,
    OPEN,
  );
  return picked === RESUME ? 'resume' : picked === NEW_RUN ? 'new-run' : picked === OPEN ? 'open-previous' : undefined;
}

/** The replicate a failed task is, for "Debug this replicate"; undefined for an aggregation. */
function failedReplicate(job: JobSpec, dir: string, key: string): FailedReplicate | undefined {
  const sim = parseSimKey(key);
  if (!sim) return undefined;
  const seed = job.parameterSets.find((set) => set.paramId === sim.paramId)?.seeds[sim.replicate];
  return {
    job: dir,
    param: sim.paramId,
    replicate: sim.replicate,
    seed: seed === undefined ? undefined : String(seed),
  };
}
