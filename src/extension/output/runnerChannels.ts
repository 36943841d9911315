/**
 * One output channel per bundle for its runners' stderr, live, each line with the task the
 * runner was working on and its pid. Lines are sent to the window in batches, at most
 * SHOWN_BYTES_PER_BATCH ten times a second: a runner writing megabytes a second must not bury
 * the editor, and every byte is in the job's `logs/` anyway (the channel says how much it left
 * out). A bounded copy of the recent lines is kept so the view (and tests) can read back what
 * was shown.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { shortKey } from '../../engine/job/taskKeys';
import { Coalesced } from '../util/coalesce';

const KEPT_LINES = 5000;
const SHOWN_BYTES_PER_BATCH = 256 * 1024;

interface BundleChannel {
  channel: vscode.LogOutputChannel;
  recent: string[];
  partial: Map<number | undefined, string>;
  batch: string[];
  batchBytes: number;
  left: { lines: number; bytes: number };
  flush: Coalesced;
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
      if (bundle.batchBytes + shown.length > SHOWN_BYTES_PER_BATCH) {
        bundle.left.lines++;
        bundle.left.bytes += Buffer.byteLength(line) + 1;
        continue;
      }
      bundle.batch.push(shown);
      bundle.batchBytes += shown.length + 1;
      bundle.recent.push(shown);
    }
    if (bundle.recent.length > KEPT_LINES) bundle.recent.splice(0, bundle.recent.length - KEPT_LINES);
    bundle.flush.schedule();
  }

  /**
   * A warning about a task, in its bundle's channel among the stderr lines (a stdout write the
   * runner absorbed: the bytes are in the stderr above it, the verdict is this line).
   */
  warn(bundleDir: string, pid: number | undefined, task: string, message: string): void {
    const bundle = this.channelFor(bundleDir);
    bundle.flush.flush(); // after the stderr that came before it
    const shown = `[${shortKey(task)} · pid ${pid ?? '?'}] ${message}`;
    bundle.channel.warn(shown);
    bundle.recent.push(`⚠ ${shown}`);
  }

  /** Shows the lines waiting for the next batch now (a job has ended). */
  flush(): void {
    for (const bundle of this.channels.values()) bundle.flush.flush();
  }

  private show(bundle: BundleChannel): void {
    if (bundle.left.lines) {
      bundle.batch.push(
        `[… ${bundle.left.lines} lines (${bundle.left.bytes} bytes) of stderr not shown here: faster than the editor should follow; every byte is in the job's logs/]`,
      );
      bundle.left = { lines: 0, bytes: 0 };
    }
    if (bundle.batch.length) bundle.channel.append(`${bundle.batch.join('\n')}\n`);
    bundle.batch = [];
    bundle.batchBytes = 0;
  }

  /** The recent lines shown for a bundle. */
  recent(bundleDir: string): readonly string[] {
    return this.channels.get(bundleDir)?.recent ?? [];
  }

  private channelFor(bundleDir: string): BundleChannel {
    let bundle = this.channels.get(bundleDir);
    if (!bundle) {
      const created: BundleChannel = {
        channel: vscode.window.createOutputChannel(`ModelOps: ${path.basename(bundleDir)}`, { log: true }),
        recent: [],
        partial: new Map(),
        batch: [],
        batchBytes: 0,
        left: { lines: 0, bytes: 0 },
        flush: new Coalesced(() => this.show(created)),
      };
      bundle = created;
      this.channels.set(bundleDir, bundle);
    }
    return bundle;
  }

  dispose(): void {
    for (const bundle of this.channels.values()) {
      bundle.flush.dispose();
      bundle.channel.dispose();
    }
    this.channels.clear();
  }
}
