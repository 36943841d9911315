/**
 * "Show Result": a task's result as a read-only Markdown document of its own scheme, read from
 * the results folder each time it is shown (through the engine's reader), so it is never a copy
 * that drifts from the disk. A click on an aggregation (or a replicate that did not fail) in
 * the Jobs view opens it, and so does the item's context menu.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isFailure } from '../../engine/failure';
import { readJobJson } from '../../engine/job/resultsReader';
import { folderKey, parseFolderKey } from '../../engine/job/taskKeys';
import { sayingFailures } from '../util/commands';
import { aggregationMarkdown, replicateMarkdown, type ResultLinks } from './resultMarkdown';

export const RESULT_SCHEME = 'modelops-result';
/** How long an open results document may take to take its new text. */
const UPDATE_TIMEOUT_MS = 2000;

/** A task of a job on disk: what "Show Result" takes from tests, links and other commands. */
export interface ResultTarget {
  /** The job's results folder. */
  dir: string;
  /**
   * `agg-<param_id>` or `sim-<param_id>-<replicate>`; the param_id may be cut to its first 16 hex digits, as the
   * folder names its set.
   */
  key: string;
}

export interface ShowResultOptions {
  /** false: the Markdown source in a text editor; otherwise the rendered preview. */
  preview?: boolean;
}

/**
 * `modelops-result:<results folder>/agg-<param16>.md` (or `sim-<param16>-<i>.md`): named as the
 * folder names the set, so that one result links to another by a relative link, which both the
 * Markdown preview and the editor follow.
 */
export function resultUri(target: ResultTarget): vscode.Uri {
  return vscode.Uri.from({
    scheme: RESULT_SCHEME,
    path: path.posix.join(vscode.Uri.file(target.dir).path, `${folderKey(target.key)}.md`),
  });
}

function targetOf(uri: vscode.Uri): ResultTarget {
  return { dir: vscode.Uri.file(path.posix.dirname(uri.path)).fsPath, key: path.posix.basename(uri.path, '.md') };
}

/** The Markdown of one task's result; what could not be read is said in the document itself. */
export async function resultMarkdown(target: ResultTarget): Promise<string> {
  const links: ResultLinks = {
    task: (key) => `./${folderKey(key)}.md`,
    source: (location) =>
      vscode.Uri.file(location.file)
        .with({ fragment: `L${location.line}` })
        .toString(),
  };
  let job;
  try {
    job = (await readJobJson(target.dir)).job;
  } catch (error) {
    return `# No results\n\nThe results of \`${target.key}\` cannot be read: ${isFailure(error) ? error.message : String(error)}\n`;
  }
  // the key, or its short form (the folder's name for the set: the first 16 hex digits of its param_id)
  const shown = parseFolderKey(target.key);
  const set = shown && job.parameterSets.find((s) => s.paramId.startsWith(shown.param));
  if (!shown || !set)
    return `# No such task\n\n\`${target.key}\` is not a task of job \`${job.jobId}\` (${target.dir}).\n`;
  if (shown.kind === 'agg') return aggregationMarkdown(target.dir, job, set, links);
  const replicate = Number(shown.replicate);
  if (!(replicate < set.seeds.length))
    return `# No such replicate\n\nParameter set \`${set.paramId}\` of job \`${job.jobId}\` has ${set.seeds.length} replicates; there is no replicate ${shown.replicate}.\n`;
  return replicateMarkdown(target.dir, job, set, replicate, links);
}

export class ResultDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    return resultMarkdown(targetOf(uri));
  }

  /**
   * An open document of this result brought up to date with the disk before it is shown again
   * (VS Code keeps an open virtual document's text until told it changed). Resolves when the
   * editor has the new text, or after a timeout (then it shows the old text, never hangs).
   */
  async current(uri: vscode.Uri): Promise<void> {
    const open = vscode.workspace.textDocuments.find((document) => document.uri.toString() === uri.toString());
    if (!open || open.getText() === (await this.provideTextDocumentContent(uri))) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, UPDATE_TIMEOUT_MS);
      const listener = vscode.workspace.onDidChangeTextDocument((change) => change.document === open && finish());
      function finish() {
        clearTimeout(timer);
        listener.dispose();
        resolve();
      }
      this.changed.fire(uri);
    });
  }

  /** Open results documents read the disk again (after a job ran, resumed or reran). */
  refresh(): void {
    for (const document of vscode.workspace.textDocuments)
      if (document.uri.scheme === RESULT_SCHEME) this.changed.fire(document.uri);
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export function registerResultDocuments(log: vscode.LogOutputChannel): {
  documents: ResultDocuments;
  disposables: vscode.Disposable[];
} {
  const documents = new ResultDocuments();
  return {
    documents,
    disposables: [
      documents,
      vscode.workspace.registerTextDocumentContentProvider(RESULT_SCHEME, documents),
      // a tree item (click or context menu) has `job` and `task`; tests and links give a ResultTarget
      vscode.commands.registerCommand(
        'modelopsDebugger.showResult',
        (given?: ResultTarget | { job: { dir: string }; task: { key: string } }, options: ShowResultOptions = {}) =>
          sayingFailures(async () => {
            if (!given) return undefined;
            const uri = resultUri('task' in given ? { dir: given.job.dir, key: given.task.key } : given);
            await documents.current(uri);
            if (options.preview === false)
              await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
            else await vscode.commands.executeCommand('markdown.showPreview', uri);
            return uri;
          }, log),
      ),
    ],
  };
}
