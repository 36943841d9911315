/**
 * One venv cache, two languages: the TypeScript cache (src/engine/venv, src/engine/lock) and the
 * Python one the Dask workers use (src/runner/modelops_venv_cache.py) on one shared venvs
 * directory, with real interpreters, real venvs and real pip installs from a local wheel. The
 * Python side is driven through its own command line, never re-implemented here.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { bundleDigest } from '../../src/engine/bundle/bundleDir';
import { readBundleDeps } from '../../src/engine/bundle/deps';
import { DirLock } from '../../src/engine/lock/dirLock';
import { resolvePython } from '../../src/engine/process/python';
import { VenvCache, venvKey, type VenvEvent } from '../../src/engine/venv/cache';
import { probeInterpreter, type InterpreterInfo } from '../../src/engine/venv/interpreter';
import { MARKER_FILE, readMarker, validateVenv, type Validity } from '../../src/engine/venv/marker';
import { buildWheel, CLI, ROOT, scratchDir, writeBundle } from './helpers';

const PY_CACHE = path.join(ROOT, 'src', 'runner', 'modelops_venv_cache.py');
const scratch = scratchDir('mo-venv-contract-');
const wheels = path.join(scratch, 'wheels');
const OFFLINE = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels };
let base: InterpreterInfo;
let counter = 0;

function newDir(name: string): string {
  return path.join(scratch, `${name}-${++counter}`);
}

function bundleWith(deps: string[], extra: Record<string, string> = {}): string {
  const dir = newDir('bundle');
  const list = deps.map((d) => `"${d}"`).join(', ');
  return writeBundle(dir, {
    'pyproject.toml': `[project]\nname = "contract${counter}"\nversion = "0.1.0"\ndependencies = [${list}]\n`,
    'wire.py': deps.length
      ? 'import mo_testdep\n\ndef wire(entrypoint, params, seed):\n    return {"dep": mo_testdep.VALUE.encode()}\n'
      : 'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n',
    ...extra,
  });
}

function tsCache(dir: string, events: VenvEvent[] = []): VenvCache {
  return new VenvCache({ dir, env: OFFLINE, onEvent: (e) => events.push(e) });
}

/** One command of the Python side, its JSON answer (exit 0 or 1 with {"error"}). */
function py(args: string[]): Record<string, any> {
  const env = { ...process.env, ...OFFLINE };
  const result = spawnSync('python3', [PY_CACHE, ...args], { env, encoding: 'utf8', timeout: 180_000 });
  const said = `python side: exit ${result.status}\n${result.stdout}${result.stderr}`;
  assert.ok(result.status === 0 || result.status === 1, said);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

/** The same, running: for waits on a lock. */
function pyProcess(args: string[]): ChildProcessWithoutNullStreams & { lines: string[]; done: Promise<number | null> } {
  type Running = ChildProcessWithoutNullStreams & { lines: string[]; done: Promise<number | null> };
  const child = spawn('python3', [PY_CACHE, ...args], { env: { ...process.env, ...OFFLINE } }) as Running;
  child.lines = [];
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
    const parts = out.split('\n');
    out = parts.pop()!;
    child.lines.push(...parts.filter(Boolean));
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.done = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  child.on('close', () => {
    if (stderr) process.stderr.write(`[python side] ${stderr}`);
  });
  return child;
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const LOCK_OPTIONS = { timeoutMs: 1000, purpose: 'the contract test', failureKind: 'venv-create-failed' } as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tsKey(bundleDir: string, python: InterpreterInfo = base): Promise<string> {
  return venvKey(await bundleDigest(bundleDir), python.versionXY, (await readBundleDeps(bundleDir)).depsHash);
}

/** Both verdicts on one venv, for one requested interpreter. */
async function verdicts(
  cacheDir: string,
  key: string,
  python: InterpreterInfo = base,
): Promise<{ ts: Validity; py: Record<string, any> }> {
  const ts = await validateVenv(path.join(cacheDir, key), key, python);
  const pySide = py(['check', key, '--venvs-dir', cacheDir, '--python', python.path]);
  return { ts, py: pySide };
}

function assertSameVerdict(ts: Validity, pySide: Record<string, any>, what: string): void {
  assert.equal(pySide.valid, ts.valid, `${what}: valid`);
  assert.equal(pySide.reason, ts.reason, `${what}: the reason, word for word`);
  assert.deepEqual(
    pySide.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]),
    ts.checks.map((c) => [c.name, c.ok]),
    `${what}: the checks`,
  );
}

/**
 * A copy of the interpreter whose mtime has nanoseconds that the two languages turn into
 * milliseconds differently unless the Python side computes them as Node does (st_mtime_ns / 1e6
 * gives 1700000008123.5203, Node 1700000008123.52): identities are compared exactly.
 */
let pinned: InterpreterInfo;

before(async () => {
  buildWheel(wheels, 'mo-testdep', '1.0');
  base = await probeInterpreter((await resolvePython()).path);
  const file = path.join(newDir('python'), 'python3');
  mkdirSync(path.dirname(file), { recursive: true });
  copyFileSync(base.realPath, file);
  const script = 'import os, sys; os.utime(sys.argv[1], ns=(0, 1700000008123520141))';
  const set = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
  assert.equal(set.status, 0, set.stderr);
  pinned = await probeInterpreter(file);
  assert.equal(pinned.mtimeMs, 1700000008123.52);
});

describe('venv contract: the TypeScript and the Python cache on one venvs directory', function () {
  this.timeout(180_000); // real builds with pip, several per test
  it('the same key from both sides for the same bundle, and another for other dependencies', async () => {
    const plain = bundleWith([], {
      'pkg/mod.py': 'X = 1\n',
      '__pycache__/wire.cpython-311.pyc': 'skipped',
      'data.txt': 'é\n',
    });
    symlinkSync('data.txt', path.join(plain, 'link.txt'));
    const withDep = bundleWith(['mo-testdep==1.0']);
    const fromRequirements = writeBundle(newDir('bundle'), {
      'requirements.txt': 'mo-testdep==1.0\n',
      'wire.py': 'def wire(e, p, s):\n    return {}\n',
    });
    const keys: string[] = [];
    for (const bundleDir of [plain, withDep, fromRequirements]) {
      const fromPython = py(['key', bundleDir, '--python', base.path]);
      assert.equal(fromPython.key, await tsKey(bundleDir), bundleDir);
      assert.equal(fromPython.digest, await bundleDigest(bundleDir));
      assert.equal(fromPython.deps_hash, (await readBundleDeps(bundleDir)).depsHash);
      keys.push(fromPython.key);
    }
    assert.equal(new Set(keys).size, 3);
    assert.notEqual(keys[0].slice(-8), keys[1].slice(-8), 'other dependencies: another deps hash');
  });

  it('a venv the TypeScript cache built is valid for the Python side, which reuses it without rebuilding', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith([]);
    const built = await tsCache(dir).ensure(bundleDir, pinned);
    assert.equal(built.built, true);
    const markerBefore = readFileSync(path.join(built.path, MARKER_FILE), 'utf8');
    const logBefore = statSync(path.join(dir, `${built.key}.install.log`)).mtimeMs;

    const { ts, py: checked } = await verdicts(dir, built.key, pinned);
    assert.equal(ts.valid, true, ts.reason);
    assertSameVerdict(ts, checked, 'the TypeScript-built venv');

    const reused = py(['ensure', bundleDir, '--venvs-dir', dir, '--python', pinned.path]);
    assert.equal(reused.error, undefined, JSON.stringify(reused.error));
    assert.deepEqual([reused.key, reused.path, reused.built, reused.reason], [built.key, built.path, false, 'valid']);
    assert.equal(readFileSync(path.join(built.path, MARKER_FILE), 'utf8'), markerBefore, 'the marker is untouched');
    assert.equal(statSync(path.join(dir, `${built.key}.install.log`)).mtimeMs, logBefore, 'no build started');
  });

  it('a venv the Python side built is valid for the TypeScript cache, which reuses it; one marker schema', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith(['mo-testdep==1.0']);
    const built = py(['ensure', bundleDir, '--venvs-dir', dir, '--python', pinned.path]);
    assert.equal(built.error, undefined, JSON.stringify(built.error));
    assert.deepEqual([built.built, built.reason], [true, 'directory: not built yet']);
    const log = readFileSync(path.join(dir, `${built.key}.install.log`), 'utf8');
    assert.match(log, /Successfully installed mo-testdep-1\.0/);

    const { ts, py: checked } = await verdicts(dir, built.key, pinned);
    assert.equal(ts.valid, true, ts.reason);
    assertSameVerdict(ts, checked, 'the Python-built venv');

    const events: VenvEvent[] = [];
    const reused = await tsCache(dir, events).ensure(bundleDir, pinned);
    assert.deepEqual([reused.key, reused.path, reused.built, reused.reason], [built.key, built.path, false, 'valid']);
    assert.deepEqual(
      events.map((e) => e.type),
      ['venv-reuse'],
    );
    const run = spawnSync(reused.python, ['-c', 'import mo_testdep; print(mo_testdep.VALUE)'], { encoding: 'utf8' });
    assert.equal(run.stdout.trim(), '1.0', run.stderr);

    // the same fields, of the same types, whichever side wrote it
    const otherDir = newDir('cache');
    const tsBuilt = await tsCache(otherDir).ensure(bundleDir, pinned);
    const isObject = (value: unknown) => !!value && typeof value === 'object' && !Array.isArray(value);
    const shape = (marker: Record<string, unknown> | undefined) =>
      Object.entries(marker ?? {}).map(([name, value]) => [
        name,
        Array.isArray(value) ? 'array' : typeof value,
        isObject(value) ? Object.keys(value as object).sort() : [],
      ]);
    const fromPython = (await readMarker(built.path)) as unknown as Record<string, unknown>;
    const fromTs = (await readMarker(tsBuilt.path)) as unknown as Record<string, unknown>;
    assert.deepEqual(shape(fromPython), shape(fromTs));
    const same = ['schema', 'key', 'bundle', 'bundleName', 'bundleDigest', 'depsHash', 'python', 'requirements'];
    for (const name of same) {
      assert.deepEqual(fromPython[name], fromTs[name], name);
    }
    assert.equal(fromPython.functionalCheck, fromTs.functionalCheck);
  });

  it('the lock: a TypeScript holder blocks a Python builder, which builds once it is released', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith([]);
    const key = await tsKey(bundleDir);
    const lock = await DirLock.acquire(path.join(dir, `${key}.lock`), LOCK_OPTIONS);
    const builder = pyProcess(['ensure', bundleDir, '--venvs-dir', dir, '--python', base.path]);
    try {
      const waiting = () => builder.lines.some((l) => JSON.parse(l).event?.type === 'lock-wait');
      await until(waiting, 60_000, 'the Python builder to wait for the lock');
      await sleep(500);
      assert.equal(builder.exitCode, null, 'the Python builder waits');
      assert.equal(existsSync(path.join(dir, key)), false, 'and builds nothing meanwhile');
    } finally {
      await lock.release();
    }
    assert.equal(await builder.done, 0);
    const answer = JSON.parse(builder.lines.at(-1)!);
    assert.deepEqual([answer.key, answer.built], [key, true]);
    assert.deepEqual(
      answer.events.map((e: { type: string }) => e.type),
      ['lock-wait'],
    );
    assert.equal(answer.events[0].holder.pid, process.pid);
    assert.equal(answer.events[0].holder.nonce, lock.owner.nonce);
  });

  it('the lock: a Python holder blocks a TypeScript builder (and a short wait fails naming it)', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith([]);
    const key = await tsKey(bundleDir);
    const lockDir = path.join(dir, `${key}.lock`);
    const holder = pyProcess(['lock', lockDir]);
    await until(() => holder.lines.length > 0, 30_000, 'the Python side to take the lock');
    const held = JSON.parse(holder.lines[0]);
    assert.equal(held.acquired, true);
    try {
      const refused = await DirLock.acquire(lockDir, { ...LOCK_OPTIONS, timeoutMs: 300 }).then(
        () => assert.fail('the lock was taken while Python held it'),
        (error: Error) => error,
      );
      assert.match(refused.message, new RegExp(`held by pid ${held.pid} on `));

      const events: VenvEvent[] = [];
      let settled = false;
      const ensure = tsCache(dir, events)
        .ensure(bundleDir, base)
        .finally(() => (settled = true));
      await sleep(1500);
      assert.equal(settled, false, 'the TypeScript builder waits');
      assert.equal(existsSync(path.join(dir, key)), false);
      holder.stdin.end();
      assert.equal(await holder.done, 0);
      const lease = await ensure;
      assert.equal(lease.built, true);
      const wait = events.find((e) => e.type === 'lock-wait');
      assert.equal(wait?.type === 'lock-wait' && wait.holder?.pid, held.pid);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('stale takeover: a dead Python holder is taken over by the TypeScript cache', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith([]);
    const key = await tsKey(bundleDir);
    const holder = pyProcess(['lock', path.join(dir, `${key}.lock`)]);
    await until(() => holder.lines.length > 0, 30_000, 'the Python side to take the lock');
    const pid = JSON.parse(holder.lines[0]).pid as number;
    holder.kill('SIGKILL');
    await holder.done;
    const events: VenvEvent[] = [];
    const lease = await tsCache(dir, events).ensure(bundleDir, base);
    assert.equal(lease.built, true);
    const takeover = events.find((e) => e.type === 'lock-takeover');
    assert.ok(takeover?.type === 'lock-takeover', JSON.stringify(events));
    assert.equal(takeover.holder.pid, pid);
    assert.equal(takeover.why, `pid ${pid} no longer exists`);
  });

  it('stale takeover: a TS builder killed mid-build is taken over by Python, half-built never used', async () => {
    const dir = newDir('cache');
    const bundleDir = bundleWith(['mo-testdep==1.0']);
    const key = await tsKey(bundleDir);
    const env = { ...process.env, ...OFFLINE, MODELOPS_VENVS_DIR: dir };
    const cli = spawn(process.execPath, [CLI, 'handshake', bundleDir], { env, detached: true, stdio: 'ignore' });
    const killed = new Promise((resolve) => cli.on('close', resolve));
    const ownerFile = path.join(dir, `${key}.lock`, 'owner.json');
    const halfBuilt = () => existsSync(dir) && readdirSync(dir).some((n: string) => n.startsWith(`.tmp-${key}-`));
    try {
      await until(() => existsSync(ownerFile) && halfBuilt(), 60_000, 'the TypeScript build to start');
    } finally {
      process.kill(-cli.pid!, 'SIGKILL');
    }
    await killed;
    assert.equal(JSON.parse(readFileSync(ownerFile, 'utf8')).pid, cli.pid);

    const answer = py(['ensure', bundleDir, '--venvs-dir', dir, '--python', base.path]);
    assert.equal(answer.error, undefined, JSON.stringify(answer.error));
    assert.deepEqual([answer.key, answer.built], [key, true]);
    const takeover = answer.events.find((e: { type: string }) => e.type === 'lock-takeover');
    assert.equal(takeover?.holder.pid, cli.pid, JSON.stringify(answer.events));
    assert.equal(takeover.why, `pid ${cli.pid} no longer exists`);
    assert.equal(halfBuilt(), false, 'the half-built directory is gone');
    assert.equal(existsSync(path.join(dir, `${key}.lock`)), false, 'the lock is released');
    assert.equal((await validateVenv(path.join(dir, key), key, base)).valid, true);
  });

  it('identical verdicts on tampered venvs: deleted python, edited marker, other interpreter, half-built', async () => {
    // an interpreter of its own (a copy), so that it can be touched: its mtime has sub-millisecond digits
    const other = path.join(newDir('python'), 'python3');
    mkdirSync(path.dirname(other), { recursive: true });
    copyFileSync(base.realPath, other);
    const copy = await probeInterpreter(other);
    const bundleDir = bundleWith([]);
    const key = await tsKey(bundleDir);
    const cases: [string, (venv: string, dir: string) => void, InterpreterInfo?][] = [
      ['untouched', () => undefined],
      ['deleted python', (venv) => unlinkSync(path.join(venv, 'bin', 'python'))],
      [
        'bin/python pointing nowhere',
        (venv) => {
          unlinkSync(path.join(venv, 'bin', 'python'));
          symlinkSync('/nonexistent/python3', path.join(venv, 'bin', 'python'));
        },
      ],
      ['edited marker: another key', (venv) => editMarker(venv, (m) => (m.key = 'ffffffffffff-py3.0-ffffffff'))],
      ['edited marker: another schema', (venv) => editMarker(venv, (m) => (m.schema = 2))],
      ['edited marker: another version', (venv) => editMarker(venv, (m) => (m.python.version = '3.0.1'))],
      ['edited marker: not JSON', (venv) => writeFileSync(path.join(venv, MARKER_FILE), '{"schema": 1,')],
      ['other interpreter requested', () => undefined, base],
      ['half-built: no marker', (venv) => renameSync(path.join(venv, MARKER_FILE), path.join(venv, 'marker.aside'))],
      ['half-built: only a build directory', (venv, dir) => renameSync(venv, path.join(dir, `.tmp-${key}-1-0123abcd`))],
      // last: it changes the copy every case builds from
      ['its interpreter changed since (touched)', () => utimesSync(other, new Date(), new Date(Date.now() - 1234.5))],
    ];
    // one build, copied for each case (a venv's symlinks and its marker do not name its cache directory)
    const original = await tsCache(newDir('cache')).ensure(bundleDir, copy);
    for (const [what, tamper, requested] of cases) {
      const dir = newDir('cache');
      const built = { key: original.key, path: path.join(dir, original.key) };
      cpSync(original.path, built.path, { recursive: true, verbatimSymlinks: true });
      tamper(built.path, dir);
      const { ts, py: checked } = await verdicts(dir, built.key, requested ?? copy);
      if (what === 'untouched') assert.equal(ts.valid, true, ts.reason);
      else assert.equal(ts.valid, false, what);
      if (what === 'edited marker: not JSON') {
        // the parser's own words differ between the languages: the verdict and the check are the same
        assert.deepEqual([checked.valid, checked.checks.at(-1).name], [false, 'marker']);
        assert.match(ts.reason, /^marker: \.modelops-venv\.json is unreadable/);
        assert.match(checked.reason, /^marker: \.modelops-venv\.json is unreadable/);
        continue;
      }
      assertSameVerdict(ts, checked, what);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function editMarker(venv: string, edit: (marker: Record<string, any>) => void): void {
  const file = path.join(venv, MARKER_FILE);
  const marker = JSON.parse(readFileSync(file, 'utf8'));
  edit(marker);
  writeFileSync(file, JSON.stringify(marker, null, 2));
}
