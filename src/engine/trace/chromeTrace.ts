/**
 * A job's run as a Chrome Trace Event file (the JSON object format that Perfetto,
 * chrome://tracing and speedscope open), built from its results folder alone: job.json and
 * events.jsonl, whose task-done and agg-done events carry each task's end, duration, runner
 * and resources. So it can be made after the run, for local and Dask runs alike.
 *
 * - one process track per host (this machine) or Dask worker, its `pid` an integer from 1;
 * - one thread track per warm-process slot (`tid` from 1): a runner, and those that replaced it
 *   later (slots as the editor's timeline assigns them: timeline.ts);
 * - a complete event (`ph: "X"`) per task, `ts`/`dur` in µs from the job's start; on a track
 *   they follow each other (a runner does one request at a time: a request sent while another
 *   ran starts when that one ended), so they nest perfectly;
 * - instants (`ph: "i"`) for crashes, timeouts, retries and stdout pollution;
 * - counters (`ph: "C"`) for the tasks in flight and each runner's peak RSS;
 * - metadata (`ph: "M"`) naming processes and threads, with `tid: 0` on the process ones.
 */
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Failure } from '../failure';
import { parseAggKey, parseSimKey } from '../job/taskKeys';
import type { JobSpec } from '../job/spec';
import type { TaskResources } from '../job/records';
import { readEventLog } from '../job/events';
import { LOCAL_HOST, Timeline } from './timeline';
import { describeParams } from '../replicate/select';

export interface TraceEvent {
  name: string;
  ph: 'X' | 'i' | 'C' | 'M';
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  cat?: string;
  s?: 't' | 'p' | 'g';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
  otherData: Record<string, unknown>;
}

export interface TraceSummary {
  tasks: number;
  hosts: number;
  slots: number;
  runners: number;
  instants: number;
  /** Lines of events.jsonl that could not be read (a run killed mid-write leaves half a line). */
  unreadable: number;
}

/** A task as the trace shows it: where it ran, when, and how it ended. */
interface TaskSpan {
  key: string;
  host: string;
  runner: number | undefined;
  start: number;
  end: number;
  args: Record<string, unknown>;
  resources?: TaskResources;
}

/**
 * A job run writes its trace when it ends if that costs little against the run: building it
 * takes about this much per task (4 020 tasks in 64–190 ms here, the first build in a process the
 * slowest), and a run pays at most AUTO_TRACE_SHARE of its time for it, so a run of quick tasks
 * is not slowed by a tenth for a file nobody asked for; `modelops-debugger trace` writes it on
 * demand, and `--trace-file` always.
 */
export const TRACE_COST_MS_PER_TASK = 0.03;
export const AUTO_TRACE_SHARE = 0.02;
/** Past this, never by itself (1.5 s, a 60 MB file). */
export const AUTO_TRACE_MAX_TASKS = 50_000;

/** What writing a run's trace.json at its end came to: the file, or why there is none. */
export type TraceFile = { file: string; tasks: number } | { skipped: string } | { error: string };

/**
 * Writes the run in `dir` as `trace.json` there: `always`, or when it is cheap against the run
 * (`runMs`) and the run ran no more than AUTO_TRACE_MAX_TASKS tasks.
 */
export function writeRunTrace(
  dir: string,
  job: JobSpec,
  run: { tasks: number; ms: number; always?: boolean },
): TraceFile {
  const cost = run.tasks * TRACE_COST_MS_PER_TASK;
  const command = `modelops-debugger trace ${dir}`;
  if (!run.always && run.tasks > AUTO_TRACE_MAX_TASKS)
    return {
      skipped: `${run.tasks} tasks ran, more than the ${AUTO_TRACE_MAX_TASKS} a run traces by itself: ${command} writes it`,
    };
  if (!run.always && cost > run.ms * AUTO_TRACE_SHARE)
    return {
      skipped: `its ${run.tasks} tasks took ${run.ms} ms: tracing them (about ${Math.round(cost)} ms) would cost more than ${AUTO_TRACE_SHARE * 100} % of the run; ${command} writes it`,
    };
  const file = path.join(dir, 'trace.json');
  try {
    const { trace, summary } = chromeTrace(dir, job);
    writeFileSync(file, JSON.stringify(trace));
    return { file, tasks: summary.tasks };
  } catch (error) {
    return { error: `${file}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/**
 * The trace of the job in `dir`, whose spec is `job`, and the timeline it was laid out by (which
 * the run report draws: events.jsonl is read once for both).
 */
export function chromeTrace(
  dir: string,
  job: JobSpec,
): { trace: ChromeTrace; summary: TraceSummary; timeline: Timeline } {
  const file = path.join(dir, 'events.jsonl');
  if (!existsSync(file)) throw new Failure('bad-input', `${dir} has no events.jsonl: there is no run to trace.`);
  const { events, unreadable } = readEventLog(file);
  const start = events.find((event) => event.type === 'job-start')?.t ?? events[0]?.t ?? 0;
  const us = (ms: number) => Math.round((ms - start) * 1000);

  const seeds = new Map(job.parameterSets.map((set) => [set.paramId, set.seeds]));
  const venvOf = new Map<number, string>();
  const aggRunner = new Map<string, { pid?: number; worker?: string }>();
  const tasks: TaskSpan[] = [];
  const marks: { host: string; runner?: number; t: number; name: string; args: Record<string, unknown> }[] = [];
  /** A crash or a timeout, as an instant on its runner's track. */
  const markFailure = (
    host: string,
    event: { t: number; key: string; kind?: string; message?: string; pid?: number },
    attempt?: number,
  ) => {
    if (event.kind !== 'process-crashed' && event.kind !== 'task-timeout') return;
    marks.push({
      host,
      runner: event.pid,
      t: event.t,
      name: event.kind === 'task-timeout' ? 'timeout' : 'crash',
      args: withoutUndefined({ task: event.key, attempt, message: event.message }),
    });
  };
  for (const event of events) {
    const host: string = ('worker' in event ? event.worker : undefined) ?? LOCAL_HOST;
    switch (event.type) {
      case 'process-start':
        if (event.pid === undefined) break;
        venvOf.set(event.pid, event.venv);
        break;
      case 'task-done': {
        const sim = parseSimKey(event.key);
        if (!sim) break;
        tasks.push({
          key: event.key,
          host,
          runner: event.pid,
          start: event.t - event.ms,
          end: event.t,
          resources: event.resources,
          args: {
            param_id: sim.paramId,
            replicate: sim.replicate,
            seed: String(seeds.get(sim.paramId)?.[sim.replicate] ?? ''),
            attempt: event.attempt,
            state: event.status,
            os_pid: event.pid,
            venv_key: event.pid === undefined ? undefined : venvOf.get(event.pid),
            failure_kind: event.kind,
            ...(event.message ? { failure: event.message } : {}),
          },
        });
        markFailure(host, event);
        break;
      }
      case 'agg-start':
        aggRunner.set(event.key, { pid: event.pid, worker: event.worker });
        break;
      case 'agg-done': {
        const paramId = parseAggKey(event.key);
        const started = aggRunner.get(event.key);
        if (paramId === undefined) break;
        const ran = { pid: event.pid ?? started?.pid, worker: event.worker ?? started?.worker };
        tasks.push({
          key: event.key,
          host: ran.worker ?? host,
          runner: ran.pid,
          start: event.t - event.ms,
          end: event.t,
          resources: event.resources,
          args: {
            param_id: paramId,
            state: event.status,
            os_pid: ran.pid,
            venv_key: ran.pid === undefined ? undefined : venvOf.get(ran.pid),
            failure_kind: event.kind,
          },
        });
        break;
      }
      case 'task-retry':
        // a crash or a timeout that is retried is one all the same
        markFailure(host, event, event.attempt - 1);
        marks.push({
          host,
          runner: event.pid,
          t: event.t,
          name: 'retry',
          args: { task: event.key, attempt: event.attempt, kind: event.kind, message: event.message },
        });
        break;
      case 'warning':
        if (event.kind === 'stdout-pollution')
          marks.push({
            host,
            runner: event.pid,
            t: event.t,
            name: 'stdout pollution',
            args: { task: event.key, message: event.message },
          });
        break;
    }
  }

  // hosts, then runners onto slots as the editor's timeline puts them (timeline.ts): a runner
  // takes the lowest slot free when it started and frees it when it ended
  const timeline = new Timeline(
    job.jobId,
    job.parameterSets.map((set) => ({ param_id: set.paramId, label: describeParams(set) })),
  );
  for (const event of events) timeline.add(event);
  const lanes = timeline.laneFacts();
  const hosts = [...new Set(lanes.map((lane) => lane.host))].sort(
    (a, b) => Number(b === LOCAL_HOST) - Number(a === LOCAL_HOST),
  );
  const hostPid = new Map(hosts.map((host, i) => [host, i + 1]));
  /** A lane's track: its host's pid; its slot as tid, the engine's own lane after its host's slots. */
  const trackOf = lanes.map((lane) => ({
    pid: hostPid.get(lane.host)!,
    tid: lane.slot || lanes.filter((other) => other.host === lane.host && other.slot > 0).length + 1,
  }));
  const trackOfRunner = (host: string, runner: number | undefined) => {
    const lane = timeline.laneOfRunner(host, runner);
    return lane === undefined ? undefined : trackOf[lane];
  };

  const traceEvents: TraceEvent[] = [];
  for (const host of hosts)
    traceEvents.push({ name: 'process_name', ph: 'M', pid: hostPid.get(host)!, tid: 0, ts: 0, args: { name: host } });
  lanes.forEach((lane, i) =>
    traceEvents.push({
      name: 'thread_name',
      ph: 'M',
      ...trackOf[i],
      ts: 0,
      // no runner: an aggregation without targets, which the engine does itself
      args: { name: lane.slot ? `slot ${lane.slot}: runner ${lane.runners.join(', ')}` : 'engine (no runner)' },
    }),
  );

  // each track's tasks in order of their end, each starting no earlier than the one before ended
  const byTrack = new Map<string, TaskSpan[]>();
  for (const task of tasks) {
    const { pid, tid } = trackOfRunner(task.host, task.runner)!;
    const track = `${pid}:${tid}`;
    const spans = byTrack.get(track);
    if (spans) spans.push(task);
    else byTrack.set(track, [task]);
  }
  const changes: { t: number; pid: number; by: number }[] = [];
  const saidPeak = new Map<number, number>();
  for (const [track, spans] of byTrack) {
    const [pid, tid] = track.split(':').map(Number);
    spans.sort((a, b) => a.end - b.end);
    let free = -Infinity;
    for (const span of spans) {
      const ts = Math.max(us(span.start), free);
      const end = Math.max(ts, us(span.end));
      free = end;
      const aggregation = parseAggKey(span.key) !== undefined;
      traceEvents.push({
        name: aggregation ? 'aggregation' : `replicate ${span.args.replicate}`,
        cat: aggregation ? 'aggregation' : 'simulation',
        ph: 'X',
        pid,
        tid,
        ts,
        dur: end - ts,
        args: withoutUndefined({ ...span.args, key: span.key, ...(span.resources ?? {}) }),
      });
      // (a task of no duration is never in flight: its end would be counted before its start)
      if (end > ts) changes.push({ t: ts, pid, by: 1 }, { t: end, pid, by: -1 });
      // a counter holds its value until the next: a runner's peak is said when it changes
      const peak = span.resources?.peak_rss_kb;
      if (peak !== undefined && span.runner !== undefined && saidPeak.get(span.runner) !== peak) {
        saidPeak.set(span.runner, peak);
        traceEvents.push({
          name: 'runner peak RSS (kB)',
          ph: 'C',
          pid,
          tid: 0,
          ts: end,
          args: { [`runner ${span.runner}`]: peak },
        });
      }
    }
  }
  // tasks in flight per host, said when the count changes: a task that ends as the next begins
  // on its track changes nothing (ends before starts at the same instant)
  const byHost = new Map<number, { t: number; by: number }[]>();
  for (const { pid, t, by } of changes) {
    const ofHost = byHost.get(pid);
    if (ofHost) ofHost.push({ t, by });
    else byHost.set(pid, [{ t, by }]);
  }
  for (const [pid, ofHost] of byHost) {
    ofHost.sort((a, b) => a.t - b.t || a.by - b.by);
    let now = 0;
    let said = 0;
    ofHost.forEach((change, i) => {
      now += change.by;
      if (ofHost[i + 1]?.t === change.t || now === said) return; // more at this instant, or no change
      said = now;
      traceEvents.push({ name: 'tasks in flight', ph: 'C', pid, tid: 0, ts: change.t, args: { tasks: now } });
    });
  }
  for (const mark of marks) {
    const pid = hostPid.get(mark.host) ?? 1;
    const tid = mark.runner === undefined ? undefined : trackOfRunner(mark.host, mark.runner)?.tid;
    traceEvents.push({
      name: mark.name,
      ph: 'i',
      pid,
      tid: tid ?? 0,
      ts: Math.max(0, us(mark.t)),
      s: tid === undefined ? 'p' : 't',
      args: withoutUndefined(mark.args),
    });
  }
  return {
    timeline,
    trace: {
      traceEvents,
      displayTimeUnit: 'ms',
      otherData: { job_id: job.jobId, results: dir, started: new Date(start).toISOString(), tool: 'modelops-debugger' },
    },
    summary: {
      tasks: tasks.length,
      hosts: hosts.length,
      slots: lanes.filter((lane) => lane.slot > 0).length,
      runners: lanes.reduce((sum, lane) => sum + lane.runners.length, 0),
      instants: marks.length,
      unreadable,
    },
  };
}

function withoutUndefined(args: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const key in args) if (args[key] !== undefined) kept[key] = args[key];
  return kept;
}
