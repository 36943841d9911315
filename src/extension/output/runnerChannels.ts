/**
 * One output channel per bundle for its runners' stderr, live, each line with the task the
 * runner was working on and its pid. A bounded copy of the recent lines is kept so the view
 * (and tests) can read back what was shown.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';

const KEPT_LINES = 5000;

interface BundleChannel {
  channel: vscode.LogOutputChannel;
  recent: string[];
  partial: Map<number | undefined, string>;
}

export class RunnerChannels implements vscode.Disposable {
  private readonly channels = new Map<string, BundleChannel>();

  append(bundleDir: string, pid: number | undefined, chunk: Buffer, task: string | undefined): void {
    const bundle = this.channelFor(bundleDir);
    const text = (bundle.partial.get(pid) ?? '') + chunk.toString('utf8');
    const lines = text.split('\n');
    bundle.partial.set(pid, lines.pop() ?? '');
    for (const line of lines) {
      const shown = `[${shortKey(task)} · pid ${pid ?? '?'}] ${line}`;
      bundle.channel.appendLine(shown);
      bundle.recent.push(shown);
    }
    if (bundle.recent.length > KEPT_LINES) bundle.recent.splice(0, bundle.recent.length - KEPT_LINES);
  }

  /** The recent lines shown for a bundle. */
  recent(bundleDir: string): readonly string[] {
    return this.channels.get(bundleDir)?.recent ?? [];
  }

  show(bundleDir: string): void {
    this.channels.get(bundleDir)?.channel.show(true);
  }

  private channelFor(bundleDir: string): BundleChannel {
    let bundle = this.channels.get(bundleDir);
    if (!bundle) {
      bundle = { channel: vscode.window.createOutputChannel(`ModelOps: ${path.basename(bundleDir)}`, { log: true }), recent: [], partial: new Map() };
      this.channels.set(bundleDir, bundle);
    }
    return bundle;
  }

  dispose(): void {
    for (const bundle of this.channels.values()) bundle.channel.dispose();
    this.channels.clear();
  }
}

/** Task keys are long (a 64-hex param_id): shortened for display only. */
export function shortKey(key: string | undefined): string {
  if (!key) return 'runner';
  const match = /^(sim|agg)-([0-9a-f]{64})(-\d+)?$/.exec(key);
  return match ? `${match[1]}-${match[2].slice(0, 8)}${match[3] ?? ''}` : key;
}
