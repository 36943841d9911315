/**
 * The one place the tests know how a results folder holds its simulations: layout 2's
 * `sims/<param16>.jsonl`, one line per finished attempt, the last complete line of a replicate
 * winning and a torn last line left out (and layout 1's `sims/<param16>/<i>.json`, read first, for
 * folders written before it). Written independently of the engine's reader, so a test checks the
 * engine against the layout rather than against itself.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parsePythonJson } from '../../src/engine/pyjson/pyjson';

/** A replicate's winning record: its set (the first 16 hex digits of its param_id), replicate, record and line. */
export interface SimLine {
  set: string;
  replicate: number;
  record: any;
  /** The line as written (layout 2), or the file's text (layout 1). */
  line: string;
}

/** A set's `.jsonl` in a results folder. */
export function simsFile(dir: string, paramId: string): string {
  return path.join(dir, 'sims', `${paramId.slice(0, 16)}.jsonl`);
}

/** Every replicate's winning record, by set then replicate (lines that are not JSON or name no replicate: skipped). */
export function simRecords(dir: string): SimLine[] {
  const sims = path.join(dir, 'sims');
  if (!existsSync(sims)) return [];
  const found = new Map<string, SimLine>();
  const names = readdirSync(sims).sort();
  for (const name of names) {
    const full = path.join(sims, name);
    if (!/^[0-9a-f]{16}$/.test(name)) continue;
    for (const file of readdirSync(full)) {
      const match = /^(\d+)\.json$/.exec(file);
      if (!match) continue;
      const text = readFileSync(path.join(full, file), 'utf8');
      const record = parse(text);
      if (record !== undefined)
        found.set(`${name}/${match[1]}`, { set: name, replicate: Number(match[1]), record, line: text });
    }
  }
  for (const name of names) {
    const match = /^([0-9a-f]{16})\.jsonl$/.exec(name);
    if (!match) continue;
    for (const line of wholeLines(readFileSync(path.join(sims, name), 'utf8'))) {
      const record = parse(line);
      if (typeof record?.replicate !== 'number') continue;
      found.set(`${match[1]}/${record.replicate}`, { set: match[1], replicate: record.replicate, record, line });
    }
  }
  return [...found.values()].sort((a, b) => a.set.localeCompare(b.set) || a.replicate - b.replicate);
}

/** `<param16>/<replicate>` of every replicate with a record: what the tests counted as result files before. */
export function simKeys(dir: string): string[] {
  return simRecords(dir).map((sim) => `${sim.set}/${sim.replicate}`);
}

/** The record of a `simKeys` entry. */
export function simAt(dir: string, key: string): any {
  return simRecords(dir).find((sim) => `${sim.set}/${sim.replicate}` === key)?.record;
}

/** A replicate's winning record, or undefined. */
export function simRecord(dir: string, paramId: string, replicate: number): any {
  return simRecords(dir).find((sim) => sim.set === paramId.slice(0, 16) && sim.replicate === replicate)?.record;
}

/**
 * Replaces every line of a replicate in its set's `.jsonl` by `text` (one line, in the place of
 * its first), or removes them when `text` is undefined: what tampering with a result file was.
 */
export function replaceSim(dir: string, paramId: string, replicate: number, text?: string): void {
  const file = simsFile(dir, paramId);
  const out: string[] = [];
  let placed = false;
  for (const line of wholeLines(readFileSync(file, 'utf8'))) {
    if (parse(line)?.replicate !== replicate) out.push(line);
    else if (!placed && text !== undefined) {
      out.push(text);
      placed = true;
    }
  }
  if (!placed && text !== undefined) out.push(text);
  writeFileSync(file, out.map((line) => `${line}\n`).join(''));
}

/** The problems of every set's `.jsonl`: a last line without its newline, or a line that is not JSON. */
export function jsonLinesProblems(dir: string): string[] {
  const sims = path.join(dir, 'sims');
  const problems: string[] = [];
  for (const name of existsSync(sims) ? readdirSync(sims) : []) {
    if (!name.endsWith('.jsonl')) continue;
    const text = readFileSync(path.join(sims, name), 'utf8');
    if (text && !text.endsWith('\n')) problems.push(`${name}: a torn last line`);
    wholeLines(text).forEach((line, i) => {
      if (parse(line) === undefined) problems.push(`${name} line ${i + 1} is not JSON`);
    });
  }
  return problems;
}

function wholeLines(text: string): string[] {
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean);
}

function parse(text: string): any {
  try {
    return parsePythonJson(text); // as readJson reads a file: a seed above 2^53 stays exact
  } catch {
    return undefined;
  }
}
