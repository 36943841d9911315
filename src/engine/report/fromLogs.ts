/**
 * The run report from production's worker logs (`report --from-logs`): the SIM_TIMING and
 * AGG_TIMING lines of every file merged, as the same RunReport a results folder gives, with what
 * only the logs have (payload MB per aggregation, the split-aggregation rate, per-worker busy
 * time) in `logs`. What the lines cannot say (which tasks failed, the environment) is left empty
 * and the page says why.
 */
import { Failure } from '../failure';
import { quantile } from '../job/summary';
import type { AggTiming, ProductionLogs, SimTiming } from './productionLogs';
import { histogram, type RunReport, type SetRow, type Spread } from './runReport';
import { AGGREGATION, TASK_FIELDS, TaskState, UNKNOWN_REPLICATE, type TimelineUpdate } from '../trace/timeline';

const SLOWEST = 20;
/** Lines with a marker that did not parse, shown with their file and line. */
const UNPARSED_SHOWN = 10;

type Task = { kind: 'sim'; t: SimTiming } | { kind: 'agg'; t: AggTiming };

export function reportFromLogs(logs: ProductionLogs): RunReport {
  const { sims, aggs, files } = logs;
  const lines = files.reduce((sum, file) => sum + file.lines, 0);
  if (!sims.length && !aggs.length) {
    const first = logs.unparsed[0];
    if (first)
      throw new Failure(
        'bad-input',
        `No SIM_TIMING or AGG_TIMING line parses: ${logs.unparsed.length} line${logs.unparsed.length === 1 ? ' has' : 's have'} a marker, none production's fields (first: ${first.why}).`,
        { notes: logs.unparsed.slice(0, UNPARSED_SHOWN).map((u) => `${u.file}:${u.line}: ${u.why}: ${u.text}`) },
        { file: first.file, line: first.line },
      );
    throw new Failure(
      'bad-input',
      `No SIM_TIMING or AGG_TIMING line in ${files.length} file${files.length === 1 ? '' : 's'} (${lines} lines): these are not production worker logs, or the workers logged above INFO (the lines are logger.info in modelops services/dask_simulation.py, 9c435f2 or later).`,
      { notes: files.map((file) => `${file.file}: ${file.lines} lines${file.gzip ? ' (gzip)' : ''}`) },
    );
  }

  const tasks: Task[] = [
    ...sims.map((t) => ({ kind: 'sim' as const, t })),
    ...aggs.map((t) => ({ kind: 'agg' as const, t })),
  ];
  const timed = tasks.filter(({ t }) => t.end_ms !== undefined);
  // loops, not Math.min(...): a million tasks would overflow the call stack
  let from: number | undefined;
  let to: number | undefined;
  const perWorker = new Map<string, { sims: number; aggs: number; busy: number; from?: number; to?: number }>();
  for (const { kind, t } of tasks) {
    const w = perWorker.get(t.worker) ?? { sims: 0, aggs: 0, busy: 0 };
    perWorker.set(t.worker, w);
    if (kind === 'sim') w.sims++;
    else w.aggs++;
    w.busy += t.duration_ms;
    if (t.end_ms === undefined) continue;
    const start = t.end_ms - t.duration_ms;
    w.from = Math.min(w.from ?? start, start);
    w.to = Math.max(w.to ?? t.end_ms, t.end_ms);
    from = Math.min(from ?? start, start);
    to = Math.max(to ?? t.end_ms, t.end_ms);
  }
  const spanMs = from === undefined ? undefined : to! - from;
  const workerNames = [...perWorker.keys()].sort();
  const workers = workerNames.map((worker) => {
    const w = perWorker.get(worker)!;
    return {
      worker,
      sims: w.sims,
      aggs: w.aggs,
      busy_ms: round(w.busy),
      span_ms: w.from === undefined ? undefined : round(w.to! - w.from),
    };
  });

  const simMs = round(sims.reduce((sum, t) => sum + t.duration_ms, 0));
  const aggMs = round(aggs.reduce((sum, t) => sum + t.duration_ms, 0));
  const setRows = sets(sims, aggs);
  const widest = aggs.reduce<AggTiming | undefined>(
    (a, b) => (a && a.max_single_kb >= b.max_single_kb ? a : b),
    undefined,
  );

  return {
    job_id: `production logs (${files.length} file${files.length === 1 ? '' : 's'})`,
    dir: files.map((file) => file.file).join(', '),
    status: 'from production worker logs',
    counts: { ok: sims.length, failed: 0, missing: 0, total: sims.length, sets: setRows.length },
    time: {
      run_ms: spanMs === undefined ? undefined : round(spanMs),
      compute_ms: round(simMs + aggMs),
      overhead_ms: 0,
      idle_ms: spanMs === undefined ? undefined : round(Math.max(0, spanMs * workers.length - simMs - aggMs)),
      slots: workers.length,
    },
    sets: setRows,
    slowest: [...tasks]
      .sort((a, b) => b.t.duration_ms - a.t.duration_ms)
      .slice(0, SLOWEST)
      .map((task) => ({
        key: task.kind === 'sim' ? `sim p${task.t.param_id}` : `agg p${task.t.param_id}`,
        ms: task.t.duration_ms,
        state: task.kind === 'sim' ? `seed ${task.t.seed}` : task.t.target,
        params: task.t.param_id,
        replicate: -1,
        worker: task.t.worker,
        at: `${task.t.file}:${task.t.line}`,
      })),
    failures: [],
    histogram: histogram(sims.map((t) => t.duration_ms)),
    timeline: logTimeline(timed, from ?? 0, spanMs ?? 0),
    environment: [],
    logs: {
      files,
      sims: spread(sims.map((t) => t.duration_ms)),
      aggs: spread(aggs.map((t) => t.duration_ms)),
      payload_mb: spread(aggs.map((t) => t.total_inline_mb)),
      max_single_kb: widest && {
        kb: widest.max_single_kb,
        at: `agg p${widest.param_id} ${widest.target} on ${widest.worker} (${widest.file}:${widest.line})`,
      },
      split: splitAggregations(aggs),
      time: {
        sim_ms: simMs,
        agg_ms: aggMs,
        span_ms: spanMs === undefined ? undefined : round(spanMs),
        from: from === undefined ? undefined : new Date(from).toISOString(),
        to: to === undefined ? undefined : new Date(to).toISOString(),
      },
      timestamps: { with: timed.length, without: tasks.length - timed.length },
      workers,
      unparsed: { count: logs.unparsed.length, first: logs.unparsed.slice(0, UNPARSED_SHOWN) },
    },
  };
}

/** Per parameter set (param_id's 8 hex, as logged): its simulations' spread and each aggregation. */
function sets(sims: SimTiming[], aggs: AggTiming[]): SetRow[] {
  const ids = [...new Set([...sims.map((t) => t.param_id), ...aggs.map((t) => t.param_id)])].sort();
  const simsOf = groupBy(sims, (t) => t.param_id);
  const aggsOf = groupBy(aggs, (t) => t.param_id);
  return ids.map((id) => {
    const ms = (simsOf.get(id) ?? []).map((t) => t.duration_ms).sort((a, b) => a - b);
    const own = aggsOf.get(id) ?? [];
    return {
      param_id: id,
      params: {},
      ok: ms.length,
      failed: 0,
      missing: 0,
      aggregation: `${own.length} aggregation${own.length === 1 ? '' : 's'}`,
      losses: {},
      p50_ms: quantile(ms, 0.5),
      p95_ms: quantile(ms, 0.95),
      aggs: own.map((t) => ({ target: t.target, ms: t.duration_ms, mb: t.total_inline_mb, worker: t.worker })),
    };
  });
}

/**
 * The split-aggregation rate's parts, as calabaria's analyze_perf_logs.py counts it: among the
 * parameter sets (run_id and param_id) whose aggregations cover two targets or more, those whose
 * aggregations ran on more than one worker (each worker then held the set's simulation results).
 */
function splitAggregations(aggs: AggTiming[]): { sets: number; split: number } {
  let sets = 0;
  let split = 0;
  for (const own of groupBy(aggs, (t) => `${t.run_id} ${t.param_id}`).values()) {
    if (new Set(own.map((t) => t.target)).size < 2) continue;
    sets++;
    if (new Set(own.map((t) => t.worker)).size > 1) split++;
  }
  return { sets, split };
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), max: sorted.at(-1) };
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Logged durations have one decimal: sums keep one, without float noise. */
function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * The timed tasks as the editor's timeline draws them: a lane per thread of each worker (a
 * worker runs as many tasks at once as it has threads; the lines do not say which thread, so
 * each task takes the first of its worker's lanes free when it started), simulations green,
 * aggregations grey (the lines do not say which failed), every parameter set by its param_id.
 */
function logTimeline(timed: Task[], from: number, spanMs: number): TimelineUpdate {
  const byStart = [...timed].sort((a, b) => a.t.end_ms! - a.t.duration_ms - (b.t.end_ms! - b.t.duration_ms));
  const lanes: { worker: string; thread: number; free: number }[] = [];
  const setIndex = new Map<string, number>();
  const tasks: number[] = [];
  const notes: Record<number, string> = {};
  for (const { kind, t } of byStart) {
    const start = t.end_ms! - t.duration_ms - from;
    const threads = lanes.filter((lane) => lane.worker === t.worker);
    let lane = threads.find((l) => l.free <= start);
    if (!lane) lanes.push((lane = { worker: t.worker, thread: threads.length + 1, free: 0 }));
    lane.free = start + t.duration_ms;
    let set = setIndex.get(t.param_id);
    if (set === undefined) setIndex.set(t.param_id, (set = setIndex.size));
    if (kind === 'agg')
      notes[tasks.length / TASK_FIELDS] = `${t.target} · ${t.total_inline_mb} MB · ${t.file}:${t.line}`;
    tasks.push(
      lanes.indexOf(lane),
      round(start),
      round(t.duration_ms),
      kind === 'sim' ? TaskState.ok : TaskState.other,
      set,
      kind === 'sim' ? UNKNOWN_REPLICATE : AGGREGATION,
      1,
    );
  }
  return {
    reset: true,
    job_id: 'production logs',
    start: from,
    now: spanMs,
    ended: true,
    lanes: lanes.map((lane) => `${lane.worker.replace(/^tcp:\/\//, '')} · thread ${lane.thread}`),
    sets: [...setIndex.keys()].map((paramId) => ({ param_id: paramId, label: `param_id ${paramId}` })),
    tasks,
    notes,
    running: [],
    marks: [],
    states: ['simulation', 'failed', 'aggregation', 'running'],
  };
}
