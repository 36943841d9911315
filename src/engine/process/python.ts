/**
 * Finding the interpreter to run. The result is the real binary: a pyenv shim is a bash
 * script that costs 60–350 ms per spawn (0.3 s of CPU on the 2-core test machine), so a shim is
 * asked once for `sys.executable`.
 */
import { execa } from 'execa';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Failure } from '../failure';

export interface ResolvedPython {
  /** What to spawn. */
  path: string;
  /** What the user asked for (`python3` when nothing). */
  requested: string;
  /** Every place looked at, for the error when nothing is found. */
  tried: string[];
}

const SHIM_PROBE_TIMEOUT_MS = 15_000;

export async function resolvePython(requested = 'python3', envPath = process.env.PATH ?? ''): Promise<ResolvedPython> {
  const tried: string[] = [];
  const candidates = requested.includes(path.sep)
    ? [path.resolve(requested)]
    : envPath
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, requested));
  for (const candidate of candidates) {
    tried.push(candidate);
    if (await isExecutableFile(candidate)) {
      return { path: await unshim(candidate), requested, tried };
    }
  }
  const where = requested.includes(path.sep)
    ? `${candidates[0]} does not exist or is not executable`
    : `${requested} is not on PATH (searched ${candidates.length} directories)`;
  throw new Failure('interpreter-not-found', `No Python interpreter: ${where}`, { tried });
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A script (shebang) that launches Python: ask it which binary it really runs. */
async function unshim(file: string): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    if (head.toString('latin1') !== '#!') return file;
  } finally {
    await handle.close();
  }
  const probe = await execa(file, ['-c', 'import sys; print(sys.executable)'], {
    reject: false,
    timeout: SHIM_PROBE_TIMEOUT_MS,
    stdin: 'ignore',
  });
  const real = probe.exitCode === 0 ? String(probe.stdout).trim() : '';
  if (!real) {
    throw new Failure(
      'interpreter-not-found',
      `${file} did not start Python (exit ${probe.exitCode ?? probe.signal}); stderr: ${String(probe.stderr).trim().slice(-500)}`,
      {
        tried: [file],
        exitCode: probe.exitCode ?? null,
        stderrTail: String(probe.stderr).slice(-4000),
      },
    );
  }
  return real;
}

/** A venv's root when `python` lives in `<venv>/bin/`, else ''. */
export async function venvOf(python: string): Promise<string> {
  const root = path.dirname(path.dirname(python));
  try {
    await fs.access(path.join(root, 'pyvenv.cfg'));
    return root;
  } catch {
    return '';
  }
}
