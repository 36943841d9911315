/**
 * One replicate as a production study, so that production can run exactly it: the
 * explicit-seed format of modelops-contracts' `SimulationStudy` (study.py, 63b5f81),
 *
 *   {"model": "models.sir", "scenario": "baseline",
 *    "parameter_sets": [{"params": {"beta": 0.3}, "seed": 2954311001}], ...}
 *
 * `to_simjob` makes exactly one task of an entry that has a seed, with that seed and the
 * entrypoint `model/scenario`; `from_dict` reads this shape. The params keep their Python kinds
 * (1.0 stays a float), so production's param_id is the job's, and the seed keeps every digit.
 */
import { renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describeSystemError, systemError } from '../errno';
import { Failure } from '../failure';
import type { Params } from '../job/ids';
import { stringifyWireJson } from '../pyjson/pyjson';

export interface StudySource {
  entrypoint: string;
  params: Params;
  seed: number | bigint;
  param_id: string;
  /** Where the replicate comes from, when it comes from a job. */
  job_id?: string;
  replicate?: number;
}

/** The study: a model entrypoint `import.path/scenario` split as production joins it. */
export function replicateStudy(source: StudySource): Record<string, unknown> {
  const { entrypoint } = source;
  // production's parse_entrypoint (entrypoint.py): a model is `import.path/scenario`, split at the last '/'
  const slash = entrypoint.lastIndexOf('/');
  if (slash <= 0 || slash === entrypoint.length - 1 || entrypoint.includes(':'))
    throw new Failure(
      'bad-input',
      `A production study names its simulation as model/scenario ("models.sir/baseline"); the entrypoint ${JSON.stringify(entrypoint)} is not of that form, so it cannot be written as one.`,
    );
  return {
    model: entrypoint.slice(0, slash),
    scenario: entrypoint.slice(slash + 1),
    parameter_sets: [{ params: source.params, seed: source.seed }],
    sampling_method: 'manual',
    n_replicates: 1,
    outputs: null,
    metadata: {
      reproduces: {
        ...(source.job_id !== undefined ? { job_id: source.job_id } : {}),
        param_id: source.param_id,
        ...(source.replicate !== undefined ? { replicate: source.replicate } : {}),
        seed: source.seed,
      },
      written_by: 'modelops-debugger replicate --export-study',
    },
  };
}

/** Writes the study to `file` whole (a temporary file renamed over it); returns its absolute path. */
export function writeStudy(file: string, source: StudySource): string {
  const target = path.resolve(file);
  const study = replicateStudy(source);
  let isDirectory = false;
  try {
    isDirectory = statSync(target).isDirectory();
  } catch {
    // not there yet: written below
  }
  if (isDirectory) throw new Failure('bad-input', `--export-study ${target} is a directory: give a file name.`);
  const temp = `${target}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, `${stringifyWireJson(study, 2)}\n`);
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    const system = systemError(error);
    throw new Failure(
      'results-unwritable',
      system ? describeSystemError(system, 'write the study') : `Could not write the study ${target}: ${String(error)}`,
    );
  }
  return target;
}
