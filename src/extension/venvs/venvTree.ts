/**
 * The Venv Caches view: every cached venv, broken ones shown (with why), never hidden. The
 * tooltip is the validity checklist; the view follows the cache directory on disk.
 */
import { watch, type FSWatcher } from 'node:fs';
import * as vscode from 'vscode';
import { VenvCache, type VenvEntry } from '../../engine/venv/cache';
import type { Check } from '../../engine/venv/marker';

const REFRESH_DEBOUNCE_MS = 300;

export class VenvItem extends vscode.TreeItem {
  readonly kind = 'venv';
  constructor(
    readonly entry: VenvEntry,
    checks: Check[],
  ) {
    super(entry.key, vscode.TreeItemCollapsibleState.None);
    this.id = `venv:${entry.key}`;
    const used = entry.lastUsedAt ? `used ${entry.lastUsedAt.slice(0, 16).replace('T', ' ')}` : 'never used';
    this.description = entry.valid ? `Python ${entry.python ?? '?'} · ${formatSize(entry.sizeBytes)} · ${used}${entry.usedBy.length ? ' · in use' : ''}` : `broken: ${entry.reason}`;
    this.iconPath = entry.valid ? new vscode.ThemeIcon('package') : new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
    this.tooltip = new vscode.MarkdownString([`**${entry.key}**`, entry.bundle ? `bundle \`${entry.bundle}\`` : '', ...checks.map((c) => `${c.ok ? '✔' : '✘'} ${c.name}: ${c.detail}`)].filter(Boolean).join('\n\n'));
    const idle = entry.usedBy.length === 0;
    this.contextValue = `venv;${entry.valid ? 'valid;' : 'broken;'}${idle ? 'deletable;' : 'inUse;'}${idle && entry.bundle && !entry.orphanedFresh ? 'rebuildable;' : ''}`;
  }
}

export class VenvTreeProvider implements vscode.TreeDataProvider<VenvItem>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<VenvItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;

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
    return Promise.all(entries.map(async (entry) => new VenvItem(entry, (await cache.validate(entry.key)).checks)));
  }

  /** Deleted or rebuilt on disk by another window or the CLI: show it. */
  private watchDir(): void {
    this.watcher?.close();
    try {
      this.watcher = watch(this.cache().dir, () => {
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.changed.fire(undefined), REFRESH_DEBOUNCE_MS);
      });
    } catch {
      this.watcher = undefined; // no cache directory yet: refresh() after the first build watches it
    }
  }

  dispose(): void {
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    this.changed.dispose();
  }
}

function formatSize(bytes: number): string {
  return bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 2).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`;
}
