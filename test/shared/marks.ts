/**
 * Fixtures mark the lines tests point at with `# MARK:<name>` comments, so no test hard-codes a
 * line number. Free of side effects: the extension-host suite imports it too.
 */
import { readFileSync } from 'node:fs';

/** The 1-based line of `# MARK:<marker>` in a fixture file. */
export function lineOf(file: string, marker: string): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(`# MARK:${marker}`) && !line.includes(`# MARK:${marker}-`));
  if (index < 0) throw new Error(`no MARK:${marker} in ${file}`);
  return index + 1;
}
