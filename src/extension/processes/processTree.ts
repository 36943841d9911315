/**
 * The Warm Processes view: every runner the jobs started, live or ended, from the engine's
 * process events: pid, venv, uses, state, uptime; its stderr log one click away.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { JobEvent } from '../../engine/job/events';
import { Coalesced } from '../util/coalesce';

export interface ProcessInfo {
  pid: number;
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
    this.id = `process:${info.pid}:${info.startedAt}`;
    const alive = info.endedAt === undefined;
    const seconds = ((info.endedAt ?? Date.now()) - info.startedAt) / 1000;
    this.description = `${alive ? 'running' : `ended (${info.why})`} · ${info.uses} ${info.uses === 1 ? 'task' : 'tasks'} · ${seconds.toFixed(1)} s · ${info.venv}`;
    this.iconPath = new vscode.ThemeIcon(alive ? 'vm-running' : 'vm-outline');
    this.tooltip = `job ${info.jobId}\nvenv ${info.venv}\nstderr ${info.stderrLog}`;
    this.contextValue = `process;stderr;${alive ? 'alive;' : ''}`;
  }
}

export class ProcessTreeProvider implements vscode.TreeDataProvider<ProcessItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ProcessItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly processes = new Map<number, ProcessInfo>();
  private readonly refresh = new Coalesced(() => this.changed.fire(undefined));

  /** Feeds the view from a job's events (`dir`: the job's results directory). */
  onJobEvent(jobId: string, dir: string, event: JobEvent): void {
    if (event.type === 'process-start' && event.pid !== undefined) {
      this.processes.set(event.pid, { pid: event.pid, venv: event.venv, jobId, stderrLog: path.join(dir, 'logs', `runner-${event.pid}.stderr`), startedAt: Date.now(), uses: 0 });
    } else if (event.type === 'process-end' && event.pid !== undefined) {
      const info = this.processes.get(event.pid);
      if (info) Object.assign(info, { endedAt: Date.now(), why: event.why, uses: event.uses });
    } else if (event.type === 'task-done' && event.pid !== undefined) {
      const info = this.processes.get(event.pid);
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
