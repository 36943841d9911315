/**
 * The Jobs view: job → parameter set → its aggregation and its replicates. Items are small
 * model classes with stable ids and capability tokens in `contextValue`; children are made
 * only when a node is expanded, and refreshes are throttled (under five a second, each shown
 * at once, none piling up: see TreeRefresh), so a 100 000-task job neither floods nor freezes
 * the tree.
 */
import * as vscode from 'vscode';
import { setIsActive, setLabel, type JobInfo, type JobModel, type ParamSetInfo, type TaskInfo } from './jobModel';
import { jobLabel } from '../../engine/job/spec';
import { parseAggKey, parseSimKey } from '../../engine/job/taskKeys';
import { TreeRefresh } from '../util/coalesce';
import { taskTooltip } from './taskTooltip';

export class JobItem extends vscode.TreeItem {
  readonly kind = 'job';
  /** `earlier`: shown under the newest run of its job file, folded. */
  constructor(
    readonly job: JobInfo,
    hasEarlier = false,
    earlier = false,
  ) {
    // a generated id reads as its bundle and start time (`sir · 21:06`); the id is in the tooltip
    super(
      jobLabel(job.jobId),
      job.notStarted
        ? vscode.TreeItemCollapsibleState.None
        : earlier
          ? vscode.TreeItemCollapsibleState.Collapsed
          : vscode.TreeItemCollapsibleState.Expanded,
    );
    const sets = [...job.sets.values()];
    const total = sets.reduce((sum, s) => sum + s.tasks.length, 0);
    const ok = sets.reduce((sum, s) => sum + s.ok, 0);
    const failed = sets.reduce((sum, s) => sum + s.failed, 0);
    const running = sets.reduce((sum, s) => sum + s.running, 0);
    const active = sets.some((s) => setIsActive(job, s));
    const notRun = job.status === 'running' ? 0 : total - ok - failed;
    // a job that never started is named by its source: the same id may be a job that did run
    this.id = job.notStarted ? `job:not-started:${job.notStarted}` : `job:${job.jobId}`;
    const status = job.failure ? `${job.status}: ${job.failure.kind}` : job.status;
    this.description = job.notStarted
      ? `${status} · not started`
      : `${status} · ${ok}/${total} ✓${failed ? ` ${failed} ✗` : ''}${running ? ` · ▶ ${running}` : ''}${notRun ? ` · ${notRun} not run` : ''}${job.ms !== undefined ? ` · ${(job.ms / 1000).toFixed(1)} s` : ''}`;
    // a spinner only while something runs: a job preparing its venv, or between tasks, is queued
    this.iconPath = statusIcon(
      job.status === 'running'
        ? active
          ? 'running'
          : 'queued'
        : job.status === 'succeeded'
          ? 'ok'
          : job.status === 'interrupted'
            ? 'skipped'
            : 'failed',
    );
    const cause =
      job.failure &&
      `\n${job.failure.kind}: ${job.failure.message}${job.failure.location ? `\nat ${job.failure.location.file}:${job.failure.location.line}` : ''}`;
    this.tooltip = `${job.jobId}\n${job.notStarted ? `not started: ${job.notStarted}` : job.dir}${cause ?? ''}`;
    if (job.failure?.location) {
      const { file, line } = job.failure.location;
      this.command = {
        title: 'Go to the cause',
        command: 'vscode.open',
        arguments: [vscode.Uri.file(file), { selection: new vscode.Range(line - 1, 0, line - 1, 0) }],
      };
    }
    const resumable = job.status === 'interrupted' || job.status === 'aborted';
    const runnersStarted = job.status !== 'running' || ok + failed > 0;
    this.contextValue = job.notStarted
      ? 'job;'
      : `job;open;reproducible;${runnersStarted ? 'stderr;' : ''}${job.status === 'running' ? 'cancellable;' : ''}${failed ? 'rerunnable;' : ''}${resumable ? 'resumable;' : ''}${hasEarlier ? 'earlierRuns;' : ''}`;
  }
}

export class ParamSetItem extends vscode.TreeItem {
  readonly kind = 'set';
  constructor(
    readonly job: JobInfo,
    readonly set: ParamSetInfo,
  ) {
    super(setLabel(set), vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `set:${job.jobId}:${set.paramId}`;
    const notRun =
      set.tasks.length -
      set.ok -
      set.failed -
      set.running -
      set.finished -
      set.tasks.filter((t) => t.state === 'queued').length;
    // done (✓ ✗), running (▶) and the rest, queued, apart: `183/200 ✓ 2 ✗ · ▶ 2 · agg queued`
    this.description = `${set.ok}/${set.tasks.length} ✓${set.failed ? ` ${set.failed} ✗` : ''}${set.running ? ` · ▶ ${set.running}` : ''}${set.finished ? ` · ${set.finished} finished on Dask` : ''}${notRun ? ` · ${notRun} not run` : ''} · agg ${stateText(set.aggregation.state)}`;
    const agg = set.aggregation.state;
    this.iconPath = statusIcon(
      setIsActive(job, set)
        ? 'running'
        : set.failed || agg === 'failed' || agg === 'skipped'
          ? 'failed'
          : agg === 'ok'
            ? 'ok'
            : agg === 'not-run'
              ? 'not-run'
              : set.finished
                ? 'finished'
                : 'queued',
    );
    // what "Run Twice and Compare" found, until the job runs again
    const determinism = set.determinism;
    if (determinism)
      this.description += ` · ${determinism.verdict === 'deterministic' ? '≡' : '⚠'} ${determinism.verdict}`;
    this.tooltip = `param_id ${set.paramId}${determinism ? `\n${determinism.verdict}: ${determinism.message}` : ''}`;
    this.contextValue = 'paramSet;';
  }
}

export class TaskItem extends vscode.TreeItem {
  readonly kind = 'task';
  constructor(
    readonly job: JobInfo,
    readonly task: TaskInfo,
    aggregation: boolean,
  ) {
    super(aggregation ? 'aggregation' : `replicate ${task.replicate}`, vscode.TreeItemCollapsibleState.None);
    this.id = `task:${job.jobId}:${task.key}`;
    const parts: string[] = [stateText(task.state)];
    if (task.kind) parts.push(task.kind);
    if (task.crash)
      parts.push(`${task.crash.signal ?? `exit ${task.crash.exit_code}`}${task.crash.oom ? ' (OOM)' : ''}`);
    if (task.warnings?.some((w) => w.kind === 'stdout-pollution')) parts.push('⚠ stdout');
    // right after the state: a narrow view cuts the end of the description off
    const lingering = (task.warnings ?? [])
      .filter((w) => w.kind === 'lingering-descendants')
      .reduce((sum, w) => sum + (w.processes ?? 0), 0);
    if (lingering) parts.push(`⚠ left ${lingering === 1 ? '1 process' : `${lingering} processes`} running`);
    if (task.seed !== undefined) parts.push(`seed ${task.seed}`);
    if (task.ms !== undefined) parts.push(`${task.ms} ms`);
    if (task.attempts > 1) parts.push(`${task.attempts} attempts`);
    if (task.pid !== undefined) parts.push(`pid ${task.pid}${task.worker ? ` on ${task.worker}` : ''}`);
    this.description = parts.join(' · ');
    this.iconPath = statusIcon(task.state);
    this.tooltip = taskTooltip(task);
    this.contextValue = `task;${aggregation ? '' : 'reproducible;'}${task.state === 'failed' || task.state === 'skipped' ? 'failed;' : ''}${task.location ? 'located;' : ''}${task.pid !== undefined ? 'stderr;' : ''}result;`;
    // a click on a replicate opens the failing line, or else the line a warning is about (what
    // started a lingering process), or else its result; a click on an aggregation, its result
    const line = aggregation ? undefined : (task.location ?? (task.warnings ?? []).find((w) => w.location)?.location);
    if (!line) this.command = { title: 'Show Result', command: 'modelopsDebugger.showResult', arguments: [this] };
    else {
      this.command = {
        title: task.location ? 'Go to failure' : 'Go to warning',
        command: 'vscode.open',
        arguments: [vscode.Uri.file(line.file), { selection: new vscode.Range(line.line - 1, 0, line.line - 1, 0) }],
      };
    }
  }
}

/** The earlier runs of a job file, under its newest run, newest first, until cleared. */
export class EarlierRunsItem extends vscode.TreeItem {
  readonly kind = 'earlier';
  constructor(
    readonly job: JobInfo,
    readonly runs: JobInfo[],
  ) {
    super('earlier runs', vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `earlier:${job.jobId}`;
    this.description = `${runs.length}`;
    this.iconPath = new vscode.ThemeIcon('history');
    this.tooltip = `Earlier runs of ${job.source ?? job.jobId}, newest first; their results stay on disk when cleared`;
    this.contextValue = 'earlierRuns;';
  }
}

export type JobsNode = JobItem | ParamSetItem | TaskItem | EarlierRunsItem;

/** A row of this tree (what a command run from its context menu is given). */
export function isNode(value: unknown): value is JobsNode {
  return value instanceof vscode.TreeItem && typeof (value as { kind?: unknown }).kind === 'string';
}

export class JobsTreeProvider implements vscode.TreeDataProvider<JobsNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<JobsNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /**
   * The only place this tree fires: any other fire within VS Code's 200 ms debounce would
   * push the view's refresh back (see TREE_REFRESH_MS).
   */
  private readonly refresh = new TreeRefresh(() => this.changed.fire(undefined));

  constructor(private readonly model: JobModel) {}

  /**
   * The view shows the model as it is at its next refresh: at once when it is idle, else after
   * the refresh under way (TreeRefresh), however many events arrive.
   */
  scheduleRefresh(): void {
    this.refresh.schedule();
  }

  getTreeItem(element: JobsNode): vscode.TreeItem {
    return element;
  }

  getChildren(element?: JobsNode): JobsNode[] {
    if (!element) {
      this.refresh.fetched();
      return this.model.latestRuns().map((job) => new JobItem(job, this.model.earlierRuns(job).length > 0));
    }
    if (element instanceof EarlierRunsItem) return element.runs.map((job) => new JobItem(job, false, true));
    if (element instanceof JobItem) {
      const sets: JobsNode[] = [...element.job.sets.values()].map((set) => new ParamSetItem(element.job, set));
      const earlier = this.model.earlierRuns(element.job);
      return earlier.length ? [...sets, new EarlierRunsItem(element.job, earlier)] : sets;
    }
    if (element instanceof ParamSetItem) {
      return [
        new TaskItem(element.job, element.set.aggregation, true),
        ...element.set.tasks.map((task) => new TaskItem(element.job, task, false)),
      ];
    }
    return [];
  }

  /** What `reveal` climbs: the rows are made anew each time, and found again by their ids. */
  getParent(element: JobsNode): JobsNode | undefined {
    if (element instanceof TaskItem) {
      const paramId = parseSimKey(element.task.key)?.paramId ?? parseAggKey(element.task.key);
      const set = paramId === undefined ? undefined : element.job.sets.get(paramId);
      return set && new ParamSetItem(element.job, set);
    }
    if (element instanceof ParamSetItem) return this.jobItem(element.job);
    if (element instanceof JobItem) {
      const latest = this.model.latestRuns().find((job) => this.model.earlierRuns(job).includes(element.job));
      return latest ? new EarlierRunsItem(latest, this.model.earlierRuns(latest)) : undefined;
    }
    return undefined;
  }

  /** The row of a job's task (a replicate or an aggregation), to reveal; undefined when the view has no such task. */
  taskItem(jobId: string, key: string): TaskItem | undefined {
    const job = this.model.jobs.get(jobId);
    const sim = parseSimKey(key);
    const set = job?.sets.get(sim?.paramId ?? parseAggKey(key) ?? '');
    if (!job || !set) return undefined;
    if (!sim) return new TaskItem(job, set.aggregation, true);
    const task = set.tasks[sim.replicate];
    return task && new TaskItem(job, task, false);
  }

  private jobItem(job: JobInfo): JobItem {
    const latest = this.model.latestRuns().some((run) => run.jobId === job.jobId);
    return new JobItem(job, latest && this.model.earlierRuns(job).length > 0, !latest);
  }

  dispose(): void {
    this.refresh.dispose();
    this.changed.dispose();
  }
}

/** A state as the tree says it. */
function stateText(state: string): string {
  return state === 'not-run' ? 'not run' : state;
}

function statusIcon(state: string): vscode.ThemeIcon {
  switch (state) {
    case 'ok':
      return new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'));
    case 'failed':
      return new vscode.ThemeIcon('error', new vscode.ThemeColor('testing.iconFailed'));
    case 'skipped':
      return new vscode.ThemeIcon('debug-step-over', new vscode.ThemeColor('testing.iconSkipped'));
    case 'running':
      return new vscode.ThemeIcon('sync~spin');
    case 'finished':
      return new vscode.ThemeIcon('check');
    case 'not-run':
      return new vscode.ThemeIcon('circle-slash', new vscode.ThemeColor('disabledForeground'));
    default:
      return new vscode.ThemeIcon('circle-outline');
  }
}
