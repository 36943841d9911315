/**
 * `cluster inspect` against a real scheduler and two workers on 127.0.0.1, each pointed (by its
 * environment, as production's workers are) at its own production-shaped venvs and bundles
 * directories, laid out first: every verdict, the health counts, a worker that disagrees, the
 * live lock left alone, workers that do not answer, and the exit codes.
 */
import * as assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cli } from '../shared/endings';
import { scratchDir } from '../unit/helpers';
import { DaskCluster, DASK_PYTHON } from './cluster';
import { holdLock, PY, venv } from './layout';

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
    assert.deepEqual(report.health.counts, {
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
});
