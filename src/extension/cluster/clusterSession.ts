/**
 * The Cluster view's scheduler and what it last said: the address (the one "Inspect Cluster…"
 * was given, else `modelopsDebugger.daskScheduler`), one driver kept connected to it
 * (engine/cluster/connection.ts), and the latest inspection. An inspection runs off the UI path
 * with each worker's deadline (`modelopsDebugger.clusterTimeoutSeconds`), a progress bar in the
 * view, and can be cancelled; a worker that does not answer is a row that says so.
 */
import * as vscode from 'vscode';
import { RUN_DEFAULTS } from '../../engine/backends/contract';
import type { ActionTarget } from '../../engine/cluster/actions';
import { ClusterConnection } from '../../engine/cluster/connection';
import { clusterHealth, type WorkerReport } from '../../engine/cluster/health';
import type { ClusterReport } from '../../engine/cluster/inspect';
import type { FileRequest, ReadFileResult } from '../../engine/cluster/workerFile';
import { isFailure } from '../../engine/failure';

export const CLUSTER_VIEW = 'modelopsDebugger.cluster';
/** Context keys: a scheduler is known (the view's content, else its welcome), an inspection is running. */
const SCHEDULER_KEY = 'modelopsDebugger.clusterScheduler';
const INSPECTING_KEY = 'modelopsDebugger.clusterInspecting';
const DEFAULT_TIMEOUT_S = 10;
/** The least a worker has to carry an action out (the CLI's default). */
const ACTION_TIMEOUT_S = 30;

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('modelopsDebugger');
}

/** A report as the view shows it: `soFar` while an inspection runs and only some workers have answered. */
export type ShownReport = ClusterReport & { soFar?: true };

export class ClusterSession implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  /** The address "Inspect Cluster…" was given (this window only); else the setting's. */
  private chosen: string | undefined;
  private connection: ClusterConnection | undefined;
  /** The last inspection's report; while one runs with nothing shown yet, the workers answered so far (`soFar`). */
  report: ShownReport | undefined;
  /** Why the last inspection gave nothing (shown as the view's message). */
  failure: string | undefined;
  private running: Promise<ClusterReport | undefined> | undefined;
  /** Set once the view is created: its message says what is going on. */
  view: vscode.TreeView<unknown> | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((change) => {
        if (change.affectsConfiguration('modelopsDebugger.daskScheduler') && !this.chosen) this.schedulerChanged();
      }),
    );
    void this.publish();
  }

  get scheduler(): string | undefined {
    return this.chosen ?? (config().get<string>('daskScheduler') || undefined);
  }

  get inspecting(): boolean {
    return this.running !== undefined;
  }

  /** Each worker's deadline, in seconds. */
  get timeoutS(): number {
    return config().get<number>('clusterTimeoutSeconds') ?? DEFAULT_TIMEOUT_S;
  }

  /** From now on the view shows `address`. */
  choose(address: string): void {
    if (address === this.scheduler && this.chosen !== undefined) return;
    this.chosen = address;
    this.schedulerChanged();
  }

  /** The view looked at a scheduler it has never inspected (nor failed to). */
  inspectOnFirstLook(): void {
    if (this.scheduler && !this.running && !this.report && this.failure === undefined) void this.inspect();
  }

  /**
   * Inspects the scheduler (the inspection already running, if one is). Resolves with the report,
   * or undefined when there is no scheduler, it failed (said in the view and the log) or was cancelled.
   */
  inspect(): Promise<ClusterReport | undefined> {
    const scheduler = this.scheduler;
    if (!scheduler) return Promise.resolve(undefined);
    this.running ??= this.run(scheduler).finally(() => {
      this.running = undefined;
      void this.publish();
    });
    return this.running;
  }

  /** Ends a running inspection now (its driver with it). */
  cancel(): void {
    if (this.running) this.connection?.cancel();
  }

  /**
   * Where an action on `worker` goes: this scheduler, with the same Python; each action starts a
   * driver of its own (engine/cluster/actions.ts), so that it never waits behind a log being read.
   */
  actionTarget(worker: string, venvsDir?: string): ActionTarget {
    const scheduler = this.scheduler;
    if (!scheduler) throw new Error('no Dask scheduler: run "ModelOps: Connect/Inspect Cluster…"');
    return {
      scheduler,
      worker,
      venvsDir,
      // removing a large venv takes longer than answering an inspection
      timeoutS: Math.max(this.timeoutS, ACTION_TIMEOUT_S),
      python: config().get<string>('daskPython') || undefined,
      connectTimeoutMs: RUN_DEFAULTS.connectTimeoutMs,
    };
  }

  /** Inspects again once the inspection running now (begun before an action changed the disk) has ended. */
  async reinspect(): Promise<ClusterReport | undefined> {
    await this.running;
    return this.inspect();
  }

  /** A file on a worker, through the same connection (one request at a time). */
  readFile(params: FileRequest): Promise<ReadFileResult> {
    return this.connect().readFile({ ...params, timeout_s: this.timeoutS });
  }

  private async run(scheduler: string): Promise<ClusterReport | undefined> {
    const timeoutS = this.timeoutS;
    await this.publish(true);
    this.setMessage(`Inspecting ${scheduler}: each worker has ${timeoutS} s to answer…`);
    try {
      // a view with nothing to show yet fills in as workers answer (64 need not wait for the slowest);
      // one showing a whole report keeps it until the next whole one
      const started = Date.now();
      const soFar: WorkerReport[] = [];
      const onWorker = (worker: WorkerReport) => {
        if (scheduler !== this.scheduler) return;
        soFar.push(worker);
        soFar.sort((x, y) => x.address.localeCompare(y.address));
        this.report = {
          scheduler,
          dask_version: '…',
          driver_python: '…',
          timeout_s: timeoutS,
          ms: Date.now() - started,
          health: clusterHealth(soFar),
          workers: [...soFar],
          soFar: true,
        };
        this.setMessage(`Inspecting ${scheduler}: ${soFar.length} worker(s) answered so far…`);
        this.changed.fire();
      };
      const stream = !this.report || this.report.soFar;
      const report = await vscode.window.withProgress({ location: { viewId: CLUSTER_VIEW } }, () =>
        this.connect().inspect({ timeoutS, onWorker: stream ? onWorker : undefined }),
      );
      if (scheduler !== this.scheduler) return undefined; // another one was chosen meanwhile
      this.report = report;
      this.failure = undefined;
      this.setMessage(undefined);
      const { health } = report;
      this.log.info(
        `Cluster ${report.scheduler}: ${health.answered} of ${health.workers} worker(s) answered in ${(report.ms / 1000).toFixed(2)} s; ${health.healthy ? 'healthy' : 'NOT healthy'}`,
      );
      return report;
    } catch (error) {
      const message = isFailure(error) ? `${error.kind}: ${error.message}` : String(error);
      this.failure = message;
      this.report = undefined;
      this.setMessage(
        isFailure(error) && error.kind === 'cancelled'
          ? 'Inspection cancelled. Refresh to inspect again.'
          : `Could not inspect ${scheduler}: ${message}`,
      );
      this.log.error(`Cluster ${scheduler}: ${message}`);
      return undefined;
    } finally {
      this.changed.fire();
    }
  }

  private connect(): ClusterConnection {
    const scheduler = this.scheduler;
    if (!scheduler) throw new Error('no Dask scheduler: run "ModelOps: Connect/Inspect Cluster…"');
    if (this.connection?.scheduler !== scheduler) {
      void this.connection?.close();
      this.connection = new ClusterConnection(scheduler, {
        python: config().get<string>('daskPython') || undefined,
        connectTimeoutMs: RUN_DEFAULTS.connectTimeoutMs,
      });
    }
    return this.connection;
  }

  private schedulerChanged(): void {
    this.connection?.cancel();
    this.connection = undefined;
    this.report = undefined;
    this.failure = undefined;
    this.setMessage(undefined);
    void this.publish();
    this.changed.fire();
  }

  private setMessage(message: string | undefined): void {
    if (this.view) this.view.message = message;
  }

  private async publish(inspecting = this.inspecting): Promise<void> {
    await vscode.commands.executeCommand('setContext', SCHEDULER_KEY, this.scheduler ?? false);
    await vscode.commands.executeCommand('setContext', INSPECTING_KEY, inspecting);
  }

  dispose(): void {
    void this.connection?.close();
    for (const d of this.disposables) d.dispose();
    this.changed.dispose();
  }
}
