/**
 * `cluster inspect` against a real scheduler and two workers on 127.0.0.1, each pointed (by its
 * environment, as production's workers are) at its own production-shaped venvs and bundles
 * directories, laid out first: every verdict, the health counts, a worker that disagrees, the
 * live lock left alone, workers that do not answer, and the exit codes.
 */
import * as assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { askWorkers, inspectCluster } from '../../src/engine/cluster/inspect';
import type { WorkerReport } from '../../src/engine/cluster/health';
import { withConnectedDriver } from '../../src/engine/backends/dask/probe';
import { renderReport } from '../../src/cli/clusterCommand';
import { cli } from '../shared/endings';
import { ROOT, scratchDir } from '../unit/helpers';
import { DaskCluster, DASK_PYTHON } from './cluster';
import { holdLock, PY, venv } from './layout';
import type { RunnerView } from '../../src/engine/cluster/verdict';

type Runner = RunnerView;

const DIGEST = 'sha256:abcde'; // production's digest[:12], prefix kept
const PYPROJECT = '[project]\nname = "sir"\nversion = "1.0"\ndependencies = []\n';
const FRESH_PROBE = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("held")
`;

/** BLAKE2b-16 over the dependency files: Node has blake2b512 only, so Python says it. */
function fingerprint(text: string): string {
  return spawnPython([
    '-c',
    `import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=16).hexdigest())`,
    text,
  ]);
}

function spawnPython(args: string[]): string {
  return spawnSync(DASK_PYTHON, args, { encoding: 'utf8' }).stdout.trim();
}

/** One worker's layout; `staleOnThisOne` makes its healthy venv's marker stale (the disagreement). */
function layOut(root: string, staleOnThisOne: boolean) {
  const venvs = path.join(root, 'venvs');
  const bundles = path.join(root, 'bundles');
  mkdirSync(path.join(bundles, 'bundles', DIGEST), { recursive: true });
  writeFileSync(path.join(bundles, 'bundles', DIGEST, 'pyproject.toml'), PYPROJECT);
  writeFileSync(path.join(bundles, 'bundles', DIGEST, '.complete'), '');
  mkdirSync(path.join(bundles, 'bundles', 'sha256:99999'), { recursive: true }); // no .complete
  const good = fingerprint(PYPROJECT);
  venv(venvs, `${DIGEST}-py${PY}-11111111`, { marker: staleOnThisOne ? '0'.repeat(32) : good });
  venv(venvs, `${DIGEST}-py3.12-22222222`, { marker: good });
  venv(venvs, `${DIGEST}-py${PY}-33333333`, { noPython: true });
  venv(venvs, `${DIGEST}-py${PY}-44444444`, { marker: '0'.repeat(32) });
  venv(venvs, `${DIGEST}-py${PY}-55555555`, { marker: good });
  writeFileSync(path.join(venvs, `${DIGEST}-py${PY}-55555555.lock`), '2147480000\n'); // a pid nobody has
  venv(venvs, `${DIGEST}-py${PY}-66666666`, { marker: good }); // its lock held by a live process
  venv(venvs, `${DIGEST}-py${PY}-11111111-0a1b2c3d`, { marker: good }); // fresh, no runner
  return { venvs, bundles, liveLock: path.join(venvs, `${DIGEST}-py${PY}-66666666.lock`) };
}

/**
 * On the worker whose venvs directory is argv[2] (through the scheduler, as production's worker
 * starts them): three runners with production's argv and stderr file, the Popen objects held by
 * the worker and never waited for, so the one that exits at once stays a zombie. Prints their
 * pids, the worker's pid and the log.
 */
const START_RUNNERS = `
import json, sys
from distributed import Client
scheduler, venvs, venv, script, bundle, digest = sys.argv[1:7]

def start(venv, script, bundle, digest, dask_worker=None):
    import os, subprocess, time
    log = os.path.join(venv, "logs", "runner-%s-%d.stderr" % (digest[:12], os.getpid()))
    os.makedirs(os.path.dirname(log), exist_ok=True)
    procs = []
    for extra in ([], [], ["--exit"]):
        with open(log, "ab") as err:
            argv = [os.path.join(venv, "bin", "python"), script, "--bundle-path", bundle, "--venv-path", venv,
                    "--bundle-digest", digest] + extra
            procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=bundle))
    dask_worker.modelops_test_runners = procs
    deadline = time.monotonic() + 20
    while os.waitid(os.P_PID, procs[2].pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None or os.path.getsize(log) < 30:
        if time.monotonic() > deadline:
            raise TimeoutError("the runners did not start within 20 s")
        time.sleep(0.05)
    return {"pids": [p.pid for p in procs], "worker_pid": os.getpid(), "log": log}

with Client(scheduler, timeout=30) as client:
    dirs = client.run(lambda: __import__("os").environ.get("MODELOPS_VENVS_DIR"))
    address = next(a for a, d in dirs.items() if d == venvs)
    print(json.dumps(client.run(start, venv, script, bundle, digest, workers=[address])[address]))
`;

const DEAD_PID = 2147480000; // above any pid_max: nobody's
const VENV_CACHE = path.join(ROOT, 'src', 'runner', 'modelops_venv_cache.py');

function startTicks(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** Our lock directory `{key}.lock` with its owner.json (src/engine/lock/dirLock.ts); none: ownerless, a minute old. */
function ourLock(file: string, owner?: { pid: number; startTime: string }) {
  mkdirSync(file);
  if (!owner) {
    const minuteAgo = Date.now() / 1000 - 60;
    utimesSync(file, minuteAgo, minuteAgo);
    return;
  }
  const full = { ...owner, host: os.hostname(), nonce: '0123456789abcdef', acquiredAt: '', purpose: 'test' };
  writeFileSync(path.join(file, 'owner.json'), JSON.stringify(full));
}

/**
 * Our venvs directory (src/engine/venv/, the same cache as src/runner/modelops_venv_cache.py): one
 * venv really built, copies of it made wrong one way each, our locks and build directories, and
 * production's lock files and `.install.lock`s beside them, each with its verdict word for word.
 */
async function ourLayout(root: string, started: ChildProcess[]) {
  const venvs = path.join(root, 'venvs');
  const bundle = path.join(root, 'bundle');
  mkdirSync(bundle, { recursive: true });
  writeFileSync(path.join(bundle, 'pyproject.toml'), PYPROJECT);
  const built = spawnSync(DASK_PYTHON, [VENV_CACHE, 'ensure', bundle, '--venvs-dir', venvs], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stdout + built.stderr);
  const key: string = JSON.parse(built.stdout.trim().split('\n').pop()!).key;
  const d12 = key.split('-py')[0];
  const markerOf = (name: string) => path.join(venvs, name, '.modelops-venv.json');
  const marker = JSON.parse(readFileSync(markerOf(key), 'utf8'));
  const copy = (name: string, edit: (m: typeof marker) => void = () => {}) => {
    cpSync(path.join(venvs, key), path.join(venvs, name), { recursive: true, verbatimSymlinks: true });
    const m = structuredClone(marker);
    m.key = name;
    edit(m);
    writeFileSync(markerOf(name), JSON.stringify(m));
    return name;
  };
  const real = realpathSync(DASK_PYTHON);
  const st = statSync(real);
  const me = { pid: process.pid, startTime: startTicks(process.pid) };
  const other = path.join(root, 'bundle-now');
  mkdirSync(other);
  const otherPyproject = PYPROJECT.replace('dependencies = []', 'dependencies = ["numpy"]');
  writeFileSync(path.join(other, 'pyproject.toml'), otherPyproject);
  const otherHash = spawnPython([
    '-c',
    'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())',
    otherPyproject,
  ]);
  const cfg = readFileSync(path.join(venvs, key, 'pyvenv.cfg'), 'utf8');
  const version: string = marker.python.version;

  const expected: Record<string, string> = { [key]: 'ok' };
  const strays: Record<string, string> = {};
  const k = (deps: string) => `${d12}-py${PY}-${deps}`;
  expected[copy(`${d12}-py3.12-bbbbbbbb`)] = `python-mismatch: key says 3.12, interpreter is ${PY}`;
  copy(k('cccccccc'));
  writeFileSync(
    path.join(venvs, k('cccccccc'), 'pyvenv.cfg'),
    cfg.replace(`version = ${version}`, 'version = 3.11.99'),
  );
  expected[k('cccccccc')] = `python-mismatch: pyvenv.cfg says 3.11.99, the marker ${version}`;
  copy(k('dddddddd'), (m) => (m.python.mtimeMs = 1000));
  expected[k('dddddddd')] =
    `interpreter changed: bin/python is now ${real} (${st.size} bytes, modified ${new Date(st.mtimeMs).toISOString()}), ` +
    `the venv was built from ${real} (${st.size} bytes, modified 1970-01-01T00:00:01.000Z)`;
  copy(k('eeeeeeee'), (m) => (m.key = 'someone-else'));
  expected[k('eeeeeeee')] = `marker invalid: the marker says someone-else, the directory is ${k('eeeeeeee')}`;
  copy(k('ffffffff'));
  rmSync(markerOf(k('ffffffff')));
  expected[k('ffffffff')] =
    'half-built (no .modelops-venv.json or .deps_installed: its build or install never finished)';
  copy(k('abababab'), (m) => (m.bundle = other));
  expected[k('abababab')] =
    `deps mismatch: built for dependencies hashing to ${marker.depsHash}, ${other} (pyproject.toml) now hashes to ${otherHash}`;
  copy(`${key}-fresh-0a0b0c0d`, (m) => (m.owner = { pid: DEAD_PID, host: os.hostname(), startTime: '' }));
  expected[`${key}-fresh-0a0b0c0d`] =
    `orphan fresh venv (-fresh-0a0b0c0d: its run is gone, pid ${DEAD_PID} no longer exists; ours are removed when their run ends)`;
  copy(`${key}-fresh-1a1b1c1d`, (m) => (m.owner = { ...me, host: os.hostname() }));
  expected[`${key}-fresh-1a1b1c1d`] = 'ok';
  ourLock(path.join(venvs, `${copy(k('12121212'))}.lock`), { pid: DEAD_PID, startTime: '' });
  expected[k('12121212')] = `locked by dead pid ${DEAD_PID} (${k('12121212')}.lock)`;
  ourLock(path.join(venvs, `${copy(k('13131313'))}.lock`), { pid: process.pid, startTime: '1' });
  expected[k('13131313')] =
    `locked by dead pid ${process.pid} (${k('13131313')}.lock: pid ${process.pid} now belongs to another process ` +
    `(started at tick ${me.startTime}, the holder at 1))`;
  ourLock(path.join(venvs, `${copy(k('14141414'))}.lock`));
  expected[k('14141414')] = `stale lock: ${k('14141414')}.lock has had no owner file for over 5 s`;
  ourLock(path.join(venvs, `${copy(k('15151515'))}.lock`), me);
  expected[k('15151515')] = `ok, lock held by live pid ${process.pid}`;
  const abandoned = `.tmp-${k('16161616')}-${DEAD_PID}-0123abcd`;
  mkdirSync(path.join(venvs, abandoned, 'bin'), { recursive: true });
  expected[abandoned] = `half-built (abandoned build of ${k('16161616')}: its builder, pid ${DEAD_PID}, is gone)`;
  const building = `.tmp-${k('17171717')}-${process.pid}-0123abcd`;
  mkdirSync(path.join(venvs, building, 'bin'), { recursive: true });
  ourLock(path.join(venvs, `${k('17171717')}.lock`), me);
  expected[building] = `ok, being built by live pid ${process.pid}`;
  strays[`${k('17171717')}.lock`] = `${k('17171717')}.lock is held: its venv is being made`;
  ourLock(path.join(venvs, `${k('18181818')}.lock`), { pid: DEAD_PID, startTime: '' });
  strays[`${k('18181818')}.lock`] = `locked by dead pid ${DEAD_PID} (${k('18181818')}.lock)`;

  // production's, beside ours: `{key}.lock` files (never deleted: unheld is normal) and `.install.lock`
  const good = fingerprint(PYPROJECT);
  const p = (deps: string) => `${DIGEST}-py${PY}-${deps}`;
  writeFileSync(path.join(venv(venvs, p('21212121'), { marker: good }), '.install.lock'), '');
  expected[p('21212121')] = 'ok'; // its `{key}.lock` and `.install.lock` both there, nobody holding them
  const installing = path.join(venv(venvs, p('23232323')), '.install.lock');
  writeFileSync(installing, '');
  writeFileSync(path.join(venv(venvs, p('24242424'), { marker: good }), '.install.lock'), `${DEAD_PID}\n`);
  expected[p('24242424')] = `locked by dead pid ${DEAD_PID} (.install.lock)`;
  writeFileSync(path.join(venvs, `${p('25252525')}.lock`), '');
  strays[`${p('25252525')}.lock`] = `stale lock: ${p('25252525')}.lock has no venv beside it and nobody holds it`;
  const heldStray = path.join(venvs, `${p('26262626')}.lock`);
  writeFileSync(heldStray, '');
  strays[`${p('26262626')}.lock`] = `${p('26262626')}.lock is held: its venv is being made`;
  const holders = [await holdLock(installing), await holdLock(heldStray)];
  started.push(...holders);
  expected[p('23232323')] = `ok, .install.lock held: installing`;
  return {
    venvs,
    key,
    installing: p('23232323'),
    expected,
    strays,
    held: [installing, heldStray],
  };
}

describe('cluster inspect (a real scheduler and two workers on 127.0.0.1)', function () {
  this.timeout(120_000);
  const scratch = scratchDir('mo-cluster-inspect-');
  const a = layOut(path.join(scratch, 'a'), false);
  const b = layOut(path.join(scratch, 'b'), true);
  let cluster: DaskCluster;
  let holders: ChildProcess[] = [];

  before(async () => {
    holders = [await holdLock(a.liveLock), await holdLock(b.liveLock)];
    cluster = await DaskCluster.start({ workers: 0 });
    await Promise.all(
      [a, b].map((d) => cluster.addWorker({ MODELOPS_VENVS_DIR: d.venvs, MODELOPS_BUNDLES_CACHE_DIR: d.bundles })),
    );
  });
  after(async () => {
    for (const holder of holders) holder.kill('SIGKILL');
    await cluster?.stop();
  });

  it("every verdict, on each worker's own directories; the health counts and the worker that disagrees; exit 1", () => {
    const started = Date.now();
    const result = cli(['cluster', 'inspect', '--scheduler', cluster.address, '--json']);
    const took = Date.now() - started;
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.workers.length, 2);
    const verdicts = (worker: { judged: { venvs: { name: string; verdict: { reason: string } }[] } }) =>
      Object.fromEntries(worker.judged.venvs.map((v) => [v.name.slice(DIGEST.length + 1), v.verdict.reason]));
    const byDir = new Map(
      report.workers.map((w: { facts: { venvs_dirs: { path: string }[] } }) => [w.facts.venvs_dirs[0].path, w]),
    );
    const expected = {
      [`py${PY}-11111111`]: 'ok',
      'py3.12-22222222': `python-mismatch: key says 3.12, interpreter is ${PY}`,
      [`py${PY}-33333333`]: 'half-built (no bin/python)',
      [`py${PY}-55555555`]: `locked by dead pid 2147480000 (${DIGEST}-py${PY}-55555555.lock)`,
      [`py${PY}-66666666`]: `ok, lock held by live pid ${holders[0].pid}`,
      [`py${PY}-11111111-0a1b2c3d`]: 'orphan fresh venv (-0a1b2c3d: no runner uses it; production never deletes these)',
    };
    const fp = fingerprint(PYPROJECT);
    const stale = `deps marker stale: .deps_installed says ${'0'.repeat(32)}, the bundle's pyproject.toml hash to ${fp}`;
    assert.deepEqual(verdicts(byDir.get(a.venvs) as never), { ...expected, [`py${PY}-44444444`]: stale });
    assert.deepEqual(verdicts(byDir.get(b.venvs) as never), {
      ...expected,
      [`py${PY}-11111111`]: stale,
      [`py${PY}-44444444`]: stale,
      [`py${PY}-66666666`]: `ok, lock held by live pid ${holders[1].pid}`,
    });
    const bundles = (
      byDir.get(a.venvs) as { judged: { bundles: { name: string; verdict: { kind: string }; venvs: string[] }[] } }
    ).judged.bundles;
    assert.deepEqual(
      bundles.map((x) => [x.name, x.verdict.kind, x.venvs.length]),
      [
        ['sha256:99999', 'bundle-incomplete', 0],
        [DIGEST, 'ok', 7],
      ],
    );
    // the health also counts the machine's runner processes, each once: any other process on this
    // (shared) machine running a runner is one, so the layout's own verdicts are those counts less
    // the runners the report lists
    const runnerKinds = new Map<string, number>();
    const runnersSeen = new Set<string>();
    for (const w of report.workers as {
      address: string;
      facts?: { host?: string };
      judged?: { runners: { pid: number; verdict: { kind: string } }[] };
    }[])
      for (const runner of w.judged?.runners ?? []) {
        const id = `${w.facts?.host ?? w.address} ${runner.pid}`;
        if (runnersSeen.has(id)) continue;
        runnersSeen.add(id);
        runnerKinds.set(runner.verdict.kind, (runnerKinds.get(runner.verdict.kind) ?? 0) + 1);
      }
    const layoutCounts = Object.fromEntries(
      Object.entries(report.health.counts as Record<string, number>)
        .map(([kind, n]) => [kind, n - (runnerKinds.get(kind) ?? 0)])
        .filter(([, n]) => n !== 0),
    );
    assert.deepEqual(layoutCounts, {
      'half-built': 2,
      'python-mismatch': 2,
      'locked-by-dead-pid': 2,
      'deps-marker-stale': 3,
      'orphan-fresh-venv': 2,
      'bundle-incomplete': 2,
      ok: 2 + 1 + 2, // venvs: 2 on one worker, 1 on the other; the complete bundle on each
    });
    assert.deepEqual(
      report.health.disagreements.map(
        (d: { name: string; majority: string; dissenters: { address: string; verdict: string }[] }) => [
          d.name,
          d.majority,
          d.dissenters.map((x) => x.verdict),
        ],
      ),
      [[`${DIGEST}-py${PY}-11111111`, 'ok', ['deps-marker-stale']]],
    );
    assert.equal(
      report.health.disagreements[0].dissenters[0].address,
      (byDir.get(b.venvs) as { address: string }).address,
    );
    assert.equal(report.health.healthy, false);
    // the probe released at once: the holders still hold their locks
    for (const d of [a, b]) assert.equal(spawnPython(['-c', FRESH_PROBE, d.liveLock]), 'held');
    assert.ok(holders.every((h) => h.exitCode === null));
    console.log(`      inspecting 2 workers: ${report.ms} ms in the driver, ${took} ms for the whole command`);
  });

  it('the text form: the health first, the disagreeing worker named', () => {
    const result = cli(['cluster', 'inspect', '--scheduler', cluster.address]);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stdout.split('\n');
    assert.match(lines[0], /^Cluster Health: 2 worker\(s\), 2 answered/);
    assert.match(
      lines[1],
      /^ {2}verdicts: half-built 2 · python-mismatch 2 · locked-by-dead-pid 2 · deps-marker-stale 3/,
    );
    assert.match(
      result.stdout,
      new RegExp(
        `≠ ${DIGEST}-py${PY}-11111111: most workers say ok, tcp://127\\.0\\.0\\.1:\\d+ says deps marker stale`,
      ),
    );
  });

  it('each worker is given as it answers, before the whole report, the same as in it; two inspections through one driver kept apart', async () => {
    await withConnectedDriver(cluster.address, { connectTimeoutMs: 30_000 }, async (driver, connected) => {
      for (let round = 0; round < 2; round++) {
        const streamed: WorkerReport[] = [];
        let whole = false;
        const report = await askWorkers(driver, connected, {
          timeoutS: 20,
          onWorker: (worker) => {
            assert.equal(whole, false, 'a worker after the whole report');
            streamed.push(worker);
          },
        }).finally(() => (whole = true));
        assert.equal(streamed.length, 2, `round ${round + 1}: ${streamed.map((w) => w.address).join(', ')}`);
        const byAddress = (list: WorkerReport[]) => [...list].sort((x, y) => x.address.localeCompare(y.address));
        assert.deepEqual(byAddress(streamed), byAddress(report.workers));
        assert.ok(
          streamed.every((w) => w.judged && w.facts),
          'each streamed worker judged',
        );
      }
    });
  });

  it('workers that do not answer in time are said to be silent, within a few seconds; exit 1', () => {
    const started = Date.now();
    const result = cli(['cluster', 'inspect', '--scheduler', cluster.address, '--timeout', '0.001', '--json']);
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.health.silent.length, 2);
    assert.ok(report.workers.every((w: { no_answer?: boolean }) => w.no_answer));
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    const text = cli(['cluster', 'inspect', '--scheduler', cluster.address, '--timeout', '0.001']);
    assert.match(text.stdout, /✘ tcp:\/\/127\.0\.0\.1:\d+: no answer within 0\.001 s/);
  });

  it('exit 0 when everything is ok; 3 for a scheduler that is not there; 2 for bad input', () => {
    const healthy = scratchDir('mo-cluster-healthy-');
    const ok = layOut(healthy, false);
    const result = cli([
      'cluster',
      'inspect',
      '--scheduler',
      cluster.address,
      '--venvs-dir',
      path.join(ok.venvs, 'none'),
      '--bundles-dir',
      path.join(ok.bundles, 'none'),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const gone = cli(['cluster', 'inspect', '--scheduler', 'tcp://127.0.0.1:9', '--connect-timeout', '1', '--json']);
    assert.equal(gone.code, 3, gone.stderr);
    assert.equal(JSON.parse(gone.stdout).kind, 'scheduler-unreachable');
    assert.equal(cli(['cluster', 'inspect', '--scheduler', 'not an address']).code, 2);
    assert.equal(cli(['cluster', 'inspect', '--scheduler', cluster.address, '--timeout', '-1']).code, 2);
  });
  describe('runner processes: a real production-style runner, one stopped, one a zombie', () => {
    const site = path.join(scratch, 'site', 'modelops', 'worker');
    const script = path.join(site, 'subprocess_runner.py');
    const runnerVenv = path.join(a.venvs, `${DIGEST}-py${PY}-11111111`);
    const bundle = path.join(a.bundles, 'bundles', DIGEST);
    const digest = `${DIGEST}${'f'.repeat(59)}`; // production's full `sha256:<64 hex>`
    let started: { pids: number[]; worker_pid: number; log: string };

    before(function () {
      this.timeout(60_000);
      mkdirSync(site, { recursive: true });
      // what production's runner does before `ready`: a line on stderr; then it waits on stdin (its worker)
      writeFileSync(
        script,
        'import sys\nsys.stderr.write("runner up\\n")\nsys.stderr.flush()\nif "--exit" in sys.argv:\n    sys.exit(3)\nsys.stdin.read()\n',
      );
      const out = spawnSync(
        DASK_PYTHON,
        ['-c', START_RUNNERS, cluster.address, a.venvs, runnerVenv, script, bundle, digest],
        {
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      assert.equal(out.status, 0, out.stderr);
      started = JSON.parse(out.stdout.trim().split('\n').pop()!);
      process.kill(started.pids[1], 'SIGSTOP');
    });
    after(() => {
      for (const pid of started?.pids.slice(0, 2) ?? []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });

    const argv = (extra: string[] = []) => [
      path.join(runnerVenv, 'bin', 'python'),
      script,
      '--bundle-path',
      bundle,
      '--venv-path',
      runnerVenv,
      '--bundle-digest',
      digest,
      ...extra,
    ];

    it('each found with its pid, argv, venv, digest, age, RSS, state and stderr log; stopped and zombie judged so', () => {
      const result = cli(['cluster', 'inspect', '--scheduler', cluster.address, '--json']);
      const report = JSON.parse(result.stdout);
      const worker = report.workers.find((w: { facts: { pid: number } }) => w.facts.pid === started.worker_pid) as {
        facts: { runner_scan: string };
        judged: { runners: Runner[]; venvs: { name: string; verdict: { reason: string } }[] };
      };
      assert.equal(worker.facts.runner_scan, '/proc');
      const mine = worker.judged.runners.filter((r) => started.pids.includes(r.pid));
      assert.deepEqual(
        mine.map((r) => r.pid),
        [...started.pids].sort((x, y) => x - y),
      );
      const [live, stopped, zombie] = started.pids.map((pid) => mine.find((r) => r.pid === pid)!);
      const log = path.join(runnerVenv, 'logs', `runner-${DIGEST}-${started.worker_pid}.stderr`);
      assert.equal(started.log, log);
      for (const r of [live, stopped]) {
        assert.deepEqual(r.argv, argv());
        assert.equal(r.argv_from, undefined);
        assert.equal(r.ppid, started.worker_pid);
        assert.equal(r.script, script);
        assert.equal(r.venv, runnerVenv);
        assert.equal(r.bundle_digest, digest);
        assert.ok(typeof r.age_s === 'number' && r.age_s >= 0 && r.age_s < 120, `age ${r.age_s}`);
        assert.ok(typeof r.rss_bytes === 'number' && r.rss_bytes > 1_000_000, `rss ${r.rss_bytes}`);
        // its fd 2 is the very file production's naming gives
        assert.deepEqual(r.stderr_log, { path: log, source: 'fd 2', exists: true, bytes: statSync(log).size });
      }
      assert.equal(readFileSync(log, 'utf8'), 'runner up\n'.repeat(3));
      assert.equal(live.state, 'S');
      assert.deepEqual(live.verdict, { kind: 'ok', reason: 'ok' });
      assert.equal(stopped.state, 'T');
      assert.deepEqual(stopped.verdict, { kind: 'stopped-runner', reason: 'stopped (state T)' });
      assert.equal(zombie.state, 'Z');
      assert.deepEqual(zombie.verdict, { kind: 'zombie-runner', reason: 'zombie: exited, not reaped by its worker' });
      // a zombie keeps no command line: its worker's Popen object does
      assert.deepEqual(zombie.argv, argv(['--exit']));
      assert.equal(zombie.argv_from, "the worker's Popen object (a zombie keeps no command line)");
      assert.deepEqual(zombie.stderr_log, {
        path: log,
        source: 'production naming',
        exists: true,
        bytes: statSync(log).size,
      });
      const venv = worker.judged.venvs.find((v) => v.name === `${DIGEST}-py${PY}-11111111`)!;
      assert.equal(venv.verdict.reason, `ok, used by runner pid ${started.pids.join(', ')}`);
      // both workers share this machine and list its runners: counted once
      assert.equal(report.health.counts['stopped-runner'], 1);
      assert.equal(report.health.counts['zombie-runner'], 1);
      const text = renderReport(report); // what the CLI prints without --json
      assert.match(text, new RegExp(`pid ${stopped.pid} {2}state T \\(stopped \\(state T\\)\\)`));
      assert.ok(text.includes(`        stderr ${log} (fd 2)\n`), text);
      assert.ok(text.includes(`(from the worker's Popen object (a zombie keeps no command line))`), text);
    });

    it('the fallbacks find the same: `ps -axo` (its argv split on spaces), psutil where it is installed', async () => {
      const ask = (runnerScan: 'ps' | 'psutil') =>
        inspectCluster(cluster.address, { connectTimeoutMs: 30_000, timeoutS: 10, runnerScan });
      const ps = (await ask('ps')).workers.find((w) => w.facts?.pid === started.worker_pid)!;
      assert.equal(ps.facts!.runner_scan, 'ps -axo');
      const found = ps.judged!.runners.filter((r) => started.pids.includes(r.pid));
      const log = path.join(runnerVenv, 'logs', `runner-${DIGEST}-${started.worker_pid}.stderr`);
      assert.deepEqual(
        found.map((r) => [r.pid, r.state, r.verdict.kind, r.argv, r.stderr_log?.path, r.stderr_log?.source]),
        [
          [started.pids[0], 'S', 'ok', argv(), log, 'production naming'],
          [started.pids[1], 'T', 'stopped-runner', argv(), log, 'production naming'],
          [started.pids[2], 'Z', 'zombie-runner', argv(['--exit']), log, 'production naming'],
        ],
      );
      assert.ok(found.every((r) => typeof r.age_s === 'number' && r.age_s >= 0));
      // psutil is what macOS uses; where it is installed it must find the same
      if (spawnSync(DASK_PYTHON, ['-c', 'import psutil']).status !== 0) return;
      const viaPsutil = (await ask('psutil')).workers.find((w) => w.facts?.pid === started.worker_pid)!;
      assert.equal(viaPsutil.facts!.runner_scan, 'psutil');
      assert.deepEqual(
        viaPsutil.judged!.runners.filter((r) => started.pids.includes(r.pid)).map((r) => [r.pid, r.verdict.kind]),
        found.map((r) => [r.pid, r.verdict.kind]),
      );
    });
  });

  it("our own layout's checklist and every lock, word for word, in one venvs directory", async () => {
    const layout = await ourLayout(path.join(scratch, 'ours'), holders);
    const result = cli([
      'cluster',
      'inspect',
      '--scheduler',
      cluster.address,
      '--venvs-dir',
      layout.venvs,
      '--bundles-dir',
      a.bundles,
      '--json',
    ]);
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout);
    for (const worker of report.workers as {
      judged: {
        venvs: { name: string; layout: string; verdict: { reason: string } }[];
        strayLocks: { lock: { path: string }; verdict: { reason: string } }[];
      };
    }[]) {
      assert.deepEqual(Object.fromEntries(worker.judged.venvs.map((v) => [v.name, v.verdict.reason])), layout.expected);
      assert.deepEqual(
        Object.fromEntries(worker.judged.strayLocks.map((l) => [path.basename(l.lock.path), l.verdict.reason])),
        layout.strays,
      );
      const layouts = Object.fromEntries(worker.judged.venvs.map((v) => [v.name, v.layout]));
      assert.equal(layouts[layout.key], 'ours');
      assert.equal(layouts[layout.installing], 'production');
    }
    // every probe released at once: the holders still hold theirs
    for (const file of layout.held) assert.equal(spawnPython(['-c', FRESH_PROBE, file]), 'held');
  });
});
