/**
 * Every way a simulation or an aggregation can end without returning, and the failures that
 * used to reach the user under the wrong kind. Real `modelops-debugger` processes, real
 * runners, a real Dask cluster on 127.0.0.1; results read back from disk.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { exitCodeFor, Failure, REPORT_REQUEST, unexpectedFailure } from '../../src/engine/failure';
import { paramId, type Params } from '../../src/engine/job/ids';
import { findTooDeep, MAX_INPUT_NESTING } from '../../src/engine/pyjson/depth';
import {
  assertEveryEnding,
  cli,
  endingsJob,
  ENDINGS_BUNDLE,
  ENDINGS_PY,
  MODES,
  simRecords,
  writeJob,
} from '../shared/endings';
import { CLI, events, lineOf, PROD_RUNNER, readJson, ROOT, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-endings-');
let counter = 0;

describe('every way a simulation can end', function () {
  this.timeout(240_000);

  it('locally: sys.exit(0), SystemExit(3), KeyboardInterrupt, a BaseException subclass, GeneratorExit, a __str__ that raises or hangs: task-exception at the raising line, in simulations and targets, and one warm runner serves every task', () => {
    const out = path.join(scratch, 'out-endings-local');
    const started = Date.now();
    const result = cli([
      'run',
      endingsJob('endings'),
      '--out',
      out,
      '--workers',
      '1',
      '--queue-depth',
      '1',
      '--task-timeout',
      '20',
    ]);
    assert.equal(result.code, 1, result.stderr);
    const dir = path.join(out, 'endings');
    assertEveryEnding(dir);
    const log = events(dir);
    const starts = log.filter((e) => e.type === 'process-start');
    assert.equal(
      starts.length,
      1,
      `one runner for all ${(MODES.length + 1) * 2} simulations and the aggregation: ${JSON.stringify(starts)}`,
    );
    const pids = new Set([
      ...simRecords(dir).map((s) => s.pid),
      ...log.filter((e) => e.type === 'task-done').map((e) => e.pid),
    ]);
    assert.deepEqual([...pids], [starts[0].pid], 'the same pid served every task, before and after each ending');
    // the hanging __str__ cost its 2 s bound three times (two replicates and a target), no more
    assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  });

  it("production's runner (the prod-style fixture) is ended by them: process-crashed at the raising line, and a KeyboardInterrupt is never 'killed by SIGINT'", () => {
    const job = writeJob({
      job_id: 'prod-endings',
      bundle: ENDINGS_BUNDLE,
      entrypoint: 'a/b',
      parameter_sets: ['keyboard', 'base', 'generator-exit', 'exit3'].map((mode) => ({ mode })),
      replicates: 1,
    });
    const out = path.join(scratch, 'out-prod-endings');
    const result = cli(['run', job, '--out', out, '--workers', '1', '--retries', '0', '--runner', PROD_RUNNER]);
    assert.equal(result.code, 1, result.stderr);
    const sims = simRecords(path.join(out, 'prod-endings'));
    const byMode = (mode: string) => sims.find((s) => s.param_id === paramId({ mode } as unknown as Params))!;
    const expected: Record<string, string> = {
      keyboard:
        'Runner ended during the simulation on an uncaught KeyboardInterrupt (Python then ends itself with SIGINT)',
      base: 'Runner exited with code 1 during the simulation on an uncaught endings.Meltdown: the reactor is gone',
      'generator-exit': 'Runner exited with code 1 during the simulation on an uncaught GeneratorExit: closed early',
    };
    for (const [mode, message] of Object.entries(expected)) {
      assert.deepEqual([byMode(mode).kind, byMode(mode).message], ['process-crashed', message], mode);
      assert.deepEqual(
        [path.resolve(byMode(mode).location.file), byMode(mode).location.line],
        [ENDINGS_PY, lineOf(ENDINGS_PY, mode)],
        mode,
      );
    }
    // SystemExit prints nothing: an exit code is all there is, and the note says what it may mean
    assert.deepEqual(
      [byMode('exit3').kind, byMode('exit3').message],
      ['process-crashed', 'Runner exited with code 3 during the simulation'],
    );
    assert.ok(byMode('exit3').evidence.notes.some((n: string) => /may have called sys\.exit\(\)/.test(n)));
  });

  it('a real SIGINT to the runner during a simulation is told apart from a KeyboardInterrupt raised by code, and the runner stays warm', () => {
    const job = writeJob({
      job_id: 'sigint',
      bundle: ENDINGS_BUNDLE,
      entrypoint: 'a/b',
      parameter_sets: [{ mode: 'sigint' }, { mode: 'keyboard' }, { mode: 'ok' }],
      replicates: 1,
    });
    const out = path.join(scratch, 'out-sigint');
    const result = cli(['run', job, '--out', out, '--workers', '1', '--queue-depth', '1']);
    assert.equal(result.code, 1, result.stderr);
    const sims = simRecords(path.join(out, 'sigint'));
    const byMode = (mode: string) => sims.find((s) => s.param_id === paramId({ mode } as unknown as Params))!;
    assert.deepEqual(
      [byMode('sigint').kind, byMode('sigint').message],
      [
        'task-exception',
        'KeyboardInterrupt: the runner received SIGINT while the simulation ran (a signal sent to its process, not a raise in the code)',
      ],
    );
    assert.equal(byMode('sigint').location.line, lineOf(ENDINGS_PY, 'sigint'));
    assert.equal(byMode('keyboard').message, "KeyboardInterrupt raised by the simulation's code");
    assert.equal(byMode('ok').status, 'ok');
    assert.equal(new Set(sims.map((s) => s.pid)).size, 1, 'one runner throughout');
  });
});

// ---- input nested deeper than Python's JSON decoder takes ---------------------------------------

describe('input nested deeper than the runners can decode', function () {
  this.timeout(120_000);
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const depthBundle = () =>
    writeBundle(path.join(scratch, `depth-${++counter}`), {
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n',
      'depth.py':
        'def measure(sim_returns, target_data):\n    depth = 0\n    while isinstance(target_data, list) and target_data:\n        depth, target_data = depth + 1, target_data[0]\n    return {"loss": depth + 0.5}\n',
    });

  it('target_data, a parameter in a job file, or a --params file nested too deep: exit 2 naming the field, nothing written, no runner started', () => {
    const b = depthBundle();
    const cases: [string[], RegExp][] = [
      [
        [
          writeRaw(
            `{"job_id":"deep-td","bundle":${JSON.stringify(b)},"entrypoint":"a/b","parameter_sets":[{"x":1}],"replicates":1,"targets":["depth:measure"],"target_data":{"series":${nested(2000)}}}`,
          ),
        ],
        /: target_data\.series\[0\]\[0\]… is nested 2002 levels deep; at most 900 are accepted, because the runner reads every request with Python's json module/,
      ],
      [
        [
          writeRaw(
            `{"job_id":"deep-td2","bundle":${JSON.stringify(b)},"entrypoint":"a/b","parameter_sets":[{"x":1}],"replicates":1,"target_data":${nested(901)}}`,
          ),
        ],
        /: target_data\[0\]\[0\]\[0\]… is nested 902 levels deep/,
      ],
      [
        [
          writeRaw(
            `{"job_id":"deep-p","bundle":${JSON.stringify(b)},"entrypoint":"a/b","parameter_sets":[{"x":1},{"x":2,"beta":${nested(1000)}}],"replicates":1}`,
          ),
        ],
        /: parameter_sets\[1\]\.beta\[0\]… is nested 1003 levels deep/,
      ],
      [
        [b, '--params', writeRaw(`[{"x":1},{"beta":${nested(100_000)}}]`), '--replicates', '1'],
        /: \[1\]\.beta\[0\]\[0\]… is nested 100002 levels deep/,
      ],
    ];
    for (const [args, message] of cases) {
      const out = path.join(scratch, `out-deep-${++counter}`);
      const result = cli(['run', ...args, '--out', out]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /RecursionError:|Maximum call stack|internal error|protocol-error/);
      assert.equal(existsSync(out), false, 'nothing written');
    }
  });

  it('the depth scan skips brackets inside strings, names keys with escapes, and stops at nothing it cannot parse', () => {
    assert.equal(findTooDeep('{"a":"[[[[[[[[","b":["]]]]"]}', 2), undefined);
    assert.deepEqual(findTooDeep('{"a\\"b":[[1]]}', 2), { path: 'a"b[0]', depth: 3 });
    assert.deepEqual(findTooDeep('[1,2,{"k":[[[', 3), { path: '[2].k[0]', depth: 5 });
    assert.equal(findTooDeep(nested(MAX_INPUT_NESTING)), undefined);
    assert.deepEqual(findTooDeep(nested(MAX_INPUT_NESTING + 1))?.depth, MAX_INPUT_NESTING + 1);
  });

  it('the deepest target_data accepted (899 levels in the job file, 901 in the request) is read by a real runner', () => {
    const b = depthBundle();
    const job = writeRaw(
      `{"job_id":"deepest","bundle":${JSON.stringify(b)},"entrypoint":"a/b","parameter_sets":[{"x":1}],"replicates":1,"targets":["depth:measure"],"target_data":${nested(899)}}`,
    );
    const out = path.join(scratch, 'out-deepest');
    const result = cli(['run', job, '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    const [agg] = readdirSync(path.join(out, 'deepest', 'aggs'));
    assert.equal(readJson(path.join(out, 'deepest', 'aggs', agg)).targets['depth:measure'].loss.value, 898.5);
  });
});

function writeRaw(text: string): string {
  const file = path.join(scratch, `raw-${++counter}.json`);
  writeFileSync(file, text);
  return file;
}

// ---- wrong kinds ------------------------------------------------------------------------------------

describe('an unexpected exception in the engine is an engine-error', function () {
  this.timeout(120_000);

  it('unexpectedFailure: a thrown TypeError becomes engine-error with its stack, one line, a request to report it, exit 3; a Failure passes as it is; an errno is said in words', () => {
    const broken = (value: unknown) => (value as { field: { deeper: number } }).field.deeper;
    let thrown: unknown;
    try {
      broken({});
    } catch (error) {
      thrown = error;
    }
    const failure = unexpectedFailure(thrown, 'testing');
    assert.equal(failure.kind, 'engine-error');
    assert.match(
      failure.message,
      /^Unexpected engine error while testing: TypeError: Cannot read properties of undefined \(reading 'deeper'\) \(this is a bug in modelops-debugger: please report it, with the stack from the evidence\)$/,
    );
    assert.match(failure.evidence.engineStack!, /TypeError[\s\S]*at broken /);
    assert.equal(exitCodeFor(failure.kind), 3);
    const typed = new Failure('bad-input', 'no');
    assert.equal(unexpectedFailure(typed), typed);
    const erofs = Object.assign(new Error("EROFS: read-only file system, mkdir '/x'\nsecond line"), {
      code: 'EROFS',
      syscall: 'mkdir',
      path: '/x',
    });
    const explained = unexpectedFailure(erofs);
    assert.doesNotMatch(explained.message, /\n/);
    assert.deepEqual(explained.evidence.notes, ['EROFS: the file system is read-only (in mkdir on /x)']);
    assert.equal(
      unexpectedFailure('a string').message,
      `Unexpected engine error: a non-Error value: a string (${REPORT_REQUEST})`,
    );
  });

  it('no source file makes an unexpected exception a protocol-error, or an "internal error"', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (
          /\.ts$/.test(entry.name) &&
          /'protocol-error', `Unexpected|internal error: /.test(readFileSync(file, 'utf8'))
        )
          offenders.push(file);
      }
    };
    walk(path.join(ROOT, 'src'));
    assert.deepEqual(offenders, []);
  });

  /** The CLI run from a current directory that was deleted under it: process.cwd() throws. */
  function cliInDeletedDir(args: string[]) {
    const gone = path.join(scratch, `gone-${++counter}`);
    mkdirSync(gone);
    const exec = 'import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])';
    const result = spawnSync('python3', ['-c', exec, gone, process.execPath, CLI, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it('end to end (a deleted current directory): run, run --json and a job under way end with engine-error, its stack, exit 3; so does what only the last catch sees', () => {
    const job = writeJob({
      job_id: 'homeless',
      bundle: ENDINGS_BUNDLE,
      entrypoint: 'a/b',
      parameter_sets: [{ mode: 'ok' }],
      replicates: 1,
    });
    const report =
      /Unexpected engine error: Error: ENOENT: no such file or directory, uv_cwd \(this is a bug in modelops-debugger: please report it, with the stack from the evidence\)/;

    const early = cliInDeletedDir(['run', job]); // the default --out is relative
    assert.equal(early.code, 3, early.stderr);
    assert.match(early.stderr, report);
    assert.match(
      early.stderr,
      /note: the current directory of this process was deleted: cd to an existing directory and try again/,
    );
    assert.match(early.stderr, /^\s+at .*ResultsStore/m, 'the stack');
    assert.doesNotMatch(early.stderr, /protocol-error|internal error/);

    const json = cliInDeletedDir(['run', job, '--json']);
    assert.equal(json.code, 3);
    const line = JSON.parse(json.stdout.trim().split('\n')[0]);
    assert.deepEqual([line.type, line.kind], ['error', 'engine-error']);

    // the results folder is made (--out is absolute); the relative --runner is resolved inside the job
    const out = path.join(scratch, 'out-homeless');
    const underway = cliInDeletedDir(['run', job, '--out', out, '--workers', '1', '--runner', 'relative-runner.py']);
    assert.equal(underway.code, 3, underway.stderr);
    const manifest = readJson(path.join(out, 'homeless', 'manifest.json'));
    assert.deepEqual([manifest.status, manifest.exit_code, manifest.failure.kind], ['aborted', 3, 'engine-error']);
    assert.match(
      manifest.failure.message,
      /^Unexpected engine error while running the job: Error: ENOENT: no such file or directory, uv_cwd \(this is a bug/,
    );
    assert.match(manifest.failure.evidence.engineStack, /\n\s+at /);
    assert.match(underway.stderr, /engine-error: Unexpected engine error while running the job/);

    // a relative bundle path fails before the handshake command's own reporting: main's last catch
    const handshake = cliInDeletedDir(['handshake', 'relative-bundle']);
    assert.equal(handshake.code, 3, handshake.stderr);
    assert.match(handshake.stderr, new RegExp(`^modelops-debugger: engine-error: ${report.source}`));
    assert.match(handshake.stderr, /\n\s+at /);
    assert.doesNotMatch(handshake.stderr, /internal error/);
  });
});

// ---- the venvs directory: a file, a path through a file, a read-only mount -------------------------

describe('a venvs directory that cannot serve is venv-create-failed, naming the path and the errno in words', function () {
  this.timeout(180_000);
  // each bundle its own digest, so its own venv: nothing is reused by accident
  const b = () =>
    writeBundle(path.join(scratch, `venvs-bundle-${++counter}`), {
      'wire.py': `# bundle ${counter}\ndef wire(entrypoint, params, seed):\n    return {"value": b"1"}\n`,
    });
  /** Every command with this venvs directory: by MODELOPS_VENVS_DIR, or by --venvs-dir with the variable unset. */
  function commands(dir: string, how: 'env' | 'flag') {
    const env = { ...process.env } as Record<string, string>;
    delete env.MODELOPS_VENVS_DIR;
    if (how === 'env') env.MODELOPS_VENVS_DIR = dir;
    const flag = how === 'flag' ? ['--venvs-dir', dir] : [];
    const bundleDir = b();
    const jobId = `venvs-${counter}`;
    const job = writeJob({
      job_id: jobId,
      bundle: bundleDir,
      entrypoint: 'a/b',
      parameter_sets: [{ x: 1 }],
      replicates: 1,
    });
    const out = path.join(scratch, `out-${jobId}`);
    const exec = (args: string[]) => {
      const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 120_000 });
      return { code: result.status, stdout: result.stdout, stderr: result.stderr };
    };
    return {
      run: () => ({
        ...exec(['run', job, '--out', out, '--workers', '1', ...flag]),
        manifest: () => readJson(path.join(out, jobId, 'manifest.json')),
      }),
      handshake: () => exec(['handshake', bundleDir, '--json', ...flag]),
      list: () => exec(['venv', 'list', ...flag]),
      venv: (args: string[]) => exec(['venv', ...args, ...flag]),
    };
  }

  function assertRefused(dir: string, how: 'env' | 'flag', sentence: RegExp): void {
    const cli = commands(dir, how);
    const run = cli.run();
    assert.equal(run.code, 3, run.stderr);
    const manifest = run.manifest();
    assert.deepEqual([manifest.status, manifest.failure.kind], ['aborted', 'venv-create-failed']);
    assert.match(manifest.failure.message, sentence);
    assert.doesNotMatch(run.stderr, /engine-error|protocol-error|internal error|\n\s+at /);
    const handshake = cli.handshake();
    assert.equal(handshake.code, 3, handshake.stderr);
    const verdict = JSON.parse(handshake.stdout);
    assert.deepEqual([verdict.ok, verdict.kind], [false, 'venv-create-failed']);
    assert.match(verdict.message, sentence);
  }

  it('a file, and a path through a file (ENOTDIR), by MODELOPS_VENVS_DIR and by --venvs-dir: run, handshake and venv list', () => {
    const file = path.join(scratch, 'venvs-is-a-file');
    writeFileSync(file, 'not a directory\n');
    const asFile = new RegExp(
      `^The venvs directory ${file} is a file, not a directory \\(ENOTDIR: a component of the path is a file, not a directory\\); choose another venvs directory with MODELOPS_VENVS_DIR or --venvs-dir`,
    );
    const through = new RegExp(
      `^The venvs directory ${file}/venvs cannot be created: ${file} is a file, not a directory \\(ENOTDIR: a component of the path is a file, not a directory\\)`,
    );
    for (const how of ['env', 'flag'] as const) {
      assertRefused(file, how, asFile);
      assertRefused(path.join(file, 'venvs'), how, through);
      for (const [dir, sentence] of [
        [file, asFile],
        [path.join(file, 'venvs'), through],
      ] as const) {
        const list = commands(dir, how).list();
        assert.equal(list.code, 3, list.stdout);
        assert.match(list.stderr.replace(/^modelops-debugger: /, ''), sentence);
      }
    }
  });

  describe('on a read-only mount (a tmpfs the test mounts; root only)', () => {
    let mount: string | undefined;
    before(function () {
      const dir = scratchDir('mo-ro-venvs-');
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { encoding: 'utf8' });
      if (mounted.status !== 0) {
        // not root, or no mount(8): the read-only cases need a mount this test can make
        process.stderr.write(
          `skipping the read-only venvs directory tests: mount -t tmpfs failed: ${(mounted.stderr || String(mounted.error)).trim()}\n`,
        );
        this.skip();
      }
      mount = dir;
    });
    after(() => {
      if (mount) spawnSync('umount', [mount]);
    });
    const remount = (mode: 'ro' | 'rw') => {
      const result = spawnSync('mount', ['-o', `remount,${mode}`, mount!], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
    };

    it('EROFS for the directory and for a directory to create in it: run and handshake refuse with the errno in words; venv list lists and says so; venv rm says it could not; a valid venv built before is still reused', () => {
      // a venv built while the mount was writable
      const cli = commands(mount!, 'env');
      remount('rw');
      const built = cli.handshake();
      assert.equal(built.code, 0, built.stdout);
      assert.equal(JSON.parse(built.stdout).evidence.venv.built, true);
      remount('ro');
      const reused = cli.handshake();
      assert.equal(reused.code, 0, reused.stdout);
      assert.deepEqual(
        [JSON.parse(reused.stdout).evidence.venv.built, JSON.parse(reused.stdout).evidence.venv.reason],
        [false, 'valid'],
        'the valid venv was reused from the read-only cache',
      );
      const list = cli.list();
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /1 venvs in /);
      assert.match(
        list.stderr,
        new RegExp(
          `^note: The venvs directory ${mount} cannot be used: nothing can be created in it \\(EROFS: the file system is read-only\\)`,
        ),
      );
      // removing from it fails, and says so (it used to report "removed")
      const key = JSON.parse(cli.venv(['list', '--json']).stdout)[0].key as string;
      const removal = cli.venv(['rm', key]);
      assert.equal(removal.code, 3, removal.stdout);
      assert.equal(
        removal.stderr,
        `modelops-debugger: Could not remove ${path.join(mount!, key)}: EROFS: the file system is read-only.\n`,
      );

      const readOnly = new RegExp(
        `^The venvs directory ${mount} cannot be used: nothing can be created in it \\(EROFS: the file system is read-only\\); choose another venvs directory`,
      );
      assertRefused(mount!, 'env', readOnly); // a new bundle: its venv must be built
      const under = path.join(mount!, 'sub', 'venvs');
      assertRefused(
        under,
        'flag',
        new RegExp(
          `^The venvs directory ${under} cannot be used: it cannot be created in ${mount} \\(EROFS: the file system is read-only\\)`,
        ),
      );
    });
  });
});
