/**
 * What an interpreter is, asked of the interpreter itself: its version decides the venv key
 * (`py{X.Y}`), and its binary's identity decides whether a venv built from it is still sound.
 *
 * Asking costs a process start (10–40 ms), so answers are remembered per binary identity
 * (real path, size, mtime): in memory, and in `.interpreters.json` in the venvs directory, so
 * a later CLI run on the same interpreter spawns nothing to find its version.
 */
import { execa } from 'execa';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Failure } from '../failure';

export interface BinaryIdentity {
  /** The real file behind any symlinks. */
  realPath: string;
  size: number;
  mtimeMs: number;
}

export interface InterpreterInfo extends BinaryIdentity {
  /** The path that was asked about. */
  path: string;
  /** `3.11.7` */
  version: string;
  /** `3.11` */
  versionXY: string;
  implementation: string;
}

const PROBE =
  'import sys, platform; print(sys.version_info[0], sys.version_info[1], sys.version_info[2], platform.python_implementation())';
const PROBE_TIMEOUT_MS = 30_000;
const CACHE_FILE = '.interpreters.json';

const memory = new Map<string, InterpreterInfo>();

export async function binaryIdentity(file: string): Promise<BinaryIdentity> {
  const realPath = await fs.realpath(file);
  const stat = await fs.stat(realPath);
  return { realPath, size: stat.size, mtimeMs: stat.mtimeMs };
}

export function sameBinary(a: BinaryIdentity, b: BinaryIdentity): boolean {
  return a.realPath === b.realPath && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** `cacheDir`: where to keep answers across runs (the venvs directory), if anywhere. */
export async function probeInterpreter(python: string, cacheDir?: string): Promise<InterpreterInfo> {
  let identity: BinaryIdentity;
  try {
    identity = await binaryIdentity(python);
  } catch {
    throw new Failure('interpreter-not-found', `No Python interpreter at ${python}`, { tried: [python] });
  }
  const key = `${identity.realPath}\0${identity.size}\0${identity.mtimeMs}`;
  const known = memory.get(key) ?? (cacheDir ? await readCache(cacheDir, key) : undefined);
  if (known) {
    const info = { ...known, path: python };
    memory.set(key, info);
    return info;
  }
  const probe = await execa(python, ['-c', PROBE], { reject: false, timeout: PROBE_TIMEOUT_MS, stdin: 'ignore' });
  const fields = String(probe.stdout).trim().split(/\s+/);
  if (probe.exitCode !== 0 || fields.length < 4) {
    throw new Failure(
      'interpreter-not-found',
      `${python} did not run as Python (${probe.timedOut ? 'timed out' : `exit ${probe.exitCode ?? probe.signal}`})`,
      {
        tried: [python],
        exitCode: probe.exitCode ?? null,
        signal: probe.signal ?? null,
        stderrTail: String(probe.stderr).slice(-4000),
      },
    );
  }
  const [major, minor, micro, implementation] = fields;
  const info: InterpreterInfo = {
    ...identity,
    path: python,
    version: `${major}.${minor}.${micro}`,
    versionXY: `${major}.${minor}`,
    implementation,
  };
  memory.set(key, info);
  if (cacheDir) await writeCache(cacheDir, key, info);
  return info;
}

async function readCache(cacheDir: string, key: string): Promise<InterpreterInfo | undefined> {
  try {
    const entries = JSON.parse(await fs.readFile(path.join(cacheDir, CACHE_FILE), 'utf8')) as Record<
      string,
      InterpreterInfo
    >;
    return entries[key];
  } catch {
    return undefined; // absent or unreadable: ask the interpreter
  }
}

async function writeCache(cacheDir: string, key: string, info: InterpreterInfo): Promise<void> {
  const file = path.join(cacheDir, CACHE_FILE);
  let entries: Record<string, InterpreterInfo> = {};
  try {
    entries = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, InterpreterInfo>;
  } catch {
    // start afresh
  }
  entries[key] = info;
  try {
    await fs.mkdir(cacheDir, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(temp, JSON.stringify(entries, null, 1));
    await fs.rename(temp, file);
  } catch {
    // a cache that cannot be written only costs a probe next time
  }
}
