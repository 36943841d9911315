/** The Venv Caches view's commands, and "Force Fresh Venv for Next Run". */
import * as vscode from 'vscode';
import type { VenvCache } from '../../engine/venv/cache';
import { forceFreshVenvForNextRun } from '../settings';
import { sayingFailures, showText } from '../util/commands';
import { venvLabels } from '../../engine/venv/describe';
import type { VenvItem, VenvTreeProvider } from './venvTree';

/** What tests may pass to "Prune Venvs" instead of answering its confirmation (people always get the modal prompt). */
export interface PruneVenvsOptions {
  /** true: remove without asking; false: answer the prompt with Cancel. */
  confirm?: boolean;
}

export interface PruneVenvsResult {
  /** What would be removed, as the confirmation listed it. */
  listed: { key: string; label: string; reason: string }[];
  confirmed: boolean;
  removed: { key: string; reason: string; sizeBytes: number }[];
  /** Listed, but not removed when it came to it (a process started using it, or it was mended, meanwhile). */
  kept: string[];
}

export function registerVenvCommands(
  cache: () => VenvCache,
  tree: VenvTreeProvider,
  log: vscode.LogOutputChannel,
): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('modelopsDebugger.refreshVenvs', () => tree.refresh()),
    vscode.commands.registerCommand(
      'modelopsDebugger.deleteVenv',
      (item?: VenvItem) =>
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
        [
          `${inspection.valid ? 'valid' : `broken: ${inspection.reason}`}  ${inspection.path}`,
          ...inspection.checks.map((c) => `${c.ok ? '✔' : '✘'} ${c.name}: ${c.detail}`),
          `install log: ${inspection.logFile}`,
        ].join('\n'),
        `venv ${item.entry.key}.txt`,
      );
    }),
    vscode.commands.registerCommand(
      'modelopsDebugger.rebuildVenv',
      (item?: VenvItem) =>
        item &&
        sayingFailures(async () => {
          const lease = await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: `ModelOps: rebuilding venv ${item.entry.key}` },
            () => cache().rebuild(item.entry.key),
          );
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
        void vscode.window.showInformationMessage(
          `ModelOps: ${item.entry.path} (copied: this editor runs remotely, so it cannot open a file manager there).`,
        );
      }
    }),
    vscode.commands.registerCommand('modelopsDebugger.pruneVenvs', (options: PruneVenvsOptions = {}) =>
      sayingFailures(() => pruneVenvs(cache(), tree, options), log),
    ),
    vscode.commands.registerCommand('modelopsDebugger.forceFreshVenv', () => {
      forceFreshVenvForNextRun();
      void vscode.window.showInformationMessage(
        'ModelOps: the next job or handshake builds a fresh venv of its own (the cached one stays as it is).',
      );
    }),
  ];
}

/**
 * Broken venvs and private venvs of runs that are gone: listed first (a dry run) in a modal
 * confirmation, removed only once confirmed, and what was removed said afterwards. A venv that
 * a process started using meanwhile is kept, and said (the cache never pulls one from under it).
 */
async function pruneVenvs(
  cache: VenvCache,
  tree: VenvTreeProvider,
  options: PruneVenvsOptions,
): Promise<PruneVenvsResult> {
  const entries = await cache.list();
  const labels = venvLabels(entries);
  const planned = await cache.prune({ dryRun: true });
  const listed = planned.removed.map((r) => ({ key: r.key, label: labels.get(r.key) ?? r.key, reason: r.reason }));
  if (listed.length === 0) {
    void vscode.window.showInformationMessage(
      `ModelOps: nothing to prune: none of the ${entries.length} cached venv(s) is broken or orphaned.`,
    );
    return { listed, confirmed: false, removed: [], kept: [] };
  }
  const REMOVE = `Remove ${listed.length}`;
  const confirmed =
    options.confirm ??
    (await vscode.window.showWarningMessage(
      `Remove ${listed.length} broken or orphaned venv(s)?`,
      { modal: true, detail: listed.map((l) => `${l.label} (${l.key}): ${l.reason}`).join('\n') },
      REMOVE,
    )) === REMOVE;
  if (!confirmed) return { listed, confirmed, removed: [], kept: [] };
  // exactly what the prompt listed: a venv that broke since is for the next prune
  const result = await cache.prune({ only: listed.map((l) => l.key) });
  tree.refresh();
  const kept = listed.filter((l) => !result.removed.some((r) => r.key === l.key));
  const freed = result.removed.reduce((sum, r) => sum + r.sizeBytes, 0);
  const said = [
    `removed ${result.removed.length} venv(s)${result.removed.length ? ` (${(freed / 1024 ** 2).toFixed(1)} MB): ${result.removed.map((r) => labels.get(r.key) ?? r.key).join(', ')}` : ''}`,
  ];
  if (kept.length)
    said.push(`kept ${kept.map((k) => k.label).join(', ')}: in use by a process now, or mended meanwhile`);
  const message = `ModelOps: ${said.join('; ')}.`;
  if (kept.length) void vscode.window.showWarningMessage(message);
  else void vscode.window.showInformationMessage(message);
  return { listed, confirmed, removed: result.removed, kept: kept.map((k) => k.key) };
}
