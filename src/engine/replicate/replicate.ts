/**
 * Reproducing one replicate: exactly its params, seed and entrypoint, in the bundle's venv
 * (the job's venv key, checked before anything is built), in a runner started for it alone;
 * then its outputs compared byte for byte with the recorded result. A reproduction never
 * writes into the job's results folder: it reads job.json, the manifest and one result file.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { RUN_DEFAULTS } from '../backends/contract';
import { bundleDigest, checkBundleDir } from '../bundle/bundleDir';
import { showBytes } from '../diagnose/classify';
import { pollutionWarning } from '../diagnose/stdoutBlame';
import { ExitCode, Failure, type FailureKind, type SourceLocation, unexpectedFailure } from '../failure';
import { canonicalJson, paramId, type Params } from '../job/ids';
import type { SimRecord } from '../job/records';
import type { JobSpec } from '../job/spec';
import { outputChecksum } from '../job/results';
import { readSimResult } from '../job/resultsReader';
import { readEarlierJob } from '../job/resume';
import { ExecuteRequest } from '../protocol';
import { ourRunnerScript, RUNNER_FILE } from '../process/runnerScript';
import { WarmProcess } from '../process/warmProcess';
import { RawJson } from '../pyjson/pyjson';
import { leasedVenv, prepareRunner, runnerLaunch, type RuntimeOptions } from '../runtime/prepare';
import { cacheKeyOf } from '../venv/cache';
import { readRanWith } from './ranWith';
import { checkReplicateIndex, selectParameterSet } from './select';
import { writeStudy } from './study';

/** Bytes shown on each side of the first difference of an output. */
const DIFF_WINDOW = 16;

/**
 * The verdict follows what the replicate did now: it ran ok (`same` as recorded, or
 * `different`: other bytes, or the recorded run had failed), or it failed (`failed-like-before`:
 * the same kind and message, or `failed-differently`, the recorded run included having
 * succeeded). Without a recorded result (the bundle form, or a replicate not run yet): `ok` or
 * `failed`.
 */
export type Verdict = 'same' | 'different' | 'failed-like-before' | 'failed-differently' | 'ok' | 'failed';

/** Exit codes (DESIGN.md's): 0 only when it ran ok with the recorded bytes (or ran ok, with nothing recorded). */
export function exitCodeForVerdict(verdict: Verdict): number {
  return verdict === 'same' || verdict === 'ok' ? ExitCode.ok : ExitCode.failedWork;
}

export interface ReplicateSpec {
  bundleDir: string;
  entrypoint: string;
  params: Params;
  seed: number | bigint;
}

export interface ReplicateOptions extends Omit<RuntimeOptions, 'bundleDir' | 'digest'> {
  readyTimeoutMs?: number;
  taskTimeoutMs?: number;
  /** The runner's stderr as it comes (it is kept in memory either way; its tail is in a failure's evidence). */
  onStderr?: (chunk: Buffer) => void;
  /** Stops the runner; the reproduction then ends as `cancelled`. */
  signal?: AbortSignal;
  /** Also writes the replicate there as a production study (study.ts), before it runs. */
  exportStudy?: string;
  /** Runs the replicate another way than in a fresh runner (under a debugger: debug.ts debugpyRunner). */
  runWith?: (spec: ReplicateSpec, options: ReplicateOptions, digest?: string) => Promise<RunResult>;
}

export interface OutputComparison {
  name: string;
  /** `missing`: recorded, not produced now; `new`: produced now, not recorded. */
  status: 'same' | 'different' | 'missing' | 'new' | 'produced';
  size?: number;
  /** BLAKE2b-256 of the bytes, hex (production's output checksum). */
  checksum?: string;
  recorded?: { size: number; checksum: string };
  /** Where the bytes first differ, with up to 16 bytes from there on each side. */
  first_difference?: { offset: number; now: { hex: string; text: string }; recorded: { hex: string; text: string } };
}

export interface FailureSummary {
  kind: FailureKind;
  message: string;
  location?: SourceLocation;
}

export interface ReplicateReport {
  verdict: Verdict;
  /** One sentence: the verdict and why. */
  message: string;
  exit_code: number;
  job_id?: string;
  results?: string;
  bundle: string;
  entrypoint: string;
  param_id: string;
  /** The parameter set's index in the job. */
  param_index?: number;
  params: Params;
  replicate?: number;
  seed: number | bigint;
  ran: {
    pid?: number;
    ms: number;
    python: string;
    runner: string;
    venv?: { key: string; path: string; built: boolean; fresh: boolean; reason: string };
    /** The venv key the job ran with, when its manifest says. */
    job_venv_key?: string;
  };
  outputs: OutputComparison[];
  /** How it failed now. */
  failure?: FailureSummary & { evidence: unknown };
  /** How the recorded run failed. */
  recorded_failure?: FailureSummary;
  warnings: { kind: FailureKind; message: string; location?: SourceLocation }[];
  notes: string[];
  /** The production study written with `exportStudy`. */
  study?: string;
}

/** What running it once gave: its outputs, or how it failed. */
export interface RunResult {
  outputs?: Record<string, Buffer>;
  failure?: Failure;
  ms: number;
  pid?: number;
  python: string;
  runner: string;
  venv?: ReplicateReport['ran']['venv'];
  warnings: ReplicateReport['warnings'];
}

/**
 * `replicate <out>/<job_id> --param P --replicate N`: the replicate re-run as the job ran it and
 * compared with its recorded result. Throws (a Failure) when it cannot be run at all: bad input,
 * a bundle changed since the job ran, a venv that would not be the job's, a runner that does not
 * start.
 */
export async function reproduceReplicate(
  folder: string,
  which: { param: string; replicate: number },
  options: ReplicateOptions = {},
): Promise<ReplicateReport> {
  const { dir, job, bundleDigest: recordedDigest } = await readEarlierJob(folder);
  const set = selectParameterSet(job, which.param);
  checkReplicateIndex(set, which.replicate);
  const seed = set.seeds[which.replicate];
  const notes: string[] = [];
  const recorded = await readSimResult(dir, set, which.replicate);
  if (recorded.state === 'unreadable')
    notes.push(
      `${path.relative(dir, recorded.file)} is not a result of this replicate (${recorded.why}): nothing to compare with.`,
    );
  if (recorded.state === 'missing')
    notes.push(
      `Replicate ${which.replicate} of this parameter set has no recorded result yet: nothing to compare with.`,
    );

  const digest = await checkJobBundle(job, recordedDigest, notes);

  // written before it runs: a replicate that crashes or hangs here is the one to run in production
  const study =
    options.exportStudy === undefined
      ? undefined
      : writeStudy(options.exportStudy, {
          entrypoint: job.entrypoint,
          params: set.params,
          seed,
          param_id: set.paramId,
          job_id: job.jobId,
          replicate: which.replicate,
        });
  const runtime = runtimeOfJob(dir, options, notes);
  const run = await runOnce(
    { bundleDir: job.bundleDir, entrypoint: job.entrypoint, params: set.params, seed },
    { ...options, ...runtime.options },
    digest,
  );
  const record = recorded.state === 'found' ? recorded.record : undefined;
  const compared = record ? compare(record, run) : uncompared(run);
  return {
    ...compared,
    exit_code: exitCodeForVerdict(compared.verdict),
    job_id: job.jobId,
    results: dir,
    bundle: job.bundleDir,
    entrypoint: job.entrypoint,
    param_id: set.paramId,
    param_index: set.index,
    params: set.params,
    replicate: which.replicate,
    seed,
    ran: {
      pid: run.pid,
      ms: run.ms,
      python: run.python,
      runner: run.runner,
      venv: run.venv,
      job_venv_key: runtime.jobVenvKey,
    },
    failure: run.failure
      ? {
          kind: run.failure.kind,
          message: run.failure.message,
          location: run.failure.location,
          evidence: run.failure.evidence,
        }
      : undefined,
    recorded_failure:
      record?.status === 'failed'
        ? { kind: record.kind!, message: record.message!, location: record.location }
        : undefined,
    warnings: run.warnings,
    notes: [...notes, ...compared.notes],
    ...(study ? { study } : {}),
  };
}

/**
 * What a replicate gave when run another way (a debugging session in the editor), compared with
 * its recorded result as a reproduction is: the same verdicts and sentences.
 */
export async function compareWithRecord(
  folder: string,
  which: { param: string; replicate: number },
  run: Pick<RunResult, 'outputs' | 'failure'>,
): Promise<Pick<ReplicateReport, 'verdict' | 'message' | 'outputs'>> {
  const { dir, job } = await readEarlierJob(folder);
  const set = selectParameterSet(job, which.param);
  checkReplicateIndex(set, which.replicate);
  const recorded = await readSimResult(dir, set, which.replicate);
  const ran = { ms: 0, python: '', runner: '', warnings: [], ...run };
  const { verdict, message, outputs } = recorded.state === 'found' ? compare(recorded.record, ran) : uncompared(ran);
  return { verdict, message, outputs };
}

/**
 * The digest of the job's bundle as it is now, refused (bad-input) when it is not the digest the
 * job ran with: a replicate would not run the same code.
 */
export async function checkJobBundle(
  job: JobSpec,
  recordedDigest: string | undefined,
  notes: string[],
): Promise<string> {
  await checkBundleDir(job.bundleDir);
  const digest = await bundleDigest(job.bundleDir);
  if (recordedDigest && recordedDigest !== digest) {
    throw new Failure(
      'bad-input',
      `The bundle ${job.bundleDir} changed since job ${job.jobId} ran (digest ${recordedDigest.slice(0, 12)} then, ${digest.slice(0, 12)} now): the replicate would not run the same code, so it is not reproduced.`,
    );
  }
  if (!recordedDigest)
    notes.push(
      'job.json records no bundle digest (an earlier version wrote it): the bundle could not be checked against the run.',
    );
  return digest;
}

/** `replicate <bundle> --entrypoint EP --params JSON --seed N`: run it once, nothing to compare with. */
export async function runReplicate(spec: ReplicateSpec, options: ReplicateOptions = {}): Promise<ReplicateReport> {
  const bundleDir = await checkBundleDir(spec.bundleDir);
  const study =
    options.exportStudy === undefined
      ? undefined
      : writeStudy(options.exportStudy, {
          entrypoint: spec.entrypoint,
          params: spec.params,
          seed: spec.seed,
          param_id: paramId(spec.params),
        });
  const run = await runOnce({ ...spec, bundleDir }, options);
  const compared = uncompared(run, false);
  return {
    ...compared,
    exit_code: exitCodeForVerdict(compared.verdict),
    bundle: bundleDir,
    entrypoint: spec.entrypoint,
    param_id: paramId(spec.params),
    params: spec.params,
    seed: spec.seed,
    ran: { pid: run.pid, ms: run.ms, python: run.python, runner: run.runner, venv: run.venv },
    failure: run.failure
      ? {
          kind: run.failure.kind,
          message: run.failure.message,
          location: run.failure.location,
          evidence: run.failure.evidence,
        }
      : undefined,
    warnings: run.warnings,
    notes: compared.notes,
    ...(study ? { study } : {}),
  };
}

/**
 * The environment the job's replicates ran in, from its manifest: the interpreter the venv was
 * built from and the key it must have (or the interpreter given with --python), the runner,
 * the task timeout and frame cap. What the caller gives explicitly wins; what cannot be checked
 * is noted.
 */
export function runtimeOfJob(
  dir: string,
  options: ReplicateOptions,
  notes: string[],
): { options: ReplicateOptions; jobVenvKey?: string } {
  const ran = readRanWith(dir);
  const out: ReplicateOptions = {
    taskTimeoutMs: options.taskTimeoutMs ?? ran.taskTimeoutMs,
    maxFrameBytes: options.maxFrameBytes ?? ran.maxFrameBytes,
  };
  if (!ran.manifest) {
    notes.push(
      'The job has no manifest.json yet (still running, or stopped before writing it): its venv key, interpreter and runner are not known, so the default ones are used and not checked.',
    );
    return { options: out };
  }
  if (ran.backend === 'dask')
    notes.push(
      "The job ran on a Dask cluster: the replicate runs here, in the venv this machine builds for the bundle (the workers' venv keys are not recorded).",
    );
  if (
    options.runnerScript === undefined &&
    ran.runner &&
    path.basename(ran.runner) !== RUNNER_FILE &&
    path.resolve(ran.runner) !== ourRunnerScript()
  ) {
    out.runnerScript = ran.runner; // the job ran another runner (e.g. production's): so does its reproduction
    notes.push(`Runs the runner the job ran: ${ran.runner}.`);
  }
  if (options.python !== undefined) {
    notes.push(`Runs with ${options.python} as given (--python), not in the job's environment.`);
    return { options: out, jobVenvKey: ran.venvKey };
  }
  if (!ran.venvKey) {
    if (ran.python && ran.backend !== 'dask') {
      out.python = ran.python; // the job ran without a venv, with this interpreter (--python)
      notes.push(`The job ran with the interpreter ${ran.python} as it is (no venv): so does its reproduction.`);
    }
    return { options: out };
  }
  out.basePython = options.basePython ?? ran.basePython;
  if (options.basePython === undefined && ran.basePython && !existsSync(ran.basePython)) {
    // the key says which Python version it must be: any interpreter of that version will do
    out.basePython = undefined;
    notes.push(
      `The interpreter the job's venv was built from (${ran.basePython}) is gone: the default one is used, and the venv key still checked.`,
    );
  }
  out.venv = { ...options.venv, expectKey: cacheKeyOf(ran.venvKey) };
  return { options: out, jobVenvKey: ran.venvKey };
}

/**
 * One replicate in a runner of its own: the venv prepared (reused or built, or private with
 * forceFresh), the runner started, `ready`, one `execute`, shutdown. Throws when no runner could
 * be started or the caller stopped it; a failure of the replicate itself is returned.
 */
async function runOnce(spec: ReplicateSpec, options: ReplicateOptions, digest?: string): Promise<RunResult> {
  if (options.runWith) return options.runWith(spec, options, digest);
  const [result] = await runReplicates([spec], options, digest);
  return result;
}

/** What a runner had done before a replicate ran in it. */
export interface RunHistory {
  /** The tasks it had served before this one. */
  served: number;
}

/**
 * Replicates one after another in one runner (a warm process, as a job runs them), each result
 * with how many tasks the runner had served before it; with `freshEach`, each in a runner of its
 * own (the venv prepared once for all of them). A runner that dies on one is replaced for the
 * next (its history starts again). Throws as runOnce does.
 */
export async function runReplicates(
  specs: ReplicateSpec[],
  options: ReplicateOptions,
  digest?: string,
  { freshEach = false } = {},
): Promise<(RunResult & RunHistory)[]> {
  const cancelled = () => new Failure('cancelled', 'The reproduction was stopped before the replicate finished.');
  if (options.signal?.aborted) throw cancelled();
  const bundleDir = specs[0].bundleDir;
  const prepared = await prepareRunner({ ...options, bundleDir, digest });
  if (options.signal?.aborted) {
    await prepared.lease?.release(); // stopped while the venv was prepared: no runner is started
    throw cancelled();
  }
  const venv = leasedVenv(prepared);
  const start = () => {
    const warnings: RunResult['warnings'] = [];
    const warned = new Set<string>();
    const runner = WarmProcess.start({
      ...runnerLaunch(prepared),
      env: options.env,
      maxFrameBytes: options.maxFrameBytes,
      onStderr: options.onStderr,
      onCapture: (capture) => {
        // our runner absorbed it; production's would have broken on it
        const warning = pollutionWarning(capture, prepared.bundleDir, warned);
        if (warning) warnings.push({ kind: 'stdout-pollution', ...warning });
      },
    });
    return { runner, warnings, served: 0 };
  };
  const results: (RunResult & RunHistory)[] = [];
  let current: ReturnType<typeof start> | undefined;
  const stop = () => void current?.runner.kill();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    for (const spec of specs) {
      if (!current || !current.runner.alive || freshEach) {
        await current?.runner.shutdown();
        current = start();
        await current.runner.ready(options.readyTimeoutMs ?? RUN_DEFAULTS.readyTimeoutMs).catch((error: unknown) => {
          throw options.signal?.aborted ? cancelled() : error;
        });
      }
      const { runner, warnings } = current;
      const base = {
        pid: runner.pid,
        python: prepared.python,
        runner: prepared.runnerScript,
        venv,
        served: current.served,
      };
      // the first task after a start owns what the runner warned about while it started (a print at import)
      const warnedBefore = current.served === 0 ? 0 : warnings.length;
      const started = runner.now();
      try {
        const outputs = await runner.request(
          ExecuteRequest.type,
          // the parameters exactly as a job sends them: canonical JSON, floats that stay floats
          { entrypoint: spec.entrypoint, params: new RawJson(canonicalJson(spec.params)) as never, seed: spec.seed },
          { timeoutMs: options.taskTimeoutMs ?? RUN_DEFAULTS.taskTimeoutMs, tag: 'replicate' },
        );
        const decoded = Object.fromEntries(
          Object.entries(outputs).map(([name, b64]) => [name, Buffer.from(b64, 'base64')]),
        );
        results.push({
          ...base,
          warnings: warnings.slice(warnedBefore),
          outputs: decoded,
          ms: Math.round(runner.now() - started),
        });
      } catch (error) {
        if (options.signal?.aborted) throw cancelled();
        results.push({
          ...base,
          warnings: warnings.slice(warnedBefore),
          failure: unexpectedFailure(error, 'reproducing the replicate'),
          ms: Math.round(runner.now() - started),
        });
      }
      current.served++;
    }
    return results;
  } finally {
    options.signal?.removeEventListener('abort', stop);
    await current?.runner.shutdown();
    await prepared.lease?.release();
  }
}

type Compared = Pick<ReplicateReport, 'verdict' | 'message' | 'outputs' | 'notes'>;

function compare(record: SimRecord, run: RunResult): Compared {
  if (run.failure) {
    const now = `${run.failure.kind}: ${run.failure.message}`;
    if (record.status === 'failed') {
      if (record.kind === run.failure.kind && record.message === run.failure.message) {
        const moved =
          record.location &&
          run.failure.location &&
          (record.location.file !== run.failure.location.file || record.location.line !== run.failure.location.line);
        return {
          verdict: 'failed-like-before',
          message: `failed like before: ${now}`,
          outputs: [],
          notes: moved
            ? [`It was raised at ${where(record.location)} then, at ${where(run.failure.location)} now.`]
            : [],
        };
      }
      return {
        verdict: 'failed-differently',
        message: `failed differently: ${now}; the recorded run failed with ${record.kind}: ${record.message}`,
        outputs: [],
        notes: [],
      };
    }
    return {
      verdict: 'failed-differently',
      message: `failed differently: ${now}; the recorded run succeeded`,
      outputs: recordedOnly(record),
      notes: [],
    };
  }
  if (record.status === 'failed') {
    return {
      verdict: 'different',
      message: `different: it ran ok now; the recorded run failed with ${record.kind}: ${record.message}`,
      outputs: producedOnly(run.outputs!),
      notes: [],
    };
  }
  const outputs = compareOutputs(record, run.outputs!);
  const differing = outputs.filter((output) => output.status !== 'same');
  if (differing.length === 0)
    return {
      verdict: 'same',
      message: `same: ${outputs.length} output${outputs.length === 1 ? '' : 's'}, byte for byte as recorded`,
      outputs,
      notes: [],
    };
  const named = differing.map((output) => `${output.name} (${output.status})`).join(', ');
  return {
    verdict: 'different',
    message: `different: ${differing.length} of ${outputs.length} outputs differ from the recorded result: ${named}`,
    outputs,
    notes: [],
  };
}

function uncompared(run: RunResult, inJob = true): Compared {
  const what = inJob ? '; no recorded result to compare with' : '';
  if (run.failure)
    return {
      verdict: 'failed',
      message: `failed: ${run.failure.kind}: ${run.failure.message}${what}`,
      outputs: [],
      notes: [],
    };
  const outputs = producedOnly(run.outputs!);
  return {
    verdict: 'ok',
    message: `ok: ${outputs.length} output${outputs.length === 1 ? '' : 's'}${what}`,
    outputs,
    notes: [],
  };
}

function compareOutputs(record: SimRecord, outputs: Record<string, Buffer>): OutputComparison[] {
  const names = [...new Set([...Object.keys(record.outputs ?? {}), ...Object.keys(outputs)])].sort();
  return names.map((name) => {
    const before = record.outputs?.[name] && Buffer.from(record.outputs[name].inline, 'base64');
    const now = outputs[name];
    const recorded = before && { size: before.length, checksum: outputChecksum(before) };
    if (!now) return { name, status: 'missing', recorded };
    const checksum = outputChecksum(now);
    if (!recorded) return { name, status: 'new', size: now.length, checksum };
    if (recorded.checksum === checksum && before.equals(now))
      return { name, status: 'same', size: now.length, checksum, recorded };
    return {
      name,
      status: 'different',
      size: now.length,
      checksum,
      recorded,
      first_difference: firstDifference(before, now),
    };
  });
}

function firstDifference(before: Buffer, now: Buffer): NonNullable<OutputComparison['first_difference']> {
  let offset = 0;
  const common = Math.min(before.length, now.length);
  while (offset < common && before[offset] === now[offset]) offset++;
  const window = (bytes: Buffer) => {
    const part = bytes.subarray(offset, offset + DIFF_WINDOW);
    return { hex: part.toString('hex'), text: showBytes(part, DIFF_WINDOW * 4) };
  };
  return { offset, now: window(now), recorded: window(before) };
}

function producedOnly(outputs: Record<string, Buffer>): OutputComparison[] {
  return Object.keys(outputs)
    .sort()
    .map((name) => ({ name, status: 'produced', size: outputs[name].length, checksum: outputChecksum(outputs[name]) }));
}

function recordedOnly(record: SimRecord): OutputComparison[] {
  return Object.entries(record.outputs ?? {}).map(([name, output]) => {
    const bytes = Buffer.from(output.inline, 'base64');
    return { name, status: 'missing', recorded: { size: bytes.length, checksum: outputChecksum(bytes) } };
  });
}

function where(location: SourceLocation | undefined): string {
  return location ? `${location.file}:${location.line}` : 'an unknown line';
}
