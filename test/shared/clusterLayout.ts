/**
 * A production-shaped loopback cluster for the Cluster view's tests (extension host and UI): a
 * real scheduler and two workers on 127.0.0.1, each pointed by its environment (as production's
 * workers are) at venvs and bundles directories of its own, laid out first: a healthy venv, one
 * whose key says another Python than its interpreter, a half-built one, a stale `.deps_installed`,
 * a lock recording a dead pid, an orphan fresh venv, a bundle with its pyproject.toml and a
 * wire.py (a runner's handshake with it is ok) and one without `.complete`. Worker B's healthy
 * venv has a stale marker (the worker that disagrees). On worker A a long-lived Python process
 * whose command line is production's runner's uses the healthy venv, its stderr in that venv's
 * `logs/runner-{digest12}-{its parent's pid}.stderr`; each line written to its stdin comes back on
 * its stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DaskCluster, DASK_PYTHON } from '../dask/cluster';
import { PY, venv } from '../dask/layout';

export { PY };

export const DIGEST = 'sha256:abcde'; // production's digest[:12], prefix kept
export const PYPROJECT = '[project]\nname = "sir"\nversion = "1.0"\ndependencies = []\n';
export const DEAD_PID = 2147480000;
/** The bundle's wire function (what "Handshake on Worker" imports there). */
const WIRE = 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n';
const RUNNER = `import sys
sys.stderr.write("runner up: waiting for requests\\n")
sys.stderr.flush()
for line in sys.stdin:
    sys.stderr.write("request: %s" % line)
    sys.stderr.flush()
`;

export interface WorkerDirs {
  venvs: string;
  bundles: string;
}

export interface LaidOutCluster {
  cluster: DaskCluster;
  a: WorkerDirs;
  b: WorkerDirs;
  /** The runner-like process on worker A's machine, its venv and its stderr log. */
  runner: { process: ChildProcess; pid: number; venv: string; log: string };
  /** BLAKE2b-16 of the pyproject.toml: what a matching `.deps_installed` holds. */
  fingerprint: string;
  stop(): Promise<void>;
}

export async function startLaidOutCluster(scratch: string): Promise<LaidOutCluster> {
  const fingerprint = spawnSync(
    DASK_PYTHON,
    ['-c', 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=16).hexdigest())', PYPROJECT],
    { encoding: 'utf8' },
  ).stdout.trim();
  const a = layOut(path.join(scratch, 'a'), fingerprint, false);
  const b = layOut(path.join(scratch, 'b'), fingerprint, true);
  const runner = startRunner(
    scratch,
    path.join(a.venvs, `${DIGEST}-py${PY}-11111111`),
    path.join(a.bundles, 'bundles', DIGEST),
  );
  let cluster: DaskCluster | undefined;
  try {
    cluster = await DaskCluster.start({ workers: 0 });
    const started = cluster;
    // A first: its address sorts first only by chance, so the tests find workers by their directories
    for (const dirs of [a, b])
      await started.addWorker({ MODELOPS_VENVS_DIR: dirs.venvs, MODELOPS_BUNDLES_CACHE_DIR: dirs.bundles });
  } catch (error) {
    runner.process.kill('SIGKILL');
    await cluster?.stop();
    throw error;
  }
  const running = cluster;
  return {
    cluster: running,
    a,
    b,
    runner,
    fingerprint,
    stop: async () => {
      runner.process.kill('SIGKILL');
      await running.stop();
    },
  };
}

function layOut(root: string, good: string, staleOnThisOne: boolean): WorkerDirs {
  const venvs = path.join(root, 'venvs');
  const bundles = path.join(root, 'bundles');
  mkdirSync(path.join(bundles, 'bundles', DIGEST), { recursive: true });
  writeFileSync(path.join(bundles, 'bundles', DIGEST, 'pyproject.toml'), PYPROJECT);
  writeFileSync(path.join(bundles, 'bundles', DIGEST, 'wire.py'), WIRE);
  writeFileSync(path.join(bundles, 'bundles', DIGEST, '.complete'), '');
  mkdirSync(path.join(bundles, 'bundles', 'sha256:99999'), { recursive: true }); // no .complete
  venv(venvs, `${DIGEST}-py${PY}-11111111`, { marker: staleOnThisOne ? '0'.repeat(32) : good });
  venv(venvs, `${DIGEST}-py3.12-22222222`, { marker: good });
  venv(venvs, `${DIGEST}-py${PY}-33333333`, { noPython: true });
  venv(venvs, `${DIGEST}-py${PY}-44444444`, { marker: '0'.repeat(32) });
  venv(venvs, `${DIGEST}-py${PY}-55555555`, { marker: good });
  writeFileSync(path.join(venvs, `${DIGEST}-py${PY}-55555555.lock`), `${DEAD_PID}\n`);
  venv(venvs, `${DIGEST}-py${PY}-11111111-0a1b2c3d`, { marker: good }); // fresh, no runner
  return { venvs, bundles };
}

/** Production's argv (`{venv}/bin/python subprocess_runner.py --bundle-path --venv-path --bundle-digest`). */
function startRunner(scratch: string, venvPath: string, bundlePath: string): LaidOutCluster['runner'] {
  const script = path.join(scratch, 'subprocess_runner.py');
  writeFileSync(script, RUNNER);
  const log = path.join(venvPath, 'logs', `runner-${DIGEST.slice(0, 12)}-${process.pid}.stderr`);
  mkdirSync(path.dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  try {
    const child = spawn(
      path.join(venvPath, 'bin', 'python'),
      [script, '--bundle-path', bundlePath, '--venv-path', venvPath, '--bundle-digest', DIGEST],
      { stdio: ['pipe', 'ignore', fd] },
    );
    return { process: child, pid: child.pid!, venv: venvPath, log };
  } finally {
    closeSync(fd);
  }
}
