/**
 * The commands that start, stop, open and reproduce jobs. Each works on the tree item it is
 * invoked on; from the palette (no item) it asks which job, offering only the jobs whose
 * `contextValue` has its capability token (the same tokens the menus' `when` clauses test),
 * and says so when none has.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, statSync } from 'node:fs';
import { readBytes } from '../output/taskStderr';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isInside } from '../../engine/diagnose/pythonTrace';
import { parseSimKey } from '../../engine/job/taskKeys';
import { jobCommandLine, replicateCommandLine, type Reproduction } from '../../engine/job/reproduce';
import { findJobFiles, pickJobFile, readJobFile, type JobFilePickArgs } from '../jobFiles/jobFiles';
import type { IfResultsExist, JobRunner, OpenedJob } from './jobRunner';
import type { JobModel } from './jobModel';
import { EarlierRunsItem, isNode, type JobItem, type JobsTreeProvider, type TaskItem } from './jobsTree';
import { pickFile, pickFolder, sayingFailures, showText } from '../util/commands';
import { diffRuns, type RunDiff } from '../../engine/compare/diff';
import { renderRunDiff } from '../../engine/compare/text';
import { reportHtml } from '../../engine/report/reportHtml';
import { runReport } from '../../engine/report/runReport';
import { writeFile } from 'node:fs/promises';

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

/** What tests and other extensions may pass to a job command instead of answering "which job?". */
/** "Compare With…": tests pick run B instead of the user. */
export interface CompareWithArgs {
  pick(items: readonly (vscode.QuickPickItem & { dir: string })[]): { dir: string; label: string } | undefined;
}

export interface JobPickArgs {
  pick(items: readonly JobPickItem[]): JobPickItem | undefined;
  /** Called with what the user is told when no job in the view applies. */
  none?(message: string): void;
}

export interface JobPickItem extends vscode.QuickPickItem {
  item: JobItem;
}

/** A job command's capability: the token its menu entries test, and what it means for the prompt. */
interface Capability {
  token: string;
  /** "No job in the Jobs view <applies>." */
  applies: string;
  title: string;
}

const CAPABILITIES = {
  cancel: { token: 'cancellable;', applies: 'is running', title: 'Cancel Job' },
  resume: { token: 'resumable;', applies: 'can be resumed (interrupted or aborted)', title: 'Resume Job' },
  rerun: { token: 'rerunnable;', applies: 'has failed tasks to rerun', title: 'Rerun Failed Tasks' },
  open: { token: 'open;', applies: 'has results', title: 'Open Results' },
  reveal: { token: 'open;', applies: 'has results', title: 'Reveal Results Folder' },
  events: { token: 'open;', applies: 'has results', title: 'Open Event Log' },
  stderr: { token: 'stderr;', applies: 'has started runners', title: 'Show Stderr' },
  reproduce: { token: 'reproducible;', applies: 'can be reproduced', title: 'Copy Reproduce Command' },
  compare: { token: 'open;', applies: 'has results', title: 'Compare With…' },
  report: { token: 'open;', applies: 'has results', title: 'Export Run Report…' },
  timeline: { token: 'open;', applies: 'has run', title: 'Show Timeline' },
} satisfies Record<string, Capability>;

/** A job command's job: the item it was invoked on, else one the user picks among those it fits. */
export function jobForCommand(
  tree: JobsTreeProvider,
  given: unknown,
  capability: keyof typeof CAPABILITIES,
): Promise<JobItem | undefined> {
  return jobFor(tree, given, CAPABILITIES[capability]);
}

/** The most of each runner's log shown in a job's stderr document: the end, where a failure is. */
const STDERR_TAIL_BYTES = 256 * 1024;

export function registerJobCommands(
  runner: JobRunner,
  model: JobModel,
  tree: JobsTreeProvider,
  log: vscode.LogOutputChannel,
  afterRun: () => void,
): vscode.Disposable[] {
  const running = async <T>(work: () => Promise<T>) => {
    try {
      return await sayingFailures(work, log);
    } finally {
      afterRun(); // the job may have built or rebuilt a venv
    }
  };
  const job = (given: unknown, capability: Capability) => jobFor(tree, given, capability);
  return [
    vscode.commands.registerCommand(
      'modelopsDebugger.runJobFile',
      async (given?: vscode.Uri | JobFilePickArgs, options?: RunJobFileArgs) => {
        // the job file given (explorer, tests), else the job file being edited, else the workspace's, picked
        let file = given instanceof vscode.Uri ? given.fsPath : undefined;
        const active = vscode.window.activeTextEditor?.document;
        if (
          !file &&
          !given &&
          active?.uri.scheme === 'file' &&
          active.languageId.startsWith('json') &&
          (await readJobFile(active.uri))
        )
          file = active.fileName;
        file ??= await pickJobFile(given instanceof vscode.Uri ? undefined : given);
        if (!file) return undefined;
        const chosen = file;
        return running(() => runner.runJobFile(chosen, options?.ifResultsExist));
      },
    ),
    vscode.commands.registerCommand('modelopsDebugger.runBundle', async (uri?: vscode.Uri, given?: RunBundleArgs) => {
      const bundle = uri ?? (await pickFolder('Run Bundle'));
      if (!bundle) return undefined;
      const args = given ?? (await askForRun(bundle));
      if (!args) return undefined;
      if ('jobFile' in args) return running(() => runner.runJobFile(args.jobFile));
      const { ifResultsExist, ...input } = args;
      return running(() => runner.runBundle({ bundleDir: bundle.fsPath, targets: [], ...input }, ifResultsExist));
    }),
    vscode.commands.registerCommand('modelopsDebugger.rerunFailed', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.rerun);
      return item && running(() => runner.rerunFailed(item.job.dir));
    }),
    vscode.commands.registerCommand('modelopsDebugger.resumeJob', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.resume);
      return item && running(() => runner.resume(item.job.dir));
    }),
    vscode.commands.registerCommand(
      'modelopsDebugger.openJobResults',
      async (uri?: vscode.Uri): Promise<OpenedJob | undefined> => {
        const folder = uri ?? (await pickFolder('Open Job Results'));
        if (!folder) return undefined;
        const opened = await sayingFailures(() => runner.openResults(folder.fsPath), log);
        if (opened) await vscode.commands.executeCommand('modelopsDebugger.jobs.focus');
        return opened;
      },
    ),
    vscode.commands.registerCommand('modelopsDebugger.clearEarlierRuns', (item?: JobItem | EarlierRunsItem) => {
      if (!item) return 0;
      const cleared = model.clearEarlierRuns(item.job, (jobId) => runner.isRunning(jobId));
      tree.scheduleRefresh();
      return cleared;
    }),
    vscode.commands.registerCommand('modelopsDebugger.cancelJob', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.cancel);
      if (item) runner.cancel(item.job.jobId);
      return item?.job.jobId;
    }),
    vscode.commands.registerCommand('modelopsDebugger.openResults', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.open);
      if (!item) return undefined;
      // the manifest once the job has ended; the normalised job while it runs
      const manifest = path.join(item.job.dir, 'manifest.json');
      const file = existsSync(manifest) ? manifest : path.join(item.job.dir, 'job.json');
      await vscode.window.showTextDocument(vscode.Uri.file(file));
      return file;
    }),
    vscode.commands.registerCommand('modelopsDebugger.revealResults', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.reveal);
      return item && revealFolder(item.job.dir);
    }),
    vscode.commands.registerCommand('modelopsDebugger.openEventLog', async (given?: unknown) => {
      const item = await job(given, CAPABILITIES.events);
      if (item) await vscode.window.showTextDocument(vscode.Uri.file(path.join(item.job.dir, 'events.jsonl')));
    }),
    // "Export Run Report…": `report`'s HTML, saved where the user says (the results folder by default)
    vscode.commands.registerCommand(
      'modelopsDebugger.exportRunReport',
      async (given?: unknown, to?: vscode.Uri): Promise<string | undefined> => {
        const item = await job(given, CAPABILITIES.report);
        if (!item) return undefined;
        const target =
          to ??
          (await vscode.window.showSaveDialog({
            title: `Export Run Report of ${item.job.jobId}`,
            defaultUri: vscode.Uri.file(path.join(item.job.dir, 'report.html')),
            filters: { 'HTML report': ['html'] },
          }));
        if (!target) return undefined;
        return sayingFailures(async () => {
          const report = await runReport(item.job.dir);
          await writeFile(target.fsPath, reportHtml(report));
          const OPEN = 'Open in Browser';
          void vscode.window
            .showInformationMessage(`ModelOps: run report of ${item.job.jobId} written to ${target.fsPath}.`, OPEN)
            .then((choice) => (choice === OPEN ? vscode.env.openExternal(target) : undefined));
          return target.fsPath;
        }, log);
      },
    ),
    // "Compare With…": this run and another of the view (its earlier runs first), as `diff` says it
    vscode.commands.registerCommand(
      'modelopsDebugger.compareWith',
      async (given?: unknown, other?: CompareWithArgs): Promise<RunDiff | undefined> => {
        const item = await job(given, CAPABILITIES.compare);
        if (!item) return undefined;
        const earlier = new Set(model.earlierRuns(item.job));
        const candidates = [...model.jobs.values()]
          .filter((info) => !info.notStarted && info.dir && info.dir !== item.job.dir)
          .sort((a, b) => Number(earlier.has(b)) - Number(earlier.has(a)))
          .map((info) => ({
            label: info.jobId,
            description: `${info.status}${earlier.has(info) ? ' · an earlier run of the same job file' : ''}`,
            detail: info.dir,
            dir: info.dir,
          }));
        if (!candidates.length) {
          void vscode.window.showInformationMessage(
            `ModelOps: no other job in the Jobs view to compare ${item.job.jobId} with; "Open Job Results…" adds one.`,
          );
          return undefined;
        }
        const picked = other
          ? other.pick(candidates)
          : await vscode.window.showQuickPick(candidates, {
              title: `Compare ${item.job.jobId} With…`,
              placeHolder: 'Which run? (run B; this one is A)',
              matchOnDetail: true,
            });
        if (!picked) return undefined;
        return sayingFailures(async () => {
          const diff = await diffRuns(item.job.dir, picked.dir);
          await showText(renderRunDiff(diff), `compare ${item.job.jobId} with ${picked.label}.txt`);
          return diff;
        }, log);
      },
    ),
    vscode.commands.registerCommand('modelopsDebugger.copyReproduceCommand', async (given?: unknown) => {
      const replicate = isNode(given) && given.kind === 'task' ? given : undefined;
      const item = replicate ? undefined : await job(given, CAPABILITIES.reproduce);
      if (!replicate && !item) return undefined;
      return sayingFailures(async () => {
        const reproduction = replicate ? replicateReproduction(replicate) : await jobCommandLine(item!.job.dir);
        await vscode.env.clipboard.writeText(reproduction.line);
        if (reproduction.caveat)
          void vscode.window.showWarningMessage(
            `ModelOps: copied \`${reproduction.line}\`, but ${reproduction.caveat}.`,
          );
        else void vscode.window.showInformationMessage(`ModelOps: copied \`${reproduction.line}\``);
        return reproduction;
      }, log);
    }),
  ];
}

/** "Show Stderr" on a job (or from the palette): every runner's log of the job, in one read-only document. */
export async function showJobStderr(tree: JobsTreeProvider, given: unknown): Promise<string | undefined> {
  const item = await jobFor(tree, given, CAPABILITIES.stderr);
  if (!item) return undefined;
  const logs = path.join(item.job.dir, 'logs');
  const files = existsSync(logs)
    ? readdirSync(logs).filter((name) => name.endsWith('.stderr') && statSync(path.join(logs, name)).size > 0)
    : [];
  if (!files.length) {
    void vscode.window.showInformationMessage(
      `ModelOps: no runner of job ${item.job.jobId} wrote to stderr (${logs}).`,
    );
    return undefined;
  }
  const parts: string[] = [];
  for (const name of files.sort()) {
    const { text, skipped } = tail(path.join(logs, name), STDERR_TAIL_BYTES);
    parts.push(
      `── ${path.join(logs, name)}${skipped ? ` (its last ${STDERR_TAIL_BYTES / 1024} KB; ${skipped} bytes before them not shown)` : ''} ──\n${text.endsWith('\n') || !text ? text : `${text}\n`}`,
    );
  }
  const content = parts.join('\n');
  await showText(content, `stderr of ${item.job.jobId}.log`);
  return content;
}

/** A log's last `bytes` bytes, and how many came before them. */
function tail(file: string, bytes: number): { text: string; skipped: number } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - bytes);
    return { text: readBytes(fd, start, size), skipped: start };
  } finally {
    closeSync(fd);
  }
}

function replicateReproduction(item: TaskItem): Reproduction {
  const sim = parseSimKey(item.task.key);
  if (!sim) throw new Error(`${item.task.key} is not a replicate`); // the menu offers it on replicates only
  return replicateCommandLine(item.job.dir, sim.paramId, sim.replicate);
}

/** A job of the tree: the item given, or one the user (or a test's `pick`) picks among those the command fits. */
async function jobFor(tree: JobsTreeProvider, given: unknown, capability: Capability): Promise<JobItem | undefined> {
  if (isNode(given) && given.kind === 'job') return given;
  const args = isPickArgs(given) ? given : undefined;
  const items: JobPickItem[] = jobItems(tree)
    .filter((item) => item.contextValue?.includes(capability.token))
    .map((item) => ({
      label: String(item.label),
      description: String(item.description ?? ''),
      detail: `${item.job.jobId} · ${item.job.dir}`,
      item,
    }));
  if (!items.length) {
    const message = `ModelOps: no job in the Jobs view ${capability.applies}.`;
    args?.none?.(message);
    void vscode.window.showInformationMessage(message);
    return undefined;
  }
  const picked = args
    ? args.pick(items)
    : await vscode.window.showQuickPick(items, {
        title: capability.title,
        placeHolder: 'Which job?',
        matchOnDescription: true,
        matchOnDetail: true,
      });
  return picked?.item;
}

/** The jobs the view shows, at its top level or one level down (runs grouped under their job file). */
function jobItems(tree: JobsTreeProvider): JobItem[] {
  const found: JobItem[] = [];
  for (const node of tree.getChildren()) {
    const kind: string = node.kind;
    if (node.kind === 'job') found.push(node);
    else if (kind !== 'set' && kind !== 'task')
      for (const child of tree.getChildren(node)) if (child.kind === 'job') found.push(child);
  }
  return found;
}

function isPickArgs(value: unknown): value is JobPickArgs {
  return typeof value === 'object' && value !== null && typeof (value as JobPickArgs).pick === 'function';
}

/**
 * A results folder shown where the user can get at it: in the Explorer when it is in the
 * workspace, in the OS file manager when the editor runs on this machine, else its path, copied.
 */
async function revealFolder(dir: string): Promise<'explorer' | 'os' | 'copied'> {
  const uri = vscode.Uri.file(dir);
  if ((vscode.workspace.workspaceFolders ?? []).some((folder) => isInside(dir, folder.uri.fsPath))) {
    await vscode.commands.executeCommand('revealInExplorer', uri);
    return 'explorer';
  }
  if (vscode.env.remoteName === undefined && vscode.env.uiKind === vscode.UIKind.Desktop) {
    await vscode.commands.executeCommand('revealFileInOS', uri);
    return 'os';
  }
  await vscode.env.clipboard.writeText(dir);
  void vscode.window.showInformationMessage(
    `ModelOps: results of this job are in ${dir} (path copied: it is outside the workspace, and this editor runs remotely, so it cannot open a file manager there).`,
  );
  return 'copied';
}

/**
 * "Run Bundle…": a job file of the workspace that runs this bundle, or a parameters file with a
 * replicate count and an entrypoint.
 */
async function askForRun(bundle: vscode.Uri): Promise<RunBundleArgs | { jobFile: string } | undefined> {
  const jobFiles = (await findJobFiles())
    .filter((job) => job.bundleDir === path.resolve(bundle.fsPath))
    .map((job) => job.file);
  const PARAMS = 'Parameters file…';
  const picked = await vscode.window.showQuickPick(
    [
      ...jobFiles.map((file) => ({ label: vscode.workspace.asRelativePath(file), description: 'job file', file })),
      { label: PARAMS, description: 'a JSON list of parameter sets, with replicates', file: undefined },
    ],
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
  const entrypoint = await vscode.window.showInputBox({
    title: 'Entrypoint passed to the wire function',
    value: 'main',
    validateInput: (value) => (value.trim() ? undefined : 'an entrypoint, e.g. models.sir/baseline'),
  });
  if (!entrypoint) return undefined;
  return { paramsFile: params.fsPath, replicates: Number(replicates.trim()), entrypoint: entrypoint.trim() };
}
