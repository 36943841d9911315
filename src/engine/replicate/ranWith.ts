/**
 * What a job's replicates ran with, as its manifest recorded it (run.ts writes it): the venv
 * key, the interpreter the venv was built from (or the one given with --python), the runner
 * script, the task timeout and frame cap. Read only; a field that is missing or not what run.ts
 * writes is left out, and the reproduction says what it could not check.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parsePythonJson } from '../pyjson/pyjson';

export interface RanWith {
  /** False when the job has no manifest (still running, or killed): nothing below is known. */
  manifest: boolean;
  backend?: string;
  venvKey?: string;
  /** The interpreter the venv was built from (its real path). */
  basePython?: string;
  /** The interpreter the runners ran with; without a venv key, the one given with --python. */
  python?: string;
  runner?: string;
  taskTimeoutMs?: number;
  maxFrameBytes?: number;
}

export function readRanWith(resultsDir: string): RanWith {
  let manifest: unknown;
  try {
    manifest = parsePythonJson(readFileSync(path.join(resultsDir, 'manifest.json'), 'utf8'));
  } catch {
    return { manifest: false };
  }
  const options = field(manifest, 'options');
  const environment = field(manifest, 'environment');
  const python = field(environment, 'python');
  return {
    manifest: true,
    backend: text(field(options, 'backend')),
    venvKey: text(field(field(environment, 'venv'), 'key')),
    basePython: text(field(python, 'base')),
    python: text(field(python, 'venv_python')),
    runner: text(field(environment, 'runner')),
    taskTimeoutMs: count(field(options, 'task_timeout_ms')),
    maxFrameBytes: count(field(options, 'max_frame_bytes')),
  };
}

function field(value: unknown, key: string): unknown {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}
