/** The Venv Caches view's commands, and "Force Fresh Venv for Next Run". */
import * as vscode from 'vscode';
import type { VenvCache } from '../../engine/venv/cache';
import { forceFreshVenvForNextRun } from '../settings';
import { sayingFailures, showText } from '../util/commands';
import type { VenvItem, VenvTreeProvider } from './venvTree';

export function registerVenvCommands(cache: () => VenvCache, tree: VenvTreeProvider, log: vscode.LogOutputChannel): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('modelopsDebugger.refreshVenvs', () => tree.refresh()),
    vscode.commands.registerCommand('modelopsDebugger.deleteVenv', (item?: VenvItem) =>
      item &&
      sayingFailures(async () => {
        await cache().remove(item.entry.key); // refused while a process runs its interpreter
        tree.refresh();
      }, log),
    ),
    vscode.commands.registerCommand('modelopsDebugger.inspectVenv', async (item?: VenvItem) => {
      if (!item) return;
      const inspection = await cache().inspect(item.entry.key);
      await showText(
        [`${inspection.valid ? 'valid' : `broken: ${inspection.reason}`}  ${inspection.path}`, ...inspection.checks.map((c) => `${c.ok ? '✔' : '✘'} ${c.name}: ${c.detail}`), `install log: ${inspection.logFile}`].join('\n'),
        `venv ${item.entry.key}.txt`,
      );
    }),
    vscode.commands.registerCommand('modelopsDebugger.rebuildVenv', (item?: VenvItem) =>
      item &&
      sayingFailures(async () => {
        const lease = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `ModelOps: rebuilding venv ${item.entry.key}` }, () => cache().rebuild(item.entry.key));
        await lease.release();
        tree.refresh();
        void vscode.window.showInformationMessage(`ModelOps: venv ${lease.key} rebuilt.`);
        return lease.key;
      }, log),
    ),
    vscode.commands.registerCommand('modelopsDebugger.revealVenv', async (item?: VenvItem) => {
      if (!item) return;
      const uri = vscode.Uri.file(item.entry.path);
      // the OS file manager when the editor runs on this machine; in a browser (remote) the path, copied
      if (vscode.env.remoteName === undefined && vscode.env.uiKind === vscode.UIKind.Desktop) {
        await vscode.commands.executeCommand('revealFileInOS', uri);
      } else {
        await vscode.env.clipboard.writeText(item.entry.path);
        void vscode.window.showInformationMessage(`ModelOps: ${item.entry.path} (copied: this editor runs remotely, so it cannot open a file manager there).`);
      }
    }),
    vscode.commands.registerCommand('modelopsDebugger.pruneVenvs', async () => {
      const result = await cache().prune({});
      tree.refresh();
      void vscode.window.showInformationMessage(`ModelOps: removed ${result.removed.length} broken or orphaned venv(s), kept ${result.kept}.`);
      return result;
    }),
    vscode.commands.registerCommand('modelopsDebugger.forceFreshVenv', () => {
      forceFreshVenvForNextRun();
      void vscode.window.showInformationMessage('ModelOps: the next job or handshake builds a fresh venv of its own (the cached one stays as it is).');
    }),
  ];
}
