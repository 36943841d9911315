/**
 * The VS Code layer. It adapts the engine (src/engine, which never imports `vscode`) to the
 * editor; everything it owns is disposed with the extension.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isFailure } from '../engine/failure';
import { FailureDiagnostics } from './diagnostics';
import { JobModel } from './jobs/jobModel';
import { JobRunner } from './jobs/jobRunner';
import { JobItem, JobsTreeProvider, TaskItem } from './jobs/jobsTree';
import { VenvItem, VenvTreeProvider } from './venvs/venvTree';
import { ProcessItem, ProcessTreeProvider } from './processes/processTree';
import { RunnerChannels } from './output/runnerChannels';
import { handshake } from '../engine/handshake/handshake';
import { renderHandshake } from '../cli/render';
import { describeVenvEvent } from '../engine/venv/describe';
import { VenvCache, venvsDir } from '../engine/venv/cache';
import { runtimeSettings, seconds } from './settings';

/** What the extension hands to its tests (and to other extensions). */
export interface ModelOpsApi {
  jobs: JobModel;
  jobsTree: JobsTreeProvider;
  venvTree: VenvTreeProvider;
  processTree: ProcessTreeProvider;
  stderr: RunnerChannels;
  diagnostics: FailureDiagnostics;
}

export function activate(context: vscode.ExtensionContext): ModelOpsApi {
  const output = vscode.window.createOutputChannel('ModelOps', { log: true });
  const jobs = new JobModel();
  const jobsTree = new JobsTreeProvider(jobs);
  const diagnostics = new FailureDiagnostics();
  const processTree = new ProcessTreeProvider();
  const stderr = new RunnerChannels();
  const runner = new JobRunner(jobs, jobsTree, diagnostics, output, processTree, stderr);
  const venvCache = () => new VenvCache({ dir: venvsDir(vscode.workspace.getConfiguration('modelopsDebugger').get<string>('venvsDir') || undefined) });
  const venvTree = new VenvTreeProvider(venvCache);
  context.subscriptions.push(
    output,
    jobsTree,
    venvTree,
    diagnostics,
    runner,
    vscode.window.registerTreeDataProvider('modelopsDebugger.jobs', jobsTree),
    vscode.window.registerTreeDataProvider('modelopsDebugger.venvs', venvTree),
    processTree,
    stderr,
    vscode.window.registerTreeDataProvider('modelopsDebugger.processes', processTree),
    vscode.commands.registerCommand('modelopsDebugger.showStderr', async (item?: ProcessItem | TaskItem) => {
      // a process's log, or the log of the runner that ran a task
      const log = item instanceof ProcessItem ? item.info.stderrLog : item?.task.pid !== undefined ? path.join(item.job.dir, 'logs', `runner-${item.task.pid}.stderr`) : undefined;
      if (log) await vscode.window.showTextDocument(vscode.Uri.file(log));
    }),
    vscode.commands.registerCommand('modelopsDebugger.killProcess', (item?: ProcessItem) => {
      if (item && item.info.endedAt === undefined) process.kill(item.info.pid, 'SIGKILL');
    }),
    vscode.commands.registerCommand('modelopsDebugger.dumpStacks', async (item?: ProcessItem) => {
      if (!item || item.info.endedAt !== undefined) return;
      process.kill(item.info.pid, 'SIGUSR1'); // our runner's faulthandler writes every thread's stack to its stderr
      await new Promise((resolve) => setTimeout(resolve, 300));
      await vscode.window.showTextDocument(vscode.Uri.file(item.info.stderrLog));
    }),
    vscode.workspace.onDidChangeConfiguration((change) => {
      if (change.affectsConfiguration('modelopsDebugger.venvsDir')) venvTree.refresh();
    }),
    vscode.commands.registerCommand('modelopsDebugger.refreshVenvs', () => venvTree.refresh()),
    vscode.commands.registerCommand('modelopsDebugger.deleteVenv', (item?: VenvItem) =>
      item && sayingFailures(async () => {
        await venvCache().remove(item.entry.key);
        venvTree.refresh();
      }),
    ),
    vscode.commands.registerCommand('modelopsDebugger.inspectVenv', async (item?: VenvItem) => {
      if (!item) return;
      const inspection = await venvCache().inspect(item.entry.key);
      const text = [`${inspection.valid ? 'valid' : `broken: ${inspection.reason}`}  ${inspection.path}`, ...inspection.checks.map((c) => `${c.ok ? '✔' : '✘'} ${c.name}: ${c.detail}`), `install log: ${inspection.logFile}`].join('\n');
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ content: text, language: 'plaintext' }));
    }),
    vscode.commands.registerCommand('modelopsDebugger.pruneVenvs', async () => {
      const result = await venvCache().prune({});
      venvTree.refresh();
      void vscode.window.showInformationMessage(`ModelOps: removed ${result.removed.length} broken or orphaned venv(s), kept ${result.kept}.`);
    }),
  );
  context.subscriptions.push(
    vscode.commands.registerCommand('modelopsDebugger.runJobFile', async (uri?: vscode.Uri) => {
      // the job file given (explorer, tests), else the JSON file being edited, else ask
      const active = vscode.window.activeTextEditor?.document;
      const file = uri ?? (active?.uri.scheme === 'file' && active.fileName.endsWith('.json') ? active.uri : await pickJobFile());
      if (!file) return undefined;
      try {
        return await runner.runJobFile(file.fsPath);
      } catch (error) {
        const message = isFailure(error) ? error.message : String(error);
        output.error(message);
        void vscode.window.showErrorMessage(`ModelOps: ${message}`);
        return undefined;
      } finally {
        venvTree.refresh(); // the job may have built or rebuilt a venv
      }
    }),
    vscode.commands.registerCommand('modelopsDebugger.rerunFailed', (item?: JobItem) => item && sayingFailures(() => runner.rerunFailed(item.job.dir))),
    vscode.commands.registerCommand('modelopsDebugger.resumeJob', (item?: JobItem) => item && sayingFailures(() => runner.resume(item.job.dir))),
    vscode.commands.registerCommand('modelopsDebugger.cancelJob', (item?: JobItem) => {
      if (item) runner.cancel(item.job.jobId);
    }),
    vscode.commands.registerCommand('modelopsDebugger.openResults', async (item?: JobItem) => {
      if (item) await vscode.window.showTextDocument(vscode.Uri.file(path.join(item.job.dir, 'manifest.json')));
    }),
    vscode.commands.registerCommand('modelopsDebugger.openEventLog', async (item?: JobItem) => {
      if (item) await vscode.window.showTextDocument(vscode.Uri.file(path.join(item.job.dir, 'events.jsonl')));
    }),
  );
  context.subscriptions.push(
    vscode.commands.registerCommand('modelopsDebugger.handshake', async (uri?: vscode.Uri) => {
      const bundle = uri ?? (await pickBundle());
      if (!bundle) return;
      const { report } = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ModelOps: handshake ${vscode.workspace.asRelativePath(bundle)}` },
        () =>
          handshake({
            bundleDir: bundle.fsPath,
            ...runtimeSettings((event) => output.info(describeVenvEvent(event))),
            timeoutMs: seconds('handshakeTimeoutSeconds', 30),
            onStderr: (chunk) => output.append(chunk.toString('utf8')),
          }),
      );
      const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? bundle.fsPath;
      output.appendLine(renderHandshake(report, cwd));
      // the notification is not awaited: the command returns its report at once (callers, tests)
      if (report.ok) {
        void vscode.window.showInformationMessage(report.message);
      } else {
        void vscode.window.showErrorMessage(`${report.kind}: ${report.message}`, 'Show Output').then((choice) => {
          if (choice) output.show();
        });
      }
      return report;
    }),
  );
  return { jobs, jobsTree, venvTree, processTree, stderr, diagnostics };
}

/** A command's failure, said to the user (its message is one clear sentence); undefined then. */
async function sayingFailures<T>(work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    void vscode.window.showErrorMessage(`ModelOps: ${isFailure(error) ? error.message : String(error)}`);
    return undefined;
  }
}

async function pickJobFile(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: false, filters: { 'Job files': ['json'] }, openLabel: 'Run Job' });
  return picked?.[0];
}

async function pickBundle(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Handshake Bundle' });
  return picked?.[0];
}

export function deactivate(): void {}
