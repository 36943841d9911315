/**
 * Runs jobs on the embedded engine inside the extension host, feeding the model, the tree,
 * the diagnostics and the status bar from the engine's events.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { bundleDigest, checkBundleDir } from '../../engine/bundle/bundleDir';
import { readBundleDeps } from '../../engine/bundle/deps';
import { describeClusterEvent } from '../../engine/backends/dask/describe';
import type { JobEvent } from '../../engine/job/events';
import { ResultsStore } from '../../engine/job/results';
import { openEarlierRun, type BundleChange } from '../../engine/job/resume';
import { runJob, type JobOutcome } from '../../engine/job/run';
import { jobFromParamsFile, loadJobFile, type JobSpec, type ShortcutInput } from '../../engine/job/spec';
import { describeVenvEvent } from '../../engine/venv/describe';
import type { VenvEvent } from '../../engine/venv/cache';
import type { FailureDiagnostics } from '../diagnostics';
import type { JobModel } from './jobModel';
import type { JobsTreeProvider } from './jobsTree';
import type { ProcessTreeProvider } from '../processes/processTree';
import type { RunnerChannels } from '../output/runnerChannels';
import { backendSettings, runtimeSettings, seconds } from '../settings';
import { Coalesced } from '../util/coalesce';
import { resultsDir } from '../util/commands';
import type { ProtocolTrace } from '../output/protocolTrace';

export interface JobRunResult {
  jobId: string;
  dir: string;
  status: JobOutcome['status'];
  exitCode: number;
  counts: JobOutcome['counts'];
}

/** A warning's text at its line: one per line and cause, however many tasks hit it (the count says). */
function warningDiagnostic(event: Extract<JobEvent, { type: 'warning' }>): string {
  if (event.kind === 'stdout-pollution') return `${event.message}; this runner absorbed it, production's would break`;
  if (event.kind === 'lingering-descendants') {
    const started = event.descendants?.find((d) => d.location) ?? event.descendants?.[0];
    const fate = started?.escaped ? 'it escaped its process group (setsid) and was left running' : "it was ended with its runner's process group";
    const command = started?.command ?? '?';
    return `lingering-descendants: a process started here (\`${command.length > 80 ? `${command.slice(0, 79)}…` : command}\`) was still running after its task; ${fate}`;
  }
  return event.message;
}

export class JobRunner implements vscode.Disposable {
  private readonly running = new Map<string, AbortController>();
  private readonly statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  /** The job the status bar follows: the latest one started. */
  private statusJob: string | undefined;
  private readonly status = new Coalesced(() => this.updateStatus());
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
  ) {
    this.statusBar.command = 'workbench.view.extension.modelops';
  }

  async runJobFile(file: string): Promise<JobRunResult> {
    const job = await loadJobFile(file);
    return this.runNew(job, path.dirname(file));
  }

  /** A bundle with a parameters file (a JSON list of parameter sets) and a replicate count. */
  async runBundle(input: ShortcutInput): Promise<JobRunResult> {
    await checkBundleDir(input.bundleDir);
    const job = await jobFromParamsFile(input);
    return this.runNew(job, input.bundleDir);
  }

  private async runNew(job: JobSpec, near: string): Promise<JobRunResult> {
    await checkBundleDir(job.bundleDir);
    await readBundleDeps(job.bundleDir);
    const backend = backendSettings(); // a dask backend without a scheduler is refused before a results directory is made
    return this.run(job, await ResultsStore.create(resultsDir(near), job, await bundleDigest(job.bundleDir)), false, backend);
  }

  /** The failed tasks of a finished job again (and the aggregations they feed), in place. */
  rerunFailed(dir: string): Promise<JobRunResult> {
    return this.continueJob(dir, true);
  }

  /** An interrupted or killed job: run what has no result yet. */
  resume(dir: string): Promise<JobRunResult> {
    return this.continueJob(dir, false);
  }

  private async continueJob(dir: string, forgetFailures: boolean): Promise<JobRunResult> {
    const backend = backendSettings();
    // the same checks as the CLI's --resume and --rerun-failed. Rerunning failed tasks is what one
    // does after fixing the bundle in the editor: a changed bundle is allowed there (the manifest
    // records it), as --allow-bundle-change does; a plain resume refuses one
    const { store, job, bundleChange } = await openEarlierRun(dir, { rerunFailed: forgetFailures, allowBundleChange: forgetFailures });
    return this.run(job, store, true, backend, bundleChange);
  }

  private async run(job: JobSpec, store: ResultsStore, resumed: boolean, backend: ReturnType<typeof backendSettings>, bundleChange?: BundleChange): Promise<JobRunResult> {
    const config = vscode.workspace.getConfiguration('modelopsDebugger');
    const info = this.model.addJob(job, store.dir);
    const sets = new Map(job.parameterSets.map((set) => [set.paramId, set]));
    if (resumed) this.model.seedFromDisk(info, (paramId) => store.existingSims(sets.get(paramId)!));
    this.diagnostics.clearBundle(job.bundleDir);
    const controller = new AbortController();
    this.running.set(job.jobId, controller);
    this.tree.scheduleRefresh();
    const onEvent = (event: JobEvent) => {
      this.model.apply(info, event);
      const news = describeClusterEvent(event);
      if (news) this.log[news.level === 'warning' ? 'warn' : news.level](`job ${job.jobId}: ${news.text}`);
      this.processes.onJobEvent(job.jobId, store.dir, event);
      this.tree.scheduleRefresh();
      if (event.type === 'warning' && event.kind === 'stdout-pollution' && event.key) this.stderr.warn(job.bundleDir, event.pid, event.key, warningDiagnostic(event));
      if (event.type === 'task-done' && event.status === 'failed' && event.location && event.kind) this.diagnostics.add(event.location, event.kind, `${event.kind}: ${event.message}`, vscode.DiagnosticSeverity.Error, event.callers);
      else if (event.type === 'agg-done' && event.status === 'failed' && event.location && event.kind) this.diagnostics.add(event.location, event.kind, `${event.kind}: ${event.message}`);
      else if (event.type === 'warning' && event.location) this.diagnostics.add(event.location, event.kind, warningDiagnostic(event), vscode.DiagnosticSeverity.Warning);
      else if (event.type === 'results-folder') this.log.warn(`job ${job.jobId}: ${event.message}`);
      else if (event.type === 'job-done' && event.failure) {
        // a job that could not go on (python-mismatch, deps-install-failed, no wire function…): at its line
        this.log.error(`job ${job.jobId}: ${event.failure.kind}: ${event.failure.message}`);
        if (event.failure.location) this.diagnostics.add(event.failure.location, event.failure.kind, `${event.failure.kind}: ${event.failure.message}`);
      }
      else if (event.type === 'venv') {
        this.log.info(describeVenvEvent(event.event));
        this.venvProgress(event.event);
      }
      else if (event.type === 'job-start') {
        this.statusJob = info.jobId;
        this.status.schedule();
      } else if (event.type === 'task-done') this.status.schedule();
    };
    try {
      const outcome = await runJob(job, store, {
        ...runtimeSettings(),
        workers: config.get<number>('workers') || os.availableParallelism(),
        depth: 2,
        executor: config.get<'warm' | 'cold'>('executor') ?? 'warm',
        maxReuse: 0,
        retries: config.get<number>('retries') ?? 1,
        taskTimeoutMs: seconds('taskTimeoutSeconds', 1800),
        readyTimeoutMs: seconds('handshakeTimeoutSeconds', 30),
        allowPartial: false,
        runnerNice: config.get<number>('runnerNiceness') ?? 10,
        ...backend,
        resumed,
        bundleChange,
        onEvent,
        onRunnerStderr: (pid, chunk, task) => this.stderr.append(job.bundleDir, pid, chunk, task),
        onRunnerTrace: this.trace.listener(),
        signal: controller.signal,
      });
      this.log.info(`job ${job.jobId} ${outcome.status} in ${(outcome.ms / 1000).toFixed(1)} s → ${outcome.dir}`);
      return { jobId: job.jobId, dir: outcome.dir, status: outcome.status, exitCode: outcome.exitCode, counts: outcome.counts };
    } finally {
      this.running.delete(job.jobId);
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

  /** A venv build (minutes, with dependencies) shown as a notification until it is done. */
  private venvProgress(event: VenvEvent): void {
    if (event.type === 'venv-build') {
      this.building?.();
      void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `ModelOps: building venv ${event.key} (${event.reason})` }, () => new Promise<void>((resolve) => (this.building = resolve)));
    } else if (event.type === 'venv-built') {
      this.building?.();
      this.building = undefined;
    }
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
