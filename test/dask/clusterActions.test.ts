/**
 * `cluster handshake|rm-venv|clear-lock|rm-orphans` against a real scheduler and a worker on
 * 127.0.0.1, the worker pointed (by its environment, as production's are) at production-shaped
 * venvs and bundles directories laid out first, with real processes using a venv and holding a
 * lock: each action done, or refused with its reason and nothing changed.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cli } from '../shared/endings';
import { bundle, lineOf, scratchDir } from '../unit/helpers';
import { DaskCluster, DASK_PYTHON, type DaskProcess } from './cluster';
import { holdLock, PY, venv } from './layout';

const DIGEST = 'sha256:abcde'; // production's digest[:12], prefix kept
const GOOD = `${DIGEST}-py${PY}-11111111`;
const USED = `${DIGEST}-py${PY}-22222222`;
const LOCKED = `${DIGEST}-py${PY}-33333333`;
const ORPHAN = `${GOOD}-0a1b2c3d`;
const FRESH_IN_USE = `${GOOD}-0a1b2c3e`;
const PROD_RUNNER = path.join(__dirname, '..', '..', 'test', 'fixtures', 'runners', 'prod_style_runner.py');

function layOut(root: string) {
  const venvs = path.join(root, 'venvs');
  const bundles = path.join(root, 'bundles');
  for (const [name, fixture] of [
    [DIGEST, 'healthy-wire-py'],
    ['sha256:print', 'print-at-import'],
    ['sha256:exits', 'exit-at-import'],
    ['sha256:hangs', 'hang-at-import'],
  ])
    cpSync(bundle(fixture), path.join(bundles, 'bundles', name), { recursive: true });
  for (const key of [GOOD, USED, ORPHAN, FRESH_IN_USE]) venv(venvs, key);
  writeFileSync(path.join(venvs, `${LOCKED}.lock`), '');
  // a venv name that is a symlink to a directory outside the venvs directory
  const outside = path.join(root, 'outside');
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'precious'), 'keep me');
  symlinkSync(outside, path.join(venvs, `sneaky-py${PY}-44444444`));
  return { venvs, bundles, outside };
}

/** A process the worker's runner scan takes for a runner using `venv` (its script is named as production's). */
function fakeRunner(scratch: string, venvDir: string, bundleDir: string): ChildProcess {
  const script = path.join(scratch, 'subprocess_runner.py');
  writeFileSync(script, 'import time\ntime.sleep(600)\n');
  return spawn(DASK_PYTHON, [script, '--bundle-path', bundleDir, '--venv-path', venvDir, '--bundle-digest', DIGEST], {
    stdio: 'ignore',
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

describe('cluster actions (a real scheduler and worker on 127.0.0.1)', function () {
  this.timeout(120_000);
  const scratch = scratchDir('mo-cluster-actions-');
  const dirs = layOut(scratch);
  let cluster: DaskCluster;
  let worker: DaskProcess;
  const processes: ChildProcess[] = [];
  let holder: ChildProcess;
  const on = (action: string, ...args: string[]) =>
    cli(['cluster', action, '--scheduler', cluster.address, '--worker', worker.address, ...args]);

  before(async () => {
    processes.push(
      fakeRunner(scratch, path.join(dirs.venvs, USED), path.join(dirs.bundles, 'bundles', DIGEST)),
      fakeRunner(scratch, path.join(dirs.venvs, FRESH_IN_USE), path.join(dirs.bundles, 'bundles', DIGEST)),
    );
    holder = await holdLock(path.join(dirs.venvs, `${LOCKED}.lock`));
    processes.push(holder);
    cluster = await DaskCluster.start({ workers: 0 });
    worker = await cluster.addWorker({ MODELOPS_VENVS_DIR: dirs.venvs, MODELOPS_BUNDLES_CACHE_DIR: dirs.bundles });
  });
  after(async () => {
    for (const child of processes) child.kill('SIGKILL');
    await cluster?.stop();
  });

  it("handshake on the worker: ok, the report naming the worker, the venv and production's argv; exit 0", () => {
    const result = on('handshake', '--venv', GOOD, '--yes');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const venvPath = path.join(dirs.venvs, GOOD);
    const bundlePath = path.join(dirs.bundles, 'bundles', DIGEST);
    assert.match(
      result.stdout,
      new RegExp(`^Handshake on worker ${worker.address} \\(host .+\\)\\n {2}venv: {3}${venvPath}\\n`),
    );
    assert.match(
      result.stdout,
      new RegExp(
        `argv: {3}${venvPath}/bin/python \\S+/modelops_runner\\.py --bundle-path ${bundlePath} --venv-path ${venvPath} --bundle-digest ${DIGEST}\\n`,
      ),
    );
    assert.match(result.stdout, /✔ Handshake ok in [\d.]+ ms: modelops-debugger-runner pid \d+, Python 3\.11/);
    assert.match(result.stdout, /import-bundle +[\d.]+ ms/);
  });

  it("handshake with a production-style runner whose bundle prints at import: stdout-pollution at the bundle's line", () => {
    const result = on(
      'handshake',
      '--venv',
      GOOD,
      '--bundle',
      'sha256:print',
      '--runner',
      PROD_RUNNER,
      '--yes',
      '--json',
    );
    const shake = JSON.parse(result.stdout);
    assert.equal(result.code, 3, result.stderr); // as `handshake` exits for stdout-pollution
    assert.equal(shake.outcome, 'done');
    assert.equal(shake.worker, worker.address);
    assert.equal(shake.venv, path.join(dirs.venvs, GOOD));
    assert.equal(shake.runner, PROD_RUNNER);
    assert.equal(shake.report.kind, 'stdout-pollution');
    const wire = path.join(dirs.bundles, 'bundles', 'sha256:print', 'wire.py');
    assert.deepEqual(
      { file: shake.report.location.file, line: shake.report.location.line },
      { file: wire, line: lineOf(wire, 'print-at-import') },
    );
    assert.equal(Buffer.from(shake.report.evidence.stdoutNoiseB64, 'base64').toString(), 'Loading model weights...\n');
    assert.equal(shake.report.evidence.pid, shake.recording.pid); // the worker's runner, not the playback
    // the whole transcript: ready out, the answer in after the stray bytes
    const entries = shake.transcript.entries as { dir: string; message?: { method?: string }; noise?: string }[];
    assert.equal(entries[0].message?.method, 'ready');
    const noise = entries.filter((e) => e.noise !== undefined).map((e) => e.noise);
    assert.equal(noise.join(''), 'Loading model weights...\n');
  });

  it('handshake whose runner exits before ready: the exit code, the phase, the line; exit 3', () => {
    const result = on('handshake', '--venv', GOOD, '--bundle', 'sha256:exits', '--yes', '--json');
    assert.equal(result.code, 3, result.stderr);
    const { report, recording } = JSON.parse(result.stdout);
    assert.equal(report.kind, 'runner-exited-before-ready');
    assert.match(report.message, /the bundle called sys\.exit\(3\)/);
    assert.equal(report.evidence.exitCode, 3);
    assert.deepEqual(recording.exit, { code: 3, signal: null });
    const wire = path.join(dirs.bundles, 'bundles', 'sha256:exits', 'wire.py');
    assert.equal(report.location.line, lineOf(wire, 'exit-at-import'));
    assert.match(report.evidence.stderrTail, /SystemExit: 3/);
  });

  it('handshake whose runner hangs at import: handshake-timeout at the hung line with its stacks; the timeout is waited out on the worker only, not again in the playback here', () => {
    const timeoutS = 10;
    const started = performance.now();
    const result = on(
      'handshake',
      '--venv',
      GOOD,
      '--bundle',
      'sha256:hangs',
      '--timeout',
      String(timeoutS),
      '--yes',
      '--json',
    );
    const ms = performance.now() - started;
    assert.equal(result.code, 3, result.stderr);
    const { report, recording } = JSON.parse(result.stdout);
    if (process.env.MO_SHOW_REPORT) process.stderr.write(`${JSON.stringify({ ms, report, recording })}\n`);
    assert.equal(recording.timed_out, true);
    assert.equal(report.kind, 'handshake-timeout');
    assert.equal(
      report.message,
      'Runner did not answer ready (still importing the bundle) within 10.0 s; it is at <module>()',
    );
    const wire = path.join(dirs.bundles, 'bundles', 'sha256:hangs', 'wire.py');
    assert.deepEqual([report.location.file, report.location.line], [wire, lineOf(wire, 'hang-at-import')]);
    assert.match(report.evidence.stacks, /most recent call first/);
    assert.deepEqual(
      report.phases.map((phase: { name: string }) => phase.name),
      ['interpreter-start', 'runner-setup', 'discover-wire'],
    );
    assert.equal(report.evidence.timeoutMs, timeoutS * 1000);
    assert.ok(report.evidence.elapsedMs >= timeoutS * 1000, `elapsed ${report.evidence.elapsedMs} ms`);
    // it used to take twice the timeout and more: once on the worker, once more in the playback
    assert.ok(ms < 1.5 * timeoutS * 1000, `the handshake took ${Math.round(ms)} ms with --timeout ${timeoutS}`);
  });

  it('rm-venv: refused while a runner process uses it (exit 1), done with --force, its unheld lock removed too', () => {
    const used = path.join(dirs.venvs, USED);
    const refused = on('rm-venv', '--venv', USED, '--yes', '--json');
    assert.equal(refused.code, 1, refused.stderr);
    const result = JSON.parse(refused.stdout);
    assert.equal(result.outcome, 'refused');
    assert.match(
      result.message,
      new RegExp(`runner process ${processes[0].pid} uses it \\(--force removes it anyway\\)`),
    );
    assert.ok(existsSync(used));
    const forced = on('rm-venv', '--venv', used, '--force', '--yes');
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(
      forced.stdout,
      `✔ Removed venv ${used} on ${worker.address} (forced: runner ${processes[0].pid} used it); its lock removed\n`,
    );
    assert.ok(!existsSync(used));
    assert.ok(!existsSync(`${used}.lock`));
  });

  it('clear-lock: refused while its holder lives, done once it is dead', async () => {
    const lock = path.join(dirs.venvs, `${LOCKED}.lock`);
    const refused = on('clear-lock', '--lock', LOCKED, '--yes');
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stdout,
      /^✘ Refused to clear lock .+: held: flock LOCK_EX\|LOCK_NB refused, a live process holds it\n$/,
    );
    assert.ok(existsSync(lock));
    holder.kill('SIGKILL');
    await exited(holder);
    const cleared = on('clear-lock', '--lock', `${LOCKED}.lock`, '--yes', '--json');
    assert.equal(cleared.code, 0, cleared.stderr);
    const result = JSON.parse(cleared.stdout);
    assert.equal(result.outcome, 'done');
    assert.equal(result.cleared.recorded_pid, holder.pid);
    assert.match(result.message, new RegExp(`nobody held it \\(recorded pid ${holder.pid} is dead\\)`));
    assert.ok(!existsSync(lock));
  });

  it('rm-orphans removes the fresh venvs no runner uses, and only those', () => {
    const result = on('rm-orphans', '--yes', '--json');
    assert.equal(result.code, 0, result.stderr);
    const removed = JSON.parse(result.stdout).removed.map((r: { path: string }) => r.path);
    assert.deepEqual(removed, [path.join(dirs.venvs, ORPHAN)]);
    assert.ok(!existsSync(path.join(dirs.venvs, ORPHAN)));
    assert.ok(existsSync(path.join(dirs.venvs, FRESH_IN_USE)));
    assert.ok(existsSync(path.join(dirs.venvs, GOOD)));
  });

  it('refused, nothing changed: --yes missing off a terminal (exit 2); a venv outside the venvs directory (exit 2)', () => {
    const before = readdirSync(dirs.venvs).sort();
    const unasked = on('rm-venv', '--venv', GOOD);
    assert.equal(unasked.code, 2);
    assert.match(
      unasked.stderr,
      new RegExp(
        `Remove venv ${GOOD} on worker ${worker.address}: not done\\. Not on a terminal, so nobody can be asked: add --yes to do it\\.`,
      ),
    );
    const dotdot = on('rm-venv', '--venv', `../${path.basename(dirs.outside)}`, '--force', '--yes');
    assert.equal(dotdot.code, 2, dotdot.stderr);
    assert.match(dotdot.stdout, /is not a plain name in .+: refused \(no '\/', '\.\.' or hidden names\)/);
    const link = on('rm-venv', '--venv', path.join(dirs.venvs, `sneaky-py${PY}-44444444`), '--force', '--yes');
    assert.equal(link.code, 2, link.stderr);
    assert.match(link.stdout, /is a symlink to .+: refused \(nothing is reached through a link\)/);
    assert.deepEqual(readdirSync(dirs.venvs).sort(), before);
    assert.ok(existsSync(path.join(dirs.outside, 'precious')));
  });
});
