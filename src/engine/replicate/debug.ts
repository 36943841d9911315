/**
 * Debugging one replicate under debugpy: where debugpy comes from for the bundle's interpreter,
 * and the launch configuration debugpy's own adapter (`python -m debugpy.adapter`) is given. The
 * debuggee is modelops_debug_harness.py, which calls the bundle's wire function in-process with
 * the replicate's params and seed: no JSON-RPC, so the bundle's prints cannot break the session.
 *
 * debugpy is looked for, in this order: in the interpreter itself (the bundle's venv has it);
 * in a directory the user configured; in the directories the caller knows of (the Python
 * Debugger extension's bundled libs); in a system Python's site-packages (Debian's
 * python3-debugpy, whose pydevd is a separate package), reached through a directory of links to
 * just those packages so that nothing else of that Python shadows the venv's.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa } from 'execa';
import { Failure } from '../failure';
import { checkBundleDir } from '../bundle/bundleDir';
import { canonicalJson, type Params } from '../job/ids';
import { readEarlierJob } from '../job/resume';
import { ourRunnerScript } from '../process/runnerScript';
import { leasedVenv, prepareRunner } from '../runtime/prepare';
import { checkJobBundle, runtimeOfJob, type ReplicateOptions, type ReplicateSpec } from './replicate';
import { checkReplicateIndex, describeParams, selectParameterSet } from './select';

export const HARNESS_FILE = 'modelops_debug_harness.py';
const PROBE_TIMEOUT_MS = 30_000;
/** Interpreters that may have debugpy installed system-wide (Debian, Ubuntu: python3-debugpy). */
const SYSTEM_PYTHONS = ['/usr/bin/python3'];

export interface Debugpy {
  /** Put first on PYTHONPATH for the adapter and the debuggee; undefined: the interpreter imports debugpy as it is. */
  path?: string;
  version: string;
  /** Where it was found, in words. */
  source: string;
}

export interface FindDebugpyOptions {
  /** A directory that holds `debugpy/` (the setting modelopsDebugger.debugpyPath). */
  configured?: string;
  /** More directories to try, in order (e.g. ms-python.debugpy's `bundled/libs`). */
  candidates?: string[];
  /** Where the directory of links to a system debugpy is kept. */
  cacheDir: string;
  systemPythons?: string[];
}

export function debugHarnessScript(): string {
  return path.join(path.dirname(ourRunnerScript()), HARNESS_FILE);
}

export async function findDebugpy(python: string, options: FindDebugpyOptions): Promise<Debugpy> {
  const own = await debugpyVersion(python);
  if (own.version) return { version: own.version, source: `${python} itself` };
  if (options.configured) {
    const configured = path.resolve(options.configured);
    const found = await debugpyVersion(python, configured);
    if (found.version) return { path: configured, version: found.version, source: configured };
    throw new Failure(
      'debugger-not-found',
      `The debugpy directory ${configured} (modelopsDebugger.debugpyPath) has no debugpy that ${python} can import: ${found.why}`,
    );
  }
  for (const candidate of options.candidates ?? []) {
    if (!existsSync(path.join(candidate, 'debugpy'))) continue;
    const found = await debugpyVersion(python, candidate);
    if (found.version) return { path: candidate, version: found.version, source: candidate };
  }
  for (const system of options.systemPythons ?? SYSTEM_PYTHONS) {
    const site = await systemDebugpy(system);
    if (!site) continue;
    const links = linkDebugpy(site, options.cacheDir);
    const found = await debugpyVersion(python, links);
    if (found.version) return { path: links, version: found.version, source: `${site.dir} (${system})` };
  }
  throw new Failure(
    'debugger-not-found',
    `No debugpy for ${python}: add debugpy to the bundle's dependencies, set modelopsDebugger.debugpyPath to a directory that holds it, install the Python Debugger extension (ms-python.debugpy), or on Debian and Ubuntu install python3-debugpy.`,
  );
}

/** debugpy's version as `python` imports it (with `extra` first on its path), or why not. */
async function debugpyVersion(python: string, extra?: string): Promise<{ version?: string; why: string }> {
  const result = await execa(python, ['-c', 'import debugpy, sys; sys.stdout.write(debugpy.__version__)'], {
    env: extra ? { PYTHONPATH: pythonPath(extra) } : {},
    reject: false,
    timeout: PROBE_TIMEOUT_MS,
    stdin: 'ignore',
  });
  if (result.exitCode === 0 && result.stdout) return { version: result.stdout, why: '' };
  const last = result.stderr.trim().split('\n').at(-1) ?? '';
  return { why: last || (result.shortMessage ?? 'it did not run') };
}

/** PYTHONPATH with `first` before what the environment has. */
export function pythonPath(first: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.PYTHONPATH ? `${first}${path.delimiter}${env.PYTHONPATH}` : first;
}

interface SystemSite {
  /** The site-packages directory that holds debugpy. */
  dir: string;
  /** The top-level modules and packages to link (entries of `dir`). */
  names: string[];
}

/**
 * What of a system Python's site-packages debugpy needs: debugpy, and (unbundled, as Debian
 * ships it) pydevd and what pydevd imports (Debian's needs `bytecode`), found by importing
 * debugpy's server side there and keeping the top-level names of what came from that
 * directory, plus pydevd's own top-level names (it imports some of them later).
 */
const SITE_PROBE = `
import json, os, sys
import debugpy, debugpy.server
site = os.path.dirname(os.path.dirname(os.path.abspath(debugpy.__file__)))
names = set()
for module in list(sys.modules.values()):
    file = getattr(module, "__file__", None)
    if file and os.path.abspath(file).startswith(site + os.sep):
        names.add(os.path.relpath(os.path.abspath(file), site).split(os.sep)[0])
for entry in os.listdir(site):
    if entry.startswith("pydevd-") and entry.endswith(("-info")):
        top = os.path.join(site, entry, "top_level.txt")
        if os.path.isfile(top):
            for name in open(top).read().split():
                for candidate in (name, name + ".py"):
                    if os.path.exists(os.path.join(site, candidate)):
                        names.add(candidate)
# setuptools' own: a venv has its own (or none), and must keep it
names -= {"_distutils_hack", "pkg_resources", "setuptools", "distutils", "pip"}
sys.stdout.write(json.dumps({"dir": site, "names": sorted(names)}))
`;

async function systemDebugpy(python: string): Promise<SystemSite | undefined> {
  if (!existsSync(python)) return undefined;
  const result = await execa(python, ['-c', SITE_PROBE], {
    reject: false,
    timeout: PROBE_TIMEOUT_MS,
    stdin: 'ignore',
    env: { PYTHONPATH: '' },
  });
  if (result.exitCode !== 0 || !result.stdout) return undefined;
  const site = JSON.parse(result.stdout) as SystemSite;
  return site.names.includes('debugpy') ? site : undefined;
}

/** A directory of links to those packages alone, made once per site (a new one if it moved). */
function linkDebugpy(site: SystemSite, cacheDir: string): string {
  const id = createHash('sha256')
    .update(`${site.dir}\0${site.names.join('\0')}`)
    .digest('hex')
    .slice(0, 16);
  const target = path.join(cacheDir, `debugpy-links-${id}`);
  if (existsSync(target)) return target;
  mkdirSync(cacheDir, { recursive: true });
  const temp = `${target}.${process.pid}.tmp`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp);
  for (const name of site.names) symlinkSync(path.join(site.dir, name), path.join(temp, name));
  try {
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    if (!existsSync(target)) throw error; // else another process made it first
  }
  return target;
}

/**
 * What debugpy's adapter is asked to launch: the harness, in the bundle's interpreter, with the
 * replicate's canonical params and seed; its outputs go to `outputsFile`.
 */
export function replicateLaunchConfig(
  spec: ReplicateSpec,
  run: { python: string; debugpy: Debugpy; outputsFile: string; name: string; env?: Record<string, string> },
): Record<string, unknown> {
  return {
    name: run.name,
    request: 'launch',
    program: debugHarnessScript(),
    args: harnessArgs(spec, run.outputsFile),
    python: [run.python],
    cwd: spec.bundleDir,
    env: debuggeeEnv(run.debugpy, run.env ?? {}),
    console: 'internalConsole',
    justMyCode: true,
    redirectOutput: true,
    stopOnEntry: false,
  };
}

/** The harness's arguments: the bundle, the entrypoint, the canonical params, the seed, where its outcome goes. */
function harnessArgs(spec: ReplicateSpec, outputsFile: string): string[] {
  return [spec.bundleDir, spec.entrypoint, canonicalJson(spec.params), String(spec.seed), outputsFile];
}

/** The debuggee's environment: `base`, with debugpy on its path when it is not the interpreter's own. */
function debuggeeEnv(debugpy: Debugpy, base: NodeJS.ProcessEnv): Record<string, string> {
  return {
    // pydevd's warning that Python 3.11's frozen modules may hide breakpoints in the standard library
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
    ...(base as Record<string, string>),
    ...(debugpy.path ? { PYTHONPATH: pythonPath(debugpy.path, base) } : {}),
  };
}

/** What the harness wrote: the outputs (base64) or the exception the bundle raised; undefined if it never got there. */
export type HarnessOutcome = { outputs: Record<string, string> } | { error: { type: string; message: string } };

export function readHarnessOutcome(file: string): HarnessOutcome | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HarnessOutcome) : undefined;
}

/**
 * What the harness wrote as a run's result: the outputs, the exception the bundle raised (as a
 * runner reports it, `Type: message`), or, when it wrote nothing, a replicate that never got to
 * return or raise (`ending`: how its process ended and the last line of its stderr, when known).
 */
export function harnessResult(
  written: HarnessOutcome | undefined,
  ending?: { how: string; lastLine?: string },
): { outputs: Record<string, Buffer> } | { failure: Failure } {
  if (written && 'outputs' in written)
    return {
      outputs: Object.fromEntries(
        Object.entries(written.outputs).map(([name, b64]) => [name, Buffer.from(b64, 'base64')]),
      ),
    };
  if (written) return { failure: new Failure('task-exception', `${written.error.type}: ${written.error.message}`) };
  return {
    failure: new Failure(
      'process-crashed',
      `The replicate under debugpy ended${ending ? ` (${ending.how})` : ''} before it returned or raised${ending?.lastLine ? `: ${ending.lastLine}` : ''}`,
    ),
  };
}

/** Which replicate to debug: of a job's results folder, or given outright with a bundle. */
export type DebugTarget =
  | { job: string; param: string; replicate: number }
  | { bundle: string; entrypoint: string; params: Params; seed: number | bigint };

export interface PreparedDebug {
  spec: ReplicateSpec;
  /** The interpreter the harness and debugpy's adapter run in (the venv's, as the job's runners). */
  python: string;
  debugpy: Debugpy;
  /** "replicate 3 of parameter set 1 (beta=0.3), seed 123…" */
  label: string;
  /** Gives the venv back to the cache: call it when the session has ended. */
  release: () => Promise<void>;
  notes: string[];
}

/**
 * Everything a debugging session of one replicate needs, before it starts: the replicate's
 * params and seed (checked as `replicate` checks them), the job's venv (or the bundle's),
 * and a debugpy for its interpreter. Throws a Failure saying why not.
 */
export async function prepareDebug(
  target: DebugTarget,
  options: ReplicateOptions & { debugpy: FindDebugpyOptions },
): Promise<PreparedDebug> {
  const notes: string[] = [];
  let spec: ReplicateSpec;
  let label: string;
  let runOptions: ReplicateOptions = options;
  let digest: string | undefined;
  if ('job' in target) {
    const { dir, job, bundleDigest: recorded } = await readEarlierJob(target.job);
    const set = selectParameterSet(job, String(target.param));
    checkReplicateIndex(set, target.replicate);
    digest = await checkJobBundle(job, recorded, notes);
    runOptions = { ...options, ...runtimeOfJob(dir, options, notes).options };
    spec = {
      bundleDir: job.bundleDir,
      entrypoint: job.entrypoint,
      params: set.params,
      seed: set.seeds[target.replicate],
    };
    label = `replicate ${target.replicate} of parameter set ${set.index} (${describeParams(set) || set.paramId.slice(0, 12)}), seed ${String(spec.seed)}`;
  } else {
    spec = {
      bundleDir: await checkBundleDir(target.bundle),
      entrypoint: target.entrypoint,
      params: target.params,
      seed: target.seed,
    };
    label = `${target.entrypoint} with seed ${String(target.seed)}`;
  }
  const prepared = await prepareRunner({ ...runOptions, bundleDir: spec.bundleDir, digest });
  const release = async () => void (await prepared.lease?.release());
  try {
    const debugpy = await findDebugpy(prepared.python, options.debugpy);
    return {
      spec: { ...spec, bundleDir: prepared.bundleDir },
      python: prepared.python,
      debugpy,
      label,
      release,
      notes,
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/**
 * `replicate --debug`: the replicate runs in the harness under debugpy, listening on `port` of
 * 127.0.0.1 and waiting for a debugger to attach before it starts; what the harness wrote is the
 * result (outputs, or the exception it raised), compared as a reproduction's. Ctrl-C stops it.
 */
export function debugpyRunner(debug: {
  port: number;
  debugpy: FindDebugpyOptions;
  /** Said once debugpy listens: where, and which debugpy. */
  onListening?: (address: string, debugpy: Debugpy) => void;
  /** The bundle's prints (the debuggee's stdout). */
  onStdout?: (chunk: Buffer) => void;
}): NonNullable<ReplicateOptions['runWith']> {
  return async (spec, options, digest) => {
    const prepared = await prepareRunner({ ...options, bundleDir: spec.bundleDir, digest });
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-debug-'));
    try {
      const debugpy = await findDebugpy(prepared.python, debug.debugpy);
      const outputsFile = path.join(scratch, 'outputs.json');
      const address = `127.0.0.1:${debug.port}`;
      const child = execa(
        prepared.python,
        [
          '-m',
          'debugpy',
          '--listen',
          address,
          '--wait-for-client',
          debugHarnessScript(),
          ...harnessArgs({ ...spec, bundleDir: prepared.bundleDir }, outputsFile),
        ],
        {
          cwd: prepared.bundleDir,
          env: debuggeeEnv(debugpy, { ...process.env, ...options.env }),
          stdin: 'ignore',
          reject: false,
          cancelSignal: options.signal,
          forceKillAfterDelay: 2000,
        },
      );
      child.stdout?.on('data', (chunk: Buffer) => debug.onStdout?.(chunk));
      child.stderr?.on('data', (chunk: Buffer) => options.onStderr?.(chunk));
      debug.onListening?.(address, debugpy);
      const started = performance.now();
      const ended = await child;
      const ms = Math.round(performance.now() - started);
      const base = {
        pid: child.pid,
        python: prepared.python,
        runner: debugHarnessScript(),
        venv: leasedVenv(prepared),
        warnings: [],
        ms,
      };
      if (options.signal?.aborted)
        throw new Failure('cancelled', 'The debugging session was stopped before the replicate finished.');
      return {
        ...base,
        ...harnessResult(readHarnessOutcome(outputsFile), {
          how: ended.signal ?? `exit ${ended.exitCode}`,
          lastLine: ended.stderr ? String(ended.stderr).trim().split('\n').at(-1) : undefined,
        }),
      };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
      await prepared.lease?.release();
    }
  };
}
