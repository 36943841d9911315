/**
 * Production's worker timing lines, read from worker logs (plain or gzipped, one file per pod,
 * any prefix). modelops `services/dask_simulation.py` (9c435f2 and later) logs, with
 * `logger.info(f"…")`:
 *
 *   SIM_TIMING: param_id={param_id[:8]} seed={seed} duration_ms={:.1f} worker={worker.address}
 *   AGG_TIMING: run_id={run_id or 'N/A'} param_id={(param_id or 'N/A')[:8]} target={target_ep's last
 *     "/" part} n_sim_returns= n_outputs= total_inline_mb={:.2f} max_single_kb={:.1f} duration_ms={:.1f}
 *     worker={worker.address}
 *
 * The marker is looked for anywhere in a line (after timestamps, logger names, `kubectl logs
 * --prefix` and `--timestamps`, Dask's worker log format, even inside a container runtime's JSON
 * line), then its `key=value` pairs. A line that has a marker but does not parse is kept, with
 * its file, line number and why: never dropped silently. A timestamp at the start of a line (after
 * an optional `[pod/…]` prefix) is taken as the task's end.
 */
import { createReadStream, statSync, openSync, readSync, closeSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { Failure } from '../failure';

export interface SimTiming {
  param_id: string;
  seed: string;
  duration_ms: number;
  worker: string;
  /** ms since the epoch, when the line starts with a timestamp (the task's end). */
  end_ms?: number;
  file: string;
  line: number;
}

export interface AggTiming {
  run_id: string;
  param_id: string;
  target: string;
  n_sim_returns: number;
  n_outputs: number;
  total_inline_mb: number;
  max_single_kb: number;
  duration_ms: number;
  worker: string;
  end_ms?: number;
  file: string;
  line: number;
}

export interface Unparsed {
  file: string;
  line: number;
  why: string;
  /** The line from its marker on, cut to 200 characters. */
  text: string;
}

export interface LogFile {
  file: string;
  gzip: boolean;
  lines: number;
  sims: number;
  aggs: number;
  unparsed: number;
}

export interface ProductionLogs {
  files: LogFile[];
  sims: SimTiming[];
  aggs: AggTiming[];
  /** Every line with a marker that did not parse (all of them: they are few, or the point). */
  unparsed: Unparsed[];
}

const MARKERS = ['SIM_TIMING:', 'AGG_TIMING:'] as const;
/** A value runs to white space, or to a quote or backslash (a line inside a JSON string). */
const PAIR = /([A-Za-z_][A-Za-z0-9_]*)=([^\s"'\\]*)/g;
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/**
 * A timestamp at the start of the line, after an optional `[pod/…/container]` prefix: ISO 8601
 * with `T` or a space (Python logging's default `2026-01-24 10:11:12,345`), an optional
 * fraction after `.` or `,`, an optional `Z` or offset. Without a zone it is read as UTC.
 */
const TIMESTAMP =
  /^\s*(?:\[[^\]]*\]\s*)?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}(?::?\d{2})?)?(?![\d])/;

const SIM_FIELDS = ['param_id', 'seed', 'duration_ms', 'worker'] as const;
const AGG_FIELDS = [
  'run_id',
  'param_id',
  'target',
  'n_sim_returns',
  'n_outputs',
  'total_inline_mb',
  'max_single_kb',
  'duration_ms',
  'worker',
] as const;
const SIM_NUMBERS = new Set(['duration_ms']);
const AGG_NUMBERS = new Set(['n_sim_returns', 'n_outputs', 'total_inline_mb', 'max_single_kb', 'duration_ms']);

export function emptyLogs(): ProductionLogs {
  return { files: [], sims: [], aggs: [], unparsed: [] };
}

/** One line of a log: its timing records (usually none) go into `into`. */
export function parseLine(text: string, file: string, line: number, into: ProductionLogs, count: LogFile): void {
  if (!text.includes('_TIMING:')) return; // most lines: one search, nothing more
  // every marker on the line (two log lines run together are two records)
  const found: { at: number; marker: (typeof MARKERS)[number] }[] = [];
  for (const marker of MARKERS)
    for (let at = text.indexOf(marker); at !== -1; at = text.indexOf(marker, at + marker.length))
      found.push({ at, marker });
  if (!found.length) return;
  found.sort((a, b) => a.at - b.at);
  const end_ms = timestampOf(text);
  found.forEach(({ at, marker }, i) => {
    const segment = text.slice(at + marker.length, i + 1 < found.length ? found[i + 1].at : undefined);
    const pairs = new Map<string, string>();
    for (const match of segment.matchAll(PAIR)) if (!pairs.has(match[1])) pairs.set(match[1], match[2]);
    const fields = marker === 'SIM_TIMING:' ? SIM_FIELDS : AGG_FIELDS;
    const why = problem(pairs, fields, marker === 'SIM_TIMING:' ? SIM_NUMBERS : AGG_NUMBERS);
    if (why) {
      count.unparsed++;
      into.unparsed.push({ file, line, why, text: (marker + segment).trim().slice(0, 200) });
      return;
    }
    const get = (key: string) => pairs.get(key)!;
    if (marker === 'SIM_TIMING:') {
      count.sims++;
      into.sims.push({
        param_id: get('param_id'),
        seed: get('seed'),
        duration_ms: Number(get('duration_ms')),
        worker: get('worker'),
        end_ms,
        file,
        line,
      });
    } else {
      count.aggs++;
      into.aggs.push({
        run_id: get('run_id'),
        param_id: get('param_id'),
        target: get('target'),
        n_sim_returns: Number(get('n_sim_returns')),
        n_outputs: Number(get('n_outputs')),
        total_inline_mb: Number(get('total_inline_mb')),
        max_single_kb: Number(get('max_single_kb')),
        duration_ms: Number(get('duration_ms')),
        worker: get('worker'),
        end_ms,
        file,
        line,
      });
    }
  });
}

/** Why a record's fields are not production's, or undefined when they are. */
function problem(pairs: Map<string, string>, fields: readonly string[], numbers: Set<string>): string | undefined {
  const missing = fields.filter((key) => !pairs.get(key));
  if (missing.length) return `no ${missing.join(', ')}`;
  for (const key of numbers) {
    const value = pairs.get(key)!;
    if (!NUMBER.test(value) || Number(value) < 0) return `${key}=${value} is not a number ≥ 0`;
  }
  return undefined;
}

/** The timestamp the line starts with, as ms since the epoch (UTC when the line gives no zone). */
export function timestampOf(text: string): number | undefined {
  const m = TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (Number.isNaN(ms) || +mo < 1 || +mo > 12 || +d < 1 || +d > 31 || +h > 23 || +mi > 59 || +s > 60) return undefined;
  if (fraction) ms += Number(`0.${fraction}`) * 1000;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
  }
  return ms;
}

/**
 * Reads every file (`-` is standard input), plain or gzipped (told by its first bytes, or for a
 * pipe by a `.gz` name), one line at a time. A file that cannot be read is `bad-input`, naming it.
 */
export async function readProductionLogs(files: string[]): Promise<ProductionLogs> {
  if (!files.length) throw new Failure('bad-input', '--from-logs needs at least one log file.');
  const logs = emptyLogs();
  for (const name of files) {
    const file = name === '-' ? '-' : path.resolve(name);
    const gzip = isGzip(file);
    const count: LogFile = { file: file === '-' ? 'stdin' : file, gzip, lines: 0, sims: 0, aggs: 0, unparsed: 0 };
    logs.files.push(count);
    const source: Readable = file === '-' ? process.stdin : createReadStream(file);
    const stream = gzip ? source.pipe(createGunzip()) : source;
    const failed = new Promise<never>((_, reject) => {
      const fail = (error: Error) => reject(unreadable(count.file, error, count.lines, gzip));
      source.once('error', fail);
      if (stream !== source) stream.once('error', fail);
    });
    const reading = (async () => {
      // lines split here rather than by readline (an event per line): 1.5–2× faster on 100 000 lines
      const decoder = new StringDecoder('utf8');
      let rest = '';
      const take = (text: string, last: boolean) => {
        const parts = (rest + text).split('\n');
        rest = last ? '' : parts.pop()!;
        if (last && parts.at(-1) === '') parts.pop(); // a final newline ends the last line, and starts none
        for (const part of parts)
          parseLine(part.endsWith('\r') ? part.slice(0, -1) : part, count.file, ++count.lines, logs, count);
      };
      for await (const chunk of stream) take(decoder.write(chunk as Buffer), false);
      take(decoder.end(), true);
    })().catch((error: unknown) => {
      throw unreadable(count.file, error as Error, count.lines, gzip);
    });
    failed.catch(() => undefined); // said by the race below, or after it no more
    try {
      await Promise.race([reading, failed]);
    } finally {
      if (source !== process.stdin) source.destroy();
    }
  }
  return logs;
}

/** gzip by its magic bytes (1f 8b) for a regular file; a pipe cannot be peeked at: by its name. */
function isGzip(file: string): boolean {
  if (file === '-') return false;
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    throw unreadable(file, error as Error, 0, false);
  }
  if (stat.isDirectory())
    throw new Failure('bad-input', `${file} is a directory: give the log files themselves (e.g. ${file}/*.log).`);
  if (!stat.isFile()) return file.endsWith('.gz');
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } catch (error) {
    throw unreadable(file, error as Error, 0, false);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function unreadable(file: string, error: Error, lines: number, gzip: boolean): Failure {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT'
      ? 'it does not exist'
      : code === 'EACCES'
        ? 'permission denied'
        : gzip
          ? `it is not a readable gzip file (${error.message}${lines ? ` after line ${lines}` : ''})`
          : error.message;
  return new Failure(
    'bad-input',
    `Cannot read the log ${file}: ${why}.`,
    {},
    lines ? { file, line: lines } : undefined,
  );
}
