/**
 * The venv cache against real venvs, real pip installs (offline, from wheels built here) and
 * real competing processes.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Failure } from '../../src/engine/failure';
import { resolvePython } from '../../src/engine/process/python';
import { VenvCache, venvKey, type VenvEvent } from '../../src/engine/venv/cache';
import { probeInterpreter, type InterpreterInfo } from '../../src/engine/venv/interpreter';
import { DirLock } from '../../src/engine/lock/dirLock';
import { buildWheel, CLI, writeBundle, scratchDir } from './helpers';

const scratch = scratchDir('mo-venv-test-');
const wheels = path.join(scratch, 'wheels');
/** pip's own configuration, passed through: install offline from the local wheel folder. */
const OFFLINE = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels };
let base: InterpreterInfo;
let counter = 0;

const WIRE_WITH_DEP =
  'import mo_testdep\n\ndef wire(entrypoint, params, seed):\n    return {"dep": mo_testdep.VALUE.encode()}\n';

function newCacheDir(): string {
  return path.join(scratch, `cache-${++counter}`);
}

function depBundle(deps: string[], extra: Record<string, string> = {}): string {
  const dir = path.join(scratch, `bundle-${++counter}`);
  const list = deps.map((d) => `    "${d}",`).join('\n');
  return writeBundle(dir, {
    'pyproject.toml': `[project]\nname = "b${counter}"\nversion = "0.1.0"\nrequires-python = ">=3.9"\ndependencies = [\n${list}\n]\n`,
    'wire.py': deps.length ? WIRE_WITH_DEP : 'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n',
    ...extra,
  });
}

function cache(dir: string, events: VenvEvent[] = []): VenvCache {
  return new VenvCache({ dir, env: OFFLINE, onEvent: (e) => events.push(e) });
}

async function failureOf(promise: Promise<unknown>): Promise<Failure> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Failure, String(error));
    return error;
  }
  assert.fail('expected a failure');
}

function lineOfText(file: string, text: string): number {
  return (
    readFileSync(file, 'utf8')
      .split('\n')
      .findIndex((l) => l.includes(text)) + 1
  );
}

function venvDirs(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir).filter(
        (n) => !n.startsWith('.') && n.includes('-py') && !n.endsWith('.lock') && !n.endsWith('.log'),
      )
    : [];
}

function cliProcess(
  args: string[],
  env: Record<string, string>,
): ChildProcess & { done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    detached: true,
  }) as ChildProcess & { done: Promise<{ code: number | null; stdout: string; stderr: string }> };
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  child.done = new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return child;
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

before(async () => {
  buildWheel(wheels, 'mo-testdep', '1.0');
  base = await probeInterpreter((await resolvePython()).path);
});

describe('venv cache', () => {
  it('installs a dependency offline from a local wheel folder, and the bundle runs with it', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle(['mo-testdep==1.0']);
    const result = spawnSync(process.execPath, [CLI, 'handshake', bundleDir, '--execute', 'a.b/c', '--json'], {
      env: { ...process.env, ...OFFLINE, MODELOPS_VENVS_DIR: dir },
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.evidence.execute.outputs.dep.text, '1.0');
    assert.equal(report.evidence.venv.built, true);
    const log = readFileSync(path.join(dir, `${report.evidence.venv.key}.install.log`), 'utf8');
    assert.match(log, /Successfully installed mo-testdep-1\.0/);
    assert.equal(report.phases[0].name, 'venv-build');
  });

  it('reuses a valid venv without rebuilding, and says so', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle([]);
    const first = await cache(dir).ensure(bundleDir, base);
    assert.equal(first.built, true);
    assert.equal(first.reason, 'directory: not built yet');
    const events: VenvEvent[] = [];
    const second = await cache(dir, events).ensure(bundleDir, base);
    assert.deepEqual([second.built, second.reason, second.path], [false, 'valid', first.path]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['venv-reuse'],
    );
    assert.match(second.key, /^[0-9a-f]{12}-py\d+\.\d+-[0-9a-f]{8}$/);
    assert.equal(second.key, venvKey(second.key.slice(0, 12), base.versionXY, second.key.slice(-8)));
  });

  it('two OS processes racing to create the same venv: one build, both succeed', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle(['mo-testdep==1.0']);
    const env = { ...OFFLINE, MODELOPS_VENVS_DIR: dir };
    const racers = [
      cliProcess(['handshake', bundleDir, '--json'], env),
      cliProcess(['handshake', bundleDir, '--json'], env),
    ];
    const results = await Promise.all(racers.map((r) => r.done));
    for (const result of results) assert.equal(result.code, 0, result.stdout + result.stderr);
    const venvs = results.map((r) => JSON.parse(r.stdout).evidence.venv);
    assert.deepEqual(venvs.map((v) => v.built).sort(), [false, true], 'exactly one built it');
    assert.equal(venvs[0].key, venvs[1].key);
    assert.deepEqual(venvDirs(dir), [venvs[0].key]);
    const log = readFileSync(path.join(dir, `${venvs[0].key}.install.log`), 'utf8');
    assert.equal(log.match(/-m venv/g)?.length, 1, 'one venv creation in the log');
  });

  it('SIGKILL during a build: the next run rebuilds, takes over the lock, and never uses the broken directory', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle(['mo-testdep==1.0']);
    const env = { ...OFFLINE, MODELOPS_VENVS_DIR: dir };
    const victim = cliProcess(['handshake', bundleDir], env);
    // wait until pip is installing into the half-built venv, then kill the whole process group
    await until(
      () =>
        existsSync(dir) &&
        readdirSync(dir).some(
          (n) => n.endsWith('.install.log') && /-m pip/.test(readFileSync(path.join(dir, n), 'utf8')),
        ),
      30_000,
      'pip to start',
    );
    process.kill(-victim.pid!, 'SIGKILL');
    await victim.done;
    const leftovers = readdirSync(dir);
    assert.ok(
      leftovers.some((n) => n.startsWith('.tmp-')),
      `a half-built directory is left: ${leftovers.join(', ')}`,
    );
    assert.ok(
      leftovers.some((n) => n.endsWith('.lock')),
      'and a lock whose holder is dead',
    );
    assert.deepEqual(venvDirs(dir), [], 'nothing is in place');

    const next = cliProcess(['handshake', bundleDir, '--execute', 'a.b/c'], env);
    const result = await next.done;
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stderr, new RegExp(`taken over from pid ${victim.pid} .*no longer exists`));
    assert.match(result.stderr, /building \(directory: not built yet\)/);
    assert.match(result.stdout, /dep: 1\.0/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.tmp-') || n.endsWith('.lock')),
      [],
      'the broken directory and the stale lock are gone',
    );
  });

  it('a deleted interpreter is detected, rebuilt, and the reason reported', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle([]);
    const first = await cache(dir).ensure(bundleDir, base);
    rmSync(first.python);
    const events: VenvEvent[] = [];
    const again = await cache(dir, events).ensure(bundleDir, base);
    assert.equal(again.built, true);
    assert.equal(again.reason, 'interpreter: bin/python is missing');
    assert.ok(events.some((e) => e.type === 'venv-build' && e.reason === 'interpreter: bin/python is missing'));
    assert.ok(existsSync(again.python));
  });

  it('a corrupted marker is detected, rebuilt, and the reason reported', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle([]);
    const first = await cache(dir).ensure(bundleDir, base);
    writeFileSync(path.join(first.path, '.modelops-venv.json'), '{"schema": 1, "key": tru');
    const again = await cache(dir).ensure(bundleDir, base);
    assert.equal(again.built, true);
    assert.match(again.reason, /^marker: \.modelops-venv\.json is unreadable/);
    const wrongKey = JSON.parse(readFileSync(path.join(again.path, '.modelops-venv.json'), 'utf8'));
    writeFileSync(path.join(again.path, '.modelops-venv.json'), JSON.stringify({ ...wrongKey, key: 'someone-else' }));
    const third = await cache(dir).ensure(bundleDir, base);
    assert.equal(third.reason, `key: the marker says someone-else, the directory is ${third.key}`);
  });

  it('a stale lock left by a dead process is taken over', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle([]);
    const dead = spawnSync('true');
    const deadPid = dead.pid!;
    // learn the key this bundle gets (from a build elsewhere), then plant a lock held by a process that no
    // longer exists
    const probe = await cache(newCacheDir()).ensure(bundleDir, base);
    const lockDir = path.join(dir, `${probe.key}.lock`);
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(
      path.join(lockDir, 'owner.json'),
      JSON.stringify({
        pid: deadPid,
        host: os.hostname(),
        startTime: '1',
        nonce: 'stale',
        acquiredAt: new Date(0).toISOString(),
        purpose: 'a build that died',
      }),
    );
    const events: VenvEvent[] = [];
    const lease = await cache(dir, events).ensure(bundleDir, base);
    assert.equal(lease.built, true);
    const takeover = events.find((e) => e.type === 'lock-takeover');
    assert.ok(takeover && takeover.type === 'lock-takeover');
    assert.equal(takeover.holder.pid, deadPid);
    assert.equal(takeover.why, `pid ${deadPid} no longer exists`);
    assert.equal(existsSync(lockDir), false, 'released after the build');
  });

  it('a lock whose pid now belongs to another process (pid reuse) is taken over; a live holder is waited for', async () => {
    const lockDir = path.join(newCacheDir(), 'k.lock');
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(
      path.join(lockDir, 'owner.json'),
      JSON.stringify({
        pid: process.pid,
        host: os.hostname(),
        startTime: '12345',
        nonce: 'old',
        acquiredAt: '',
        purpose: 'old',
      }),
    );
    const events: unknown[] = [];
    const lock = await DirLock.acquire(lockDir, {
      timeoutMs: 5_000,
      purpose: 'test',
      failureKind: 'venv-create-failed',
      onEvent: (e) => events.push(e),
    });
    assert.match(JSON.stringify(events), /now belongs to another process/);
    const waiting = await failureOf(
      DirLock.acquire(lockDir, { timeoutMs: 300, purpose: 'second', failureKind: 'venv-create-failed', pollMs: 50 }),
    );
    assert.equal(waiting.kind, 'venv-create-failed');
    assert.match(waiting.message, new RegExp(`held by pid ${process.pid} on ${os.hostname()} \\(test`));
    await lock.release();
    const again = await DirLock.acquire(lockDir, {
      timeoutMs: 1_000,
      purpose: 'third',
      failureKind: 'venv-create-failed',
    });
    await again.release();
  });

  it('a dependency that cannot be installed: deps-install-failed naming the requirement and its line, nothing cached', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle(['mo-testdep==1.0', 'mo-not-on-any-index==9.9']);
    const failure = await failureOf(cache(dir).ensure(bundleDir, base));
    assert.equal(failure.kind, 'deps-install-failed');
    assert.match(failure.message, /^Installing mo-not-on-any-index==9\.9 failed: .*mo-not-on-any-index/);
    const pyproject = path.join(bundleDir, 'pyproject.toml');
    assert.deepEqual(failure.location, { file: pyproject, line: lineOfText(pyproject, 'mo-not-on-any-index') });
    const logNote = failure.evidence.notes!.find((n) => n.startsWith('full output: '))!;
    assert.match(
      readFileSync(logNote.slice('full output: '.length), 'utf8'),
      /No matching distribution found for mo-not-on-any-index==9\.9/,
    );
    assert.deepEqual(venvDirs(dir), []);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.tmp-') || n.endsWith('.lock')),
      [],
    );
  });

  it('requirements.txt: the failing line is named there', async () => {
    const dir = newCacheDir();
    const bundleDir = writeBundle(path.join(scratch, `req-${++counter}`), {
      'requirements.txt': '# pinned\nmo-testdep==1.0\n\nmo-absent-pkg>=2  # not on the index\n',
      'wire.py': WIRE_WITH_DEP,
    });
    const failure = await failureOf(cache(dir).ensure(bundleDir, base));
    assert.equal(failure.kind, 'deps-install-failed');
    assert.deepEqual(failure.location, { file: path.join(bundleDir, 'requirements.txt'), line: 4 });
  });

  it('requires-python = ">=3.99": python-mismatch naming the line, before anything is built', async () => {
    const dir = newCacheDir();
    const bundleDir = writeBundle(path.join(scratch, `py399-${++counter}`), {
      'pyproject.toml':
        '[project]\nname = "future"\nversion = "1"\n\nrequires-python = ">=3.99"\ndependencies = ["mo-testdep==1.0"]\n',
      'wire.py': WIRE_WITH_DEP,
    });
    const failure = await failureOf(cache(dir).ensure(bundleDir, base));
    assert.equal(failure.kind, 'python-mismatch');
    assert.match(
      failure.message,
      new RegExp(`requires Python >=3\\.99 .* is Python ${base.version.replace(/\./g, '\\.')}`),
    );
    assert.deepEqual(failure.location, { file: path.join(bundleDir, 'pyproject.toml'), line: 5 });
    assert.equal(existsSync(dir), false, 'nothing was created, not even the cache directory');
  });

  it('an unreadable pyproject.toml: a clear error with the parser line and column', async () => {
    const bundleDir = writeBundle(path.join(scratch, `toml-${++counter}`), {
      'pyproject.toml': '[project]\nname = "x"\ndependencies = [\n  "a",\n  oops\n]\n',
      'wire.py': '',
    });
    const failure = await failureOf(cache(newCacheDir()).ensure(bundleDir, base));
    assert.equal(failure.kind, 'bad-input');
    assert.match(failure.message, /pyproject\.toml is not valid TOML: .* \(line \d+, column \d+\)\./);
    assert.equal(failure.location?.file, path.join(bundleDir, 'pyproject.toml'));
  });

  it('force fresh: a private venv for the run, removed afterwards', async () => {
    const dir = newCacheDir();
    const bundleDir = depBundle([]);
    const events: VenvEvent[] = [];
    const lease = await cache(dir, events).ensure(bundleDir, base, { forceFresh: true });
    assert.equal(lease.fresh, true);
    assert.match(lease.key, /-fresh-[0-9a-f]{8}$/);
    assert.ok(existsSync(lease.python));
    await lease.release();
    assert.equal(existsSync(lease.path), false);
    assert.deepEqual(
      events.map((e) => e.type),
      ['venv-build', 'venv-built', 'venv-removed'],
    );
    const cli = spawnSync(process.execPath, [CLI, 'handshake', bundleDir, '--json'], {
      env: { ...process.env, MODELOPS_VENVS_DIR: dir, MODELOPS_FORCE_FRESH_VENV: 'TRUE' },
      encoding: 'utf8',
    });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).evidence.venv.fresh, true);
    assert.deepEqual(venvDirs(dir), [], 'the CLI removed its private venv too');
  });
});

describe('bundle identity', () => {
  it("the deps hash is production's: BLAKE2b-8 over uv.lock, poetry.lock, requirements.txt, pyproject.toml in that order", async () => {
    const dir = writeBundle(path.join(scratch, `hash-${++counter}`), {
      'pyproject.toml': '[project]\nname = "h"\ndependencies = ["a==1"]\n',
      'requirements.txt': 'b==2\n',
      'uv.lock': 'version = 1\n',
      'wire.py': '',
    });
    const { readBundleDeps } = await import('../../src/engine/bundle/deps');
    const ours = (await readBundleDeps(dir)).depsHash;
    const script =
      'import hashlib, os, sys\nh = hashlib.blake2b(digest_size=8)\nfor n in ["uv.lock", "poetry.lock", "requirements.txt", "pyproject.toml"]:\n    p = os.path.join(sys.argv[1], n)\n    if os.path.exists(p):\n        h.update(open(p, "rb").read())\nprint(h.hexdigest())';
    const python = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
    assert.equal(ours, python.stdout.trim());
  });

  it('the bundle digest ignores caches and changes with content', async () => {
    const { bundleDigest } = await import('../../src/engine/bundle/bundleDir');
    const dir = writeBundle(path.join(scratch, `digest-${++counter}`), {
      'wire.py': 'x = 1\n',
      'models/m.py': 'y = 2\n',
    });
    const before = await bundleDigest(dir);
    writeBundle(dir, {
      '__pycache__/wire.cpython-311.pyc': 'junk',
      '.git/HEAD': 'ref',
      'models/__pycache__/m.pyc': 'junk',
    });
    assert.equal(await bundleDigest(dir), before);
    writeBundle(dir, { 'models/m.py': 'y = 3\n' });
    assert.notEqual(await bundleDigest(dir), before);
  });
});

describe('modelops-debugger venv (command line)', () => {
  it('list, inspect, rm (refused while in use), prune — with --json', async () => {
    const dir = newCacheDir();
    const env = { ...process.env, MODELOPS_VENVS_DIR: dir };
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'venv', ...args], { env, encoding: 'utf8' });
    const kept = await cache(dir).ensure(depBundle([]), base);
    const broken = await cache(dir).ensure(depBundle([]), base);
    rmSync(broken.python);

    const list = JSON.parse(run('list', '--json').stdout);
    assert.deepEqual(
      list.map((e: { key: string; valid: boolean }) => [e.key, e.valid]).sort(),
      [
        [kept.key, true],
        [broken.key, false],
      ].sort(),
    );
    assert.match(run('list').stdout, /⚠ interpreter: bin\/python is missing/);

    const inspect = run('inspect', kept.key);
    assert.equal(inspect.status, 0);
    assert.match(inspect.stdout, /✔ marker: written .* after install and the runner answered ready in it/);
    assert.match(inspect.stdout, /✔ interpreter identity: /);
    assert.equal(run('inspect', '../../etc').status, 2, 'a key never escapes the cache directory');
    assert.equal(run('inspect', 'no-such-key').status, 2);

    const user = spawn(kept.python, ['-c', 'import time; time.sleep(30)']);
    await until(
      () => readFileSync(`/proc/${user.pid}/cmdline`, 'utf8').startsWith(kept.path),
      5_000,
      'the venv python to start',
    );
    const refused = run('rm', kept.key);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, new RegExp(`in use by pid ${user.pid}`));
    const pruned = JSON.parse(run('prune', '--keep', '0', '--json').stdout);
    assert.deepEqual(
      pruned.removed.map((r: { key: string }) => r.key),
      [broken.key],
      'prune removes the broken one and leaves the one in use',
    );
    user.kill('SIGKILL');
    await new Promise((resolve) => user.on('exit', resolve));
    assert.equal(run('rm', kept.key).status, 0);
    assert.deepEqual(venvDirs(dir), []);
  });
});
