/** Commands on runners: their stderr (of a process, or of the runner that ran a task), stacks, kill. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { runnerStderrLog } from '../../engine/job/results';
import type { TaskItem } from '../jobs/jobsTree';
import { ProcessItem } from './processTree';

/** How long a runner's faulthandler takes to write every thread's stack, at most. */
const STACK_DUMP_WAIT_MS = 300;

/** `jobStderr`: "Show Stderr" on a job, or from the palette (jobs/jobCommands.ts). */
export function registerProcessCommands(jobStderr: (given: unknown) => Promise<unknown>): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('modelopsDebugger.showStderr', async (given?: unknown): Promise<unknown> => {
      if (!(given instanceof ProcessItem) && (given as TaskItem | undefined)?.kind !== 'task') return jobStderr(given);
      const item = given as ProcessItem | TaskItem;
      const log = item instanceof ProcessItem ? item.info.stderrLog : item?.task.pid !== undefined ? path.join(item.job.dir, 'logs', runnerStderrLog(item.task.pid, item.task.worker)) : undefined;
      if (!log) return;
      // a runner on a Dask worker that wrote nothing to stderr has no log here
      if (!existsSync(log)) void vscode.window.showInformationMessage(`ModelOps: no stderr from that runner (${path.basename(log)}).`);
      else await vscode.window.showTextDocument(vscode.Uri.file(log));
      return undefined;
    }),
    vscode.commands.registerCommand('modelopsDebugger.killProcess', (item?: ProcessItem) => {
      if (item && item.info.endedAt === undefined) process.kill(item.info.pid, 'SIGKILL');
    }),
    vscode.commands.registerCommand('modelopsDebugger.dumpStacks', async (item?: ProcessItem) => {
      if (!item || item.info.endedAt !== undefined) return;
      process.kill(item.info.pid, 'SIGUSR1'); // our runner's faulthandler writes every thread's stack to its stderr
      await new Promise((resolve) => setTimeout(resolve, STACK_DUMP_WAIT_MS));
      await vscode.window.showTextDocument(vscode.Uri.file(item.info.stderrLog));
    }),
  ];
}
