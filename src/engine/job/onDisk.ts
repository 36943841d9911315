/**
 * A job as its results folder tells it — `job.json`, `manifest.json`, `sims/`, `aggs/`,
 * `events.jsonl` — read through the ResultsReader (results.ts), so a new results layout changes
 * only the store. The editor rebuilds its Jobs tree from this whenever a job starts, resumes,
 * reruns, ends or is opened from disk: what a cancelled run finished shows as finished. Reading
 * never locks or writes the folder, so it may be read while another process runs the job.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Failure } from '../failure';
import { holderGone, readOwner } from '../lock/dirLock';
import { eventTime, type JobCounts, type JobEvent, type JobStatus } from './events';
import type { AggRecord, SimRecord } from './records';
import { ResultsReader } from './results';
import { readJobJson } from './resultsReader';
import { RESULTS_LOCK } from './resultsFolder';
import type { JobSpec } from './spec';

/** The longest the reader keeps the event loop between two parameter sets. */
const SLICE_MS = 20;

export type WarningEvent = Extract<JobEvent, { type: 'warning' }>;

/** The events a folder's reading needs whole (see readJobFolder). */
const WHOLE_EVENTS: ReadonlySet<JobEvent['type']> = new Set(['warning', 'job-start', 'job-done']);

export interface SetOnDisk {
  /**
   * The replicates that have a valid result, without their outputs (the bulk of a record: the
   * results documents read them when shown), so a big job's tree does not hold them all.
   */
  sims: Map<number, SimRecord>;
  agg?: AggRecord;
}

export interface JobOnDisk {
  dir: string;
  job: JobSpec;
  /**
   * How the last run ended (its manifest); `running` while a live process holds the folder's
   * lock and has not ended its run; `interrupted` for a run that stopped without a manifest
   * (killed), which `--resume` finishes.
   */
  status: JobStatus | 'running';
  /** Counted from the result files (the manifest's counts may predate a later, killed run). */
  counts: JobCounts;
  /** The last run's duration, when it ended. */
  ms?: number;
  /** Why the last run was aborted. */
  failure?: ReturnType<Failure['toJSON']>;
  /** When the folder's first run started (its first event), for ordering runs. */
  startedAt?: number;
  sets: Map<string, SetOnDisk>;
  /** Warnings about each task (by key), from the run that last ran it. */
  warnings: Map<string, WarningEvent[]>;
  /** What could not be read as a result (named with why), and torn event lines. */
  problems: string[];
}

/** `job` when the caller has the job already (it runs it): job.json is not read again. */
export async function readJobFolder(folder: string, job?: JobSpec): Promise<JobOnDisk> {
  const dir = path.resolve(folder);
  const reader = new ResultsReader(dir);
  const spec = job ?? (await readJobJson(dir)).job;
  const sets = new Map<string, SetOnDisk>();
  const counts: JobCounts = {
    sims: { total: 0, ok: 0, failed: 0, pending: 0 },
    aggregations: { total: spec.parameterSets.length, ok: 0, failed: 0, skipped: 0, pending: 0 },
  };
  let slice = performance.now();
  for (const set of spec.parameterSets) {
    // a set's lines are read at once: in slices, so that the editor's extension host (one thread) stays responsive
    if (performance.now() - slice > SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
    const sims = reader.existingSims(set);
    for (const record of sims.values()) record.outputs = undefined;
    const agg = reader.existingAgg(set);
    sets.set(set.paramId, { sims, agg });
    counts.sims.total += set.seeds.length;
    for (const record of sims.values()) counts.sims[record.status]++;
    if (agg) counts.aggregations[agg.status]++;
  }
  counts.sims.pending = counts.sims.total - counts.sims.ok - counts.sims.failed;
  counts.aggregations.pending =
    counts.aggregations.total - counts.aggregations.ok - counts.aggregations.failed - counts.aggregations.skipped;

  // only these are needed whole; of the rest (task lines: nearly all of a big job's file) the key
  const { events, torn } = reader.skimEvents(WHOLE_EVENTS);
  const warnings = new Map<string, WarningEvent[]>();
  let lastStart: Extract<JobEvent, { type: 'job-start' }> | undefined;
  let lastDone: Extract<JobEvent, { type: 'job-done' }> | undefined;
  // a task that runs again makes what it said before past; a run that ends fast has no
  // task-start (see JobBook.taskStarted), so a task whose words may be past (a later run began,
  // or it is being retried) loses them at the first sign of its new attempt
  const past = new Set<string>();
  const again = (key: string) => {
    if (past.delete(key)) warnings.delete(key);
  };
  for (const event of events) {
    const key = (event as { key?: string }).key;
    if (event.type === 'task-start' || event.type === 'agg-start') {
      if (key === undefined) continue;
      past.delete(key);
      warnings.delete(key);
    } else if (event.type === 'task-done' || event.type === 'agg-done') {
      if (key !== undefined) again(key);
    } else if (event.type === 'task-retry') {
      if (key !== undefined) past.add(key);
    } else if ('skimmed' in event) continue;
    else if (event.type === 'warning' && event.key !== undefined) {
      again(event.key);
      warnings.set(event.key, [...(warnings.get(event.key) ?? []), event]);
    } else if (event.type === 'job-start') {
      for (const known of warnings.keys()) past.add(known);
      lastStart = event;
      lastDone = undefined;
    } else if (event.type === 'job-done') lastDone = event;
  }

  const problems = [...reader.notResults];
  if (torn)
    problems.push(
      `events.jsonl: ${torn} line${torn === 1 ? ' is' : 's are'} not JSON (a torn last line is what a kill mid-write leaves)`,
    );
  const manifest = reader.manifest() as { status?: JobStatus; ms?: number; failure?: JobOnDisk['failure'] } | undefined;
  let status: JobOnDisk['status'];
  let ms: number | undefined;
  let failure: JobOnDisk['failure'];
  if (lastDone || (!lastStart && manifest?.status)) {
    // the last run ended: its job-done event and the manifest say how (the event alone when the disk had no room
    // for the manifest)
    status = lastDone?.status ?? manifest!.status!;
    ms = lastDone?.ms ?? manifest?.ms;
    failure = lastDone ? lastDone.failure : manifest?.failure;
  } else {
    // a run began and never ended: it is running now, or it was killed
    const owner = await readOwner(path.join(dir, RESULTS_LOCK));
    status = owner && !holderGone(owner) ? 'running' : 'interrupted';
    if (status === 'interrupted' && lastStart)
      problems.push('the last run stopped without writing its manifest (killed?); resuming finishes it');
  }
  return {
    dir,
    job: spec,
    status,
    counts,
    ms,
    failure,
    startedAt: events[0] && !('skimmed' in events[0]) ? eventTime(events[0]) : undefined,
    sets,
    warnings,
    problems,
  };
}

/**
 * The results folders of a job id's runs under `out`, newest first: `<job_id>` and the fresh
 * ids `freshJobId` gave its later runs (`<job_id>-2`, `-3`, …). Only folders with a job.json.
 */
export function runsOf(out: string, jobId: string): string[] {
  const root = path.resolve(out);
  if (!existsSync(root)) return [];
  const runs: { dir: string; n: number }[] = [];
  for (const name of readdirSync(root)) {
    const n = runNumber(name, jobId);
    if (n > 0 && existsSync(path.join(root, name, 'job.json'))) runs.push({ dir: path.join(root, name), n });
  }
  return runs.sort((a, b) => b.n - a.n).map((run) => run.dir);
}

/**
 * A job id for a new run of `jobId` whose results folder does not exist yet under `out`:
 * `<job_id>-<n>`, numbered after every run there, so that the newest run has the highest number.
 */
export function freshJobId(out: string, jobId: string): string {
  const root = path.resolve(out);
  const prefix = `${baseOf(jobId)}-`;
  let n = 1;
  for (const name of existsSync(root) ? readdirSync(root) : []) n = Math.max(n, runNumber(name, jobId));
  for (n++; existsSync(path.join(root, `${prefix}${n}`)); n++);
  return `${prefix}${n}`;
}

/** Which run of `jobId` a results folder's name is: 1 for `<job_id>`, n for `<job_id>-n`, 0 for none. */
function runNumber(name: string, jobId: string): number {
  if (name === jobId) return 1;
  const prefix = `${baseOf(jobId)}-`;
  return name.startsWith(prefix) && /^[1-9]\d*$/.test(name.slice(prefix.length))
    ? Number(name.slice(prefix.length))
    : 0;
}

/** Job ids are at most 128 characters: room for the run's number. */
function baseOf(jobId: string): string {
  return jobId.slice(0, 120);
}
