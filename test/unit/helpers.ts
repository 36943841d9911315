/** Paths and small utilities shared by the unit tests (bundled to out/unit/, two levels below the root). */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUNDLES = path.join(ROOT, 'test', 'fixtures', 'bundles');
export const PROD_RUNNER = path.join(ROOT, 'test', 'fixtures', 'runners', 'prod_style_runner.py');
export const CLI = path.join(ROOT, 'dist', 'cli.js');

export function bundle(name: string): string {
  return path.join(BUNDLES, name);
}

/** The 1-based line of `# MARK:<marker>` in a fixture file: tests never hard-code line numbers. */
export function lineOf(file: string, marker: string): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(`# MARK:${marker}`) && !line.includes(`# MARK:${marker}-`));
  if (index < 0) throw new Error(`no MARK:${marker} in ${file}`);
  return index + 1;
}
