/**
 * "ModelOps Timeline": a webview panel that draws a job's timeline (engine/trace/timeline.ts)
 * with the run report's page script, live while the job runs in this editor. Each running job
 * keeps its timeline from its first event, so the panel can be opened at any moment; a job that
 * is not running is read from its events.jsonl. The page is sent what changed at most ten times
 * a second, and a click on a bar reveals the task in the Jobs view and opens its failure.
 *
 * The page holds no state worth keeping: when it is hidden VS Code may drop it, and when shown
 * again it says `ready` and is sent the whole timeline anew.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { jobLabel } from '../../engine/job/spec';
import { RUNNING_FIELDS, TASK_FIELDS, Timeline, type TimelineUpdate } from '../../engine/trace/timeline';
import { TIMELINE_SCRIPT, TIMELINE_STYLE } from '../../engine/trace/timelineScript';
import { setLabel, type JobInfo } from '../jobs/jobModel';
import type { JobWatch, JobWatcher } from '../jobs/jobRunner';
import type { JobsNode, JobsTreeProvider } from '../jobs/jobsTree';
import { Coalesced } from '../util/coalesce';

/** What the page reports after each frame it draws (timelineScript.ts's `stats`). */
export interface TimelineFrameStats {
  frames: number;
  lastMs: number;
  maxMs: number;
  totalMs: number;
  updates: number;
  tasks: number;
  lanes: number;
  running: number;
  ended: boolean;
}

/** What tests (and benchmarks) may see and do. */
export interface TimelineApi {
  /** The job the panel shows, if it is open. */
  readonly shownJob: string | undefined;
  /** Every update posted to the page: when, whether whole, and how many tasks it carried. */
  readonly posted: { at: number; reset: boolean; tasks: number; running: number }[];
  /** The page's latest frame statistics. */
  readonly stats: TimelineFrameStats | undefined;
  /** Task keys a click on the page asked to open. */
  readonly opened: string[];
  /** Does what a click on a bar of the page does. */
  click(set: number, replicate: number): Promise<void>;
}

const VIEW_TYPE = 'modelopsDebugger.timeline';

export class TimelinePanel implements JobWatcher, vscode.Disposable {
  /** Each job running in this editor, by results folder, with its timeline so far. */
  private readonly live = new Map<string, Timeline>();
  private panel: vscode.WebviewPanel | undefined;
  private shown: { job: JobInfo; timeline: Timeline } | undefined;
  private readonly send = new Coalesced(() => this.postChanges(), 100);
  private readonly disposables: vscode.Disposable[] = [];
  readonly api: TimelineApi;
  private readonly posted: TimelineApi['posted'] = [];
  private readonly openedKeys: string[] = [];
  private stats: TimelineFrameStats | undefined;

  constructor(
    private readonly tree: JobsTreeProvider,
    private readonly view: vscode.TreeView<JobsNode>,
    private readonly log: vscode.LogOutputChannel,
  ) {
    const shown = () => this.shown?.job.jobId;
    const stats = () => this.stats;
    this.api = {
      get shownJob() {
        return shown();
      },
      posted: this.posted,
      get stats() {
        return stats();
      },
      opened: this.openedKeys,
      click: (set, replicate) => this.open(set, replicate),
    };
  }

  started(job: JobInfo): JobWatch {
    const timeline = new Timeline(job.jobId, setsOf(job));
    this.live.set(job.dir, timeline);
    // a panel showing a job that has ended follows the next one started (a resume continues its own)
    if (this.panel && (!this.shown || !this.live.has(this.shown.job.dir) || this.shown.job.dir === job.dir))
      this.showJob(job, timeline);
    return {
      event: (_job, event) => {
        timeline.add(event);
        if (this.shown?.timeline === timeline) this.send.schedule();
      },
      ended: () => {
        this.live.delete(job.dir);
        if (this.shown?.timeline === timeline) this.send.flush();
      },
    };
  }

  opened(): void {}

  /** Opens the panel on a job (or brings it forward): live if it runs here, else from its events.jsonl. */
  show(job: JobInfo): void {
    const timeline = this.live.get(job.dir) ?? Timeline.fromFolder(job.dir, job.jobId, setsOf(job));
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(VIEW_TYPE, 'ModelOps Timeline', vscode.ViewColumn.Active, {
        enableScripts: true,
        localResourceRoots: [],
      });
      this.panel.webview.html = pageHtml(randomBytes(16).toString('base64'));
      this.panel.webview.onDidReceiveMessage((message: unknown) => this.received(message), undefined, this.disposables);
      this.panel.onDidDispose(
        () => {
          this.panel = undefined;
          this.shown = undefined;
          this.send.cancel();
        },
        undefined,
        this.disposables,
      );
    } else this.panel.reveal();
    this.showJob(job, timeline);
  }

  private showJob(job: JobInfo, timeline: Timeline): void {
    this.shown = { job, timeline };
    if (this.panel) this.panel.title = `Timeline: ${jobLabel(job.jobId)}`;
    this.post(timeline.snapshot());
  }

  private received(message: unknown): void {
    const { type } = (message ?? {}) as { type?: unknown };
    if (type === 'ready' && this.shown) this.post(this.shown.timeline.snapshot());
    else if (type === 'drawn') this.stats = (message as { stats: TimelineFrameStats }).stats;
    else if (type === 'open') {
      const { set, replicate } = message as { set: number; replicate: number };
      if (Number.isInteger(set) && Number.isInteger(replicate)) void this.open(set, replicate);
    }
  }

  private postChanges(): void {
    if (this.shown) this.post(this.shown.timeline.changes());
  }

  private post(update: TimelineUpdate): void {
    if (!this.panel) return;
    this.posted.push({
      at: Date.now(),
      reset: update.reset,
      tasks: update.tasks.length / TASK_FIELDS,
      running: update.running.length / RUNNING_FIELDS,
    });
    void this.panel.webview.postMessage({ type: 'timeline', update });
  }

  /** A click on a bar: the task revealed in the Jobs view, and its failure (or result) opened if it failed. */
  private async open(set: number, replicate: number): Promise<void> {
    const shown = this.shown;
    const key = shown?.timeline.keyOf(set, replicate);
    if (!shown || !key) return;
    this.openedKeys.push(key);
    const item = this.tree.taskItem(shown.job.jobId, key);
    if (!item) {
      this.log.info(`Timeline: ${key} is not in the Jobs view (the job was cleared from it).`);
      return;
    }
    await this.view.reveal(item, { select: true, focus: false, expand: true });
    const failed = item.task.state === 'failed' || item.task.state === 'skipped';
    if (failed && item.command)
      await vscode.commands.executeCommand(item.command.command, ...(item.command.arguments ?? []));
  }

  dispose(): void {
    this.send.dispose();
    this.panel?.dispose();
    for (const disposable of this.disposables) disposable.dispose();
  }
}

/** The parameter sets in the job's order, each as its parameters read. */
function setsOf(job: JobInfo): { param_id: string; label: string }[] {
  return [...job.sets.values()].map((set) => ({ param_id: set.paramId, label: setLabel(set) }));
}

/**
 * The page: no remote content, no inline code but what carries this page's nonce, and the
 * editor's theme colours through its `--vscode-*` variables.
 */
function pageHtml(nonce: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<style nonce="${nonce}">
:root {
  --fg: var(--vscode-foreground); --bg: var(--vscode-editor-background); --muted: var(--vscode-descriptionForeground);
  --line: var(--vscode-editorWidget-border, var(--vscode-panel-border)); --ok: var(--vscode-testing-iconPassed);
  --bad: var(--vscode-testing-iconFailed); --other: var(--vscode-disabledForeground); --run: var(--vscode-charts-blue);
}
body { color: var(--fg); background: var(--bg); font-family: var(--vscode-font-family); padding: 8px 12px; }
${TIMELINE_STYLE}
</style></head>
<body><div id="timeline-root"></div>
<script nonce="${nonce}">${TIMELINE_SCRIPT}</script>
</body></html>
`;
}
