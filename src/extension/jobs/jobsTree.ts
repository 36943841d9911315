/**
 * The Jobs view: job → parameter set → its aggregation and its replicates. Items are small
 * model classes with stable ids and capability tokens in `contextValue`; children are made
 * only when a node is expanded, and refreshes are batched (at most ten a second), so a
 * 100 000-task job does not flood the tree.
 */
import * as vscode from 'vscode';
import type { JobInfo, JobModel, ParamSetInfo, TaskInfo } from './jobModel';
import { Coalesced } from '../util/coalesce';
import { taskTooltip } from './taskTooltip';

export class JobItem extends vscode.TreeItem {
  readonly kind = 'job';
  constructor(readonly job: JobInfo) {
    super(job.jobId, vscode.TreeItemCollapsibleState.Expanded);
    const total = [...job.sets.values()].reduce((sum, s) => sum + s.tasks.length, 0);
    const ok = [...job.sets.values()].reduce((sum, s) => sum + s.ok, 0);
    const failed = [...job.sets.values()].reduce((sum, s) => sum + s.failed, 0);
    this.id = `job:${job.jobId}`;
    const status = job.failure ? `${job.status}: ${job.failure.kind}` : job.status;
    this.description = `${status} · ${ok}/${total} ✓${failed ? ` ${failed} ✗` : ''}${job.ms !== undefined ? ` · ${(job.ms / 1000).toFixed(1)} s` : ''}`;
    this.iconPath = statusIcon(job.status === 'running' ? 'running' : job.status === 'succeeded' ? 'ok' : job.status === 'interrupted' ? 'skipped' : 'failed');
    const cause = job.failure && `\n${job.failure.kind}: ${job.failure.message}${job.failure.location ? `\nat ${job.failure.location.file}:${job.failure.location.line}` : ''}`;
    this.tooltip = `${job.jobId}\n${job.dir}${cause ?? ''}`;
    if (job.failure?.location) {
      const { file, line } = job.failure.location;
      this.command = { title: 'Go to the cause', command: 'vscode.open', arguments: [vscode.Uri.file(file), { selection: new vscode.Range(line - 1, 0, line - 1, 0) }] };
    }
    const resumable = job.status === 'interrupted' || job.status === 'aborted';
    this.contextValue = `job;open;${job.status === 'running' ? 'cancellable;' : ''}${failed ? 'rerunnable;' : ''}${resumable ? 'resumable;' : ''}`;
  }
}

export class ParamSetItem extends vscode.TreeItem {
  readonly kind = 'set';
  constructor(
    readonly job: JobInfo,
    readonly set: ParamSetInfo,
  ) {
    super(Object.entries(set.params).map(([k, v]) => `${k}=${v}`).join(', ') || set.paramId.slice(0, 12), vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `set:${job.jobId}:${set.paramId}`;
    this.description = `${set.ok}/${set.tasks.length} ✓${set.failed ? ` ${set.failed} ✗` : ''}${set.finished ? ` · ${set.finished} finished on Dask` : ''} · agg ${set.aggregation.state}`;
    this.iconPath = statusIcon(set.failed || set.aggregation.state === 'failed' || set.aggregation.state === 'skipped' ? 'failed' : set.aggregation.state === 'ok' ? 'ok' : 'running');
    this.tooltip = `param_id ${set.paramId}`;
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
    const parts: string[] = [task.state];
    if (task.kind) parts.push(task.kind);
    if (task.crash) parts.push(task.crash.signal ?? `exit ${task.crash.exit_code}`);
    if (task.warnings?.some((w) => w.kind === 'stdout-pollution')) parts.push('⚠ stdout');
    // right after the state: a narrow view cuts the end of the description off
    const lingering = (task.warnings ?? []).filter((w) => w.kind === 'lingering-descendants').reduce((sum, w) => sum + (w.processes ?? 0), 0);
    if (lingering) parts.push(`⚠ left ${lingering === 1 ? '1 process' : `${lingering} processes`} running`);
    if (task.ms !== undefined) parts.push(`${task.ms} ms`);
    if (task.attempts > 1) parts.push(`${task.attempts} attempts`);
    if (task.pid !== undefined) parts.push(`pid ${task.pid}${task.worker ? ` on ${task.worker}` : ''}`);
    this.description = parts.join(' · ');
    this.iconPath = statusIcon(task.state);
    this.tooltip = taskTooltip(task);
    this.contextValue = `task;${task.state === 'failed' || task.state === 'skipped' ? 'failed;' : ''}${task.location ? 'located;' : ''}${task.pid !== undefined ? 'stderr;' : ''}`;
    // a click opens the failing line, or else the line a warning is about (what started a lingering process)
    const line = task.location ?? (task.warnings ?? []).find((w) => w.location)?.location;
    if (line) {
      this.command = { title: task.location ? 'Go to failure' : 'Go to warning', command: 'vscode.open', arguments: [vscode.Uri.file(line.file), { selection: new vscode.Range(line.line - 1, 0, line.line - 1, 0) }] };
    }
  }
}

export type JobsNode = JobItem | ParamSetItem | TaskItem;

export class JobsTreeProvider implements vscode.TreeDataProvider<JobsNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<JobsNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly refresh = new Coalesced(() => this.changed.fire(undefined));

  constructor(private readonly model: JobModel) {}

  /** At most one refresh per interval, however many events arrive. */
  scheduleRefresh(): void {
    this.refresh.schedule();
  }

  getTreeItem(element: JobsNode): vscode.TreeItem {
    return element;
  }

  getChildren(element?: JobsNode): JobsNode[] {
    if (!element) return [...this.model.jobs.values()].reverse().map((job) => new JobItem(job));
    if (element instanceof JobItem) return [...element.job.sets.values()].map((set) => new ParamSetItem(element.job, set));
    if (element instanceof ParamSetItem) {
      return [new TaskItem(element.job, element.set.aggregation, true), ...element.set.tasks.map((task) => new TaskItem(element.job, task, false))];
    }
    return [];
  }

  dispose(): void {
    this.refresh.dispose();
    this.changed.dispose();
  }
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
    default:
      return new vscode.ThemeIcon('circle-outline');
  }
}
