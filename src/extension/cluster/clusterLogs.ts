/**
 * A runner's stderr log on a Dask worker, followed in an output channel of its own (one per
 * worker and pid): its tail first, then what is appended, read through the scheduler every
 * couple of seconds (engine/cluster/workerFile.ts `LogTail`) for a while after it was asked for.
 * The whole file opens on demand as a read-only document.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LogTail, readWholeFile } from '../../engine/cluster/workerFile';
import { isFailure } from '../../engine/failure';
import { showText } from '../util/commands';
import type { ClusterSession } from './clusterSession';

const POLL_MS = 2000;
/** How long a log is followed after "Show Stderr Log" (asking again follows it longer). */
const FOLLOW_MS = 10 * 60_000;
/** What "Open Whole Log" reads at most: the last this many bytes of a larger file. */
const WHOLE_LOG_CAP_BYTES = 8 * 1024 * 1024;
/** What is kept of each channel's text for `text()` (the tests'). */
const KEPT_CHARS = 64 * 1024;

interface Followed {
  channel: vscode.OutputChannel;
  tail: LogTail;
  until: number;
  timer: NodeJS.Timeout | undefined;
  reading: boolean;
  kept: string;
}

export class ClusterLogs implements vscode.Disposable {
  private readonly followed = new Map<string, Followed>();
  private disposed = false;

  constructor(private readonly session: ClusterSession) {}

  /** Shows the log's tail in its channel and follows it; resolves once the tail is in. `who`: `pid N`. */
  async show(worker: string, logPath: string, who = path.basename(logPath)): Promise<vscode.OutputChannel> {
    const key = `${worker} ${logPath}`;
    let followed = this.followed.get(key);
    if (!followed) {
      followed = {
        channel: vscode.window.createOutputChannel(`ModelOps ${worker} · ${who}`),
        tail: new LogTail((params) => this.session.readFile(params), { worker, path: logPath }),
        until: 0,
        timer: undefined,
        reading: false,
        kept: '',
      };
      this.followed.set(key, followed);
      this.append(followed, `[modelops] ${logPath} on ${worker}\n`);
    }
    followed.until = Date.now() + FOLLOW_MS;
    followed.channel.show(true);
    await this.poll(followed);
    return followed.channel;
  }

  /** The whole log (its last 8 MiB), in a read-only document. */
  async openWhole(worker: string, logPath: string): Promise<vscode.TextEditor> {
    const whole = await readWholeFile(
      (params) => this.session.readFile(params),
      { worker, path: logPath, kind: 'log' },
      WHOLE_LOG_CAP_BYTES,
    );
    const header = `${logPath} on ${worker}, ${whole.size} bytes${whole.skipped ? ` (its first ${whole.skipped} bytes left out)` : ''}\n\n`;
    return showText(header + whole.text, `${path.basename(logPath)} on ${worker}`);
  }

  /** What the channel of that log was given (its last 64 KiB). */
  text(worker: string, logPath: string): string | undefined {
    return this.followed.get(`${worker} ${logPath}`)?.kept;
  }

  private async poll(followed: Followed): Promise<void> {
    clearTimeout(followed.timer);
    followed.timer = undefined;
    if (followed.reading) return;
    followed.reading = true;
    let again = true;
    try {
      const got = await followed.tail.next();
      if (got.restarted) this.append(followed, '[modelops] the log was truncated or replaced: its tail again\n');
      else if (got.skipped > 0) this.append(followed, `[modelops] … ${got.skipped} earlier bytes left out\n`);
      if (got.text) this.append(followed, got.text);
    } catch (error) {
      again = false;
      this.append(followed, `[modelops] stopped following: ${isFailure(error) ? error.message : String(error)}\n`);
    } finally {
      followed.reading = false;
    }
    if (again && !this.disposed && Date.now() < followed.until)
      followed.timer = setTimeout(() => void this.poll(followed), POLL_MS);
  }

  private append(followed: Followed, text: string): void {
    if (this.disposed) return;
    followed.channel.append(text);
    followed.kept = (followed.kept + text).slice(-KEPT_CHARS);
  }

  dispose(): void {
    this.disposed = true;
    for (const followed of this.followed.values()) {
      clearTimeout(followed.timer);
      followed.until = 0;
      followed.channel.dispose();
    }
    this.followed.clear();
  }
}
