/**
 * Job input, validated up front: our job file, a production SimJob, or a bundle plus a
 * parameters file. Everything wrong is found before anything runs or is written, and said
 * with the field and why (`bad-input`, exit 2).
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { Failure } from '../failure';
import { findTooDeep, MAX_INPUT_NESTING } from '../pyjson/depth';
import { readInputFile } from '../inputFile';
import { parsePythonJson, PyFloat } from '../pyjson/pyjson';
import { paramId, replicateSeeds, type Params, type ParamScalar } from './ids';

export interface ParameterSet {
  index: number;
  paramId: string;
  params: Params;
  /** One per replicate; bigint beyond 2^53 (SimJob seeds go to 2^64-1). */
  seeds: (number | bigint)[];
}

export interface JobSpec {
  jobId: string;
  bundleDir: string;
  entrypoint: string;
  parameterSets: ParameterSet[];
  targets: string[];
  targetData: unknown;
  source: 'job file' | 'SimJob' | 'parameters file';
  /** Facts the user should know about how this job will run. */
  notes: string[];
  /** What the job was made from, so that it can be made again (reproduce.ts); absent in folders of earlier versions. */
  input?: JobInput;
}

/**
 * The input a job was made from, as `job.json` records it: a job file (ours or a SimJob, with
 * the `--bundle` a SimJob needs), or a bundle's parameters file with its replicate count (the
 * bundle, entrypoint and targets are in the job itself). Absolute paths.
 */
export type JobInput =
  { job_file: string; bundle?: string } | { params_file: string; replicates: number; job_id_given: boolean };

export interface ShortcutInput {
  bundleDir: string;
  paramsFile: string;
  replicates: number;
  entrypoint: string;
  targets: string[];
  jobId?: string;
}

const JOB_FIELDS = ['job_id', 'bundle', 'entrypoint', 'parameter_sets', 'replicates', 'targets', 'target_data'];
const SIMJOB_FIELDS = [
  'job_type',
  'job_id',
  'bundle_ref',
  'tasks',
  'metadata',
  'priority',
  'resource_requirements',
  'target_spec',
];
const SAFE_JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_REPLICATES = 10_000_000;

/** A job file (ours or a SimJob); `bundleOverride` is required for a SimJob (its bundle_ref is a registry digest). */
export async function loadJobFile(file: string, bundleOverride?: string): Promise<JobSpec> {
  const raw = await readJson(file, 'a job file');
  if (!isObject(raw)) throw bad(file, 'the job must be a JSON object');
  if ('tasks' in raw || raw.job_type === 'simulation') return fromSimJob(file, raw, bundleOverride);
  rejectUnknown(file, raw, JOB_FIELDS, '');
  const bundle = bundleOverride ?? requireString(file, raw, 'bundle');
  const replicates = requireReplicates(file, raw.replicates, 'replicates');
  const sets = requireArray(file, raw, 'parameter_sets');
  const parameterSets = sets.map((set, index) =>
    makeSet(file, set, `parameter_sets[${index}]`, index, (id) => replicateSeeds(id, replicates)),
  );
  rejectDuplicates(file, parameterSets, 'parameter_sets');
  const bundleDir = path.resolve(path.dirname(file), bundle);
  return {
    jobId: jobIdOf(file, raw.job_id, bundleDir),
    bundleDir,
    entrypoint: requireString(file, raw, 'entrypoint'),
    parameterSets,
    targets: optionalStrings(file, raw, 'targets'),
    targetData: raw.target_data ?? null,
    source: 'job file',
    notes: [],
    input: { job_file: path.resolve(file) },
  };
}

/** `run <bundle-dir> --params FILE --replicates N`: a JSON list of parameter sets. */
export async function jobFromParamsFile(input: ShortcutInput): Promise<JobSpec> {
  const raw = await readJson(input.paramsFile, 'a parameters file');
  const sets = Array.isArray(raw)
    ? raw
    : isObject(raw) && Array.isArray(raw.parameter_sets)
      ? raw.parameter_sets
      : undefined;
  if (!sets) throw bad(input.paramsFile, 'expected a JSON list of parameter sets, e.g. [{"beta": 0.3}, {"beta": 0.4}]');
  if (sets.length === 0) throw bad(input.paramsFile, 'the list of parameter sets is empty');
  const replicates = requireReplicates('--replicates', input.replicates, 'value');
  const parameterSets = sets.map((set, index) =>
    makeSet(input.paramsFile, set, `[${index}]`, index, (id) => replicateSeeds(id, replicates)),
  );
  rejectDuplicates(input.paramsFile, parameterSets, '');
  return {
    jobId: jobIdOf('--job-id', input.jobId, input.bundleDir),
    bundleDir: path.resolve(input.bundleDir),
    entrypoint: input.entrypoint,
    parameterSets,
    targets: input.targets,
    targetData: null,
    source: 'parameters file',
    notes: [],
    input: { params_file: path.resolve(input.paramsFile), replicates, job_id_given: input.jobId !== undefined },
  };
}

/** A JSON value that has the shape of a job, and what it holds at a glance (the file may still be invalid). */
export interface JobShape {
  source: 'job file' | 'SimJob';
  /** As written in the file (relative to it); a SimJob names its bundle by registry digest. */
  bundle?: string;
  sets: number;
  /** Per parameter set (a job file); a SimJob lists its tasks instead. */
  replicates?: number;
  tasks?: number;
}

/**
 * Recognises a job by its content, as loadJobFile reads it, not by its file name: our job file
 * (a `bundle` and `parameter_sets`) or a production SimJob (`tasks`, or `job_type: simulation`).
 * A results folder's normalised job.json (`source`, `bundle_digest`) is not a job to run.
 */
export function recogniseJob(raw: unknown): JobShape | undefined {
  if (!isObject(raw)) return undefined;
  if ('tasks' in raw || raw.job_type === 'simulation') {
    const tasks = Array.isArray(raw.tasks) ? raw.tasks : [];
    const values = new Set(
      tasks.map((task) => (isObject(task) && isObject(task.params) ? stableText(task.params.values) : '')),
    );
    return { source: 'SimJob', sets: values.size, tasks: tasks.length };
  }
  if ('source' in raw || 'bundle_digest' in raw) return undefined;
  if (typeof raw.bundle !== 'string' || !Array.isArray(raw.parameter_sets)) return undefined;
  const replicates = raw.replicates instanceof PyFloat ? raw.replicates.value : raw.replicates;
  return {
    source: 'job file',
    bundle: raw.bundle,
    sets: raw.parameter_sets.length,
    replicates: typeof replicates === 'number' ? replicates : undefined,
  };
}

function stableText(value: unknown): string {
  if (!isObject(value)) return JSON.stringify(value instanceof PyFloat ? value.value : value) ?? '';
  return `{${Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${stableText(value[key])}`)
    .join(',')}}`;
}

/** A job file's text as loadJobFile parses it (Python's JSON: NaN, big integers, floats kept). */
export function parseJobText(file: string, text: string): unknown {
  checkNesting(file, text);
  return parsePythonJson(text);
}

// ---- an earlier run's job.json ----------------------------------------------------------------

const NORMALISED_FIELDS = [
  'job_id',
  'bundle',
  'bundle_digest',
  'entrypoint',
  'source',
  'targets',
  'target_data',
  'notes',
  'parameter_sets',
  'input',
];
const NORMALISED_SET_FIELDS = ['param_id', 'params', 'seeds'];
const SOURCES: JobSpec['source'][] = ['job file', 'SimJob', 'parameters file'];

/**
 * The `job.json` of a results folder, checked like a new job file before a resume trusts it:
 * the fields and their types, the job id (the folder's own name), every `param_id` recomputed
 * from its parameters, and every seed recomputed from its `param_id` (a SimJob's seeds are its
 * own: those are checked to be seeds). Also returns the bundle digest recorded when it ran.
 */
export function jobFromResultsJson(
  file: string,
  raw: unknown,
  folderName: string,
  /**
   * These very bytes were checked when the engine wrote them (the manifest records their sha256,
   * see readJobJson): the seeds and param_ids are not hashed again (most of a big job's resume:
   * 400k seeds take a second, 200 param_ids 15–25 ms of a 40k job's 0.3 s), only their form checked.
   */
  bytesChecked = false,
): { job: JobSpec; bundleDigest?: string } {
  if (!isObject(raw)) throw bad(file, 'the job must be a JSON object');
  rejectUnknown(file, raw, NORMALISED_FIELDS, '');
  const jobId = requireString(file, raw, 'job_id');
  checkJobId(file, jobId);
  if (jobId !== folderName)
    throw bad(file, `job_id is ${JSON.stringify(jobId)}, but the results folder is ${JSON.stringify(folderName)}`);
  const bundle = requireString(file, raw, 'bundle');
  if (!path.isAbsolute(bundle)) throw bad(file, 'bundle must be an absolute path');
  const digest = raw.bundle_digest;
  if (digest !== undefined && (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)))
    throw bad(file, 'bundle_digest must be 64 hex digits');
  const source = raw.source as JobSpec['source'];
  if (!SOURCES.includes(source)) throw bad(file, `source must be one of ${SOURCES.join(', ')}`);
  const notes = raw.notes ?? [];
  if (!Array.isArray(notes) || !notes.every((n) => typeof n === 'string'))
    throw bad(file, 'notes must be a list of strings');
  const parameterSets = requireArray(file, raw, 'parameter_sets').map((value, index) => {
    const where = `parameter_sets[${index}]`;
    if (!isObject(value)) throw bad(file, `${where} must be an object`);
    rejectUnknown(file, value, NORMALISED_SET_FIELDS, `${where}.`);
    const params = checkParams(file, value.params, `${where}.params`);
    const id = bytesChecked ? checkedParamId(file, value.param_id, where) : paramId(params);
    if (value.param_id !== id)
      throw bad(file, `${where}.param_id is ${JSON.stringify(value.param_id)}, but its params hash to ${id}`);
    const seeds = value.seeds;
    if (!Array.isArray(seeds) || seeds.length === 0 || seeds.length > MAX_REPLICATES)
      throw bad(file, `${where}.seeds must be a list of 1 to ${MAX_REPLICATES} seeds`);
    if (!bytesChecked) {
      const expected = source === 'SimJob' ? undefined : replicateSeeds(id, seeds.length);
      seeds.forEach((seed, i) => {
        if (!isSeed(seed)) throw bad(file, `${where}.seeds[${i}] must be a whole number from 0 to 2^64-1`);
        if (expected && seed !== expected[i])
          throw bad(
            file,
            `${where}.seeds[${i}] is ${seed}, but replicate ${i} of this param_id has seed ${expected[i]}`,
          );
      });
    }
    return { index, paramId: id, params, seeds: seeds as (number | bigint)[] };
  });
  rejectDuplicates(file, parameterSets, 'parameter_sets');
  const job: JobSpec = {
    jobId,
    bundleDir: bundle,
    entrypoint: requireString(file, raw, 'entrypoint'),
    parameterSets,
    targets: optionalStrings(file, raw, 'targets'),
    targetData: raw.target_data ?? null,
    source,
    notes: notes as string[],
    input: raw.input === undefined ? undefined : checkInput(file, raw.input),
  };
  return { job, bundleDigest: digest as string | undefined };
}

/** A param_id taken as written (its bytes were checked when written): only its form is checked. */
function checkedParamId(file: string, value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value))
    throw bad(file, `${where}.param_id must be 64 hex digits, not ${JSON.stringify(value)}`);
  return value;
}

function checkInput(file: string, value: unknown): JobInput {
  const absolute = (item: unknown) => typeof item === 'string' && path.isAbsolute(item);
  if (isObject(value) && absolute(value.job_file)) {
    rejectUnknown(file, value, ['job_file', 'bundle'], 'input.');
    if (value.bundle !== undefined && !absolute(value.bundle)) throw bad(file, 'input.bundle must be an absolute path');
    return value.bundle === undefined
      ? { job_file: value.job_file as string }
      : { job_file: value.job_file as string, bundle: value.bundle as string };
  }
  if (isObject(value) && absolute(value.params_file)) {
    rejectUnknown(file, value, ['params_file', 'replicates', 'job_id_given'], 'input.');
    if (typeof value.job_id_given !== 'boolean') throw bad(file, 'input.job_id_given must be true or false');
    return {
      params_file: value.params_file as string,
      replicates: requireReplicates(file, value.replicates, 'input.replicates'),
      job_id_given: value.job_id_given,
    };
  }
  throw bad(
    file,
    'input must be {"job_file": ABSOLUTE PATH[, "bundle": ABSOLUTE PATH]} or {"params_file": ABSOLUTE PATH, "replicates": N, "job_id_given": BOOLEAN}',
  );
}

function isSeed(seed: unknown): seed is number | bigint {
  return (
    (typeof seed === 'bigint' || (typeof seed === 'number' && Number.isInteger(seed))) &&
    seed >= 0 &&
    BigInt(seed) <= 2n ** 64n - 1n
  );
}

// ---- production SimJob -------------------------------------------------------------------------

function fromSimJob(file: string, raw: Record<string, unknown>, bundleOverride: string | undefined): JobSpec {
  rejectUnknown(file, raw, SIMJOB_FIELDS, '');
  if (!bundleOverride) {
    throw bad(
      file,
      `a SimJob names its bundle by registry digest (${String(raw.bundle_ref ?? 'bundle_ref')}); give the local bundle directory with --bundle DIR`,
    );
  }
  const tasks = requireArray(file, raw, 'tasks');
  if (tasks.length === 0) throw bad(file, 'tasks is empty');
  const groups = new Map<string, { params: Params; seeds: (number | bigint)[]; index: number }>();
  let entrypoint: string | undefined;
  tasks.forEach((task, i) => {
    const where = `tasks[${i}]`;
    if (!isObject(task)) throw bad(file, `${where} must be an object`);
    const ep = requireString(file, task, 'entrypoint', where);
    if (entrypoint !== undefined && ep !== entrypoint)
      throw bad(file, `${where}.entrypoint is ${ep}, but earlier tasks run ${entrypoint}; one entrypoint per job`);
    entrypoint = ep;
    const params = task.params;
    if (!isObject(params) || !isObject(params.values))
      throw bad(file, `${where}.params must be {"param_id": ..., "values": {...}}`);
    const values = checkParams(file, params.values, `${where}.params.values`);
    const id = paramId(values);
    if (typeof params.param_id === 'string' && params.param_id !== id) {
      throw bad(
        file,
        `${where}.params.param_id is ${params.param_id}, but its values hash to ${id} (modelops-contracts make_param_id)`,
      );
    }
    const seed = task.seed;
    if (!isSeed(seed)) {
      throw bad(file, `${where}.seed must be a whole number from 0 to 2^64-1`);
    }
    const group = groups.get(id) ?? { params: values, seeds: [], index: groups.size };
    group.seeds.push(seed);
    groups.set(id, group);
  });
  const targetSpec = raw.target_spec;
  const targets =
    isObject(targetSpec) && isObject(targetSpec.data) && Array.isArray(targetSpec.data.target_entrypoints)
      ? targetSpec.data.target_entrypoints.map(String)
      : [];
  return {
    jobId: jobIdOf(file, raw.job_id, bundleOverride),
    bundleDir: path.resolve(bundleOverride),
    entrypoint: entrypoint!,
    parameterSets: [...groups.entries()].map(([id, group]) => ({
      index: group.index,
      paramId: id,
      params: group.params,
      seeds: group.seeds,
    })),
    targets,
    targetData: null,
    source: 'SimJob',
    notes: [
      "seeds are run as the SimJob declares them; production's job runner executes the first task's seed + i for every replicate instead (modelops job_runner.py, ReplicateSet)",
    ],
    input: { job_file: path.resolve(file), bundle: path.resolve(bundleOverride) },
  };
}

// ---- pieces -----------------------------------------------------------------------------------

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readInputFile(file, what); // never a FIFO or a device: those would block or never end
  checkNesting(file, text);
  try {
    return parsePythonJson(text);
  } catch (error) {
    throw new Failure('bad-input', `${file} is not valid JSON: ${(error as Error).message}.`);
  }
}

/**
 * Input nested deeper than the runners' JSON decoder takes is refused here, naming the field,
 * rather than crashing a runner that then cannot even answer (pyjson/depth.ts says how deep).
 */
export function checkNesting(file: string, text: string): void {
  const deep = findTooDeep(text);
  if (!deep) return;
  throw bad(
    file,
    `${deep.path} is nested ${deep.depth} levels deep; at most ${MAX_INPUT_NESTING} are accepted, because the runner reads every request with Python's json module, which fails with RecursionError a little below 1000 levels`,
  );
}

/**
 * One parameter set given as JSON text on the command line (`replicate <bundle> --params JSON`),
 * checked as a job file's: read as Python reads it (`1.0` stays a float), finite numbers,
 * strings and booleans only. `label` names it in the message (`--params`).
 */
export function paramsFromText(label: string, text: string): Params {
  checkNesting(label, text);
  let value: unknown;
  try {
    value = parsePythonJson(text);
  } catch (error) {
    throw new Failure('bad-input', `${label} is not valid JSON: ${(error as Error).message}.`);
  }
  return checkParams(label, value, 'params');
}

function makeSet(
  file: string,
  value: unknown,
  where: string,
  index: number,
  seedsFor: (id: string) => (number | bigint)[],
): ParameterSet {
  const params = checkParams(file, value, where);
  const id = paramId(params);
  return { index, paramId: id, params, seeds: seedsFor(id) };
}

function checkParams(file: string, value: unknown, where: string): Params {
  if (!isObject(value)) throw bad(file, `${where} must be an object of parameter values`);
  const params: Params = {};
  for (const [key, item] of Object.entries(value)) {
    const field = `${where}.${key}`;
    if (key === '') throw bad(file, `${where} has a parameter with an empty name`);
    if (item instanceof PyFloat) {
      if (!Number.isFinite(item.value))
        throw bad(
          file,
          `${field} is ${item.value}; parameters must be finite numbers (modelops-contracts rejects NaN and infinity)`,
        );
    } else if (item === null) {
      throw bad(file, `${field} is null; parameters are numbers, strings or booleans`);
    } else if (typeof item === 'object') {
      throw bad(
        file,
        `${field} is ${Array.isArray(item) ? 'a list' : 'an object'}; parameters are numbers, strings or booleans`,
      );
    }
    params[key] = item as ParamScalar;
  }
  return params;
}

function rejectDuplicates(file: string, sets: ParameterSet[], list: string): void {
  const seen = new Map<string, number>();
  for (const set of sets) {
    const first = seen.get(set.paramId);
    if (first !== undefined)
      throw bad(
        file,
        `${list}[${set.index}] repeats ${list}[${first}] (the same values give the same param_id ${set.paramId.slice(0, 16)})`,
      );
    seen.set(set.paramId, set.index);
  }
}

function rejectUnknown(file: string, value: Record<string, unknown>, known: string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key))
      throw bad(file, `unknown field ${where}${JSON.stringify(key)} (known: ${known.join(', ')})`);
  }
}

function jobIdOf(file: string, value: unknown, bundleDir: string): string {
  if (value === undefined || value === null) return generatedJobId(bundleDir);
  return checkJobId(file, value);
}

function checkJobId(file: string, value: unknown): string {
  if (typeof value !== 'string' || !SAFE_JOB_ID.test(value) || value.includes('..')) {
    throw bad(
      file,
      `job_id ${JSON.stringify(value)} is not a safe file name (letters, digits, ".", "_", "-"; at most 128; not starting with a dot)`,
    );
  }
  return value;
}

/**
 * A job id for a job that names none: `<bundle>-<YYYYMMDD>-<HHMMSS>-<4 hex>`, e.g.
 * `sir-20261201-210603-a3f9`, in local time (what the user's clock said when it started), so
 * results folders read as what ran when, and sort by time within a bundle. The random suffix
 * keeps two runs in one second apart. Always a safe file name (see SAFE_JOB_ID): the bundle's
 * name is cut to its safe characters, at most 40.
 */
export function generatedJobId(bundleDir: string, now = new Date()): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const day = `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}`;
  const time = `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  return `${bundleName(bundleDir)}-${day}-${time}-${randomBytes(2).toString('hex')}`;
}

/**
 * What a bundle is called in a job id: its folder's name, or the parent's when the folder is
 * just called `bundle` (examples/sir/bundle is "sir"), reduced to letters, digits, `.`, `_`, `-`.
 */
export function bundleName(bundleDir: string): string {
  const resolved = path.resolve(bundleDir);
  const base = path.basename(resolved);
  const named = /^bundles?$/i.test(base) ? path.basename(path.dirname(resolved)) : base;
  const safe = named
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 40)
    .replace(/[-.]+$/, '');
  return safe || 'job';
}

const GENERATED_JOB_ID = /^(.+)-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}-[0-9a-f]{4}$/;

/**
 * How a job is named on screen: a generated id as its bundle and start time (`sir · 21:06`, the
 * date too when it is not today), any other id as it is. The id itself stays in tooltips.
 */
export function jobLabel(jobId: string, today = new Date()): string {
  const match = GENERATED_JOB_ID.exec(jobId);
  if (!match) return jobId;
  const [, name, year, month, day, hours, minutes] = match;
  const sameDay =
    Number(year) === today.getFullYear() && Number(month) === today.getMonth() + 1 && Number(day) === today.getDate();
  return `${name} · ${sameDay ? '' : `${year}-${month}-${day} `}${hours}:${minutes}`;
}

function requireString(file: string, value: Record<string, unknown>, key: string, where = ''): string {
  const item = value[key];
  if (typeof item !== 'string' || item === '')
    throw bad(file, `${where ? `${where}.` : ''}${key} must be a non-empty string`);
  return item;
}

function requireArray(file: string, value: Record<string, unknown>, key: string): unknown[] {
  const item = value[key];
  if (!Array.isArray(item)) throw bad(file, `${key} must be a list`);
  if (item.length === 0) throw bad(file, `${key} is empty`);
  return item;
}

function requireReplicates(file: string, value: unknown, key: string): number {
  // a count written as a float (1.0, 2e1: what Python and many generators write) is that count
  const count = value instanceof PyFloat && Number.isInteger(value.value) ? value.value : value;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_REPLICATES) {
    const shown =
      value instanceof PyFloat
        ? String(value.value)
        : typeof value === 'bigint'
          ? value.toString()
          : JSON.stringify(value);
    throw bad(file, `${key} must be a whole number from 1 to ${MAX_REPLICATES}, not ${shown}`);
  }
  return count;
}

function optionalStrings(file: string, value: Record<string, unknown>, key: string): string[] {
  const item = value[key];
  if (item === undefined || item === null) return [];
  if (!Array.isArray(item) || !item.every((t) => typeof t === 'string' && t !== ''))
    throw bad(file, `${key} must be a list of target entrypoints such as "targets.prevalence:prevalence_target"`);
  return item as string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof PyFloat);
}

function bad(file: string, why: string): Failure {
  return new Failure('bad-input', `${file}: ${why}.`);
}
