/**
 * The Venv Caches view: every cached venv, broken ones shown (with why), never hidden. Rows are
 * named after their bundle (`sir-example · py3.11 · 2 deps`), the hash key in the tooltip with
 * the validity checklist. The view follows the cache directory on disk by itself: a venv built,
 * removed or renamed by a job, the CLI or another window shows without a Refresh.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { VenvCache, type VenvEntry } from '../../engine/venv/cache';
import { formatSize, venvLabels } from '../../engine/venv/describe';
import type { Check } from '../../engine/venv/marker';

/** A build or removal is a burst of renames: one refresh after it settles. */
const REFRESH_DEBOUNCE_MS = 300;

export class VenvItem extends vscode.TreeItem {
  readonly kind = 'venv';
  constructor(
    readonly entry: VenvEntry,
    checks: Check[],
    label: string,
  ) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.id = `venv:${entry.key}`;
    const used = entry.lastUsedAt ? `used ${entry.lastUsedAt.slice(0, 16).replace('T', ' ')}` : 'never used';
    this.description = entry.valid
      ? `${formatSize(entry.sizeBytes)} · ${used}${entry.usedBy.length ? ' · in use' : ''}`
      : `broken: ${entry.reason}`;
    this.iconPath = entry.valid
      ? new vscode.ThemeIcon('package')
      : new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
    const facts = [
      entry.python ? `Python ${entry.python}` : '',
      entry.deps !== undefined ? `${entry.deps} requirement${entry.deps === 1 ? '' : 's'}` : '',
    ]
      .filter(Boolean)
      .join(' · ');
    this.tooltip = new vscode.MarkdownString(
      [
        `**${entry.key}**`,
        entry.bundle ? `bundle \`${entry.bundle}\`` : '',
        facts,
        `\`${entry.path}\``,
        ...checks.map((c) => `${c.ok ? '✔' : '✘'} ${c.name}: ${c.detail}`),
      ]
        .filter(Boolean)
        .join('\n\n'),
    );
    const idle = entry.usedBy.length === 0;
    this.contextValue = `venv;${entry.valid ? 'valid;' : 'broken;'}${idle ? 'deletable;' : 'inUse;'}${idle && entry.bundle && !entry.orphanedFresh ? 'rebuildable;' : ''}`;
  }
}

export class VenvTreeProvider implements vscode.TreeDataProvider<VenvItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<VenvItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private watcher: FSWatcher | undefined;
  /** The directory watched: the venvs directory, or while it does not exist its nearest existing parent. */
  private watching: string | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(private cache: () => VenvCache) {
    this.watchDir();
  }

  refresh(): void {
    this.watchDir();
    this.changed.fire(undefined);
  }

  getTreeItem(element: VenvItem): vscode.TreeItem {
    return element;
  }

  async getChildren(element?: VenvItem): Promise<VenvItem[]> {
    if (element) return [];
    const cache = this.cache();
    const entries = await cache.list();
    const labels = venvLabels(entries);
    return Promise.all(
      entries.map(
        async (entry) =>
          new VenvItem(entry, (await cache.validate(entry.key)).checks, labels.get(entry.key) ?? entry.key),
      ),
    );
  }

  /**
   * Watches the venvs directory (its own entries: a venv appears, goes or is renamed into place).
   * Before the first build it does not exist: its nearest existing parent is watched until it
   * does. A watcher that errs (the directory removed under it) is set up again.
   */
  private watchDir(): void {
    if (this.disposed) return;
    const venvs = this.cache().dir;
    let dir = venvs;
    while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    if (this.watcher && this.watching === dir) return;
    this.watcher?.close();
    this.watcher = undefined;
    this.watching = undefined;
    // watching a parent, only the entry on the way to the venvs directory matters (a parent such as /tmp is busy)
    const onTheWay = dir === venvs ? undefined : path.relative(dir, venvs).split(path.sep)[0];
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (onTheWay === undefined || name === null || String(name) === onTheWay) this.changedOnDisk();
      });
      this.watcher.on('error', () => this.changedOnDisk(true));
      this.watching = dir;
    } catch {
      // unwatchable (no permission): Refresh still works, and the next refresh tries again
    }
  }

  private changedOnDisk(rewatch = false): void {
    if (rewatch) {
      this.watcher?.close();
      this.watcher = undefined;
    }
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.watchDir(); // the venvs directory may have appeared (or gone)
      this.changed.fire(undefined);
    }, REFRESH_DEBOUNCE_MS);
  }

  dispose(): void {
    this.disposed = true;
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    this.changed.dispose();
  }
}
