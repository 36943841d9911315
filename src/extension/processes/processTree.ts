/**
 * The Warm Processes view: every runner the jobs started, live or ended, from the engine's
 * process events, grouped under the job that started them: pid, venv, uses, state, uptime, and
 * for an ended one how it ended (exit code or signal); its stderr log one click away.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { JobEvent } from '../../engine/job/events';
import { runnerStderrLog } from '../../engine/job/results';
import { TreeRefresh } from '../util/coalesce';

export interface ProcessInfo {
  pid: number;
  /** The Dask worker it runs on; undefined: this machine (the only place it can be signalled). */
  worker?: string;
  venv: string;
  jobId: string;
  stderrLog: string;
  startedAt: number;
  endedAt?: number;
  uses: number;
  why?: string;
  /** How it ended, from its process-end event. */
  exitCode?: number | null;
  signal?: string | null;
}

/** How an ended runner ended, in a few words: "exit 0", "SIGSEGV", "exit 17". */
export function endedHow(info: ProcessInfo): string | undefined {
  if (info.endedAt === undefined) return undefined;
  if (info.signal) return info.signal;
  return info.exitCode === undefined || info.exitCode === null ? undefined : `exit ${info.exitCode}`;
}

export class ProcessItem extends vscode.TreeItem {
  readonly kind = 'process';
  constructor(readonly info: ProcessInfo) {
    super(`pid ${info.pid}`, vscode.TreeItemCollapsibleState.None);
    this.id = `process:${info.worker ?? 'local'}:${info.pid}:${info.startedAt}`;
    const alive = info.endedAt === undefined;
    const seconds = ((info.endedAt ?? Date.now()) - info.startedAt) / 1000;
    const how = endedHow(info);
    this.description = `${alive ? 'running' : `ended${how ? ` · ${how}` : ''} (${info.why})`} · ${info.uses} ${info.uses === 1 ? 'task' : 'tasks'} · ${seconds.toFixed(1)} s · ${info.venv}${info.worker ? ` · on ${info.worker}` : ''}`;
    // ended on its own (not stopped by the pool) with a signal or a failing code: it crashed
    const crashed = info.why === 'exited' && (Boolean(info.signal) || (info.exitCode ?? 0) !== 0);
    this.iconPath = new vscode.ThemeIcon(
      alive ? 'vm-running' : 'vm-outline',
      crashed ? new vscode.ThemeColor('testing.iconFailed') : undefined,
    );
    this.tooltip = `job ${info.jobId}\nvenv ${info.venv}\nstderr ${info.stderrLog}${how ? `\nended: ${how} (${info.why})` : ''}`;
    // stacks and kill are signals: only for runners on this machine
    this.contextValue = `process;stderr;${alive && !info.worker ? 'alive;' : ''}`;
  }
}

/** A job's runners. */
export class ProcessJobItem extends vscode.TreeItem {
  readonly kind = 'processJob';
  constructor(
    readonly jobId: string,
    readonly processes: ProcessInfo[],
  ) {
    super(jobId, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `processJob:${jobId}`;
    const running = processes.filter((p) => p.endedAt === undefined).length;
    const ended = processes.length - running;
    this.description = [running ? `${running} running` : '', ended ? `${ended} ended` : ''].filter(Boolean).join(' · ');
    this.iconPath = new vscode.ThemeIcon(running ? 'server-process' : 'history');
    this.contextValue = 'processJob;';
  }
}

export type ProcessNode = ProcessJobItem | ProcessItem;

export class ProcessTreeProvider implements vscode.TreeDataProvider<ProcessNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ProcessNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /** By `<worker or "local">:<pid>`: pids repeat across machines. */
  readonly processes = new Map<string, ProcessInfo>();
  /** Paced to pass VS Code's tree debounce (util/coalesce.ts), as the Jobs view is. */
  private readonly refresh = new TreeRefresh(() => this.changed.fire(undefined));

  /** Feeds the view from a job's events (`dir`: the job's results directory). */
  onJobEvent(jobId: string, dir: string, event: JobEvent): void {
    if (event.type === 'process-start' && event.pid !== undefined) {
      const stderrLog = path.join(dir, 'logs', runnerStderrLog(event.pid, event.worker));
      this.processes.set(processKey(event.pid, event.worker), {
        pid: event.pid,
        worker: event.worker,
        venv: event.venv,
        jobId,
        stderrLog,
        startedAt: Date.now(),
        uses: 0,
      });
    } else if (event.type === 'process-end' && event.pid !== undefined) {
      const info = this.processes.get(processKey(event.pid, event.worker));
      if (info)
        Object.assign(info, {
          endedAt: Date.now(),
          why: event.why,
          uses: event.uses,
          exitCode: event.exit_code,
          signal: event.signal,
        });
    } else if (event.type === 'task-done' && event.pid !== undefined) {
      const info = this.processes.get(processKey(event.pid, event.worker));
      if (info && info.endedAt === undefined) info.uses++;
    } else {
      return;
    }
    this.refresh.schedule();
  }

  getTreeItem(element: ProcessNode): vscode.TreeItem {
    return element;
  }

  /** Jobs (latest first) → their runners (running first, then latest first). */
  getChildren(element?: ProcessNode): ProcessNode[] {
    if (element instanceof ProcessItem) return [];
    if (element instanceof ProcessJobItem) return sorted(element.processes).map((info) => new ProcessItem(info));
    this.refresh.fetched();
    const byJob = new Map<string, ProcessInfo[]>();
    for (const info of this.processes.values()) {
      const list = byJob.get(info.jobId) ?? [];
      list.push(info);
      byJob.set(info.jobId, list);
    }
    const latest = (list: ProcessInfo[]) => Math.max(...list.map((p) => p.startedAt));
    return [...byJob.entries()]
      .sort(([, a], [, b]) => latest(b) - latest(a))
      .map(([jobId, list]) => new ProcessJobItem(jobId, list));
  }

  /** Every runner's item, whatever job (tests, and commands given no item). */
  processItems(): ProcessItem[] {
    return sorted([...this.processes.values()]).map((info) => new ProcessItem(info));
  }

  getParent(element: ProcessNode): ProcessNode | undefined {
    if (element instanceof ProcessJobItem) return undefined;
    const list = [...this.processes.values()].filter((p) => p.jobId === element.info.jobId);
    return new ProcessJobItem(element.info.jobId, list);
  }

  dispose(): void {
    this.refresh.dispose();
    this.changed.dispose();
  }
}

function sorted(list: ProcessInfo[]): ProcessInfo[] {
  return [...list].sort(
    (a, b) => Number(a.endedAt !== undefined) - Number(b.endedAt !== undefined) || b.startedAt - a.startedAt,
  );
}

function processKey(pid: number, worker: string | undefined): string {
  return `${worker ?? 'local'}:${pid}`;
}
