/**
 * The command line that makes a job, or one replicate of it, again ("Copy Reproduce Command").
 * Built from the results folder alone (`job.json`, which records what the job was made from,
 * and `manifest.json` for where it ran), so a job opened from disk reproduces like a live one.
 * The line is text for a person to paste into a POSIX shell; nothing here runs it.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Failure } from '../failure';
import { parsePythonJson } from '../pyjson/pyjson';
import { jobFromParamsFile, jobFromResultsJson, loadJobFile, type JobSpec } from './spec';

export const CLI_NAME = 'modelops-debugger';

/** How many hex digits of a param_id name it on the command line (`replicate --param`). */
export const PARAM_PREFIX_DIGITS = 12;

export interface Reproduction {
  /** The words of the command, unquoted. */
  args: string[];
  /** The same, quoted for a POSIX shell. */
  line: string;
  /** Why running the line now may not make the same job (its input changed since), when so. */
  caveat?: string;
}

/** `modelops-debugger replicate <out>/<job_id> --param <12 hex> --replicate N`: that replicate, in a fresh runner. */
export function replicateCommandLine(jobDir: string, paramId: string, replicate: number): Reproduction {
  if (!/^[0-9a-f]{64}$/.test(paramId)) throw new Failure('bad-input', `${paramId} is not a param_id (64 hex digits).`);
  if (!Number.isInteger(replicate) || replicate < 0)
    throw new Failure('bad-input', `replicate ${replicate} is not a replicate index.`);
  const args = [
    CLI_NAME,
    'replicate',
    path.resolve(jobDir),
    '--param',
    paramId.slice(0, PARAM_PREFIX_DIGITS),
    '--replicate',
    String(replicate),
  ];
  return { args, line: shellLine(args) };
}

/**
 * The `modelops-debugger run …` line that runs this job again into the same `--out`: its job
 * file (with `--bundle` for a SimJob), or its bundle with `--params`, `--replicates`,
 * `--entrypoint`, `--target` and, when the user gave one, `--job-id`; `--backend dask
 * --scheduler` when it ran on Dask. A job file with a `job_id` names the same results folder,
 * which the command then refuses to overwrite (it says to resume instead).
 */
export async function jobCommandLine(jobDir: string): Promise<Reproduction> {
  const dir = path.resolve(jobDir);
  const file = path.join(dir, 'job.json');
  let raw: unknown;
  try {
    raw = parsePythonJson(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Failure(
      'bad-input',
      `${dir} is not a results folder of a job (${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no job.json' : `job.json is not valid JSON: ${(error as Error).message}`}).`,
    );
  }
  const { job } = jobFromResultsJson(file, raw, path.basename(dir));
  const input = job.input;
  if (!input)
    throw new Failure(
      'bad-input',
      `${file} does not record what job ${job.jobId} was made from (an earlier version wrote it, or it is some parameter sets of another run run again from the Testing view), so it cannot be reproduced; its results can still be resumed.`,
    );
  const out = path.dirname(dir);
  let args: string[];
  let again: () => Promise<JobSpec>;
  if ('job_file' in input) {
    args = [CLI_NAME, 'run', input.job_file, ...(input.bundle ? ['--bundle', input.bundle] : [])];
    again = () => loadJobFile(input.job_file, input.bundle);
  } else {
    const replicates = String(input.replicates);
    args = [
      CLI_NAME,
      'run',
      job.bundleDir,
      '--params',
      input.params_file,
      '--replicates',
      replicates,
      '--entrypoint',
      job.entrypoint,
      ...job.targets.flatMap((target) => ['--target', target]),
    ];
    if (input.job_id_given) args.push('--job-id', job.jobId);
    again = () =>
      jobFromParamsFile({
        bundleDir: job.bundleDir,
        paramsFile: input.params_file,
        replicates: input.replicates,
        entrypoint: job.entrypoint,
        targets: job.targets,
      });
  }
  args.push(...daskArgs(dir), '--out', out);
  return { args, line: shellLine(args), caveat: await changedSince(job, again) };
}

/** Where a job ran, when the manifest says Dask (a job that never finished has no manifest: local then). */
function daskArgs(dir: string): string[] {
  try {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      options?: { backend?: string; scheduler?: string };
    };
    if (manifest.options?.backend === 'dask' && manifest.options.scheduler)
      return ['--backend', 'dask', '--scheduler', manifest.options.scheduler];
  } catch {
    // no manifest yet (a job still running): it runs where the editor's setting says, said by its events
  }
  return [];
}

/** The input read again now: the same parameter sets, seeds, bundle and entrypoint, or what differs. */
async function changedSince(job: JobSpec, again: () => Promise<JobSpec>): Promise<string | undefined> {
  let now: JobSpec;
  try {
    now = await again();
  } catch (error) {
    return `its input cannot be read as it was: ${(error as Error).message}`;
  }
  const sets = (spec: JobSpec) => spec.parameterSets.map((set) => `${set.paramId}:${set.seeds.join(',')}`).join(';');
  if (now.bundleDir !== job.bundleDir) return `its input now names another bundle (${now.bundleDir})`;
  if (now.entrypoint !== job.entrypoint)
    return `its input now runs entrypoint ${now.entrypoint}, not ${job.entrypoint}`;
  if (sets(now) !== sets(job))
    return 'its input changed since: the parameter sets or replicates are not the ones this job ran';
  if (now.targets.join('\n') !== job.targets.join('\n')) return 'its input now names other targets';
  return undefined;
}

/** Shell words: bare when they are plainly safe, else in single quotes (a quote inside as '\''). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shellLine(args: string[]): string {
  return args.map(shellQuote).join(' ');
}
