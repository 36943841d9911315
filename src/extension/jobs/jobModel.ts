/**
 * What the editor knows about jobs: the results folder as the engine reads it (onDisk.ts)
 * whenever a job starts, resumes, reruns, ends or is opened from disk, and between those the
 * engine's event stream; the views never reach into the engine.
 */
import type { FailureKind, SourceLocation } from '../../engine/failure';
import type { JobCounts, JobEvent, JobStatus } from '../../engine/job/events';
import { bundleCallers, firstFailedLocation } from '../../engine/job/book';
import { aggKey, parseAggKey, parseSimKey, simKey } from '../../engine/job/taskKeys';
import type { JobOnDisk, WarningEvent } from '../../engine/job/onDisk';
import type { StderrRange } from '../../engine/job/records';
import { crashFacts, type CrashFacts } from '../../engine/diagnose/crashFacts';
import { paramTexts } from '../../engine/job/ids';
import type { JobSpec } from '../../engine/job/spec';
import type { DeterminismVerdict } from '../../engine/replicate/determinism';
import type { PyFrame } from '../../engine/protocol';

/**
 * `finished`: done on a Dask worker, its outcome not here yet (it comes with its set's
 * aggregation). `not-run`: its job ended (cancelled, aborted, killed) before it ran.
 */
export type TaskState = 'queued' | 'running' | 'finished' | 'ok' | 'failed' | 'skipped' | 'not-run';

export interface TaskInfo {
  key: string;
  replicate: number;
  /** The replicate's seed, as a decimal (seeds go to 2^64-1); none for an aggregation. */
  seed?: string;
  state: TaskState;
  attempts: number;
  pid?: number;
  /** The Dask worker that ran it (dask backend). */
  worker?: string;
  ms?: number;
  kind?: FailureKind;
  message?: string;
  location?: SourceLocation;
  /** The bundle's frames that led to `location`, outermost first. */
  callers?: SourceLocation[];
  /** Warnings about this task (lingering-descendants: processes it left running). */
  warnings?: TaskWarning[];
  /** Its part of its runner's stderr log. */
  stderr?: StderrRange;
  /** The runner died under it: how, where, its last stderr lines and stack. */
  crash?: CrashFacts;
}

export interface TaskWarning {
  kind: FailureKind;
  message: string;
  location?: SourceLocation;
  /** lingering-descendants: how many processes. */
  processes?: number;
}

export interface ParamSetInfo {
  paramId: string;
  /** Parameter values as Python writes them (`1.0`, `"a"`, `true`). */
  params: Record<string, string>;
  tasks: TaskInfo[];
  aggregation: TaskInfo;
  ok: number;
  failed: number;
  /** Dask: finished on a worker, outcome not here yet. */
  finished: number;
  /**
   * Replicates announced as running and not yet done. A replicate is announced only if it still
   * runs at the engine's next announcement (≤ 50 ms after it began, JobBook.taskStarted), so on a
   * job of fast replicates this is often 0 while the set is being worked through: see setIsActive.
   */
  running: number;
  /** A replicate of this run finished here, live: with some still queued, the set is in progress. */
  progressed: boolean;
  /** What "Run Twice and Compare" found of this set, until the job runs again. */
  determinism?: { verdict: DeterminismVerdict; message: string };
}

export interface JobInfo {
  jobId: string;
  dir: string;
  status: JobStatus | 'running';
  counts?: JobCounts;
  ms?: number;
  /** Why an aborted job stopped, from its `job-done` event. */
  failure?: { kind: FailureKind; message: string; location?: SourceLocation };
  sets: Map<string, ParamSetInfo>;
  startedAt: number;
  /**
   * A job that never started: its job file, bundle or pyproject was refused before a results
   * folder was made. The file it came from (job file, or bundle for "Run Bundle…"); no sets.
   */
  notStarted?: string;
  /** The job file (or parameters file) it ran from: the tree shows earlier runs of it under the newest. */
  source?: string;
  /** What the results folder held that is not a result (named, with why). */
  problems?: string[];
}

export class JobModel {
  readonly jobs = new Map<string, JobInfo>();

  /** A job about to run, or read from disk; a job id seen before (a resume) keeps its place and source. */
  addJob(spec: JobSpec, dir: string, source?: string): JobInfo {
    const sets = new Map<string, ParamSetInfo>();
    for (const set of spec.parameterSets) {
      sets.set(set.paramId, {
        paramId: set.paramId,
        // as Python writes them: 1.0 stays 1.0
        params: paramTexts(set.params),
        tasks: set.seeds.map((seed, replicate) => ({
          key: simKey(set.paramId, replicate),
          replicate,
          seed: String(seed),
          state: 'queued',
          attempts: 0,
        })),
        aggregation: { key: aggKey(set.paramId), replicate: -1, state: 'queued', attempts: 0 },
        ok: 0,
        failed: 0,
        finished: 0,
        running: 0,
        progressed: false,
      });
    }
    const job: JobInfo = {
      jobId: spec.jobId,
      dir,
      status: 'running',
      sets,
      startedAt: Date.now(),
      source: source ?? this.jobs.get(spec.jobId)?.source,
    };
    this.jobs.set(spec.jobId, job);
    return job;
  }

  /**
   * A job refused before it started, shown with its cause; one per source file (a second try
   * replaces it, a start removes it), never in place of a job of the same id that did run.
   */
  addNotStarted(source: string, jobId: string, failure: NonNullable<JobInfo['failure']>): JobInfo {
    const job: JobInfo = {
      jobId,
      dir: '',
      status: 'aborted',
      failure,
      sets: new Map(),
      startedAt: Date.now(),
      notStarted: source,
    };
    this.jobs.delete(notStartedKey(source)); // re-added last: the tree shows the newest first
    this.jobs.set(notStartedKey(source), job);
    return job;
  }

  /** This source started a job: its earlier refusal no longer stands. */
  forgetNotStarted(source: string): void {
    this.jobs.delete(notStartedKey(source));
  }

  /**
   * The results folder is the truth: every task with a result file shows it, whatever the
   * events said. `runningHere`: this editor is running the job now, so a task without a result
   * is queued or running; otherwise the job's status is the folder's, and a task without a
   * result in a job that ended never ran.
   */
  applyDisk(job: JobInfo, disk: JobOnDisk, { runningHere }: { runningHere: boolean }): void {
    const ended = !runningHere && disk.status !== 'running';
    for (const set of job.sets.values()) {
      const onDisk = disk.sets.get(set.paramId);
      for (const task of set.tasks) {
        const record = onDisk?.sims.get(task.replicate);
        if (record) {
          Object.assign(task, {
            pid: record.pid,
            worker: record.worker,
            ms: record.ms,
            attempts: record.attempts,
            kind: record.kind,
            message: record.message,
            location: record.location,
            callers:
              record.location &&
              bundleCallers(record.evidence?.frames as PyFrame[] | undefined, record.location, disk.job.bundleDir),
          });
          Object.assign(task, {
            stderr: record.stderr,
            crash: record.evidence ? crashFacts(record.evidence) : undefined,
          });
          this.move(set, task, record.status);
        } else {
          if (task.state === 'ok' || task.state === 'failed')
            Object.assign(task, {
              kind: undefined,
              message: undefined,
              location: undefined,
              callers: undefined,
              stderr: undefined,
              crash: undefined,
            }); // forgotten by a rerun
          this.move(
            set,
            task,
            ended ? 'not-run' : task.state === 'ok' || task.state === 'failed' || !runningHere ? 'queued' : task.state,
          );
        }
        if (ended || !task.warnings) task.warnings = warningsOf(disk.warnings.get(task.key));
      }
      const agg = onDisk?.agg;
      if (agg)
        Object.assign(set.aggregation, {
          state: agg.status,
          ms: agg.ms,
          kind: agg.kind,
          message: agg.message,
          location: firstFailedLocation(agg),
        });
      else
        Object.assign(set.aggregation, {
          state: ended ? 'not-run' : set.aggregation.state === 'running' && runningHere ? 'running' : 'queued',
          ms: undefined,
          kind: undefined,
          message: undefined,
          location: undefined,
        });
      if (ended || !set.aggregation.warnings)
        set.aggregation.warnings = warningsOf(disk.warnings.get(set.aggregation.key));
    }
    job.problems = disk.problems.length ? disk.problems : undefined;
    if (runningHere) return;
    job.status = disk.status;
    job.counts = disk.counts;
    job.ms = disk.ms;
    job.failure = disk.failure && {
      kind: disk.failure.kind,
      message: disk.failure.message,
      location: disk.failure.location,
    };
  }

  /** The newest run of each job file (and each job run from elsewhere), newest first: the tree's top level. */
  latestRuns(): JobInfo[] {
    const seen = new Set<string>();
    return [...this.jobs.values()].reverse().filter((job) => {
      const group = job.source ?? job.dir;
      if (seen.has(group)) return false;
      seen.add(group);
      return true;
    });
  }

  /** The other runs of a job's job file, newest first, when `job` is its newest. */
  earlierRuns(job: JobInfo): JobInfo[] {
    if (job.source === undefined) return [];
    const runs = [...this.jobs.values()].reverse().filter((other) => other.source === job.source);
    // by id: a resume replaces a job's info, and a tree item may hold the one before
    return runs[0]?.jobId === job.jobId ? runs.slice(1) : [];
  }

  /** Forgets the earlier runs of a job's job file (their results stay on disk). Returns how many. */
  clearEarlierRuns(job: JobInfo, running: (jobId: string) => boolean): number {
    let cleared = 0;
    for (const earlier of this.earlierRuns(job)) {
      if (running(earlier.jobId)) continue;
      this.jobs.delete(earlier.jobId);
      cleared++;
    }
    return cleared;
  }

  /** The job is over: nothing it left queued or running will run now (the disk, read next, agrees). */
  endRun(job: JobInfo): void {
    if (job.status === 'running') job.status = 'aborted';
    for (const set of job.sets.values()) {
      for (const task of set.tasks)
        if (task.state === 'queued' || task.state === 'running' || task.state === 'finished')
          this.move(set, task, 'not-run');
      if (set.aggregation.state === 'queued' || set.aggregation.state === 'running') set.aggregation.state = 'not-run';
    }
  }

  /** A task's state changes, and its set's counts with it. */
  private move(set: ParamSetInfo, task: TaskInfo, next: TaskState): void {
    const count = (state: TaskState, by: number) => {
      if (state === 'ok') set.ok += by;
      else if (state === 'failed') set.failed += by;
      else if (state === 'finished') set.finished += by;
      else if (state === 'running') set.running += by;
    };
    count(task.state, -1);
    count(next, 1);
    task.state = next;
  }

  /** Applies one event to its job. */
  apply(job: JobInfo, event: JobEvent): void {
    switch (event.type) {
      case 'task-start': {
        const found = this.find(job, event.key);
        if (!found) break;
        Object.assign(found.task, { pid: event.pid, worker: event.worker, attempts: event.attempt });
        this.move(found.set, found.task, 'running');
        break;
      }
      case 'task-finished': {
        const found = this.find(job, event.key);
        if (found && (found.task.state === 'queued' || found.task.state === 'running'))
          this.move(found.set, found.task, 'finished');
        break;
      }
      case 'task-done': {
        const found = this.find(job, event.key);
        if (!found) break;
        const { set, task } = found;
        Object.assign(task, {
          pid: event.pid,
          worker: event.worker,
          ms: event.ms,
          attempts: event.attempt,
          kind: event.kind,
          message: event.message,
          location: event.location,
          callers: event.callers,
        });
        Object.assign(task, { stderr: event.stderr, crash: event.crash });
        this.move(set, task, event.status);
        set.progressed = true;
        break;
      }
      case 'agg-start': {
        const set = this.aggregated(job, event.key);
        if (set) Object.assign(set.aggregation, { state: 'running', pid: event.pid, worker: event.worker });
        break;
      }
      case 'agg-done': {
        const set = this.aggregated(job, event.key);
        if (set)
          Object.assign(set.aggregation, {
            state: event.status === 'ok' ? 'ok' : event.status === 'skipped' ? 'skipped' : 'failed',
            ms: event.ms,
            kind: event.kind,
            message: event.message,
            location: event.location,
          });
        break;
      }
      case 'warning': {
        const task = event.key === undefined ? undefined : this.anyTask(job, event.key);
        if (task)
          (task.warnings ??= []).push({
            kind: event.kind,
            message: event.message,
            location: event.location,
            processes: event.descendants?.length,
          });
        break;
      }
      case 'job-done':
        job.status = event.status;
        job.counts = event.counts;
        job.ms = event.ms;
        job.failure = event.failure && {
          kind: event.failure.kind,
          message: event.failure.message,
          location: event.failure.location,
        };
        this.endRun(job);
        break;
    }
  }

  private task(job: JobInfo, key: string): TaskInfo | undefined {
    return this.find(job, key)?.task;
  }

  /** A replicate or an aggregation, by its task key. */
  private anyTask(job: JobInfo, key: string): TaskInfo | undefined {
    return parseAggKey(key) !== undefined ? this.aggregated(job, key)?.aggregation : this.task(job, key);
  }

  /** The parameter set an aggregation's key names. */
  private aggregated(job: JobInfo, key: string): ParamSetInfo | undefined {
    const paramId = parseAggKey(key);
    return paramId === undefined ? undefined : job.sets.get(paramId);
  }

  private find(job: JobInfo, key: string): { set: ParamSetInfo; task: TaskInfo } | undefined {
    const sim = parseSimKey(key);
    if (!sim) return undefined;
    const set = job.sets.get(sim.paramId);
    const task = set?.tasks[sim.replicate];
    return set && task ? { set, task } : undefined;
  }
}

function notStartedKey(source: string): string {
  return `not-started:${source}`;
}

function warningsOf(events: WarningEvent[] | undefined): TaskWarning[] | undefined {
  return events?.map((event) => ({
    kind: event.kind,
    message: event.message,
    location: event.location,
    processes: event.descendants?.length,
  }));
}

/** How a parameter set is named on every surface: its parameters (`beta=0.5, gamma=2`), else its param_id. */
export function setLabel(set: ParamSetInfo): string {
  return (
    Object.entries(set.params)
      .map(([key, value]) => `${key}=${value}`)
      .join(', ') || set.paramId.slice(0, 12)
  );
}

/**
 * A set being worked through: replicates announced as running, its aggregation running, or, on a
 * job whose replicates end too fast to be announced, one finished in this run with others queued.
 */
export function setIsActive(job: JobInfo, set: ParamSetInfo): boolean {
  if (set.running > 0 || set.aggregation.state === 'running') return true;
  return job.status === 'running' && set.progressed && set.ok + set.failed + set.finished < set.tasks.length;
}
