/**
 * The engine's one event stream. The CLI's progress, its `--json` output, `events.jsonl`, and
 * (later) the editor's views all consume these; none reaches into the engine.
 */
import { readFileSync } from 'node:fs';
import type { Failure, FailureKind, SourceLocation } from '../failure';
import type { VenvEvent } from '../venv/cache';
import type { LingeringDescendant } from '../process/descendants';
import type { CrashFacts } from '../diagnose/crashFacts';
import type { StderrRange, TaskResources } from './records';

export type TaskStatus = 'ok' | 'failed';

/**
 * `t` is when it happened, in milliseconds since the epoch (a `task-start` carries the time its
 * task began and a `task-done` the time it ended, taken with its `ms`, so either may follow events
 * with a later `t`). Folders written by earlier builds have ISO strings there; `eventTime` reads
 * both.
 */
export type JobEvent = { t: number } & (
  | {
      type: 'job-start';
      job_id: string;
      out: string;
      sims: number;
      aggregations: number;
      resumed: boolean;
      skipped_sims: number;
      skipped_aggregations: number;
      workers: number;
      executor: string;
      backend: 'local' | 'dask';
    }
  | { type: 'task-start'; key: string; attempt: number; pid: number | undefined; worker?: string }
  /** Dask: the simulation finished on the cluster; its outcome (task-done) comes with its set's aggregation. */
  | { type: 'task-finished'; key: string }
  /** `pid`: the runner the failed attempt ran in, `ms`: how long it ran (local backend). */
  | { type: 'task-retry'; key: string; attempt: number; kind: FailureKind; message: string; pid?: number; ms?: number }
  | {
      type: 'task-done';
      key: string;
      status: TaskStatus;
      attempt: number;
      pid: number | undefined;
      ms: number;
      kind?: FailureKind;
      message?: string;
      location?: SourceLocation;
      /** The bundle's other frames of a traceback, outermost first: how the failure got there. */
      callers?: SourceLocation[];
      /** The Dask worker that ran it (dask backend). */
      worker?: string;
      /** Its part of its runner's stderr log (local backend). */
      stderr?: StderrRange;
      /** The runner died under it: exit code or signal, phase, last stderr lines, stack. */
      crash?: CrashFacts;
      /** What it cost: wall, CPU, peak RSS (our runner), queue and transfer time, output bytes. */
      resources?: TaskResources;
    }
  | { type: 'agg-start'; key: string; pid: number | undefined; worker?: string }
  | {
      type: 'agg-done';
      key: string;
      status: TaskStatus | 'skipped';
      ms: number;
      kind?: FailureKind;
      message?: string;
      location?: SourceLocation;
      /** The runner it ran in (its last target's), when it ran any, and the Dask worker it ran on. */
      pid?: number;
      worker?: string;
      resources?: TaskResources;
    }
  | { type: 'process-start'; pid: number | undefined; venv: string; worker?: string }
  | {
      type: 'process-end';
      pid: number | undefined;
      why: string;
      uses: number;
      exit_code: number | null;
      signal: string | null;
      worker?: string;
    }
  // the Dask backend: the cluster, and what happens to it (worker = the Dask worker's address)
  | { type: 'dask-connected'; scheduler: string; dask_version: string; python: string; workers: string[] }
  | { type: 'worker-joined'; worker: string }
  | { type: 'worker-lost'; worker: string; cause: string; processing: string[] }
  | { type: 'dask-task-erred'; key: string; exc_type: string; cause: string }
  | { type: 'scheduler-lost'; scheduler: string; cause: string }
  | { type: 'venv'; event: VenvEvent }
  | {
      type: 'warning';
      kind: FailureKind;
      message: string;
      location?: SourceLocation;
      /** The task it is about (lingering-descendants: the task that started them, when known). */
      key?: string;
      /** lingering-descendants: the processes, their command lines and what became of them. */
      descendants?: LingeringDescendant[];
      /** lingering-descendants: the runner they descend from. */
      pid?: number;
      worker?: string;
    }
  /** What opening the results folder found and did: a lock taken over, files that were not results. */
  | { type: 'results-folder'; message: string }
  /** `failure`: why an aborted job stopped (the manifest's `failure`), for every consumer of the stream. */
  | {
      type: 'job-done';
      job_id: string;
      status: JobStatus;
      counts: JobCounts;
      ms: number;
      exit_code: number;
      failure?: ReturnType<Failure['toJSON']>;
    }
);

export type JobStatus = 'succeeded' | 'failed' | 'interrupted' | 'aborted';

export interface JobCounts {
  sims: { total: number; ok: number; failed: number; pending: number };
  aggregations: { total: number; ok: number; failed: number; skipped: number; pending: number };
}

/** What an event is without its time: the form emitters pass. */
export type JobEventBody = JobEvent extends infer E ? (E extends { t: number } ? Omit<E, 't'> : never) : never;

/** An event's time in milliseconds since the epoch, from either form `t` has had on disk. */
export function eventTime(event: { t: number | string }): number {
  return typeof event.t === 'number' ? event.t : Date.parse(event.t);
}

/**
 * The events of an events.jsonl, in order. Lines that cannot be read (a run killed mid-write
 * leaves half a line) are counted, not thrown: the rest of the log still says what happened.
 */
export function readEventLog(file: string): { events: JobEvent[]; unreadable: number } {
  const events: JobEvent[] = [];
  let unreadable = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const event = JSON.parse(line) as JobEvent;
      if (typeof event.t === 'number' && typeof event.type === 'string') events.push(event);
      else unreadable++;
    } catch {
      unreadable++;
    }
  }
  return { events, unreadable };
}
