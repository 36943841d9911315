/**
 * The "ModelOps Protocol" channel: every runner's JSON-RPC frames while
 * `modelopsDebugger.trace` is on — "messages" one line per frame with a glance at its payload,
 * "verbose" with the payload. Lines go to the window in batches, like runners' stderr.
 */
import * as vscode from 'vscode';
import { describeEntry } from '../../engine/handshake/transcriptText';
import type { TranscriptEntry } from '../../engine/process/warmProcess';
import { Coalesced } from '../util/coalesce';

export type TraceLevel = 'off' | 'messages' | 'verbose';

export class ProtocolTrace implements vscode.Disposable {
  private channel: vscode.OutputChannel | undefined;
  private batch: string[] = [];
  private readonly flushing = new Coalesced(() => this.flush());
  /** The lines shown, the latest last (bounded): for tests and for a look back. */
  readonly recent: string[] = [];

  level(): TraceLevel {
    return vscode.workspace.getConfiguration('modelopsDebugger').get<TraceLevel>('trace') ?? 'off';
  }

  /** What a job or handshake passes to the engine: undefined while tracing is off (no cost). */
  listener(): ((pid: number | undefined, entry: TranscriptEntry) => void) | undefined {
    const level = this.level();
    if (level === 'off') return undefined;
    return (pid, entry) => this.append(`[pid ${pid ?? '?'}] ${describeEntry(entry, level === 'verbose')}`);
  }

  flush(): void {
    this.flushing.cancel();
    if (!this.batch.length) return;
    this.channel ??= vscode.window.createOutputChannel('ModelOps Protocol');
    this.channel.append(`${this.batch.join('\n')}\n`);
    this.batch = [];
  }

  private append(line: string): void {
    this.batch.push(line);
    this.recent.push(line);
    if (this.recent.length > 2000) this.recent.splice(0, this.recent.length - 2000);
    this.flushing.schedule();
  }

  dispose(): void {
    this.flushing.dispose();
    this.channel?.dispose();
  }
}
