/**
 * The VS Code layer. It adapts the engine (src/engine, which never imports `vscode`) to the
 * editor; everything it owns is disposed with the extension.
 */
import * as vscode from 'vscode';
import { handshake } from '../engine/handshake/handshake';
import { renderHandshake } from '../cli/render';
import { describeVenvEvent } from '../engine/venv/describe';
import { forceFreshFromEnv, venvsDir } from '../engine/venv/cache';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('ModelOps', { log: true });
  context.subscriptions.push(output);
  context.subscriptions.push(
    vscode.commands.registerCommand('modelopsDebugger.handshake', async (uri?: vscode.Uri) => {
      const bundle = uri ?? (await pickBundle());
      if (!bundle) return;
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      const { report } = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ModelOps: handshake ${vscode.workspace.asRelativePath(bundle)}` },
        () =>
          handshake({
            bundleDir: bundle.fsPath,
            basePython: config.get<string>('pythonPath') || undefined,
            venv: {
              dir: venvsDir(config.get<string>('venvsDir') || undefined),
              forceFresh: config.get<boolean>('forceFreshVenv') || forceFreshFromEnv(),
              extraInstallArgs: config.get<string[]>('extraInstallArgs') ?? [],
              installTimeoutMs: (config.get<number>('installTimeoutSeconds') ?? 900) * 1000,
              onEvent: (event) => output.info(describeVenvEvent(event)),
            },
            timeoutMs: (config.get<number>('handshakeTimeoutSeconds') ?? 30) * 1000,
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
}

async function pickBundle(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Handshake Bundle' });
  return picked?.[0];
}

export function deactivate(): void {}
