/**
 * What the editor knows about jobs, built only from the engine's event stream (and the job's
 * spec), so the views never reach into the engine.
 */
import type { FailureKind, SourceLocation } from '../../engine/failure';
import type { JobCounts, JobEvent, JobStatus } from '../../engine/job/events';
import type { SimRecord, StderrRange } from '../../engine/job/results';
import { crashFacts, type CrashFacts } from '../../engine/diagnose/crashFacts';
import { scalarJson } from '../../engine/job/ids';
import type { JobSpec } from '../../engine/job/spec';

/** `finished`: done on a Dask worker, its outcome not here yet (it comes with its set's aggregation). */
export type TaskState = 'queued' | 'running' | 'finished' | 'ok' | 'failed' | 'skipped';

export interface TaskInfo {
  key: string;
  replicate: number;
  state: TaskState;
  attempts: number;
  pid?: number;
  /** The Dask worker that ran it (dask backend). */
  worker?: string;
  ms?: number;
  kind?: FailureKind;
  message?: string;
  location?: SourceLocation;
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
}

export class JobModel {
  readonly jobs = new Map<string, JobInfo>();

  addJob(spec: JobSpec, dir: string): JobInfo {
    const sets = new Map<string, ParamSetInfo>();
    for (const set of spec.parameterSets) {
      sets.set(set.paramId, {
        paramId: set.paramId,
        // as Python writes them: 1.0 stays 1.0
        params: Object.fromEntries(Object.entries(set.params).map(([k, v]) => [k, scalarJson(v)])),
        tasks: set.seeds.map((_, replicate) => ({ key: `sim-${set.paramId}-${replicate}`, replicate, state: 'queued', attempts: 0 })),
        aggregation: { key: `agg-${set.paramId}`, replicate: -1, state: 'queued', attempts: 0 },
        ok: 0,
        failed: 0,
        finished: 0,
      });
    }
    const job: JobInfo = { jobId: spec.jobId, dir, status: 'running', sets, startedAt: Date.now() };
    this.jobs.set(spec.jobId, job);
    return job;
  }

  /** A resumed job: what earlier runs finished, as their result files say. */
  seedFromDisk(job: JobInfo, existing: (paramId: string) => Map<number, SimRecord>): void {
    for (const set of job.sets.values()) {
      for (const [replicate, record] of existing(set.paramId)) {
        const task = set.tasks[replicate];
        if (!task) continue;
        Object.assign(task, { state: record.status, pid: record.pid, worker: record.worker, ms: record.ms, attempts: record.attempts, kind: record.kind, message: record.message, location: record.location });
        Object.assign(task, { stderr: record.stderr, crash: record.evidence ? crashFacts(record.evidence) : undefined });
        record.status === 'ok' ? set.ok++ : set.failed++;
      }
    }
  }

  /** Applies one event to its job. */
  apply(job: JobInfo, event: JobEvent): void {
    switch (event.type) {
      case 'task-start': {
        const task = this.task(job, event.key);
        if (task) Object.assign(task, { state: 'running', pid: event.pid, worker: event.worker, attempts: event.attempt });
        break;
      }
      case 'task-finished': {
        const found = this.find(job, event.key);
        if (found && (found.task.state === 'queued' || found.task.state === 'running')) {
          found.task.state = 'finished';
          found.set.finished++;
        }
        break;
      }
      case 'task-done': {
        const found = this.find(job, event.key);
        if (!found) break;
        const { set, task } = found;
        if (task.state === 'finished') set.finished--;
        Object.assign(task, { state: event.status, pid: event.pid, worker: event.worker, ms: event.ms, attempts: event.attempt, kind: event.kind, message: event.message, location: event.location });
        Object.assign(task, { stderr: event.stderr, crash: event.crash });
        event.status === 'ok' ? set.ok++ : set.failed++;
        break;
      }
      case 'agg-done': {
        const set = job.sets.get(event.key.slice('agg-'.length));
        if (set) Object.assign(set.aggregation, { state: event.status === 'ok' ? 'ok' : event.status === 'skipped' ? 'skipped' : 'failed', ms: event.ms, kind: event.kind, message: event.message, location: event.location });
        break;
      }
      case 'warning': {
        const task = event.key === undefined ? undefined : this.anyTask(job, event.key);
        if (task) (task.warnings ??= []).push({ kind: event.kind, message: event.message, location: event.location, processes: event.descendants?.length });
        break;
      }
      case 'job-done':
        job.status = event.status;
        job.counts = event.counts;
        job.ms = event.ms;
        job.failure = event.failure && { kind: event.failure.kind, message: event.failure.message, location: event.failure.location };
        break;
    }
  }

  private task(job: JobInfo, key: string): TaskInfo | undefined {
    return this.find(job, key)?.task;
  }

  /** A replicate or an aggregation, by its task key. */
  private anyTask(job: JobInfo, key: string): TaskInfo | undefined {
    return key.startsWith('agg-') ? job.sets.get(key.slice('agg-'.length))?.aggregation : this.task(job, key);
  }

  private find(job: JobInfo, key: string): { set: ParamSetInfo; task: TaskInfo } | undefined {
    const match = /^sim-([0-9a-f]{64})-(\d+)$/.exec(key);
    if (!match) return undefined;
    const set = job.sets.get(match[1]);
    const task = set?.tasks[Number(match[2])];
    return set && task ? { set, task } : undefined;
  }
}
