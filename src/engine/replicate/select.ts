/**
 * Which replicate of a job the user means: `--param` as an index or a param_id prefix, and
 * `--replicate N`. Anything that does not name exactly one is `bad-input` (exit 2) saying why:
 * the range of indexes, or the candidates of an ambiguous prefix.
 */
import { Failure } from '../failure';
import { scalarJson } from '../job/ids';
import type { JobSpec, ParameterSet } from '../job/spec';

/**
 * Digits only and shorter than this: an index. A param_id prefix is copied from a display that
 * shows 8 or more hex digits, or has a letter a–f; "3" meaning the prefix "3" would match a
 * sixteenth of all sets, so it is read as the index it looks like.
 */
const INDEX_DIGITS_BELOW = 8;
const CANDIDATES_SHOWN = 10;

export function selectParameterSet(job: JobSpec, param: string): ParameterSet {
  const value = param.trim().toLowerCase();
  const sets = job.parameterSets;
  if (new RegExp(`^\\d{1,${INDEX_DIGITS_BELOW - 1}}$`).test(value)) {
    const index = Number(value);
    if (index < sets.length) return sets[index];
    throw new Failure(
      'bad-input',
      `--param ${param}: job ${job.jobId} has parameter sets 0 to ${sets.length - 1} (digits only, fewer than ${INDEX_DIGITS_BELOW}, is an index; a param_id prefix has ${INDEX_DIGITS_BELOW} or more hex digits, or a letter a-f).`,
    );
  }
  if (!/^[0-9a-f]+$/.test(value))
    throw new Failure(
      'bad-input',
      `--param ${JSON.stringify(param)} is neither an index nor a param_id prefix (hex digits).`,
    );
  const matches = sets.filter((set) => set.paramId.startsWith(value));
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) {
    throw new Failure(
      'bad-input',
      `--param ${param}: no parameter set of job ${job.jobId} has a param_id starting with ${value}; its sets are: ${describeSets(sets)}.`,
    );
  }
  throw new Failure(
    'bad-input',
    `--param ${param} is ambiguous: ${matches.length} parameter sets of job ${job.jobId} have a param_id starting with it: ${describeSets(matches)}; give more digits, or the index.`,
  );
}

export function checkReplicateIndex(set: ParameterSet, replicate: number): void {
  if (!Number.isInteger(replicate) || replicate < 0 || replicate >= set.seeds.length) {
    throw new Failure(
      'bad-input',
      `--replicate ${replicate}: parameter set ${set.index} (${set.paramId.slice(0, 16)}) has replicates 0 to ${set.seeds.length - 1}.`,
    );
  }
}

/** `index 3 (3a1b2c3d4e5f6a7b: beta=0.3, gamma=0.1)`, the first few of them. */
function describeSets(sets: readonly ParameterSet[]): string {
  const shown = sets
    .slice(0, CANDIDATES_SHOWN)
    .map((set) => `index ${set.index} (${set.paramId.slice(0, 16)}: ${describeParams(set)})`);
  return `${shown.join('; ')}${sets.length > CANDIDATES_SHOWN ? `; … ${sets.length - CANDIDATES_SHOWN} more` : ''}`;
}

export function describeParams(set: ParameterSet): string {
  return Object.entries(set.params)
    .map(([key, value]) => `${key}=${scalarJson(value)}`)
    .join(', ');
}
