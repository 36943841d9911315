/** Commands on runners: their stderr (of a process, or the part a task wrote), stacks, kill. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isFailure } from '../../engine/failure';
import { runnerStderrLog } from '../../engine/job/results';
import { dumpStacksViaLog } from '../../engine/process/stackDump';
import { killRunner } from '../../engine/process/warmProcess';
import type { TaskItem } from '../jobs/jobsTree';
import { shortKey } from '../../engine/job/taskKeys';
import { taskStderrText } from '../output/taskStderr';
import { showText } from '../util/commands';
import { ProcessItem } from './processTree';

/**
 * How long a runner's stacks may take to reach its log. faulthandler writes them at once, but in
 * the editor a runner's stderr reaches the log through the extension host, which a busy job can
 * keep from reading the pipe for over a second (1.5 s was too short under load); the wait ends as
 * soon as the dump is whole.
 */
const STACK_DUMP_WAIT_MS = 5000;

/** `jobStderr`: "Show Stderr" on a job, or from the palette (jobs/jobCommands.ts). */
export function registerProcessCommands(jobStderr: (given: unknown) => Promise<unknown>): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('modelopsDebugger.showStderr', async (given?: unknown): Promise<unknown> => {
      if (!(given instanceof ProcessItem) && (given as TaskItem | undefined)?.kind !== 'task') return jobStderr(given);
      const item = given as ProcessItem | TaskItem;
      if (!(item instanceof ProcessItem) && item.task.stderr) {
        // the task's own bytes of the log, as the engine recorded them
        return showText(
          taskStderrText(item.job.dir, item.task.key, item.task.stderr),
          `stderr ${shortKey(item.task.key)}`,
        );
      }
      const log =
        item instanceof ProcessItem
          ? item.info.stderrLog
          : item?.task.pid !== undefined
            ? path.join(item.job.dir, 'logs', runnerStderrLog(item.task.pid, item.task.worker))
            : undefined;
      if (!log) return;
      // a runner on a Dask worker that wrote nothing to stderr has no log here
      if (!existsSync(log))
        void vscode.window.showInformationMessage(`ModelOps: no stderr from that runner (${path.basename(log)}).`);
      else await vscode.window.showTextDocument(vscode.Uri.file(log));
      return undefined;
    }),
    vscode.commands.registerCommand('modelopsDebugger.killProcess', (item?: ProcessItem) => {
      // said to the engine as done on purpose: the task in flight is not blamed on memory
      if (item && item.info.endedAt === undefined) killRunner(item.info.pid);
    }),
    vscode.commands.registerCommand('modelopsDebugger.dumpStacks', async (item?: ProcessItem) => {
      if (!item || item.info.endedAt !== undefined) return undefined;
      try {
        const { dump, start, end } = await dumpStacksViaLog(item.info.pid, item.info.stderrLog, STACK_DUMP_WAIT_MS);
        const header = [
          `Stacks of runner pid ${item.info.pid} (job ${item.info.jobId}), written by faulthandler on SIGUSR1 at ${new Date().toLocaleTimeString()}`,
          `from ${item.info.stderrLog}, bytes ${start}–${end}`,
          'Each File "…", line N is a link to that line.',
        ];
        return await showText(`${header.join('\n')}\n\n${dump.text}\n`, `stacks pid ${item.info.pid}`);
      } catch (error) {
        void vscode.window.showErrorMessage(`ModelOps: ${isFailure(error) ? error.message : String(error)}`);
        return undefined;
      }
    }),
  ];
}
