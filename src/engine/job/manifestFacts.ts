/**
 * What the comparison and the report read of a run's manifest.json: its outcome, how it ran and
 * where. Only these fields, each optional: a manifest of an earlier version may lack any.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface ManifestFacts {
  status?: string;
  ms?: number;
  options?: { backend?: string; workers?: number };
  environment?: {
    bundle?: { dir?: string; digest?: string };
    /** `venv_python`: the interpreter the runners ran with (the venv's, or the one given with --python). */
    python?: { version?: string; venv_python?: string };
    venv?: { key?: string };
    runner?: unknown;
    engine?: string;
    host?: string;
    platform?: string;
  };
}

/** The manifest of the run in `dir`; undefined when it has none (still running, or killed before writing it). */
export function readManifestFacts(dir: string): ManifestFacts | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as ManifestFacts;
  } catch {
    return undefined;
  }
}
