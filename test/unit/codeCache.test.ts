/**
 * The command line's V8 code cache (src/cli/codeCache.ts): a cache is used only when it is
 * sound, anything else is ignored and replaced, and the command line says and does the same
 * with or without it.
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { codeCacheDir, loadWithCodeCache, type Loaded } from '../../src/cli/codeCache';
import { bundle, CLI, scratchDir } from './helpers';

/** A bundle in the form esbuild writes (CommonJS), whose exports say what it ran with. */
function writeBundle(dir: string, body = 'exports.value = 1 + 2;'): string {
  const file = path.join(dir, 'bundle.js');
  writeFileSync(
    file,
    `"use strict";\n${body}\nexports.dir = __dirname;\nexports.file = __filename;\n` +
      `exports.self = module.exports === exports;\nexports.builtin = typeof require("node:path").join;\n`,
  );
  return file;
}

/** Loads and writes the cache at once (the CLI writes it at exit). */
function load(file: string, env: NodeJS.ProcessEnv, argv = ['node', 'cli.js', 'run']): Loaded {
  const loaded = loadWithCodeCache(file, { env, argv });
  loaded.writeCache();
  return loaded;
}

function cacheFiles(dir: string): string[] {
  return readdirSync(dir).map((name) => path.join(dir, name));
}

describe('the command line’s V8 code cache', () => {
  // V8 also keeps compiled scripts in memory, by source: without this, a second load in this
  // process would be served from there and say nothing of the cache on disk
  before(() => v8.setFlagsFromString('--no-compilation-cache'));
  after(() => v8.setFlagsFromString('--compilation-cache'));

  it('is written by the first run and used by the next; the bundle runs the same either way', () => {
    const dir = scratchDir('mo-code-cache-');
    const env = { MODELOPS_CODE_CACHE_DIR: path.join(dir, 'cache') };
    const file = writeBundle(dir);
    const first = load(file, env);
    assert.equal(first.outcome, 'absent');
    assert.deepEqual(cacheFiles(env.MODELOPS_CODE_CACHE_DIR), [first.cacheFile]);
    const second = load(file, env);
    assert.equal(second.outcome, 'accepted');
    const off = loadWithCodeCache(file, { env: { ...env, MODELOPS_CODE_CACHE: 'off' } });
    assert.equal(off.outcome, 'off');
    const expected = { value: 3, dir, file, self: true, builtin: 'function' };
    for (const loaded of [first, second, off]) assert.deepEqual({ ...(loaded.exports as object) }, expected);
  });

  it('a corrupted or cut cache file is ignored and replaced by a sound one', () => {
    const dir = scratchDir('mo-code-cache-');
    const env = { MODELOPS_CODE_CACHE_DIR: dir };
    const file = writeBundle(dir);
    const cacheFile = load(file, env).cacheFile!;
    const sound = readFileSync(cacheFile);
    const flipped = Buffer.from(sound);
    flipped[flipped.length - 10] ^= 0xff; // in V8's data: only our checksum can tell
    for (const broken of [flipped, sound.subarray(0, sound.length - 100), Buffer.from('not a cache')]) {
      writeFileSync(cacheFile, broken);
      const loaded = load(file, env);
      assert.equal(loaded.outcome, 'corrupt');
      assert.equal((loaded.exports as { value: number }).value, 3);
      assert.ok(!readFileSync(cacheFile).equals(broken), 'replaced');
      assert.equal(load(file, env).outcome, 'accepted');
    }
  });

  it('a changed bundle never runs the old code, even at the same length (V8 would)', () => {
    const dir = scratchDir('mo-code-cache-');
    const env = { MODELOPS_CODE_CACHE_DIR: path.join(dir, 'cache') };
    const file = writeBundle(dir, 'exports.value = 1 + 2;');
    const old = load(file, env);
    // what V8 alone does with a cache of another source of the same length: the old code runs
    const source = '(function () { return 1 + 2; })';
    const made = new vm.Script(source);
    (made.runInThisContext() as () => number)();
    const stale = new vm.Script(source.replace('2', '3'), { cachedData: made.createCachedData() });
    assert.equal(stale.cachedDataRejected, false);
    assert.equal((stale.runInThisContext() as () => number)(), 3, 'V8 ran the old code');

    writeBundle(dir, 'exports.value = 1 + 3;');
    const changed = load(file, env);
    assert.equal(changed.outcome, 'absent', 'another bundle, another cache');
    assert.equal((changed.exports as { value: number }).value, 4);
    // the old bundle's cache put where the new one's goes: its header names another bundle
    writeFileSync(changed.cacheFile!, readFileSync(old.cacheFile!));
    const planted = load(file, env);
    assert.equal(planted.outcome, 'corrupt');
    assert.equal((planted.exports as { value: number }).value, 4);
  });

  it('a cache V8 rejects is ignored and replaced', () => {
    const dir = scratchDir('mo-code-cache-');
    const env = { MODELOPS_CODE_CACHE_DIR: dir };
    const file = writeBundle(dir);
    const cacheFile = load(file, env).cacheFile!;
    // a sound file (header and checksum right) holding V8 data made for another script
    const other = new vm.Script('(function () { return "another script entirely"; })').createCachedData();
    const header = readFileSync(cacheFile).subarray(0, 'modelops-v8-cache-1\n'.length + 32);
    writeFileSync(cacheFile, Buffer.concat([header, createHash('sha256').update(other).digest(), other]));
    const loaded = load(file, env);
    assert.equal(loaded.outcome, 'rejected');
    assert.equal((loaded.exports as { value: number }).value, 3);
    assert.equal(load(file, env).outcome, 'accepted');
  });

  it('each command has its own cache; off writes nothing; the directory follows XDG_CACHE_HOME', () => {
    const dir = scratchDir('mo-code-cache-');
    const env = { MODELOPS_CODE_CACHE_DIR: path.join(dir, 'cache') };
    const file = writeBundle(dir);
    const run = load(file, env, ['node', 'cli.js', 'run', 'job.json']).cacheFile;
    const venv = load(file, env, ['node', 'cli.js', '--venvs-dir', 'venv', 'list']).cacheFile;
    assert.notEqual(run, venv);
    assert.equal(load(file, env, ['node', 'cli.js', 'run', 'other.json']).outcome, 'accepted');
    const offDir = path.join(dir, 'off');
    loadWithCodeCache(file, { env: { MODELOPS_CODE_CACHE_DIR: offDir, MODELOPS_CODE_CACHE: 'off' } }).writeCache();
    assert.throws(() => readdirSync(offDir), /ENOENT/);
    assert.equal(codeCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/modelops-debugger/code-cache');
  });

  it('the CLI says the same with and without it, and replaces a corrupted one', function () {
    this.timeout(120_000);
    const dir = scratchDir('mo-code-cache-cli-');
    const cacheDir = path.join(dir, 'cache');
    const job = path.join(dir, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({
        job_id: 'cached',
        bundle: bundle('healthy-wire-py'),
        entrypoint: 'main',
        parameter_sets: [{ a: 1.5 }],
        replicates: 2,
      }),
    );
    // what differs from run to run whatever the cache: times, pids, how many progress lines
    const normalise = (text: string) =>
      text
        .replace(/^\d+\/\d+ sims .*\n/gm, '')
        .replace(/\s*\d+(\.\d+)? (ms|s)\b/g, ' N $2')
        .replace(/pid \d+/g, 'pid N');
    const cli = (mode: 'off' | 'on') => {
      const env = {
        ...process.env,
        MODELOPS_CODE_CACHE_DIR: cacheDir,
        MODELOPS_CODE_CACHE: mode === 'off' ? 'off' : '',
      };
      const out = path.join(dir, 'out');
      const say = (args: string[]) => {
        const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
        return `${result.status}\n${normalise(result.stdout)}\n${normalise(result.stderr)}`;
      };
      const said = [
        say(['--help']),
        say(['run', '--help']),
        say([
          'handshake',
          bundle('healthy-wire-py'),
          '--python',
          'python3',
          '--execute',
          'main',
          '--params',
          '{"a": 1}',
        ]),
        say(['run', job, '--out', out, '--python', 'python3', '--workers', '1']),
        say(['run', job, '--out', out, '--python', 'python3', '--workers', '1']), // refused: results exist
      ];
      execFileSync('rm', ['-rf', out]);
      return said;
    };
    const without = cli('off');
    assert.throws(() => readdirSync(cacheDir), /ENOENT/, 'off writes no cache');
    assert.deepEqual(cli('on'), without, 'first run: the cache is written at exit');
    const written = cacheFiles(cacheDir);
    assert.equal(
      written.length,
      4,
      `one per command and help: --help, run --help, handshake, run: ${written.join(', ')}`,
    );
    const contents = written.map((file) => readFileSync(file));
    assert.deepEqual(cli('on'), without, 'with the cache');
    // one V8 had rejected would have been written again by these runs (they exit 0)
    assert.deepEqual(cacheFiles(cacheDir), written);
    assert.deepEqual(
      written.map((file) => readFileSync(file)),
      contents,
      'the caches were used, not written again',
    );
    for (const file of written) writeFileSync(file, Buffer.from('garbage'));
    assert.deepEqual(cli('on'), without, 'with corrupted caches');
    for (const file of written) assert.ok(readFileSync(file).length > 1000, `${file} replaced`);
    assert.deepEqual(cacheFiles(cacheDir), written, 'no temp files left');
  });
});
