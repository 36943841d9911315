/**
 * The workspace's job files, recognised by their content (our job file or a production
 * SimJob, as the engine reads them), not by their names: for "Run Job File…" and "Run Bundle…".
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isInside } from '../../engine/diagnose/pythonTrace';
import { isFailure } from '../../engine/failure';
import { bundleName, loadJobFile, parseJobText, recogniseJob, type JobShape } from '../../engine/job/spec';
import { pickFile } from '../util/commands';

/** Folders that hold results, dependencies or caches, never job files to run. */
const SKIPPED = '**/{node_modules,results,.venv,venv,.git,.modelops,__pycache__,.tox}/**';
const MAX_CANDIDATES = 2000;
/** A JSON file bigger than this is data, not a job file someone wrote (the example job is 2 KB). */
const MAX_JOB_FILE_BYTES = 4 * 1024 * 1024;

export interface JobFile {
  file: string;
  shape: JobShape;
  /** The bundle directory, absolute (a SimJob has none of its own). */
  bundleDir?: string;
  /** Why running it would be refused now (the engine's own validation), when so. */
  problem?: string;
}

export async function findJobFiles(): Promise<JobFile[]> {
  const resultsSetting = vscode.workspace.getConfiguration('modelopsDebugger').get<string>('resultsDir');
  const candidates = await vscode.workspace.findFiles('**/*.json', SKIPPED, MAX_CANDIDATES);
  const found: JobFile[] = [];
  for (const uri of candidates) {
    if (resultsSetting && isInside(uri.fsPath, resultsSetting)) continue;
    const jobFile = await readJobFile(uri);
    if (jobFile) found.push(jobFile);
  }
  return found.sort((a, b) => a.file.localeCompare(b.file));
}

/** The job in this file, or undefined when its content is not a job (most JSON files are not). */
export async function readJobFile(uri: vscode.Uri): Promise<JobFile | undefined> {
  let shape: JobShape | undefined;
  try {
    const stat = await vscode.workspace.fs.stat(uri);
    if (stat.size > MAX_JOB_FILE_BYTES) return undefined;
    shape = recogniseJob(
      parseJobText(uri.fsPath, Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8')),
    );
  } catch {
    return undefined; // not JSON, or unreadable: not a job file either way
  }
  if (!shape) return undefined;
  const file = uri.fsPath;
  if (shape.source === 'SimJob')
    return {
      file,
      shape,
      problem: 'a SimJob: run it with `modelops-debugger run FILE --bundle DIR` (its bundle_ref is a registry digest)',
    };
  const bundleDir = path.resolve(path.dirname(file), shape.bundle!);
  try {
    await loadJobFile(file);
    return { file, shape, bundleDir };
  } catch (error) {
    return { file, shape, bundleDir, problem: isFailure(error) ? error.message : String(error) };
  }
}

export interface JobFilePickItem extends vscode.QuickPickItem {
  /** The job file; undefined for "Browse…". */
  file?: string;
}

/** What tests (and other extensions) may pass to "Run Job File…" instead of answering its quick pick. */
export interface JobFilePickArgs {
  pick(items: readonly JobFilePickItem[]): JobFilePickItem | undefined;
}

export const BROWSE = 'Browse…';

/** A quick pick row per job file: where it is, its bundle and its size (sets × replicates). */
export function jobFileItems(files: JobFile[]): JobFilePickItem[] {
  const items: JobFilePickItem[] = files.map((job) => ({
    label: vscode.workspace.asRelativePath(job.file),
    description: `${job.bundleDir ? bundleName(job.bundleDir) : 'SimJob'} · ${size(job.shape)}`,
    detail: job.problem && `⚠ ${job.problem}`,
    file: job.file,
  }));
  items.push({ label: BROWSE, description: 'a job file anywhere' });
  return items;
}

function size(shape: JobShape): string {
  if (shape.source === 'SimJob')
    return `${shape.sets} set${shape.sets === 1 ? '' : 's'}, ${shape.tasks} task${shape.tasks === 1 ? '' : 's'}`;
  return `${shape.sets} set${shape.sets === 1 ? '' : 's'} × ${shape.replicates ?? '?'} replicate${shape.replicates === 1 ? '' : 's'}`;
}

/** "Run Job File…": a job file of the workspace, or one browsed to. */
export async function pickJobFile(given?: JobFilePickArgs): Promise<string | undefined> {
  const items = jobFileItems(await findJobFiles());
  const picked = given
    ? given.pick(items)
    : await vscode.window.showQuickPick(items, {
        title: 'Run Job File',
        placeHolder: 'A job file of the workspace (recognised by its content), or Browse…',
        matchOnDescription: true,
      });
  if (!picked) return undefined;
  if (picked.file) return picked.file;
  return (await pickFile('Run Job', { 'Job files': ['json'] }))?.fsPath;
}
