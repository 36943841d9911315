/**
 * Jobs as test results. A replicate's task-exception fails it, with a message at the raising
 * line and the bundle's frames as its stack; a crash, a timeout, a protocol or install failure
 * is an error; a skipped aggregation, or a task its job never ran, is skipped. A set fails
 * when a replicate or its aggregation does; the job passes only when it succeeded. While a job
 * runs, its events report what has items; when it ends, what its results folder holds is
 * reported for all of it, so the view says what the disk says.
 */
import * as vscode from 'vscode';
import type { FailureKind, SourceLocation } from '../../engine/failure';
import type { JobEvent } from '../../engine/job/events';
import { parseAggKey, parseSimKey } from '../../engine/job/taskKeys';
import type { JobInfo, ParamSetInfo, TaskInfo } from '../jobs/jobModel';
import type { JobWatch } from '../jobs/jobRunner';
import type { TestItems } from './testItems';

/** A bundle's exception (a replicate's, or a target's in an aggregation) is a failure; anything else, an error. */
const FAILED_KINDS: ReadonlySet<FailureKind> = new Set(['task-exception', 'aggregation-failed']);

/** One state, as a run reports it (what the tests of this module read back). */
export interface Reported {
  run: string;
  item: string;
  state: 'started' | 'passed' | 'failed' | 'errored' | 'skipped';
  message?: string;
  /** The message's `file:line`, its stack's frames (innermost first) and its actions. */
  location?: string;
  stack?: string[];
  actions?: string;
}

/** Every state reported, oldest first, bounded: what the extension's tests assert on. */
export class ReportLog {
  readonly entries: Reported[] = [];

  add(entry: Reported): void {
    this.entries.push(entry);
    if (this.entries.length > 20_000) this.entries.splice(0, 10_000);
  }
}

/** A test run, and the log of what it reported. */
export class Reporter {
  private readonly reported = new Set<vscode.TestItem>();

  constructor(
    readonly run: vscode.TestRun,
    readonly name: string,
    private readonly log: ReportLog,
  ) {}

  started(item: vscode.TestItem): void {
    this.run.started(item);
    this.log.add({ run: this.name, item: pathOf(item), state: 'started' });
  }

  passed(item: vscode.TestItem, ms?: number): void {
    this.run.passed(item, ms);
    this.done(item, 'passed');
  }

  failed(item: vscode.TestItem, message: vscode.TestMessage, ms?: number): void {
    this.run.failed(item, message, ms);
    this.done(item, 'failed', message);
  }

  errored(item: vscode.TestItem, message: vscode.TestMessage, ms?: number): void {
    this.run.errored(item, message, ms);
    this.done(item, 'errored', message);
  }

  skipped(item: vscode.TestItem, why?: string): void {
    this.run.skipped(item);
    if (why) this.run.appendOutput(`${why}\r\n`, undefined, item);
    this.done(item, 'skipped');
  }

  /** Whether an outcome was reported for the item in this run. */
  has(item: vscode.TestItem): boolean {
    return this.reported.has(item);
  }

  /** A task's state (a replicate's or an aggregation's) as its outcome; nothing while queued or running. */
  task(item: vscode.TestItem, task: TaskInfo, replicate?: { job: JobInfo; paramId: string }): void {
    switch (task.state) {
      case 'ok':
        return this.passed(item, task.ms);
      case 'failed':
        return this.failure(item, task, replicate);
      case 'skipped':
        return this.skipped(item, task.message && `${task.kind}: ${task.message}`);
      case 'not-run':
        return this.skipped(item, 'its job ended before it ran');
    }
  }

  /** A set's outcome from its replicates and its aggregation. */
  set(item: vscode.TestItem, set: ParamSetInfo): void {
    const agg = set.aggregation;
    const total = set.tasks.length;
    if (set.failed || agg.state === 'failed') {
      const failed = set.tasks.filter((task) => task.state === 'failed');
      const errored =
        failed.some((task) => !FAILED_KINDS.has(task.kind!)) ||
        (agg.state === 'failed' && agg.kind !== undefined && !FAILED_KINDS.has(agg.kind));
      const first = failed[0] ?? agg;
      const text = `${set.failed}/${total} replicates failed${set.failed ? ` (first: replicate ${first.replicate}, ${first.kind}: ${first.message ?? ''})` : ''}; aggregation ${agg.state}${agg.state === 'failed' ? `: ${agg.kind}: ${agg.message ?? ''}` : ''}`;
      const message = messageAt(text, first.location);
      return errored ? this.errored(item, message) : this.failed(item, message);
    }
    // no duration of its own: VS Code shows the time from its start (a set's first replicate) to now
    if (agg.state === 'ok') return this.passed(item);
    if (agg.state === 'skipped') return this.skipped(item, `aggregation skipped: ${agg.message ?? ''}`);
    if (set.ok + set.failed === 0 && agg.state === 'not-run') return this.skipped(item, 'its job ended before it ran');
    if (agg.state === 'not-run')
      return this.skipped(item, `${set.ok}/${total} replicates ok, not aggregated: its job ended`);
  }

  /** A job's outcome, from its status: succeeded passes, failed fails, aborted is an error, interrupted skipped. */
  job(item: vscode.TestItem, job: JobInfo): void {
    const sets = [...job.sets.values()];
    const total = sets.reduce((sum, set) => sum + set.tasks.length, 0);
    const ok = sets.reduce((sum, set) => sum + set.ok, 0);
    const failed = sets.reduce((sum, set) => sum + set.failed, 0);
    const aggFailed = sets.filter((set) => set.aggregation.state === 'failed').length;
    const counts = `${ok}/${total} replicates ok, ${failed} failed; ${aggFailed} of ${sets.length} aggregations failed`;
    switch (job.status) {
      case 'succeeded':
        return this.passed(item, job.ms);
      case 'failed':
        return this.failed(item, new vscode.TestMessage(`job ${job.jobId} failed: ${counts}`), job.ms);
      case 'aborted': {
        const cause = job.failure ? `${job.failure.kind}: ${job.failure.message}` : 'aborted';
        return this.errored(item, messageAt(`job ${job.jobId} aborted: ${cause} (${counts})`, job.failure?.location));
      }
      case 'interrupted':
        return this.skipped(item, `job ${job.jobId} was interrupted: ${counts}`);
    }
  }

  private failure(item: vscode.TestItem, task: TaskInfo, replicate?: { job: JobInfo; paramId: string }): void {
    const crash = task.crash ? ` (${task.crash.signal ?? `exit ${task.crash.exit_code}`})` : '';
    const message = messageAt(`${task.kind}: ${task.message ?? ''}${crash}`, task.location);
    const frames = task.location ? [task.location, ...[...(task.callers ?? [])].reverse()] : [];
    message.stackTrace = frames.map(
      (frame) =>
        new vscode.TestMessageStackFrame(
          frame.function ?? '<module>',
          vscode.Uri.file(frame.file),
          new vscode.Position(frame.line - 1, 0),
        ),
    );
    // the actions on a replicate's failure (package.json, testing/message/context)
    if (replicate) message.contextValue = `replicate;${task.pid !== undefined ? 'stderr;' : ''}`;
    if (task.kind && FAILED_KINDS.has(task.kind)) this.failed(item, message, task.ms);
    else this.errored(item, message, task.ms);
  }

  private done(item: vscode.TestItem, state: Reported['state'], message?: vscode.TestMessage): void {
    this.reported.add(item);
    const at = (uri: vscode.Uri | undefined, position: vscode.Position | undefined) =>
      `${uri?.fsPath}:${(position?.line ?? -1) + 1}`;
    this.log.add({
      run: this.name,
      item: pathOf(item),
      state,
      message: message && (typeof message.message === 'string' ? message.message : message.message.value),
      location: message?.location && at(message.location.uri, message.location.range.start),
      stack: message?.stackTrace?.map((frame) => at(frame.uri, frame.position)),
      actions: message?.contextValue,
    });
  }
}

/**
 * Everything of a job its results folder says, reported: every set, its aggregation, and the
 * replicates that have items (and those that failed, which get one), but what was reported already.
 */
export function reportJob(items: TestItems, reporter: Reporter, job: JobInfo): void {
  for (const set of job.sets.values()) {
    const setItem = items.setItemOf(job, set.paramId);
    if (!setItem) continue;
    for (const task of set.tasks) {
      const item = items.replicateItemOf(job, set.paramId, task.replicate, task.state === 'failed');
      if (item && !reporter.has(item)) reporter.task(item, task, { job, paramId: set.paramId });
    }
    const aggregation = items.aggregationItemOf(job, set.paramId);
    if (aggregation && !reporter.has(aggregation)) reporter.task(aggregation, set.aggregation);
    if (!reporter.has(setItem)) reporter.set(setItem, set);
  }
  reporter.job(items.jobItem(job), job);
}

/**
 * A job running here, as a test run: its sets started as their replicates start, outcomes as
 * they come for what has items (failed replicates get one), and at its end the rest from disk.
 * `ownsRun`: the run ends with the job (else the profile that started it ends it).
 */
export class JobTestRun implements JobWatch {
  private readonly setsStarted = new Set<string>();

  constructor(
    private readonly items: TestItems,
    private readonly reporter: Reporter,
    job: JobInfo,
    private readonly ownsRun: boolean,
  ) {
    const jobItem = items.jobItem(job);
    reporter.started(jobItem);
    jobItem.children.forEach((setItem) => reporter.run.enqueued(setItem));
  }

  event(job: JobInfo, event: JobEvent): void {
    switch (event.type) {
      case 'task-start': {
        const sim = parseSimKey(event.key);
        if (!sim) return;
        this.setStarted(job, sim.paramId);
        const item = this.items.replicateItemOf(job, sim.paramId, sim.replicate);
        if (item) this.reporter.started(item);
        return;
      }
      case 'task-done': {
        const sim = parseSimKey(event.key);
        const task = sim && job.sets.get(sim.paramId)?.tasks[sim.replicate];
        if (!sim || !task) return;
        this.setStarted(job, sim.paramId);
        const item = this.items.replicateItemOf(job, sim.paramId, sim.replicate, task.state === 'failed');
        if (item) this.reporter.task(item, task, { job, paramId: sim.paramId });
        return;
      }
      case 'agg-start': {
        const paramId = parseAggKey(event.key);
        const item = paramId === undefined ? undefined : this.items.aggregationItemOf(job, paramId);
        if (item) this.reporter.started(item);
        return;
      }
      case 'agg-done': {
        const paramId = parseAggKey(event.key);
        const set = paramId === undefined ? undefined : job.sets.get(paramId);
        if (!set) return;
        const aggregation = this.items.aggregationItemOf(job, set.paramId);
        if (aggregation) this.reporter.task(aggregation, set.aggregation);
        const setItem = this.items.setItemOf(job, set.paramId);
        if (setItem) this.reporter.set(setItem, set);
        return;
      }
    }
  }

  ended(job: JobInfo): void {
    reportJob(this.items, this.reporter, job);
    if (this.ownsRun) this.reporter.run.end();
  }

  private setStarted(job: JobInfo, paramId: string): void {
    if (this.setsStarted.has(paramId)) return;
    this.setsStarted.add(paramId);
    const item = this.items.setItemOf(job, paramId);
    if (item) this.reporter.started(item);
  }
}

/** A message at a source line, when there is one. */
export function messageAt(text: string, location: SourceLocation | undefined): vscode.TestMessage {
  const message = new vscode.TestMessage(text);
  if (location)
    message.location = new vscode.Location(
      vscode.Uri.file(location.file),
      new vscode.Position(Math.max(0, location.line - 1), 0),
    );
  return message;
}

/** `job/set/replicate` ids, for the log. */
function pathOf(item: vscode.TestItem): string {
  const ids: string[] = [];
  for (let at: vscode.TestItem | undefined = item; at; at = at.parent) ids.unshift(at.id);
  return ids.join('/');
}
