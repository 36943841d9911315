/**
 * What a run report says, built from the results folder alone (job.json, the manifest, the
 * results, events.jsonl): the outcome and where the time went, a table of the parameter sets,
 * the slowest tasks, the failures grouped by signature with what their parameter sets share, the
 * durations' histogram, the timeline (the trace's tasks) and the environment. reportHtml.ts
 * renders it as one self-contained file.
 */
import * as path from 'node:path';
import { paramTexts, scalarJson } from '../job/ids';
import { quantile } from '../job/summary';
import { describeParams } from '../replicate/select';
import type { AggRecord, SimRecord } from '../job/records';
import { readManifestFacts, type ManifestFacts } from '../job/manifestFacts';
import { readAggResult, readJobJson, readSimResults } from '../job/resultsReader';
import type { JobSpec } from '../job/spec';
import { chromeTrace } from '../trace/chromeTrace';
import type { TimelineUpdate } from '../trace/timeline';
import { PyFloat } from '../pyjson/pyjson';
import type { LogFile, Unparsed } from './productionLogs';

export interface SetRow {
  param_id: string;
  params: Record<string, string>;
  ok: number;
  failed: number;
  missing: number;
  aggregation: string;
  losses: Record<string, number | string>;
  p50_ms?: number;
  p95_ms?: number;
  peak_rss_kb?: number;
  /** From production logs: each aggregation of the set (AGG_TIMING), its target, time, payload and worker. */
  aggs?: { target: string; ms: number; mb: number; worker: string }[];
}

export interface FailureGroup {
  /** kind · exception type (or, for a runner the OOM killer most likely ended, `OOM-killed`) · top bundle frame */
  signature: string;
  kind: string;
  exception?: string;
  /** Runners SIGKILLed near their memory limit (evidence.oom): told apart from other crashes. */
  oom?: boolean;
  location?: string;
  count: number;
  example: string;
  /** "all 14 failures have beta ≥ 0.5": what the failing sets' parameters share, against the others. */
  shared: string[];
  replicates: { param_id: string; replicate: number }[];
}

export interface RunReport {
  job_id: string;
  dir: string;
  status: string;
  counts: { ok: number; failed: number; missing: number; total: number; sets: number };
  /** The run's wall time, the tasks' time in runners, and the rest of the runner slots' time. */
  time: { run_ms?: number; compute_ms: number; overhead_ms: number; idle_ms?: number; slots: number };
  sets: SetRow[];
  /** From production logs, `worker` and `at` (file:line) too. */
  slowest: {
    key: string;
    ms: number;
    state: string;
    params: string;
    replicate: number;
    worker?: string;
    at?: string;
  }[];
  failures: FailureGroup[];
  /** Replicates per duration bucket (ms, lower bounds: 0, 1, 2, 5, 10, 20, 50…). */
  histogram: { from_ms: number; count: number }[];
  /** The tasks on their runner slots' lanes, as the editor's timeline shows them. */
  timeline: TimelineUpdate;
  environment: { field: string; value: string }[];
  /** Present when the report was made from production's worker logs (report --from-logs). */
  logs?: LogFacts;
}

/** A distribution: how many, the median, the 95th percentile (nearest rank: summary.ts's quantile), the largest. */
export interface Spread {
  n: number;
  p50?: number;
  p95?: number;
  max?: number;
}

/** What production's SIM_TIMING / AGG_TIMING lines say beyond the sections a results folder has. */
export interface LogFacts {
  files: LogFile[];
  sims: Spread;
  aggs: Spread;
  /** total_inline_mb per aggregation. */
  payload_mb: Spread;
  /** The largest single output (max_single_kb), and the aggregation that had it. */
  max_single_kb?: { kb: number; at: string };
  /** Parameter sets (run_id and param_id) with two targets or more, and those aggregated on more than one worker. */
  split: { sets: number; split: number };
  /** Sums of the logged durations, and when timestamps allow, the span from the first start to the last end. */
  time: { sim_ms: number; agg_ms: number; span_ms?: number; from?: string; to?: string };
  /** Tasks whose line starts with a timestamp (drawn on the timeline) and those without one. */
  timestamps: { with: number; without: number };
  workers: { worker: string; sims: number; aggs: number; busy_ms: number; span_ms?: number }[];
  /** Lines with a marker that did not parse: how many, and the first few with why. */
  unparsed: { count: number; first: Unparsed[] };
}

const SLOWEST = 20;

export async function runReport(folder: string): Promise<RunReport> {
  const dir = path.resolve(folder);
  const { job } = await readJobJson(dir);
  const manifest = readManifestFacts(dir);
  const sets: SetRow[] = [];
  const all: { set: (typeof job.parameterSets)[number]; record: SimRecord }[] = [];
  const groups = new Map<string, FailureGroup>();
  const failingSets = new Map<string, Set<string>>(); // signature → param ids
  let missing = 0;
  for (const set of job.parameterSets) {
    const sims = await readSimResults(dir, set);
    const found = sims.flatMap((sim) => (sim.state === 'found' ? [sim.record] : []));
    missing += set.seeds.length - found.length;
    // what the report needs of each, not its outputs (100 000 of them would hold every byte)
    for (const record of found) all.push({ set, record: { ...record, outputs: undefined, evidence: undefined } });
    const agg = await readAggResult(dir, set);
    const ms = found.map((record) => record.ms).sort((a, b) => a - b);
    const peaks = found
      .map((record) => numberOf(record.resources?.peak_rss_kb))
      .filter((kb): kb is number => kb !== undefined);
    sets.push({
      param_id: set.paramId,
      params: paramTexts(set.params),
      ok: found.filter((record) => record.status === 'ok').length,
      failed: found.filter((record) => record.status === 'failed').length,
      missing: set.seeds.length - found.length,
      aggregation: agg.state === 'found' ? agg.record.status : 'none',
      losses: agg.state === 'found' ? losses(agg.record) : {},
      p50_ms: quantile(ms, 0.5),
      p95_ms: quantile(ms, 0.95),
      peak_rss_kb: peaks.length ? Math.max(...peaks) : undefined,
    });
    for (const record of found) {
      if (record.status !== 'failed') continue;
      const exception = (record.evidence?.exception as { type?: string } | undefined)?.type;
      const location = record.location
        ? `${path.relative(job.bundleDir, record.location.file)}:${record.location.line}`
        : undefined;
      const oom = record.evidence?.oom !== undefined;
      const signature = [record.kind, exception, oom ? 'OOM-killed' : undefined, location].filter(Boolean).join(' · ');
      const group = groups.get(signature) ?? {
        signature,
        kind: record.kind ?? 'unknown',
        exception,
        ...(oom ? { oom } : {}),
        location,
        count: 0,
        example: record.message ?? '',
        shared: [],
        replicates: [],
      };
      group.count++;
      group.replicates.push({ param_id: set.paramId, replicate: record.replicate });
      groups.set(signature, group);
      failingSets.set(signature, (failingSets.get(signature) ?? new Set()).add(set.paramId));
    }
  }
  for (const group of groups.values()) group.shared = shared(job, failingSets.get(group.signature)!, group.count);

  const ok = all.filter(({ record }) => record.status === 'ok').length;
  const { trace, timeline } = chromeTrace(dir, job);
  const tracks = trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name');
  const bars = trace.traceEvents.filter((e) => e.ph === 'X');
  const compute = all.reduce((sum, { record }) => sum + (numberOf(record.resources?.wall_ms) ?? record.ms), 0);
  // the runner slots' time (the engine's own lane, aggregations without targets, is no slot)
  const runnerTracks = new Set(
    tracks.filter((e) => String(e.args?.name).startsWith('slot ')).map((e) => `${e.pid}:${e.tid}`),
  );
  const busy =
    bars.filter((e) => runnerTracks.has(`${e.pid}:${e.tid}`)).reduce((sum, e) => sum + (e.dur ?? 0), 0) / 1000;
  const runMs = typeof manifest?.ms === 'number' ? manifest.ms : undefined;
  const slots = runnerTracks.size;
  return {
    job_id: job.jobId,
    dir,
    status: typeof manifest?.status === 'string' ? manifest.status : 'no manifest (running, or stopped without one)',
    counts: { ok, failed: all.length - ok, missing, total: all.length + missing, sets: job.parameterSets.length },
    time: {
      run_ms: runMs,
      compute_ms: Math.round(compute),
      overhead_ms: Math.round(Math.max(0, busy - compute)),
      idle_ms: runMs === undefined ? undefined : Math.round(Math.max(0, runMs * slots - busy)),
      slots,
    },
    sets,
    slowest: [...all]
      .sort((a, b) => b.record.ms - a.record.ms)
      .slice(0, SLOWEST)
      .map(({ set, record }) => ({
        key: record.key,
        ms: record.ms,
        state: record.status === 'ok' ? 'ok' : `${record.kind}`,
        params: describeParams(set),
        replicate: record.replicate,
      })),
    failures: [...groups.values()].sort((a, b) => b.count - a.count),
    histogram: histogram(all.map(({ record }) => record.ms)),
    timeline: timeline.snapshot(),
    environment: environment(manifest),
  };
}

function losses(record: AggRecord): Record<string, number | string> {
  return Object.fromEntries(
    Object.entries(record.targets).map(([target, result]) => [
      target,
      result.status === 'ok' ? (numberOf(result.loss) ?? String(result.loss)) : `${result.kind}`,
    ]),
  );
}

/**
 * What the failing sets' parameters share, against the sets without this failure: one value
 * ("x = 2"), or a bound the others all fall short of ("beta ≥ 0.5", "beta ≤ 0.1").
 */
function shared(job: JobSpec, failing: Set<string>, count: number): string[] {
  const inside = job.parameterSets.filter((set) => failing.has(set.paramId));
  const outside = job.parameterSets.filter((set) => !failing.has(set.paramId));
  const said: string[] = [];
  const all = `all ${count} failure${count === 1 ? '' : 's'} have`;
  for (const key of Object.keys(inside[0]?.params ?? {})) {
    const values = inside.map((set) => set.params[key]);
    const text = values.map((value) => scalarJson(value));
    if (new Set(text).size === 1) {
      // one value: telling only when some other set has another
      if (outside.some((set) => scalarJson(set.params[key]) !== text[0])) said.push(`${all} ${key} = ${text[0]}`);
      continue;
    }
    const numbers = values.map(paramNumber);
    const others = outside.map((set) => paramNumber(set.params[key]));
    if (numbers.some(Number.isNaN) || others.some(Number.isNaN) || !others.length) continue;
    const low = Math.min(...numbers);
    const high = Math.max(...numbers);
    if (others.every((value) => value < low)) said.push(`${all} ${key} ≥ ${low}`);
    else if (others.every((value) => value > high)) said.push(`${all} ${key} ≤ ${high}`);
  }
  return said;
}

const BUCKETS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000];

/** Counts per duration bucket (ms), up to the last bucket that has any. */
export function histogram(durations: number[]): RunReport['histogram'] {
  const counts = BUCKETS.map(() => 0);
  for (const ms of durations) {
    let i = BUCKETS.length - 1;
    while (i > 0 && ms < BUCKETS[i]) i--;
    counts[i]++;
  }
  let last = counts.length - 1;
  while (last > 0 && counts[last] === 0) last--;
  return BUCKETS.slice(0, last + 1).map((from_ms, i) => ({ from_ms, count: counts[i] }));
}

function environment(manifest: ManifestFacts | undefined): RunReport['environment'] {
  const env = manifest?.environment ?? {};
  const key = env.venv?.key;
  const [digest, python, deps, fresh] = key?.split('-') ?? [];
  const fields: [string, unknown][] = [
    ['backend', manifest?.options?.backend],
    ['workers', manifest?.options?.workers],
    ['bundle', env.bundle?.dir],
    ['bundle digest', env.bundle?.digest],
    ['Python', env.python?.version ?? (env.python?.venv_python && `${env.python.venv_python} (as it is, no venv)`)],
    ['venv key', key],
    ['venv key parts', key ? `digest ${digest}, ${python}, deps ${deps}${fresh ? `, fresh ${fresh}` : ''}` : undefined],
    ['engine', env.engine],
    ['host', env.host],
    ['platform', env.platform],
  ];
  return fields.filter(([, value]) => value !== undefined).map(([field, value]) => ({ field, value: String(value) }));
}

/** A parameter's value as a number (NaN for a string or a boolean). */
function paramNumber(value: unknown): number {
  if (typeof value === 'bigint') return Number(value);
  return numberOf(value) ?? NaN;
}

/** A number as results files hold it: read back, a float is a PyFloat (so that 1.0 stays 1.0). */
function numberOf(value: unknown): number | undefined {
  if (value instanceof PyFloat) return value.value;
  return typeof value === 'number' ? value : undefined;
}
