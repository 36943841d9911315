/**
 * The job's books, kept the same way whichever backend runs the tasks: what each parameter set
 * has done, the counts, the result files and the events that say so. A backend decides where
 * and when a task runs; how its outcome is recorded — a simulation's record, an aggregation
 * that is skipped because replicates failed, the built-in summary — is decided here, once.
 */
import { stringifyWireJson, RawJson } from '../pyjson/pyjson';
import * as path from 'node:path';
import { isInside } from '../diagnose/pythonTrace';
import { Failure, type FailureKind, type SourceLocation } from '../failure';
import type { PyFrame } from '../protocol';
import type { JobCounts, JobEvent, JobEventBody } from './events';
import { canonicalJson } from './ids';
import type { AggRecord, OutputRecord, SimRecord, StderrRange, TaskResources } from './records';
import type { RequestUsage } from '../process/warmProcess';
import { MEASURE_TASKS } from '../process/measures';
import type { RunnerResources } from '../protocol';
import type { ResultsStore } from './results';
import { crashFacts } from '../diagnose/crashFacts';
import type { JobSpec, ParameterSet } from './spec';
import { summarize } from './summary';
import { aggKey, simKey } from './taskKeys';

/** How long a task may run before it is announced as running (see JobBook.taskStarted). */
export const START_ANNOUNCE_MS = 50;

/** The kinds a new attempt can cure: the process died under the task. */
export const RETRYABLE: ReadonlySet<FailureKind> = new Set(['process-crashed']);

export interface Outcome {
  ok: boolean;
  outputs?: Record<string, OutputRecord>;
  kind?: FailureKind;
  message?: string;
}

export interface SetState {
  set: ParameterSet;
  /** The parameters once encoded, sent as they are with every replicate. */
  wireParams: RawJson;
  outcomes: Map<number, Outcome>;
  aggregated: boolean;
  /** How an earlier run's aggregation ended, when resuming. */
  earlierAgg?: AggRecord['status'];
}

/** Where a task ran, for its record and events. */
export interface RanOn {
  attempts: number;
  pid: number | undefined;
  ms: number;
  /** The Dask worker's address (dask backend only). */
  worker?: string;
  /** The task's part of its runner's stderr log, when known. */
  stderr?: StderrRange;
  /** When it ended (ms since the epoch), taken with `ms`: its task-done's `t`, so `t - ms` is when it began. */
  endedAt?: number;
  /** What it cost (its runner's measures, when our runner ran it, and the engine's). */
  resources?: TaskResources;
}

/** An aggregation that is to run its targets: the record so far and the replicates it takes. */
export interface AggregationPlan {
  record: AggRecord;
  ok: [number, Outcome][];
  begun: number;
}

export class JobBook {
  readonly states: SetState[];
  readonly counts: JobCounts;

  constructor(
    readonly job: JobSpec,
    readonly store: ResultsStore,
    private readonly allowPartial: boolean,
    private readonly onEvent?: (event: JobEvent) => void,
  ) {
    this.states = job.parameterSets.map((set) => loadState(set, store));
    this.counts = initialCounts(this.states, job);
  }

  /**
   * After a write failed, the counts say what finished, not what is on disk: count again from
   * the files, as a resume will, so the manifest promises nothing the folder does not hold.
   */
  recountFromDisk(): void {
    Object.assign(
      this.counts,
      initialCounts(
        this.job.parameterSets.map((set) => loadState(set, this.store)),
        this.job,
      ),
    );
  }

  emit(body: JobEventBody, t = Date.now()): void {
    if (this.unannounced.size && 'key' in body && body.key !== undefined && body.type !== 'task-start') {
      const start = this.unannounced.get(body.key);
      if (start) {
        this.unannounced.delete(body.key);
        // ended or retried unannounced: its task-done says when it began; anything else it says
        // (a warning) comes after the start it belongs to
        if (body.type !== 'task-done' && body.type !== 'task-retry') this.emit(start, start.t);
      }
    }
    if (body.type === 'job-done') this.forgetStarts();
    const event = { t, ...body } as JobEvent;
    this.store.appendEvent(event);
    this.onEvent?.(event);
  }

  /**
   * A task began on a runner. Its `task-start` is announced at the next announcement, at most
   * START_ANNOUNCE_MS later and stamped with the time it began, and only if it is still running
   * then: most tasks of a big job end sooner, and their `task-done` says when they began
   * (`t - ms`). So the hot path costs one event per task, and the tasks announced as running are
   * exactly those running at each announcement, never more than that interval behind.
   */
  taskStarted(key: string, attempt: number, pid: number | undefined, t = Date.now()): void {
    this.unannounced.set(key, { type: 'task-start', key, attempt, pid, t: Math.round(t) });
    this.announcing ??= setTimeout(() => this.announceStarts(), START_ANNOUNCE_MS).unref();
  }

  private readonly unannounced = new Map<string, Extract<JobEventBody, { type: 'task-start' }> & { t: number }>();
  private announcing: NodeJS.Timeout | undefined;

  private announceStarts(): void {
    this.announcing = undefined;
    const starts = [...this.unannounced.values()];
    this.unannounced.clear();
    for (const { t, ...start } of starts) this.emit(start, t);
  }

  /** The job ended: a task still unannounced was stopped, and says so by having no task-done. */
  private forgetStarts(): void {
    clearTimeout(this.announcing);
    this.announcing = undefined;
    this.unannounced.clear();
  }

  /** A parameter set whose replicates all have an outcome and that still needs its aggregation. */
  awaitsAggregation(state: SetState): boolean {
    return !state.aggregated && state.outcomes.size === state.set.seeds.length;
  }

  simSucceeded(state: SetState, replicate: number, outputs: Record<string, string>, ran: RanOn): void {
    const key = simKey(state.set.paramId, replicate);
    const record: SimRecord = {
      key,
      status: 'ok',
      param_id: state.set.paramId,
      replicate,
      seed: state.set.seeds[replicate],
      attempts: ran.attempts,
      pid: ran.pid,
      ms: ran.ms,
      outputs: outputRecords(outputs),
    };
    if (ran.worker) record.worker = ran.worker;
    if (ran.stderr) record.stderr = ran.stderr;
    // the record's outputs have their sizes; the event says them in its resources
    if (ran.resources) record.resources = ran.resources;
    const resources = withOutputBytes(ran.resources, record.outputs!);
    this.finishSim(state, replicate, record);
    this.emit(
      {
        type: 'task-done',
        key,
        status: 'ok',
        attempt: ran.attempts,
        pid: ran.pid,
        ms: ran.ms,
        ...(ran.worker ? { worker: ran.worker } : {}),
        ...(ran.stderr ? { stderr: ran.stderr } : {}),
        ...(resources ? { resources } : {}),
      },
      ran.endedAt,
    );
  }

  simFailed(state: SetState, replicate: number, failure: Failure, ran: RanOn): void {
    const key = simKey(state.set.paramId, replicate);
    const record: SimRecord = {
      key,
      status: 'failed',
      param_id: state.set.paramId,
      replicate,
      seed: state.set.seeds[replicate],
      attempts: ran.attempts,
      pid: ran.pid,
      ms: ran.ms,
      kind: failure.kind,
      message: failure.message,
      location: failure.location,
      evidence: trimEvidence(failure),
    };
    if (ran.worker) record.worker = ran.worker;
    if (ran.stderr) record.stderr = ran.stderr;
    if (ran.resources) record.resources = ran.resources;
    this.finishSim(state, replicate, record);
    const crash = crashFacts(failure.evidence);
    this.emit(
      {
        type: 'task-done',
        key,
        status: 'failed',
        attempt: ran.attempts,
        pid: ran.pid,
        ms: ran.ms,
        kind: failure.kind,
        message: failure.message,
        location: failure.location,
        callers: callers(failure, this.job.bundleDir),
        ...(ran.worker ? { worker: ran.worker } : {}),
        ...(ran.stderr ? { stderr: ran.stderr } : {}),
        ...(crash ? { crash } : {}),
        ...(ran.resources ? { resources: ran.resources } : {}),
      },
      ran.endedAt,
    );
  }

  private finishSim(state: SetState, replicate: number, record: SimRecord): void {
    this.store.writeSim(record);
    state.outcomes.set(replicate, {
      ok: record.status === 'ok',
      outputs: record.outputs,
      kind: record.kind,
      message: record.message,
    });
    this.counts.sims.pending--;
    this.counts.sims[record.status === 'ok' ? 'ok' : 'failed']++;
  }

  /**
   * Starts a parameter set's aggregation: when replicates failed (without --allow-partial) or
   * none succeeded it is recorded as skipped, naming them, and undefined is returned; otherwise
   * the summary is computed and the plan for the targets returned.
   */
  /** `ran`: the runner (and Dask worker) it ran in, when known as it starts. */
  planAggregation(state: SetState, ran: { pid?: number; worker?: string } = {}): AggregationPlan | undefined {
    const { set } = state;
    const key = aggKey(set.paramId);
    const begun = performance.now();
    const replicates = [...state.outcomes.entries()].sort(([a], [b]) => a - b);
    const failed = replicates.filter(([, o]) => !o.ok);
    const ok = replicates.filter(([, o]) => o.ok);
    const record: AggRecord = {
      key,
      status: 'ok',
      param_id: set.paramId,
      params: set.params,
      n_replicates: ok.length,
      ms: 0,
      targets: {},
    };
    if (failed.length) {
      record.failed_replicates = failed.map(([i, o]) => ({
        replicate: i,
        key: simKey(set.paramId, i),
        kind: o.kind,
        message: o.message,
      }));
    }
    if ((failed.length && !this.allowPartial) || ok.length === 0) {
      record.status = 'skipped';
      record.kind = 'aggregation-skipped';
      const named = failed
        .slice(0, 5)
        .map(([i, o]) => `${i} (${o.kind})`)
        .join(', ');
      record.message = `${failed.length} of ${replicates.length} replicates failed (replicates ${named}${failed.length > 5 ? ', …' : ''})${ok.length ? '; --allow-partial aggregates the others' : ''}`;
      this.finishAgg(state, record, begun);
      return undefined;
    }
    this.emit({ type: 'agg-start', key, pid: ran.pid, ...(ran.worker ? { worker: ran.worker } : {}) });
    record.summary = summarize(ok.map(([, o]) => decodeOutputs(o.outputs ?? {})));
    return { record, ok, begun };
  }

  targetFailed(record: AggRecord, target: string, failure: Failure): void {
    record.targets[target] = {
      status: 'failed',
      kind: failure.kind,
      message: failure.message,
      location: failure.location,
      ...(failure.evidence.oom ? { oom: failure.evidence.oom } : {}),
    };
    record.status = 'failed';
    record.kind ??= failure.kind;
    record.message ??= `${target}: ${failure.message}`;
  }

  /** `ran`: the runner its (last) target ran in and where (a Dask worker), and what its targets cost. */
  finishAgg(
    state: SetState,
    record: AggRecord,
    begun: number,
    ran: { resources?: TaskResources; pid?: number; worker?: string } = {},
  ): void {
    const { resources, pid, worker } = ran;
    record.ms = Math.round(performance.now() - begun);
    if (resources) record.resources = resources;
    this.store.writeAgg(record);
    state.aggregated = true;
    state.outcomes.clear(); // the outputs are on disk; keep memory flat on long jobs
    this.counts.aggregations.pending--;
    if (record.status === 'ok') this.counts.aggregations.ok++;
    else if (record.status === 'skipped') this.counts.aggregations.skipped++;
    else this.counts.aggregations.failed++;
    this.emit({
      type: 'agg-done',
      key: record.key,
      status: record.status,
      ms: record.ms,
      kind: record.kind,
      message: record.message,
      location: firstFailedLocation(record),
      ...(pid !== undefined ? { pid } : {}),
      ...(worker ? { worker } : {}),
      ...(resources ? { resources } : {}),
    });
  }
}

/** A task's resources with each output's bytes (decoded size), when there are resources at all. */
function withOutputBytes(
  resources: TaskResources | undefined,
  outputs: Record<string, OutputRecord>,
): TaskResources | undefined {
  if (!resources) return undefined;
  const bytes: Record<string, number> = {};
  for (const name in outputs) bytes[name] = outputs[name].size;
  // one literal of a fixed shape: a spread here cost several µs a task (bench:job's bookkeeping row)
  const said: TaskResources = {
    wall_ms: resources.wall_ms,
    cpu_user_ms: resources.cpu_user_ms,
    cpu_sys_ms: resources.cpu_sys_ms,
    peak_rss_kb: resources.peak_rss_kb,
    queue_ms: resources.queue_ms,
    transfer_ms: resources.transfer_ms,
    output_bytes: bytes,
  };
  if (resources.peak_rss) said.peak_rss = resources.peak_rss;
  return said;
}

/**
 * What a request cost, from its runner's measures (when it gave them) and the engine's clock:
 * `totalMs` from when it was ready to run to its answer, of which `usage.inRunnerMs` in its
 * runner's hands; the rest waited (for a runner, or behind another request in it), and what the
 * runner's hands held beyond its own wall time was framing, pipes and JSON.
 */
export function taskResources(usage: RequestUsage, totalMs: number): TaskResources | undefined {
  if (!MEASURE_TASKS) return undefined;
  const inRunner = usage.inRunnerMs ?? totalMs;
  const queue = toMicros(Math.max(0, totalMs - inRunner));
  const measured = usage.resources;
  if (!measured) return { queue_ms: queue };
  const resources = runnerResources(measured);
  resources.queue_ms = queue;
  resources.transfer_ms = toMicros(Math.max(0, inRunner - measured.wall_ms));
  return resources;
}

/** Milliseconds to the microsecond, as the runner says its own. */
function toMicros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** A runner's measures as a task's resources (`peak_rss` said only when it is not the task's own). */
export function runnerResources(measured: RunnerResources): TaskResources {
  const resources: TaskResources = {
    wall_ms: measured.wall_ms,
    cpu_user_ms: measured.cpu_user_ms,
    cpu_sys_ms: measured.cpu_sys_ms,
    peak_rss_kb: measured.peak_rss_kb,
  };
  // (a line per task of a big job adds up)
  if (measured.peak_rss === 'process') resources.peak_rss = 'process';
  return resources;
}

/** Several requests' resources as one (an aggregation's targets): times add up, the peak is the highest. */
export function addResources(a: TaskResources | undefined, b: TaskResources | undefined): TaskResources | undefined {
  if (!a || !b) return a ?? b;
  const sum = (x?: number, y?: number) =>
    x === undefined && y === undefined ? undefined : Math.round(((x ?? 0) + (y ?? 0)) * 1000) / 1000;
  const max = (x?: number, y?: number) => (x === undefined ? y : y === undefined ? x : Math.max(x, y));
  return {
    wall_ms: sum(a.wall_ms, b.wall_ms),
    cpu_user_ms: sum(a.cpu_user_ms, b.cpu_user_ms),
    cpu_sys_ms: sum(a.cpu_sys_ms, b.cpu_sys_ms),
    peak_rss_kb: max(a.peak_rss_kb, b.peak_rss_kb),
    peak_rss: a.peak_rss === 'process' || b.peak_rss === 'process' ? 'process' : undefined,
    queue_ms: sum(a.queue_ms, b.queue_ms),
    transfer_ms: sum(a.transfer_ms, b.transfer_ms),
  };
}

/** How a replicate of a set aggregated `ok` ended, when it succeeded: one object shared by all. */
const DONE_OK: Outcome = Object.freeze({ ok: true }) as Outcome;

function loadState(set: ParameterSet, store: ResultsStore): SetState {
  const agg = store.existingAgg(set);
  const earlierAgg = agg?.status;
  const state: SetState = {
    set,
    wireParams: new RawJson(canonicalJson(set.params)),
    outcomes: new Map(),
    aggregated: earlierAgg !== undefined,
    earlierAgg,
  };
  // aggregated ok: its record says how every replicate ended, so its simulations are not read (a
  // record whose counts do not add up to the set is not trusted: the simulations are read)
  const failed = agg?.failed_replicates ?? [];
  if (agg?.status === 'ok' && agg.n_replicates + failed.length === set.seeds.length) {
    const failedAt = new Map(failed.map((f) => [f.replicate, f]));
    if (failedAt.size === failed.length && failed.every((f) => f.replicate >= 0 && f.replicate < set.seeds.length)) {
      for (let replicate = 0; replicate < set.seeds.length; replicate++) {
        const f = failedAt.get(replicate);
        state.outcomes.set(replicate, f ? { ok: false, kind: f.kind, message: f.message } : DONE_OK);
      }
      return state;
    }
  }
  for (const [replicate, record] of store.existingSims(set)) {
    if (replicate >= set.seeds.length) continue;
    // an aggregated set's outputs are summarised already: keep only how each replicate ended
    const outputs = state.aggregated ? undefined : record.outputs;
    state.outcomes.set(replicate, { ok: record.status === 'ok', outputs, kind: record.kind, message: record.message });
  }
  return state;
}

function initialCounts(states: SetState[], job: JobSpec): JobCounts {
  const counts: JobCounts = {
    sims: { total: 0, ok: 0, failed: 0, pending: 0 },
    aggregations: { total: job.parameterSets.length, ok: 0, failed: 0, skipped: 0, pending: job.parameterSets.length },
  };
  for (const state of states) {
    counts.sims.total += state.set.seeds.length;
    for (const outcome of state.outcomes.values()) counts.sims[outcome.ok ? 'ok' : 'failed']++;
    if (state.earlierAgg) {
      counts.aggregations.pending--;
      counts.aggregations[state.earlierAgg]++;
    }
  }
  counts.sims.pending = counts.sims.total - counts.sims.ok - counts.sims.failed;
  return counts;
}

function outputRecords(outputs: Record<string, string>): Record<string, OutputRecord> {
  const records: Record<string, OutputRecord> = {};
  for (const [name, inline] of Object.entries(outputs)) records[name] = { size: base64Size(inline), inline };
  return records;
}

function base64Size(b64: string): number {
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

export function decodeOutputs(outputs: Record<string, OutputRecord>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(outputs).map(([name, o]) => [name, Buffer.from(o.inline, 'base64')]));
}

/** What a sim result file keeps of a failure's evidence: enough to act on, bounded in size. */
function trimEvidence(failure: Failure): Record<string, unknown> {
  const {
    exception,
    frames,
    exitCode,
    signal,
    phase,
    stderrTail,
    taskStderr,
    stacks,
    stdoutNoise,
    notes,
    elapsedMs,
    timeoutMs,
    oom,
  } = failure.evidence;
  return JSON.parse(
    stringifyWireJson({
      exception,
      frames,
      exitCode,
      signal,
      phase,
      stderrTail: stderrTail?.slice(-2000),
      taskStderr: taskStderr?.slice(-2000),
      stacks: stacks?.slice(-4000),
      stdoutNoise,
      notes,
      elapsedMs,
      timeoutMs,
      oom,
    }),
  ) as Record<string, unknown>;
}

/** Where an aggregation failed: its first failed target's line. */
export function firstFailedLocation(record: AggRecord): SourceLocation | undefined {
  for (const result of Object.values(record.targets))
    if (result.status === 'failed' && result.location) return result.location;
  return undefined;
}

/** The frames of a failure's traceback inside the bundle, but the one it is located at. */
function callers(failure: Failure, bundleDir: string): SourceLocation[] | undefined {
  return bundleCallers(failure.evidence.frames, failure.location, bundleDir);
}

/**
 * The bundle's frames of a traceback (a failure's, or a result file's evidence), outermost
 * first, but the one the failure is located at: how it got there.
 */
export function bundleCallers(
  frames: readonly PyFrame[] | undefined,
  location: SourceLocation | undefined,
  bundleDir: string,
): SourceLocation[] | undefined {
  const inside = (frames ?? []).filter((frame) => isInside(frame.file, bundleDir));
  const others = inside.filter((frame) => frame.file !== location?.file || frame.line !== location?.line);
  return others.length
    ? others.map((frame) => ({ file: path.resolve(bundleDir, frame.file), line: frame.line, function: frame.function }))
    : undefined;
}
