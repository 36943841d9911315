/**
 * The Warm Processes view: every runner the jobs started, live or ended, from the engine's
 * process events: pid, venv, uses, state, uptime; its stderr log one click away.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { JobEvent } from '../../engine/job/events';
import { runnerStderrLog } from '../../engine/job/results';
import { Coalesced } from '../util/coalesce';

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
}

export class ProcessItem extends vscode.TreeItem {
  readonly kind = 'process';
  constructor(readonly info: ProcessInfo) {
    super(`pid ${info.pid}`, vscode.TreeItemCollapsibleState.None);
    this.id = `process:${info.worker ?? 'local'}:${info.pid}:${info.startedAt}`;
    const alive = info.endedAt === undefined;
    const seconds = ((info.endedAt ?? Date.now()) - info.startedAt) / 1000;
    this.description = `${alive ? 'running' : `ended (${info.why})`} · ${info.uses} ${info.uses === 1 ? 'task' : 'tasks'} · ${seconds.toFixed(1)} s · ${info.venv}${info.worker ? ` · on ${info.worker}` : ''}`;
    this.iconPath = new vscode.ThemeIcon(alive ? 'vm-running' : 'vm-outline');
    this.tooltip = `job ${info.jobId}\nvenv ${info.venv}\nstderr ${info.stderrLog}`;
    // stacks and kill are signals: only for runners on this machine
    this.contextValue = `process;stderr;${alive && !info.worker ? 'alive;' : ''}`;
  }
}

export class ProcessTreeProvider implements vscode.TreeDataProvider<ProcessItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ProcessItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /** By `<worker or "local">:<pid>`: pids repeat across machines. */
  readonly processes = new Map<string, ProcessInfo>();
  private readonly refresh = new Coalesced(() => this.changed.fire(undefined));

  /** Feeds the view from a job's events (`dir`: the job's results directory). */
  onJobEvent(jobId: string, dir: string, event: JobEvent): void {
    if (event.type === 'process-start' && event.pid !== undefined) {
      const stderrLog = path.join(dir, 'logs', runnerStderrLog(event.pid, event.worker));
      this.processes.set(processKey(event.pid, event.worker), { pid: event.pid, worker: event.worker, venv: event.venv, jobId, stderrLog, startedAt: Date.now(), uses: 0 });
    } else if (event.type === 'process-end' && event.pid !== undefined) {
      const info = this.processes.get(processKey(event.pid, event.worker));
      if (info) Object.assign(info, { endedAt: Date.now(), why: event.why, uses: event.uses });
    } else if (event.type === 'task-done' && event.pid !== undefined) {
      const info = this.processes.get(processKey(event.pid, event.worker));
      if (info && info.endedAt === undefined) info.uses++;
    } else {
      return;
    }
    this.refresh.schedule();
  }

  getTreeItem(element: ProcessItem): vscode.TreeItem {
    return element;
  }

  getChildren(element?: ProcessItem): ProcessItem[] {
    if (element) return [];
    return [...this.processes.values()].sort((a, b) => Number(a.endedAt !== undefined) - Number(b.endedAt !== undefined) || b.startedAt - a.startedAt).map((info) => new ProcessItem(info));
  }

  dispose(): void {
    this.refresh.dispose();
    this.changed.dispose();
  }
}

function processKey(pid: number, worker: string | undefined): string {
  return `${worker ?? 'local'}:${pid}`;
}
