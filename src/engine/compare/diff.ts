/**
 * Two runs of a job compared, from their results folders alone: per parameter set (matched by
 * param_id) the aggregation (status, each target's loss, diagnostics and failure, the summary
 * statistics) and each replicate (status, failure, and its outputs byte for byte); the
 * environment each ran in and their timings. The runs agree when every set and replicate does;
 * timings and environment are said, never counted as disagreement (as `diff(1)`: exit 0 when
 * they agree, 1 when they differ).
 */
import * as path from 'node:path';
import { ExitCode } from '../failure';
import { paramTexts } from '../job/ids';
import { quantile } from '../job/summary';
import type { AggRecord, SimRecord } from '../job/records';
import { readManifestFacts, type ManifestFacts } from '../job/manifestFacts';
import { outputChecksum } from '../job/results';
import { readAggResult, readJobJson, readSimResults, type ReadResult } from '../job/resultsReader';
import type { JobSpec, ParameterSet } from '../job/spec';
import { stringifyWireJson } from '../pyjson/pyjson';

export interface RunSide {
  dir: string;
  job_id: string;
  status?: string;
}

export interface SetDiff {
  param_id: string;
  params: Record<string, string>;
  /** `same`; `different`; or in one run only. */
  status: 'same' | 'different' | 'only-in-a' | 'only-in-b';
  /** What differs in the aggregation and the seeds, a sentence each. */
  differences: string[];
  /** The replicates that differ, each with how. */
  replicates: { replicate: number; difference: string }[];
}

export interface Timings {
  /** Replicates' durations (ms) as recorded, over both ok and failed ones. */
  p50_ms?: number;
  p95_ms?: number;
  slowest?: { key: string; ms: number };
  /** The whole run (its manifest). */
  run_ms?: number;
}

export interface RunDiff {
  agree: boolean;
  exit_code: number;
  message: string;
  a: RunSide;
  b: RunSide;
  sets: SetDiff[];
  /** What differs in how the runs ran (never a disagreement). */
  environment: { field: string; a: unknown; b: unknown }[];
  timings: { a: Timings; b: Timings };
}

export async function diffRuns(dirA: string, dirB: string): Promise<RunDiff> {
  const a = await readRun(dirA);
  const b = await readRun(dirB);
  const sets: SetDiff[] = [];
  const durations = { a: [] as { key: string; ms: number }[], b: [] as { key: string; ms: number }[] };
  const inB = new Map(b.job.parameterSets.map((set) => [set.paramId, set]));
  for (const setA of a.job.parameterSets) {
    const setB = inB.get(setA.paramId);
    inB.delete(setA.paramId);
    if (!setB) {
      sets.push(oneSided(setA, 'only-in-a'));
      continue;
    }
    sets.push(await diffSet(a.dir, b.dir, setA, setB, durations));
  }
  for (const setB of inB.values()) sets.push(oneSided(setB, 'only-in-b'));
  const differing = sets.filter((set) => set.status !== 'same');
  const agree = differing.length === 0;
  const replicates = differing.reduce((sum, set) => sum + set.replicates.length, 0);
  return {
    agree,
    exit_code: agree ? ExitCode.ok : ExitCode.failedWork,
    message: agree
      ? `the runs agree: ${sets.length} parameter set${sets.length === 1 ? '' : 's'}, the same aggregates and byte-equal replicate outputs`
      : `the runs differ: ${differing.length} of ${sets.length} parameter sets${replicates ? ` (${replicates} replicate${replicates === 1 ? '' : 's'})` : ''}`,
    a: { dir: a.dir, job_id: a.job.jobId, status: a.manifest?.status },
    b: { dir: b.dir, job_id: b.job.jobId, status: b.manifest?.status },
    sets,
    environment: environmentDiff(a.manifest, b.manifest),
    timings: {
      a: timings(durations.a, a.manifest),
      b: timings(durations.b, b.manifest),
    },
  };
}

interface Run {
  dir: string;
  job: JobSpec;
  manifest?: ManifestFacts;
}

async function readRun(folder: string): Promise<Run> {
  const dir = path.resolve(folder);
  const { job } = await readJobJson(dir);
  // none: still running, or killed before it wrote one; no environment to compare
  return { dir, job, manifest: readManifestFacts(dir) };
}

function oneSided(set: ParameterSet, status: 'only-in-a' | 'only-in-b'): SetDiff {
  return {
    param_id: set.paramId,
    params: paramTexts(set.params),
    status,
    differences: [`only run ${status === 'only-in-a' ? 'A' : 'B'} has this parameter set`],
    replicates: [],
  };
}

async function diffSet(
  dirA: string,
  dirB: string,
  setA: ParameterSet,
  setB: ParameterSet,
  durations: { a: { key: string; ms: number }[]; b: { key: string; ms: number }[] },
): Promise<SetDiff> {
  const differences: string[] = [];
  const replicates: SetDiff['replicates'] = [];
  const seeds = Math.min(setA.seeds.length, setB.seeds.length);
  if (setA.seeds.length !== setB.seeds.length)
    differences.push(`${setA.seeds.length} replicates in run A, ${setB.seeds.length} in run B`);
  const aggA = await readAggResult(dirA, setA);
  const aggB = await readAggResult(dirB, setB);
  differences.push(...diffAggregation(aggA, aggB));
  const simsA = await readSimResults(dirA, setA);
  const simsB = await readSimResults(dirB, setB);
  for (const [sims, into] of [
    [simsA, durations.a],
    [simsB, durations.b],
  ] as const)
    for (const sim of sims) if (sim.state === 'found') into.push({ key: sim.record.key, ms: sim.record.ms });
  for (let replicate = 0; replicate < seeds; replicate++) {
    if (String(setA.seeds[replicate]) !== String(setB.seeds[replicate])) {
      replicates.push({
        replicate,
        difference: `other seeds: ${String(setA.seeds[replicate])} in run A, ${String(setB.seeds[replicate])} in run B`,
      });
      continue;
    }
    const difference = diffReplicate(simsA[replicate], simsB[replicate]);
    if (difference) replicates.push({ replicate, difference });
  }
  return {
    param_id: setA.paramId,
    params: paramTexts(setA.params),
    status: differences.length || replicates.length ? 'different' : 'same',
    differences,
    replicates,
  };
}

/** How two records of one replicate differ; undefined when they agree. */
function diffReplicate(a: ReadResult<SimRecord> | undefined, b: ReadResult<SimRecord> | undefined): string | undefined {
  const state = (result: ReadResult<SimRecord> | undefined) =>
    !result || result.state === 'missing'
      ? 'no result'
      : result.state === 'unreadable'
        ? 'an unreadable result'
        : describe(result.record);
  if (a?.state !== 'found' || b?.state !== 'found') {
    // neither has one: nothing to compare, nothing differs
    return state(a) === state(b) ? undefined : `${state(a)} in run A, ${state(b)} in run B`;
  }
  const x = a.record;
  const y = b.record;
  if (x.status !== y.status) return `${describe(x)} in run A, ${describe(y)} in run B`;
  if (x.status === 'failed')
    return x.kind === y.kind && x.message === y.message
      ? undefined
      : `failed differently: ${x.kind}: ${x.message} in run A, ${y.kind}: ${y.message} in run B`;
  const names = [...new Set([...Object.keys(x.outputs ?? {}), ...Object.keys(y.outputs ?? {})])].sort();
  const differing = names.filter((name) => x.outputs?.[name]?.inline !== y.outputs?.[name]?.inline);
  if (!differing.length) return undefined;
  return `outputs differ: ${differing
    .map((name) => {
      const side = (record: SimRecord) => {
        const output = record.outputs?.[name];
        return output ? outputChecksum(Buffer.from(output.inline, 'base64')).slice(0, 12) : 'none';
      };
      return `${name} (${side(x)} vs ${side(y)})`;
    })
    .join(', ')}`;
}

function describe(record: SimRecord): string {
  return record.status === 'ok' ? 'ok' : `failed (${record.kind}: ${record.message})`;
}

/** How two aggregations differ, a sentence each: status, each target, the summary statistics. */
function diffAggregation(a: ReadResult<AggRecord>, b: ReadResult<AggRecord>): string[] {
  if (a.state !== 'found' || b.state !== 'found') {
    const state = (result: ReadResult<AggRecord>) => (result.state === 'found' ? result.record.status : result.state);
    return state(a) === state(b) ? [] : [`aggregation ${state(a)} in run A, ${state(b)} in run B`];
  }
  const x = a.record;
  const y = b.record;
  const out: string[] = [];
  // another status says it all: the rest follows from it
  if (x.status !== y.status) return [`aggregation ${x.status} in run A, ${y.status} in run B`];
  const targets = [...new Set([...Object.keys(x.targets), ...Object.keys(y.targets)])].sort();
  for (const target of targets) {
    const tx = x.targets[target];
    const ty = y.targets[target];
    if (!tx || !ty) {
      out.push(`target ${target} only in run ${tx ? 'A' : 'B'}`);
      continue;
    }
    if (tx.status === 'ok' && ty.status === 'ok') {
      if (json(tx.loss) !== json(ty.loss)) out.push(`target ${target}: loss ${json(tx.loss)} vs ${json(ty.loss)}`);
      if (json(tx.diagnostics) !== json(ty.diagnostics))
        out.push(`target ${target}: diagnostics ${json(tx.diagnostics)} vs ${json(ty.diagnostics)}`);
    } else if (json(tx) !== json(ty)) out.push(`target ${target}: ${targetText(tx)} vs ${targetText(ty)}`);
  }
  if (!x.summary !== !y.summary) out.push(`summary statistics only in run ${x.summary ? 'A' : 'B'}`);
  else if (json(x.summary ?? null) !== json(y.summary ?? null)) out.push(summaryDifference(x.summary, y.summary));
  return out;
}

function targetText(target: AggRecord['targets'][string]): string {
  return target.status === 'ok' ? `ok (loss ${json(target.loss)})` : `${target.kind}: ${target.message}`;
}

/** The first summary statistics that differ, named by their path (`outputs.value.mean`). */
function summaryDifference(a: unknown, b: unknown): string {
  const paths: string[] = [];
  const walk = (x: unknown, y: unknown, at: string) => {
    if (paths.length >= 3) return;
    if (isObject(x) && isObject(y)) {
      for (const key of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort())
        walk(x[key], y[key], at ? `${at}.${key}` : key);
    } else if (json(x ?? null) !== json(y ?? null)) paths.push(`${at} ${json(x ?? null)} vs ${json(y ?? null)}`);
  };
  walk(a, b, '');
  return `summary statistics differ: ${paths.join('; ')}`;
}

function environmentDiff(a: ManifestFacts | undefined, b: ManifestFacts | undefined): RunDiff['environment'] {
  if (!a || !b) return [];
  const pick = (manifest: ManifestFacts): Record<string, unknown> => {
    const environment = manifest.environment ?? {};
    const options = manifest.options ?? {};
    return {
      backend: options.backend,
      'bundle digest': environment.bundle?.digest,
      python: environment.python?.version,
      'venv key': environment.venv?.key,
      'deps hash': typeof environment.venv?.key === 'string' ? environment.venv.key.split('-')[2] : undefined,
      runner: environment.runner,
      engine: environment.engine,
      host: environment.host,
    };
  };
  const x = pick(a);
  const y = pick(b);
  return Object.keys(x)
    .filter((field) => json(x[field] ?? null) !== json(y[field] ?? null))
    .map((field) => ({ field, a: x[field], b: y[field] }));
}

function timings(durations: { key: string; ms: number }[], manifest: ManifestFacts | undefined): Timings {
  const sorted = [...durations].sort((x, y) => x.ms - y.ms);
  const ms = sorted.map((task) => task.ms);
  return {
    p50_ms: quantile(ms, 0.5),
    p95_ms: quantile(ms, 0.95),
    slowest: sorted.at(-1),
    run_ms: typeof manifest?.ms === 'number' ? manifest.ms : undefined,
  };
}

function json(value: unknown): string {
  return stringifyWireJson(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
