/**
 * Where our runner script is. Built, it sits in `dist/runner/` next to the bundled code; from
 * a source checkout (tests, benchmarks) it is `src/runner/`. Bundled code can live at any
 * depth under the project, so look upwards from here.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export const RUNNER_FILE = 'modelops_runner.py';
const LEVELS_UP = 4;

export function ourRunnerScript(): string {
  return runnerDirFile(RUNNER_FILE);
}

/** A file of ours beside the runner script (src/runner/): the Dask driver, the wire replay, … */
export function runnerDirFile(name: string): string {
  const candidates: string[] = [];
  for (let dir = __dirname, level = 0; level <= LEVELS_UP; dir = path.dirname(dir), level++) {
    candidates.push(path.join(dir, 'runner', name), path.join(dir, 'src', 'runner', name));
  }
  const found = candidates.find((candidate) => existsSync(candidate));
  // A missing file is a broken installation, not something the user did: say where we looked.
  if (!found) throw new Error(`modelops-debugger is incomplete: ${name} is in none of ${candidates.join(', ')}`);
  return found;
}
