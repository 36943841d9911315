/**
 * Is a job's model deterministic, and does it leak state between tasks? A sample of each
 * parameter set's replicates is run three ways, all in the job's venv with the job's params and
 * seeds: (a) each in a fresh process, (b) in one warm process, after replicates of other sets ran
 * in it (as a job's runners serve them), (c) each in a fresh process again. Per replicate:
 *
 * - `deterministic`: the same outputs (sizes and BLAKE2b checksums) all three ways, or the same
 *   failure (kind and message);
 * - `nondeterministic`: (a) ≠ (c), the same seed in a fresh process each time gives other
 *   results (an unseeded random generator, the clock, the order of a set);
 * - `history-dependent`: (a) = (c) ≠ (b): what ran before in the process changed it (module-level
 *   caches, static state in native code: the leak that made production add a cold executor).
 *
 * Nothing is written into the results folder.
 */
import { ExitCode, Failure, type FailureKind } from '../failure';
import type { Params } from '../job/ids';
import { outputChecksum } from '../job/results';
import type { ParameterSet } from '../job/spec';
import { readEarlierJob } from '../job/resume';
import {
  checkJobBundle,
  runReplicates,
  runtimeOfJob,
  type ReplicateOptions,
  type ReplicateSpec,
  type RunHistory,
  type RunResult,
} from './replicate';

export const DEFAULT_SAMPLE = 2;

export type DeterminismVerdict = 'deterministic' | 'nondeterministic' | 'history-dependent';

/** What one run of a replicate gave, as far as comparing goes. */
export type RunOutcome = { pid?: number } & (
  | { status: 'ok'; outputs: Record<string, { size: number; checksum: string }> }
  | { status: 'failed'; kind: FailureKind; message: string }
);

export interface ReplicateCheck {
  replicate: number;
  seed: number | bigint;
  verdict: DeterminismVerdict;
  /** One sentence: the verdict and what differed. */
  message: string;
  cold: RunOutcome;
  /** `served`: the tasks the warm process had run before this one. */
  warm: RunOutcome & { served: number };
  cold_again: RunOutcome;
  /** The outputs that differ between the runs that disagree. */
  differing?: string[];
}

export interface SetCheck {
  param_id: string;
  param_index: number;
  params: Params;
  verdict: DeterminismVerdict;
  replicates: ReplicateCheck[];
}

export interface DeterminismReport {
  verdict: DeterminismVerdict;
  message: string;
  exit_code: number;
  job_id: string;
  results: string;
  bundle: string;
  entrypoint: string;
  /** Replicates checked per parameter set. */
  sample: number;
  counts: Record<DeterminismVerdict, number>;
  sets: SetCheck[];
  notes: string[];
}

export interface DeterminismOptions extends ReplicateOptions {
  /** Replicates per parameter set (default 2), spread over its replicates. */
  sample?: number;
  /** Only these parameter sets (param ids; default all of them). */
  params?: readonly string[];
  /** A line for each stage, as it starts. */
  onProgress?: (text: string) => void;
}

/** The worse verdict first: a model that is not reproducible even cold, then one that leaks. */
const SEVERITY: DeterminismVerdict[] = ['deterministic', 'history-dependent', 'nondeterministic'];

export async function checkDeterminism(folder: string, options: DeterminismOptions = {}): Promise<DeterminismReport> {
  const sample = options.sample ?? DEFAULT_SAMPLE;
  const { dir, job, bundleDigest: recordedDigest } = await readEarlierJob(folder);
  const notes: string[] = [];
  const digest = await checkJobBundle(job, recordedDigest, notes);
  const runtime = runtimeOfJob(dir, options, notes);
  const runOptions: ReplicateOptions = { ...options, ...runtime.options };

  const chosen = options.params
    ? job.parameterSets.filter((set) => options.params!.includes(set.paramId))
    : job.parameterSets;
  if (!chosen.length) throw new Failure('bad-input', `Job ${job.jobId} has none of the parameter sets asked for.`);
  const picked = chosen.map((set) => ({ set, replicates: spread(set.seeds.length, sample) }));
  const specs = picked.flatMap(({ set, replicates }) =>
    replicates.map((replicate) => ({ set, replicate, spec: specOf(job.bundleDir, job.entrypoint, set, replicate) })),
  );
  const total = specs.length;

  options.onProgress?.(`(a) ${total} replicates, each in a fresh process`);
  const fresh = () =>
    runReplicates(
      specs.map(({ spec }) => spec),
      runOptions,
      digest,
      { freshEach: true },
    );
  const cold = await fresh();

  // one replicate of another set first, so that every set's replicates run after another set's
  // (of the job: with one set checked, another one of the job's)
  const other = job.parameterSets.find((set) => set !== picked[0].set);
  const primer = other ? [specOf(job.bundleDir, job.entrypoint, other, 0)] : [];
  if (!primer.length)
    notes.push(
      'The job has one parameter set: in the warm process its replicates ran after each other, not after other sets.',
    );
  options.onProgress?.(`(b) the same ${total} in one warm process, after replicates of other sets`);
  const warm = (await runReplicates([...primer, ...specs.map(({ spec }) => spec)], runOptions, digest)).slice(
    primer.length,
  );

  options.onProgress?.(`(c) the same ${total} again, each in a fresh process`);
  const coldAgain = await fresh();

  const sets: SetCheck[] = [];
  let at = 0;
  for (const { set, replicates } of picked) {
    const checks = replicates.map((replicate) => {
      const i = at++;
      return judge(replicate, set.seeds[replicate], cold[i], warm[i], coldAgain[i]);
    });
    sets.push({
      param_id: set.paramId,
      param_index: set.index,
      params: set.params,
      verdict: worst(checks.map((check) => check.verdict)),
      replicates: checks,
    });
  }
  const counts: Record<DeterminismVerdict, number> = { deterministic: 0, nondeterministic: 0, 'history-dependent': 0 };
  for (const check of sets.flatMap((set) => set.replicates)) counts[check.verdict]++;
  const verdict = worst(sets.map((set) => set.verdict));
  return {
    verdict,
    message: summary(verdict, counts, sets),
    exit_code: verdict === 'deterministic' ? ExitCode.ok : ExitCode.failedWork,
    job_id: job.jobId,
    results: dir,
    bundle: job.bundleDir,
    entrypoint: job.entrypoint,
    sample,
    counts,
    sets,
    notes,
  };
}

/** `count` replicate indexes spread evenly over 0…n-1 (all of them when n ≤ count). */
export function spread(n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  if (count === 1) return [0];
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (n - 1)) / (count - 1))))];
}

function specOf(bundleDir: string, entrypoint: string, set: ParameterSet, replicate: number): ReplicateSpec {
  return { bundleDir, entrypoint, params: set.params, seed: set.seeds[replicate] };
}

function outcomeOf(run: RunResult): RunOutcome {
  if (run.failure) return { pid: run.pid, status: 'failed', kind: run.failure.kind, message: run.failure.message };
  const outputs = Object.fromEntries(
    Object.keys(run.outputs ?? {})
      .sort()
      .map((name) => [name, { size: run.outputs![name].length, checksum: outputChecksum(run.outputs![name]) }]),
  );
  return { pid: run.pid, status: 'ok', outputs };
}

/**
 * The output names whose bytes differ between two runs; [] when one failed and the other did
 * not, or both failed differently; undefined when they agree.
 */
function differences(a: RunOutcome, b: RunOutcome): string[] | undefined {
  if (a.status === 'ok' && b.status === 'ok') {
    const names = [...new Set([...Object.keys(a.outputs), ...Object.keys(b.outputs)])].sort();
    const differ = names.filter((name) => a.outputs[name]?.checksum !== b.outputs[name]?.checksum);
    return differ.length ? differ : undefined;
  }
  if (a.status === 'failed' && b.status === 'failed')
    return a.kind === b.kind && a.message === b.message ? undefined : [];
  return [];
}

function judge(
  replicate: number,
  seed: number | bigint,
  coldRun: RunResult,
  warmRun: RunResult & RunHistory,
  coldAgainRun: RunResult,
): ReplicateCheck {
  const cold = outcomeOf(coldRun);
  const warm = { ...outcomeOf(warmRun), served: warmRun.served };
  const coldAgain = outcomeOf(coldAgainRun);
  const base = { replicate, seed, cold, warm, cold_again: coldAgain };
  const betweenColds = differences(cold, coldAgain);
  if (betweenColds) {
    return {
      ...base,
      verdict: 'nondeterministic',
      message: `nondeterministic with the same seed: two fresh processes gave ${what(betweenColds, cold, coldAgain)}`,
      differing: betweenColds,
    };
  }
  const warmVsCold = differences(cold, warm);
  if (warmVsCold) {
    return {
      ...base,
      verdict: 'history-dependent',
      message: `depends on process history: the same in two fresh processes, ${what(warmVsCold, cold, warm)} in the warm process (pid ${warm.pid ?? '?'}) after it had run ${warm.served} other task${warm.served === 1 ? '' : 's'}`,
      differing: warmVsCold,
    };
  }
  return {
    ...base,
    verdict: 'deterministic',
    message:
      cold.status === 'ok'
        ? 'deterministic: the same bytes cold, warm and cold again'
        : `deterministic: failed the same way each time (${cold.kind}: ${cold.message})`,
  };
}

/** "other bytes in value, count", or how a failure differs. */
function what(names: string[], a: RunOutcome, b: RunOutcome): string {
  if (names.length) return `other bytes in ${names.join(', ')}`;
  const say = (o: RunOutcome) => (o.status === 'ok' ? 'outputs' : `${o.kind}: ${o.message}`);
  return `different results (${say(a)} / ${say(b)})`;
}

function worst(verdicts: DeterminismVerdict[]): DeterminismVerdict {
  return verdicts.reduce<DeterminismVerdict>(
    (acc, v) => (SEVERITY.indexOf(v) > SEVERITY.indexOf(acc) ? v : acc),
    'deterministic',
  );
}

function summary(verdict: DeterminismVerdict, counts: Record<DeterminismVerdict, number>, sets: SetCheck[]): string {
  const replicates = counts.deterministic + counts.nondeterministic + counts['history-dependent'];
  const setsWith = (v: DeterminismVerdict) => sets.filter((set) => set.replicates.some((r) => r.verdict === v)).length;
  switch (verdict) {
    case 'deterministic':
      return `deterministic: ${replicates} replicates of ${sets.length} parameter sets, each the same cold, warm (after other sets' replicates) and cold again`;
    case 'nondeterministic':
      return `nondeterministic with the same seed: ${counts.nondeterministic} of ${replicates} replicates (in ${setsWith('nondeterministic')} of ${sets.length} parameter sets) differ between two fresh processes${counts['history-dependent'] ? `; ${counts['history-dependent']} more depend on process history` : ''}`;
    case 'history-dependent':
      return `depends on process history: ${counts['history-dependent']} of ${replicates} replicates (in ${setsWith('history-dependent')} of ${sets.length} parameter sets) are the same in fresh processes but differ in a warm one that ran other tasks first`;
  }
}
