/**
 * What a bundle runs with: its directory and digest, the interpreter (the bundle's venv,
 * built or reused, unless an interpreter is given), and the runner script.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { bundleDigest, checkBundleDir } from '../bundle/bundleDir';
import { Failure } from '../failure';
import { resolvePython, venvOf } from '../process/python';
import { ourRunnerScript } from '../process/runnerScript';
import { VenvCache, venvsDir, type VenvCacheOptions, type VenvLease } from '../venv/cache';
import { probeInterpreter, type InterpreterInfo } from '../venv/interpreter';

export interface RuntimeOptions {
  bundleDir: string;
  /** Interpreter to run the runner with directly, no venv. */
  python?: string;
  /** Without `python`: the bundle's venv is built from this interpreter (`python3` on PATH when absent) or reused. */
  basePython?: string;
  venv?: Omit<VenvCacheOptions, 'dir'> & { dir?: string; forceFresh?: boolean; expectKey?: string };
  /** Another runner script (e.g. production's `subprocess_runner.py`); ours when absent. */
  runnerScript?: string;
  env?: Record<string, string>;
  /** The frame cap (process/frameCap.ts): the largest answer read from a runner. */
  maxFrameBytes?: number;
  /** The bundle's digest, when the caller has just hashed it (a job's results folder has). */
  digest?: string;
}

export interface PreparedRunner {
  bundleDir: string;
  python: string;
  runnerScript: string;
  digest: string;
  venv: string;
  /** Set when the bundle's venv was used; release it when done. */
  lease?: VenvLease;
  /** The interpreter the venv was built from. */
  base?: InterpreterInfo;
  /** Time spent validating or building the venv. */
  venvMs?: number;
}

/** What starting a runner in a prepared environment takes (WarmProcess.start's first options). */
export function runnerLaunch(prepared: PreparedRunner): {
  python: string;
  runnerScript: string;
  bundleDir: string;
  venvPath: string;
  bundleDigest: string;
} {
  return {
    python: prepared.python,
    runnerScript: prepared.runnerScript,
    bundleDir: prepared.bundleDir,
    venvPath: prepared.venv,
    bundleDigest: prepared.digest,
  };
}

/** The venv a prepared runner uses, as reports and events name it; undefined without a cached venv. */
export function leasedVenv(
  prepared: PreparedRunner,
): { key: string; path: string; built: boolean; fresh: boolean; reason: string } | undefined {
  const lease = prepared.lease;
  return lease && { key: lease.key, path: lease.path, built: lease.built, fresh: lease.fresh, reason: lease.reason };
}

/**
 * The environment a handshake runs in: bundle, interpreter (the bundle's venv unless an
 * interpreter is given), runner. Throws `bad-input`, `interpreter-not-found`,
 * `python-mismatch`, `deps-install-failed`, `venv-create-failed`.
 */
export async function prepareRunner(options: RuntimeOptions): Promise<PreparedRunner> {
  const bundleDir = await checkBundleDir(options.bundleDir);
  let runnerScript = ourRunnerScript();
  if (options.runnerScript) {
    runnerScript = path.resolve(options.runnerScript);
    const stat = await fs.stat(runnerScript).catch(() => undefined);
    if (!stat?.isFile()) throw new Failure('bad-input', `Runner script ${runnerScript} does not exist.`);
  }
  const digest = options.digest ?? (await bundleDigest(bundleDir));
  if (options.python) {
    const python = (await resolvePython(options.python)).path;
    return { bundleDir, python, runnerScript, digest, venv: await venvOf(python) };
  }
  const started = performance.now();
  const cache = new VenvCache({ ...options.venv, dir: options.venv?.dir ?? venvsDir() });
  const base = await probeInterpreter((await resolvePython(options.basePython)).path, cache.dir);
  const lease = await cache.ensure(bundleDir, base, {
    forceFresh: options.venv?.forceFresh,
    digest,
    expectKey: options.venv?.expectKey,
  });
  return {
    bundleDir,
    python: lease.python,
    runnerScript,
    digest,
    venv: lease.path,
    lease,
    base,
    venvMs: performance.now() - started,
  };
}
