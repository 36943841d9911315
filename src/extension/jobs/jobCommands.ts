/** The commands that start, stop and open jobs. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { IfResultsExist, JobRunner, OpenedJob } from './jobRunner';
import type { JobModel } from './jobModel';
import { EarlierRunsItem, JobItem, type JobsTreeProvider } from './jobsTree';
import { pickFile, pickFolder, sayingFailures } from '../util/commands';

/** What tests and other extensions may pass to "Run Bundle…" instead of answering its prompts. */
export interface RunBundleArgs {
  paramsFile: string;
  replicates: number;
  entrypoint: string;
  targets?: string[];
  jobId?: string;
  /** When the job's results exist already: instead of asking. */
  ifResultsExist?: IfResultsExist;
}

/** What tests and other extensions may pass to "Run Job File…" after the file. */
export interface RunJobFileArgs {
  /** When the job's results exist already: instead of asking. */
  ifResultsExist?: IfResultsExist;
}

export function registerJobCommands(runner: JobRunner, model: JobModel, tree: JobsTreeProvider, log: vscode.LogOutputChannel, afterRun: () => void): vscode.Disposable[] {
  const running = async <T>(work: () => Promise<T>) => {
    try {
      return await sayingFailures(work, log);
    } finally {
      afterRun(); // the job may have built or rebuilt a venv
    }
  };
  return [
    vscode.commands.registerCommand('modelopsDebugger.runJobFile', async (uri?: vscode.Uri, given?: RunJobFileArgs) => {
      // the job file given (explorer, tests), else the JSON file being edited, else ask
      const active = vscode.window.activeTextEditor?.document;
      const file = uri ?? (active?.uri.scheme === 'file' && active.fileName.endsWith('.json') ? active.uri : await pickFile('Run Job', { 'Job files': ['json'] }));
      if (!file) return undefined;
      return running(() => runner.runJobFile(file.fsPath, given?.ifResultsExist));
    }),
    vscode.commands.registerCommand('modelopsDebugger.runBundle', async (uri?: vscode.Uri, given?: RunBundleArgs) => {
      const bundle = uri ?? (await pickFolder('Run Bundle'));
      if (!bundle) return undefined;
      const args = given ?? (await askForRun(bundle));
      if (!args) return undefined;
      if ('jobFile' in args) return running(() => runner.runJobFile(args.jobFile));
      const { ifResultsExist, ...input } = args;
      return running(() => runner.runBundle({ bundleDir: bundle.fsPath, targets: [], ...input }, ifResultsExist));
    }),
    vscode.commands.registerCommand('modelopsDebugger.rerunFailed', (item?: JobItem) => item && running(() => runner.rerunFailed(item.job.dir))),
    vscode.commands.registerCommand('modelopsDebugger.resumeJob', (item?: JobItem) => item && running(() => runner.resume(item.job.dir))),
    vscode.commands.registerCommand('modelopsDebugger.openJobResults', async (uri?: vscode.Uri): Promise<OpenedJob | undefined> => {
      const folder = uri ?? (await pickFolder('Open Job Results'));
      if (!folder) return undefined;
      const opened = await sayingFailures(() => runner.openResults(folder.fsPath), log);
      if (opened) await vscode.commands.executeCommand('modelopsDebugger.jobs.focus');
      return opened;
    }),
    vscode.commands.registerCommand('modelopsDebugger.clearEarlierRuns', (item?: JobItem | EarlierRunsItem) => {
      if (!item) return 0;
      const cleared = model.clearEarlierRuns(item.job, (jobId) => runner.isRunning(jobId));
      tree.scheduleRefresh();
      return cleared;
    }),
    vscode.commands.registerCommand('modelopsDebugger.cancelJob', (item?: JobItem) => {
      if (item) runner.cancel(item.job.jobId);
    }),
    vscode.commands.registerCommand('modelopsDebugger.openResults', async (item?: JobItem) => {
      if (item) await vscode.window.showTextDocument(vscode.Uri.file(path.join(item.job.dir, 'manifest.json')));
    }),
    vscode.commands.registerCommand('modelopsDebugger.openEventLog', async (item?: JobItem) => {
      if (item) await vscode.window.showTextDocument(vscode.Uri.file(path.join(item.job.dir, 'events.jsonl')));
    }),
  ];
}

/**
 * "Run Bundle…": a job file of the workspace that runs this bundle, or a parameters file with a
 * replicate count and an entrypoint.
 */
async function askForRun(bundle: vscode.Uri): Promise<RunBundleArgs | { jobFile: string } | undefined> {
  const jobFiles = await jobFilesFor(bundle.fsPath);
  const PARAMS = 'Parameters file…';
  const picked = await vscode.window.showQuickPick(
    [...jobFiles.map((file) => ({ label: vscode.workspace.asRelativePath(file), description: 'job file', file })), { label: PARAMS, description: 'a JSON list of parameter sets, with replicates', file: undefined }],
    { title: `Run ${path.basename(bundle.fsPath)}`, placeHolder: 'A job file for this bundle, or a parameters file' },
  );
  if (!picked) return undefined;
  if (picked.file) return { jobFile: picked.file };
  const params = await pickFile('Use Parameters', { 'Parameter sets': ['json'] });
  if (!params) return undefined;
  const replicates = await vscode.window.showInputBox({
    title: 'Replicates per parameter set',
    value: '10',
    validateInput: (value) => (/^[1-9]\d*$/.test(value.trim()) ? undefined : 'a whole number, 1 or more'),
  });
  if (!replicates) return undefined;
  const entrypoint = await vscode.window.showInputBox({ title: 'Entrypoint passed to the wire function', value: 'main', validateInput: (value) => (value.trim() ? undefined : 'an entrypoint, e.g. models.sir/baseline') });
  if (!entrypoint) return undefined;
  return { paramsFile: params.fsPath, replicates: Number(replicates.trim()), entrypoint: entrypoint.trim() };
}

/** The workspace's job files whose `bundle` is this folder (read only as far as that). */
async function jobFilesFor(bundleDir: string): Promise<string[]> {
  const candidates = await vscode.workspace.findFiles('**/*.json', '**/{node_modules,results,.modelops,.venv}/**', 500);
  const found: string[] = [];
  for (const uri of candidates) {
    try {
      const bytes = await vscode.workspace.fs.readFile(uri);
      if (bytes.byteLength > 4 * 1024 * 1024) continue;
      const raw = JSON.parse(Buffer.from(bytes).toString('utf8')) as { bundle?: unknown };
      if (typeof raw.bundle === 'string' && path.resolve(path.dirname(uri.fsPath), raw.bundle) === path.resolve(bundleDir)) found.push(uri.fsPath);
    } catch {
      // not a job file: most JSON files in a workspace are not
    }
  }
  return found.sort();
}
