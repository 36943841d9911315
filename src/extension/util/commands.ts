/** What every command module shares: failures said once, and the pickers. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { isFailure } from '../../engine/failure';
import { openAt } from './notices';

/**
 * A command's failure, said to the user (its message is one clear sentence); undefined then.
 * One with a source line offers "Open" (a job's own failures are said by the job runner, with
 * a row and a diagnostic; this is for the commands around it).
 */
export async function sayingFailures<T>(work: () => Promise<T>, log?: vscode.LogOutputChannel): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    const message = isFailure(error) ? error.message : String(error);
    log?.error(message);
    const location = isFailure(error) ? error.location : undefined;
    if (!location) void vscode.window.showErrorMessage(`ModelOps: ${message}`);
    else {
      vscode.window.showErrorMessage(`ModelOps: ${message}`, 'Open').then(
        (choice) => (choice ? openAt(location) : undefined),
        (shown: unknown) => log?.error(String(shown)),
      );
    }
    return undefined;
  }
}

export async function pickFolder(openLabel: string): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    openLabel,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return picked?.[0];
}

export async function pickFile(openLabel: string, filters: Record<string, string[]>): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectFolders: false,
    filters,
    openLabel,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return picked?.[0];
}

/**
 * Reports, transcripts and checklists open as read-only documents of their own scheme: nothing
 * to save, no "unsaved changes" when they are closed.
 */
const REPORT_SCHEME = 'modelops-report';
const reports = new Map<string, string>();
let reportCount = 0;

export function registerReportDocuments(): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.workspace.registerTextDocumentContentProvider(REPORT_SCHEME, {
      provideTextDocumentContent: (uri) => reports.get(uri.path) ?? '',
    }),
    vscode.languages.registerDocumentLinkProvider(
      { scheme: REPORT_SCHEME },
      { provideDocumentLinks: pythonFrameLinks },
    ),
    vscode.workspace.onDidCloseTextDocument(
      (document) => document.uri.scheme === REPORT_SCHEME && reports.delete(document.uri.path),
    ),
  );
}

/**
 * Python's frames in a report (faulthandler's `File "x.py", line 4 in f`, a traceback's
 * `File "x.py", line 4, in f`) as links that open the line.
 */
function pythonFrameLinks(document: vscode.TextDocument): vscode.DocumentLink[] {
  const links: vscode.DocumentLink[] = [];
  const frame = /File "([^"]+)", line (\d+)/g;
  for (let line = 0; line < document.lineCount; line++) {
    const text = document.lineAt(line).text;
    for (const match of text.matchAll(frame)) {
      if (!match[1].startsWith('/')) continue; // <frozen …>, <string>: no file to open
      const start = match.index! + 'File '.length;
      const link = new vscode.DocumentLink(
        new vscode.Range(line, start, line, match.index! + match[0].length),
        vscode.Uri.file(match[1]).with({ fragment: `L${match[2]}` }),
      );
      link.tooltip = `open ${path.basename(match[1])}:${match[2]}`;
      links.push(link);
    }
  }
  return links;
}

/** `title` names the tab. */
export async function showText(content: string, title: string): Promise<vscode.TextEditor> {
  const uri = vscode.Uri.from({ scheme: REPORT_SCHEME, path: `/${++reportCount}/${title.replace(/[/\\]/g, '_')}` });
  reports.set(uri.path, content);
  return vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: false });
}

/** Where results go: the setting, else `results/` in the first workspace folder, else next to `near`. */
export function resultsDir(near: string): string {
  const configured = vscode.workspace.getConfiguration('modelopsDebugger').get<string>('resultsDir');
  return (
    configured ||
    vscode.Uri.joinPath(vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(near), 'results').fsPath
  );
}
