/**
 * A job's timeline as its events arrive: lanes (one per warm-process slot of each host or Dask
 * worker) and the tasks on them, as compact numbers a canvas can draw by the hundred thousand.
 * The editor's live "ModelOps Timeline" feeds it the engine's events one by one; the run report
 * feeds it events.jsonl. Both draw it with timelineScript.ts, so the two pictures agree.
 *
 * Lanes follow chromeTrace.ts: a runner takes the lowest slot of its host that is free when it
 * starts (its process-start, else its first task) and frees it when it ends (its process-end),
 * so the runner that replaces a crashed one continues its lane.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { readEventLog, type JobEvent } from '../job/events';
import { aggKey, parseAggKey, parseSimKey, shortKey, simKey } from '../job/taskKeys';

/** A task's state as a number (an index into the page's colours). */
export const TaskState = { ok: 0, failed: 1, other: 2, running: 3 } as const;

/** Numbers per task in `TimelineUpdate.tasks`: lane, start ms, duration ms, state, set, replicate, attempt. */
export const TASK_FIELDS = 7;
/** Numbers per task in `TimelineUpdate.running`: lane, start ms, set, replicate, attempt. */
export const RUNNING_FIELDS = 5;
/** `replicate` of an aggregation. */
export const AGGREGATION = -1;
/** `replicate` of a simulation whose index is not known (production's logs name its seed only). */
export const UNKNOWN_REPLICATE = -2;

export type MarkKind = 'crash' | 'timeout' | 'retry' | 'stdout pollution';

export interface TimelineMark {
  lane: number;
  /** ms since the job's start */
  t: number;
  kind: MarkKind;
  text: string;
}

/** What the page is sent: everything (`reset`), or what changed since the last update. */
export interface TimelineUpdate {
  reset: boolean;
  job_id: string;
  /** The job's start, ms since the epoch; every other time is ms since then. */
  start: number;
  /** The latest event's time: running tasks are drawn up to it. */
  now: number;
  ended: boolean;
  /** Every lane, each time (they are few; a lane's name grows with the runners it had). */
  lanes: string[];
  /** The parameter sets, in the job's order: what a task's `set` number means (reset only). */
  sets: { param_id: string; label: string }[];
  /** Finished tasks (attempts), TASK_FIELDS numbers each: all of them, or those since the last update. */
  tasks: number[];
  /** What failed tasks said, by their index among all tasks. */
  notes: Record<number, string>;
  /** The tasks running now, RUNNING_FIELDS numbers each (all of them, each time). */
  running: number[];
  /** Crashes, timeouts, retries, stdout pollution: all, or those since the last update. */
  marks: TimelineMark[];
  /** What each state is called, when not ok / failed / other / running (production's logs). */
  states?: string[];
  /** When the first runner started: before it the job prepared (its venv, the runners' start). */
  ready?: number;
}

interface Lane {
  host: string;
  slot: number;
  runners: number[];
  /** The runner on it now; undefined when it is free. */
  current: number | undefined;
  /** Where its last task ended: the next one starts no earlier (a runner does one task at a time). */
  free: number;
}

interface Running {
  lane: number;
  start: number;
  set: number;
  replicate: number;
  attempt: number;
}

/** Where a local run's runners are: the host of events without a Dask worker. */
export const LOCAL_HOST = 'this machine';
const ENGINE = -1; // the "runner" of an aggregation without targets: the engine itself
const UNPLACED = -1; // the lane of a running task whose runner is not known yet

export class Timeline {
  private start: number | undefined;
  private ready: number | undefined;
  /** A Dask run: an aggregation's start names no worker; where it ran, its end says. */
  private dask = false;
  private now = 0;
  private ended = false;
  private readonly lanes: Lane[] = [];
  /** `host\0pid` → lane */
  private readonly laneOf = new Map<string, number>();
  private readonly setIndex = new Map<string, number>();
  private readonly sets: { param_id: string; label: string }[] = [];
  private readonly tasks: number[] = [];
  private readonly notes: Record<number, string> = {};
  private readonly marks: TimelineMark[] = [];
  private readonly running = new Map<string, Running>();
  /** Where the last update ended: tasks and marks after these were not sent yet. */
  private sentTasks = 0;
  private sentMarks = 0;

  /** `sets`: the job's parameter sets in order, with how each is shown (e.g. "beta=0.5, gamma=2"). */
  constructor(
    private readonly jobId: string,
    sets: readonly { param_id: string; label: string }[],
  ) {
    for (const set of sets) this.setOf(set.param_id, set.label);
  }

  /** The timeline of a results folder's events.jsonl (lines that cannot be read are skipped). */
  static fromFolder(dir: string, jobId: string, sets: readonly { param_id: string; label: string }[]): Timeline {
    const timeline = new Timeline(jobId, sets);
    const file = path.join(dir, 'events.jsonl');
    if (existsSync(file)) for (const event of readEventLog(file).events) timeline.add(event);
    return timeline;
  }

  add(event: JobEvent): void {
    if (event.type === 'job-start') {
      this.start ??= event.t;
      this.ended = false;
      this.dask = event.backend === 'dask';
    }
    this.start ??= event.t;
    const t = event.t - this.start;
    this.now = Math.max(this.now, t);
    const host = ('worker' in event ? event.worker : undefined) ?? LOCAL_HOST;
    switch (event.type) {
      case 'process-start':
        this.ready ??= t;
        if (event.pid !== undefined) this.laneFor(host, event.pid);
        break;
      case 'process-end': {
        const lane = event.pid === undefined ? undefined : this.laneOfRunner(host, event.pid);
        if (lane !== undefined) this.runnerEnded(lane, event.pid);
        break;
      }
      case 'task-start':
      case 'agg-start': {
        const what = this.what(event.key);
        if (!what) break;
        // a task not placed yet (a Dask aggregation: the cluster picks its worker) has no lane until it ends
        const unplaced =
          event.worker === undefined && (event.type === 'task-start' ? event.pid === undefined : this.dask);
        this.running.set(event.key, {
          lane: unplaced ? UNPLACED : this.laneFor(host, event.pid ?? ENGINE),
          start: t,
          attempt: event.type === 'task-start' ? event.attempt : 1,
          ...what,
        });
        break;
      }
      case 'task-retry': {
        // the failed attempt took its lane until now; the next attempt starts anew
        const what = this.what(event.key);
        const ran = this.running.get(event.key);
        this.running.delete(event.key);
        const lane = ran && ran.lane !== UNPLACED ? ran.lane : this.laneFor(host, event.pid ?? ENGINE);
        const start = ran?.start ?? (event.ms === undefined ? undefined : t - event.ms);
        if (what && start !== undefined)
          this.finish(
            { lane, start, attempt: event.attempt - 1, ...what },
            t,
            TaskState.failed,
            `attempt ${event.attempt - 1}: ${event.kind}: ${event.message}`,
          );
        this.runnerDied(lane, t, event);
        this.mark(lane, t, 'retry', event.key, `attempt ${event.attempt} after ${event.kind}`);
        break;
      }
      case 'task-done':
      case 'agg-done': {
        const what = this.what(event.key);
        if (!what) break;
        const ran = this.running.get(event.key);
        this.running.delete(event.key);
        const start = t - event.ms;
        // where it ran, as its end says, else as its start said, else the engine's own lane
        const named = event.pid !== undefined || event.worker !== undefined;
        const lane =
          named || ran === undefined || ran.lane === UNPLACED ? this.laneFor(host, event.pid ?? ENGINE) : ran.lane;
        const state =
          event.status === 'ok' ? TaskState.ok : event.status === 'failed' ? TaskState.failed : TaskState.other;
        const note = event.kind
          ? `${event.kind}: ${event.message ?? ''}${event.location ? ` (${path.basename(event.location.file)}:${event.location.line})` : ''}`
          : undefined;
        const attempt = event.type === 'task-done' ? event.attempt : 1;
        this.finish({ lane, start, attempt, ...what }, t, state, note);
        this.runnerDied(lane, t, event);
        break;
      }
      case 'warning':
        if (event.kind === 'stdout-pollution') {
          const lane = event.pid === undefined ? undefined : this.laneOfRunner(host, event.pid);
          if (lane !== undefined) this.mark(lane, t, 'stdout pollution', event.key, event.message);
        }
        break;
      case 'job-done':
        this.ended = true;
        this.running.clear();
        break;
    }
  }

  /** Everything, for a page that has nothing yet; what follows are changes from here. */
  snapshot(): TimelineUpdate {
    this.sentTasks = this.tasks.length;
    this.sentMarks = this.marks.length;
    return this.update(true, this.tasks, this.notes, this.marks);
  }

  /** What changed since the last update (or snapshot). */
  changes(): TimelineUpdate {
    const tasks = this.tasks.slice(this.sentTasks);
    const first = this.sentTasks / TASK_FIELDS;
    const notes: Record<number, string> = {};
    for (let i = first; i < this.tasks.length / TASK_FIELDS; i++) if (this.notes[i]) notes[i] = this.notes[i];
    const marks = this.marks.slice(this.sentMarks);
    this.sentTasks = this.tasks.length;
    this.sentMarks = this.marks.length;
    return this.update(false, tasks, notes, marks);
  }

  /** The lanes so far: each one's host, slot (0: the engine's own, aggregations without targets) and runners. */
  laneFacts(): readonly { host: string; slot: number; runners: readonly number[] }[] {
    return this.lanes;
  }

  /** The lane of a runner (undefined: the engine's own), once it has been seen. */
  laneOfRunner(host: string, pid: number | undefined): number | undefined {
    return this.laneOf.get(`${host}\0${pid ?? ENGINE}`);
  }

  /** The task key of a set's replicate (or its aggregation): what a click on its bar opens. */
  keyOf(set: number, replicate: number): string | undefined {
    const paramId = this.sets[set]?.param_id;
    if (paramId === undefined) return undefined;
    return replicate === AGGREGATION ? aggKey(paramId) : simKey(paramId, replicate);
  }

  private update(
    reset: boolean,
    tasks: number[],
    notes: Record<number, string>,
    marks: TimelineMark[],
  ): TimelineUpdate {
    const running: number[] = [];
    for (const task of this.running.values())
      if (task.lane !== UNPLACED) running.push(task.lane, task.start, task.set, task.replicate, task.attempt);
    return {
      reset,
      job_id: this.jobId,
      start: this.start ?? 0,
      now: this.now,
      ended: this.ended,
      lanes: this.lanes.map((lane) => laneName(lane)),
      sets: reset ? this.sets : [],
      tasks,
      notes,
      running,
      marks,
      ...(this.ready === undefined ? {} : { ready: this.ready }),
    };
  }

  private finish(task: Running, end: number, state: number, note: string | undefined): void {
    const lane = this.lanes[task.lane];
    // a request sent while another ran starts when that one ended: bars on a lane never overlap
    const start = Math.max(task.start, lane.free);
    const stop = Math.max(start, end);
    lane.free = stop;
    if (note) this.notes[this.tasks.length / TASK_FIELDS] = note;
    this.tasks.push(task.lane, start, stop - start, state, task.set, task.replicate, task.attempt);
  }

  /**
   * A lane's runner ended: its slot is free for the next runner. A crash or a timeout (the runner
   * is killed) says so before the runner's process-end, which may come after its successor's start.
   */
  private runnerEnded(lane: number, pid: number | undefined): void {
    if (pid !== undefined && this.lanes[lane].current === pid) this.lanes[lane].current = undefined;
  }

  /** A crash or a timeout (its runner killed) under a task: marked, and its runner's slot freed. */
  private runnerDied(
    lane: number,
    t: number,
    event: { key: string; kind?: string; message?: string; pid?: number },
  ): void {
    if (event.kind !== 'process-crashed' && event.kind !== 'task-timeout') return;
    this.mark(lane, t, event.kind === 'task-timeout' ? 'timeout' : 'crash', event.key, event.message);
    this.runnerEnded(lane, event.pid);
  }

  private mark(lane: number, t: number, kind: MarkKind, key: string | undefined, message: string | undefined): void {
    this.marks.push({ lane, t, kind, text: [key && shortKey(key), message].filter(Boolean).join(': ') });
  }

  /** The set and replicate a key names; undefined for a key that is neither a replicate nor an aggregation. */
  private what(key: string): { set: number; replicate: number } | undefined {
    const sim = parseSimKey(key);
    if (sim) return { set: this.setOf(sim.paramId), replicate: sim.replicate };
    const agg = parseAggKey(key);
    return agg === undefined ? undefined : { set: this.setOf(agg), replicate: AGGREGATION };
  }

  private setOf(paramId: string, label = paramId.slice(0, 12)): number {
    let index = this.setIndex.get(paramId);
    if (index === undefined) {
      index = this.sets.push({ param_id: paramId, label }) - 1;
      this.setIndex.set(paramId, index);
    }
    return index;
  }

  /** The lane of a runner, taking the lowest free slot of its host the first time it is seen. */
  private laneFor(host: string, pid: number): number {
    const id = `${host}\0${pid}`;
    let lane = this.laneOf.get(id);
    if (lane !== undefined) return lane;
    const ofHost = this.lanes.filter((l) => l.host === host && l.current !== ENGINE);
    const free =
      pid === ENGINE
        ? this.lanes.find((l) => l.host === host && l.current === ENGINE)
        : ofHost.find((l) => l.current === undefined);
    if (free) {
      free.current = pid;
      if (pid !== ENGINE) free.runners.push(pid);
      lane = this.lanes.indexOf(free);
    } else {
      lane =
        this.lanes.push({
          host,
          slot: pid === ENGINE ? 0 : ofHost.length + 1,
          runners: pid === ENGINE ? [] : [pid],
          current: pid,
          free: 0,
        }) - 1;
    }
    this.laneOf.set(id, lane);
    return lane;
  }
}

function laneName(lane: Lane): string {
  const where = lane.host === LOCAL_HOST ? '' : `${lane.host.replace(/^tcp:\/\//, '')} · `;
  if (lane.slot === 0) return `${where}engine (no runner)`;
  const runners = lane.runners.length > 3 ? [...lane.runners.slice(0, 2), '…', lane.runners.at(-1)] : lane.runners;
  return `${where}slot ${lane.slot}: ${runners.join(', ')}`;
}
