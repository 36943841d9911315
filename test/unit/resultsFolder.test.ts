/**
 * The results folder is the user's data (issue 10): real `modelops-debugger run` processes
 * against disks that fill up, turn read-only or refuse permission (small tmpfs mounts made by
 * the test), folders another process is writing, and folders tampered with between runs.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { readJobFolder } from '../../src/engine/job/onDisk';
import { readJobJson, readSimResult } from '../../src/engine/job/resultsReader';
import { jsonLinesProblems, replaceSim, simKeys, simRecord, simRecords, simsFile } from '../shared/simRecords';
import { CLI, FIRST_CALLS, readJson, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-results-');
const PYTHON = '/usr/bin/python3';
let counter = 0;

/**
 * `bytes` random output bytes per replicate (to fill a disk), `sleep` seconds per replicate
 * (to keep a job running), `hold`: a file each replicate waits for (up to 60 s), so a job runs
 * until the test releases it; `mode: "raise"` fails the first call (a marker file counts it).
 */
const WIRE = `import json, os, time

MARKERS = os.environ.get("MO_TEST_MARKERS", "/nonexistent")

${FIRST_CALLS}
def wire(entrypoint, params, seed):
    time.sleep(params.get("sleep", 0))
    held = time.monotonic()
    while params.get("hold") and not os.path.exists(params["hold"]) and time.monotonic() - held < 60:
        time.sleep(0.02)
    if params.get("mode") == "raise" and first_calls("raise", 1):
        raise ValueError("replicate failed on purpose")
    outputs = {"value": json.dumps(seed % 1000).encode()}
    if params.get("bytes"):
        outputs["blob"] = os.urandom(params["bytes"])
    return outputs
`;

/** Test folders other users can read (the permission test runs the CLI as nobody). */
function openDir(name: string): string {
  const dir = path.join(scratch, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(scratch, 0o755);
  chmodSync(dir, 0o755);
  return dir;
}

function newJob(
  params: Record<string, unknown>[],
  replicates: number,
  jobId = `job${++counter}`,
): { file: string; bundle: string; jobId: string } {
  const dir = openDir('input');
  const bundle = writeBundle(path.join(dir, 'bundle'), { 'wire.py': WIRE });
  const file = path.join(dir, 'job.json');
  writeFileSync(file, JSON.stringify({ job_id: jobId, bundle, entrypoint: 'e', parameter_sets: params, replicates }));
  for (const f of [bundle, path.join(bundle, 'wire.py'), file]) chmodSync(f, statSync(f).isDirectory() ? 0o755 : 0o644);
  return { file, bundle, jobId };
}

type Run = { code: number | null; stdout: string; stderr: string };

function cli(args: string[], options: { env?: Record<string, string>; uid?: number; gid?: number } = {}): Run {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: 120_000,
    uid: options.uid,
    gid: options.gid,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `run` with the system Python as it is (no venv to build) on two runners. */
function runArgs(...args: string[]): string[] {
  return ['run', ...args, '--python', PYTHON, '--workers', '2'];
}

/** The sentence, and no Node stack trace or internal error anywhere. */
function assertOneSentence(run: Run, sentence: RegExp): void {
  const text = run.stdout + run.stderr;
  assert.match(run.stderr, sentence, run.stderr);
  assert.doesNotMatch(text, /^\s+at .+\(?.+:\d+:\d+\)?$/m, 'no stack trace');
  assert.doesNotMatch(text, /internal error|Unexpected engine error/);
}

/** The events `--json` printed, one per line. */
function jsonEvents(stdout: string): any[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** Every line of events.jsonl is a JSON object: the file is valid JSON Lines. */
function assertJsonLines(dir: string): Record<string, any>[] {
  const text = readFileSync(path.join(dir, 'events.jsonl'), 'utf8');
  assert.ok(text.endsWith('\n'), 'events.jsonl ends with a whole line');
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, i) => {
      try {
        return JSON.parse(line) as Record<string, any>;
      } catch {
        return assert.fail(`events.jsonl line ${i + 1} is not JSON: ${line.slice(0, 200)}`);
      }
    });
}

/** Every path below root, with what it is: to show that nothing was written. */
function snapshot(root: string): Map<string, string> {
  const seen = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      const stat = lstatSync(full);
      seen.set(
        path.relative(root, full),
        stat.isDirectory() ? 'dir' : `${stat.isSymbolicLink() ? 'link' : 'file'}:${stat.size}:${stat.mtimeMs}`,
      );
      if (stat.isDirectory()) walk(full);
    }
  };
  walk(root);
  return seen;
}

function filesNamed(root: string, pattern: RegExp): string[] {
  return [...snapshot(root).keys()].filter((p) => pattern.test(path.basename(p)));
}

/** The replicates with a result (test/shared/simRecords.ts knows the layout). */
const simFiles = simKeys;

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A finished job's folder, copied fresh for each tampering. */
let finished: { dir: string; bundle: string; out: string } | undefined;

/**
 * A finished run's results folder, the test's own to tamper with: a copy of one run made once (the
 * tests only read, resume or refuse it, and a run is a second of CPU on a shared machine), or a
 * run of its own with `ownBundle` for a test that changes the bundle, which the copies' job.json names.
 */
function finishedFolder(ownBundle = false): { dir: string; bundle: string; out: string } {
  const run = () => {
    const { file, bundle, jobId } = newJob([{ a: 1 }, { a: 2.5 }], 3);
    const out = path.join(openDir('out'), 'results');
    const first = cli(runArgs(file, '--out', out));
    assert.equal(first.code, 0, first.stderr);
    return { dir: path.join(out, jobId), bundle, out };
  };
  if (ownBundle) return run();
  finished ??= run();
  const out = path.join(openDir('out'), 'results');
  cpSync(finished.out, out, { recursive: true });
  return { dir: path.join(out, path.basename(finished.dir)), bundle: finished.bundle, out };
}

// ---- disks that refuse writes ------------------------------------------------------------------

const mounts: string[] = [];

/** A small tmpfs of its own, or a reason why there cannot be one here. */
function tmpfs(size: string): string | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'mounting a tmpfs needs root' };
  const dir = openDir('mnt');
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0) return { skip: `mount -t tmpfs failed: ${mounted.stderr.trim()}` };
  mounts.push(dir);
  return dir;
}

function remount(dir: string, options: string): void {
  const result = spawnSync('mount', ['-o', `remount,${options}`, dir], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
}

describe("the results folder is the user's data", () => {
  after(() => {
    // before the scratch folders are removed (a root hook)
    for (const dir of mounts.splice(0)) spawnSync('umount', ['-l', dir]);
  });

  describe('a disk that refuses writes: results-unwritable (exit 3) in one sentence', () => {
    it('the disk fills mid-run (ENOSPC): exit 3, a manifest, no temp file, valid events; once freed, --resume completes', function () {
      const mount = tmpfs('1m');
      if (typeof mount !== 'string') return this.skip();
      // 40 replicates of 40 KB (54 KB of base64 each): 2 MB of results on a 1 MB disk
      const { file, jobId } = newJob([{ bytes: 40_000 }], 40);
      const out = path.join(mount, 'out');
      const full = cli(runArgs(file, '--out', out));
      assert.equal(full.code, 3, full.stderr);
      // whichever file of the folder met the full disk first: usually a result, sometimes events.jsonl
      assertOneSentence(
        full,
        /results-unwritable: Cannot write the results in \S+: the disk is full \(ENOSPC writing (sims\/[0-9a-f]{16}\.jsonl|events\.jsonl|aggs\/[0-9a-f]{16}\.json|logs\/[\w.-]+)\)\./,
      );
      const dir = path.join(out, jobId);
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.equal(manifest.status, 'aborted');
      assert.equal(manifest.exit_code, 3);
      assert.equal(manifest.failure.kind, 'results-unwritable');
      const written = simFiles(dir).length;
      assert.ok(written > 0 && written < 40, `${written} of 40 results fitted`);
      assert.deepEqual(
        manifest.counts.sims,
        { total: 40, ok: written, failed: 0, pending: 40 - written },
        'the manifest counts what is on disk',
      );
      assert.match(
        full.stderr,
        new RegExp(`${40 - written} simulations did not run; after fixing the cause, --resume \\S+ runs them`),
      );
      assert.deepEqual(filesNamed(dir, /\.tmp-/), [], 'no temporary file survives a failed write');
      assert.deepEqual(jsonLinesProblems(dir), [], "a set's file is cut back to its last whole line");
      assert.equal(existsSync(path.join(dir, '.lock')), false, 'the lock is released');
      const events = assertJsonLines(dir);
      assert.equal(events.at(-1)!.type, 'job-done');

      // a kill mid-write would leave these too: a torn event line and a temporary file
      writeFileSync(
        path.join(dir, 'events.jsonl'),
        `${readFileSync(path.join(dir, 'events.jsonl'), 'utf8')}{"t": "2026-12-01T00:00:00Z", "type": "task-do`,
      );
      writeFileSync(path.join(dir, 'sims', `${readdirSync(path.join(dir, 'sims'))[0]}.tmp-99999`), '{"half": ');
      remount(mount, 'size=16m');
      const resumed = cli(runArgs('--resume', dir));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stderr, /⚠ Cut a torn last line \(\d+ bytes\) off events\.jsonl/);
      assert.match(resumed.stderr, /⚠ Removed 1 temporary file of writes that never finished/);
      assert.equal(simFiles(dir).length, 40);
      assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
      assert.deepEqual(filesNamed(dir, /\.tmp-/), []);
      const after = assertJsonLines(dir);
      assert.equal(after.length, events.length + after.slice(events.length).length);
      assert.equal(
        after[events.length].type,
        'job-start',
        'the next record starts its own line, never glued to the torn one',
      );
      assert.equal(after[events.length].skipped_sims, written);
    });

    it('a read-only disk (EROFS): a new run and --rerun-failed are exit 3 with one sentence, nothing changes; read-write again, --rerun-failed finishes', function () {
      const mount = tmpfs('4m');
      if (typeof mount !== 'string') return this.skip();
      const markers = openDir('markers');
      const { file, jobId } = newJob([{ mode: 'raise' }, { a: 1 }], 2);
      const out = path.join(mount, 'out');
      const first = cli(runArgs(file, '--out', out), { env: { MO_TEST_MARKERS: markers } });
      assert.equal(first.code, 1, first.stderr);
      const dir = path.join(out, jobId);
      remount(mount, 'ro');
      const before = snapshot(mount);

      const fresh = newJob([{ a: 1 }], 1);
      const refusedNew = cli(runArgs(fresh.file, '--out', path.join(mount, 'elsewhere')));
      assert.equal(refusedNew.code, 3, refusedNew.stderr);
      assertOneSentence(refusedNew, /Cannot write the results in \S+: the file system is read-only \(EROFS\)\./);

      const refusedRerun = cli(runArgs('--rerun-failed', dir), { env: { MO_TEST_MARKERS: markers } });
      assert.equal(refusedRerun.code, 3, refusedRerun.stderr);
      assertOneSentence(
        refusedRerun,
        /Cannot write the results in \S+: the file system is read-only \(EROFS writing \.lock\)\./,
      );
      assert.deepEqual(snapshot(mount), before, 'nothing changed');

      remount(mount, 'rw');
      const rerun = cli(runArgs('--rerun-failed', dir), { env: { MO_TEST_MARKERS: markers } });
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
      assertJsonLines(dir);
    });

    it('permission denied (EACCES, the CLI run as nobody): a new run and --resume are exit 3 with one sentence', function () {
      if (process.getuid?.() !== 0) return this.skip(); // needs root to run the CLI as another user
      const { file, jobId } = newJob([{ a: 1 }], 2);
      const out = path.join(openDir('root-owned'), 'results');
      mkdirSync(out);
      chmodSync(out, 0o755); // root's: nobody may read it, not write it
      const nobody = { uid: 65534, gid: 65534 };
      const refused = cli(runArgs(file, '--out', out), nobody);
      assert.equal(refused.code, 3, refused.stderr);
      assertOneSentence(refused, /Cannot write the results in \S+: permission is denied \(EACCES\)\./);
      assert.deepEqual(readdirSync(out), []);

      const done = cli(runArgs(file, '--out', out));
      assert.equal(done.code, 0, done.stderr);
      const dir = path.join(out, jobId);
      for (const f of snapshot(dir).keys())
        chmodSync(path.join(dir, f), statSync(path.join(dir, f)).isDirectory() ? 0o755 : 0o644);
      chmodSync(dir, 0o755);
      const resumed = cli(runArgs('--resume', dir), nobody);
      assert.equal(resumed.code, 3, resumed.stderr);
      assertOneSentence(resumed, /Cannot write the results in \S+: permission is denied \(EACCES writing \.lock\)\./);
    });

    it("permission taken away mid-run (EACCES on a set's .jsonl, the CLI run as nobody): exit 3, a manifest; given back, --resume completes", async function () {
      if (process.getuid?.() !== 0) return this.skip(); // needs root to run the CLI as another user
      const { file, jobId } = newJob([{ sleep: 0.1 }], 60); // 3 s on two runners
      const out = path.join(openDir('nobody-owned'), 'results');
      mkdirSync(out);
      chownSync(out, 65534, 65534);
      const dir = path.join(out, jobId);
      const child = spawn(process.execPath, [CLI, ...runArgs(file, '--out', out)], {
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await waitFor('some results', () => simFiles(dir).length >= 4);
      const simDir = path.join(dir, 'sims', readdirSync(path.join(dir, 'sims'))[0]);
      chmodSync(simDir, 0o555); // nobody's folder, no longer writable by nobody
      assert.equal(await exited, 3, stderr);
      assertOneSentence(
        { code: 3, stdout: '', stderr },
        /results-unwritable: Cannot write the results in \S+: permission is denied \(EACCES writing sims\/[0-9a-f]{16}\.jsonl\)\./,
      );
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.equal(manifest.failure.kind, 'results-unwritable');
      assert.equal(manifest.counts.sims.ok, simFiles(dir).length);
      assert.ok(manifest.counts.sims.ok < 60);
      assert.deepEqual(filesNamed(dir, /\.tmp-/), []);
      assertJsonLines(dir);

      chmodSync(simDir, 0o755);
      const resumed = cli(runArgs('--resume', dir), { uid: 65534, gid: 65534 });
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(simFiles(dir).length, 60);
      assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
    });

    it('--out that is a file, under one, or whose <job_id> is one: exit 2 before anything is written', () => {
      const { file, jobId } = newJob([{ a: 1 }], 1);
      const where = openDir('outfile');
      const outFile = path.join(where, 'results.txt');
      writeFileSync(outFile, 'not a folder\n');
      const before = snapshot(where);
      const isFile = cli(runArgs(file, '--out', outFile));
      assert.equal(isFile.code, 2, isFile.stderr);
      assertOneSentence(isFile, /The results folder \S+results\.txt \(--out\) is a file, not a folder\./);
      const under = cli(runArgs(file, '--out', path.join(outFile, 'sub')));
      assert.equal(under.code, 2, under.stderr);
      assertOneSentence(under, /cannot be made: a part of it is a file\./);
      assert.deepEqual(snapshot(where), before);
      const out = path.join(where, 'out');
      mkdirSync(out);
      writeFileSync(path.join(out, jobId), "a file where the job's folder goes\n");
      const jobIsFile = cli(runArgs(file, '--out', out));
      assert.equal(jobIsFile.code, 2, jobIsFile.stderr);
      assertOneSentence(jobIsFile, new RegExp(`${jobId} is a file, not a results folder\\.`));
      assert.deepEqual(readdirSync(out), [jobId]);
    });
  });

  describe('one writer per results folder', () => {
    it('a second run, --resume and --rerun-failed on a folder a live process is writing: exit 2 naming its pid', async () => {
      const out = path.join(openDir('out'), 'results');
      const release = path.join(out, '..', 'release');
      const { file, jobId } = newJob([{ hold: release }], 60); // runs until released
      const dir = path.join(out, jobId);
      const child = spawn(process.execPath, [CLI, ...runArgs(file, '--out', out)], { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await waitFor(
        'the job to start',
        () => existsSync(path.join(dir, 'job.json')) && existsSync(path.join(dir, '.lock', 'owner.json')),
      );
      for (const args of [runArgs('--resume', dir), runArgs('--rerun-failed', dir), runArgs(file, '--out', out)]) {
        const refused = cli(args);
        assert.equal(refused.code, 2, `${args.join(' ')}: ${refused.stderr}`);
        assertOneSentence(
          refused,
          new RegExp(
            `The results folder \\S+ is being written by pid ${child.pid} on \\S+ \\(running job ${jobId}, since [^)]+\\); wait for it to end or stop it first\\.`,
          ),
        );
      }
      assert.equal(child.exitCode, null, 'the writer was still running through all three');
      writeFileSync(release, '');
      assert.equal(await exited, 0, 'the writer was not disturbed');
      assert.equal(simFiles(dir).length, 60);
      assert.equal(existsSync(path.join(dir, '.lock')), false);
    });

    it('a lock left by a killed run is taken over and said so; the resume completes', async () => {
      const { file, jobId } = newJob([{ sleep: 0.1 }], 30);
      const out = path.join(openDir('out'), 'results');
      const dir = path.join(out, jobId);
      const child = spawn(process.execPath, [CLI, ...runArgs(file, '--out', out)], { stdio: 'ignore', detached: true });
      await waitFor('some results', () => simFiles(dir).length >= 4);
      process.kill(-child.pid!, 'SIGKILL');
      await new Promise((resolve) => child.on('exit', resolve));
      assert.equal(readJson(path.join(dir, '.lock', 'owner.json')).pid, child.pid, 'the dead run left its lock');

      const resumed = cli([...runArgs('--resume', dir), '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const said = jsonEvents(resumed.stdout).find((e) => e.type === 'results-folder');
      assert.ok(said, resumed.stdout);
      assert.match(
        said.message,
        new RegExp(
          `^Took over the lock of \\S+ left by pid ${child.pid} \\(running job ${jobId}\\): pid ${child.pid} no longer exists\\.$`,
        ),
      );
      assert.ok(
        assertJsonLines(dir).some((e) => e.type === 'results-folder' && e.message === said.message),
        'and in events.jsonl',
      );
      assert.equal(simFiles(dir).length, 30);
      assert.equal(existsSync(path.join(dir, '.lock')), false);
    });
  });

  it('Ctrl-C while a runner is still starting: the job ends at once as interrupted with its manifest, and --resume finishes', async () => {
    const markers = openDir('markers');
    const dir = openDir('slow-start');
    // with MO_SLOW_IMPORT set, every runner but the first takes 30 s to import the bundle
    const bundle = writeBundle(path.join(dir, 'bundle'), {
      'wire.py': `import json, os, time

MARKERS = os.environ["MO_TEST_MARKERS"]

${FIRST_CALLS}
if os.environ.get("MO_SLOW_IMPORT") and not first_calls("import", 1):
    time.sleep(30)


def wire(entrypoint, params, seed):
    if os.environ.get("MO_SLOW_IMPORT"):
        time.sleep(0.05)  # the interrupted run is still at work when Ctrl-C comes; its resume need not be
    return {"value": json.dumps(seed % 1000).encode()}
`,
    });
    const file = path.join(dir, 'job.json');
    writeFileSync(
      file,
      JSON.stringify({ job_id: 'slow-start', bundle, entrypoint: 'e', parameter_sets: [{ a: 1 }], replicates: 200 }),
    );
    const out = path.join(dir, 'out');
    const job = path.join(out, 'slow-start');
    const child = spawn(process.execPath, [CLI, ...runArgs(file, '--out', out, '--ready-timeout', '120')], {
      env: { ...process.env, MO_TEST_MARKERS: markers, MO_SLOW_IMPORT: '1' },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitFor('the first results', () => simFiles(job).length >= 5);
    const interrupted = Date.now();
    child.kill('SIGINT');
    const code = await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve('still running 10 s after Ctrl-C'), 10_000)),
    ]);
    if (code !== 130) child.kill('SIGKILL');
    assert.equal(code, 130);
    assert.ok(Date.now() - interrupted < 10_000);
    const manifest = readJson(path.join(job, 'manifest.json'));
    assert.equal(manifest.status, 'interrupted');
    assert.equal(manifest.counts.sims.ok, simFiles(job).length);
    assert.equal(existsSync(path.join(job, '.lock')), false);

    const resumed = cli(runArgs('--resume', job), { env: { MO_TEST_MARKERS: markers } });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(simFiles(job).length, 200);
  });

  describe('--resume and --rerun-failed trust nothing on disk', () => {
    const tamperings: [string, (job: Record<string, any>) => void, RegExp][] = [
      [
        'a param_id of ../../x',
        (job) => (job.parameter_sets[0].param_id = '../../x'),
        /parameter_sets\[0\]\.param_id is "\.\.\/\.\.\/x", but its params hash to [0-9a-f]{64}/,
      ],
      [
        'params changed under their param_id',
        (job) => (job.parameter_sets[1].params.a = 3),
        /parameter_sets\[1\]\.param_id is "[0-9a-f]{64}", but its params hash to [0-9a-f]{64}/,
      ],
      [
        'a seed changed',
        (job) => (job.parameter_sets[0].seeds[2] += 1),
        /parameter_sets\[0\]\.seeds\[2\] is \d+, but replicate 2 of this param_id has seed \d+/,
      ],
      [
        'a job_id that is not its folder',
        (job) => (job.job_id = 'other'),
        /job_id is "other", but the results folder is "job\d+"/,
      ],
      ['an unknown field', (job) => (job.replicate = 3), /unknown field "replicate"/],
      [
        'a parameter that is a list',
        (job) => (job.parameter_sets[0].params.a = [1]),
        /parameter_sets\[0\]\.params\.a is a list/,
      ],
    ];
    for (const [what, tamper, message] of tamperings) {
      it(`job.json with ${what}: exit 2, validated like a new job file, nothing written anywhere`, () => {
        const { dir, out } = finishedFolder();
        const job = readJson(path.join(dir, 'job.json'));
        tamper(job);
        writeFileSync(path.join(dir, 'job.json'), JSON.stringify(job));
        const around = path.dirname(out);
        const before = snapshot(around);
        for (const flag of ['--resume', '--rerun-failed']) {
          const refused = cli(runArgs(flag, dir));
          assert.equal(refused.code, 2, refused.stderr);
          assertOneSentence(refused, message);
        }
        assert.deepEqual(snapshot(around), before, 'nothing written, inside the folder or out of it');
      });
    }

    it("the manifest records job.json's sha256; a resume takes exactly those bytes as checked (their seeds and param_ids are not hashed again) and checks any other bytes whole", async () => {
      const { dir } = finishedFolder();
      const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
      const manifestFile = path.join(dir, 'manifest.json');
      assert.equal(readJson(manifestFile).job_json_sha256, sha256(readFileSync(path.join(dir, 'job.json'), 'utf8')));
      const text = readFileSync(path.join(dir, 'job.json'), 'utf8');
      const seed = Number((await readJobJson(dir)).job.parameterSets[0].seeds[2]);
      assert.equal(text.split(String(seed)).length, 2, 'the seed appears once');
      const edited = text.replace(String(seed), String(seed + 1));
      writeFileSync(path.join(dir, 'job.json'), edited);
      // other bytes than the run recorded: every seed hashed again, the edit refused
      await assert.rejects(readJobJson(dir), /seeds\[2\] is \d+, but replicate 2 of this param_id has seed \d+/);
      // the same bytes recorded as checked (as if a run had written them): taken as they are
      writeFileSync(manifestFile, JSON.stringify({ ...readJson(manifestFile), job_json_sha256: sha256(edited) }));
      const trusted = await readJobJson(dir);
      assert.equal(trusted.jobJsonSha256, sha256(edited));
      assert.equal(trusted.job.parameterSets[0].seeds[2], seed + 1);
      // a manifest that is not JSON is no record: checked whole again
      writeFileSync(manifestFile, '{');
      await assert.rejects(readJobJson(dir), /seeds\[2\] is \d+/);

      // a parameter changed under its param_id: refused unless these bytes are the recorded ones
      const job = JSON.parse(text);
      const [name] = Object.keys(job.parameter_sets[0].params);
      job.parameter_sets[0].params[name] = 12345.5;
      const reparameterised = JSON.stringify(job);
      writeFileSync(path.join(dir, 'job.json'), reparameterised);
      await assert.rejects(readJobJson(dir), /parameter_sets\[0\]\.param_id is "[0-9a-f]{64}", but its params hash to/);
      writeFileSync(manifestFile, JSON.stringify({ job_json_sha256: sha256(reparameterised) }));
      const taken = await readJobJson(dir);
      assert.equal(taken.job.parameterSets[0].paramId, job.parameter_sets[0].param_id);
      assert.equal((taken.job.parameterSets[0].params[name] as { value: number }).value, 12345.5); // a PyFloat
      // even recorded bytes must hold param_ids of the right form
      job.parameter_sets[0].param_id = 'not-a-param-id';
      const malformed = JSON.stringify(job);
      writeFileSync(path.join(dir, 'job.json'), malformed);
      writeFileSync(manifestFile, JSON.stringify({ job_json_sha256: sha256(malformed) }));
      await assert.rejects(
        readJobJson(dir),
        /parameter_sets\[0\]\.param_id must be 64 hex digits, not "not-a-param-id"/,
      );
    });

    it('result files that are not results (a stub {"status":"ok"}, another seed, sizes that lie, a stub aggregation) run again and are not counted', () => {
      const { dir } = finishedFolder();
      const job = readJson(path.join(dir, 'job.json'));
      const [first, second] = job.parameter_sets;
      const sim = (set: any, i: number) => simRecord(dir, set.param_id, i);
      replaceSim(dir, first.param_id, 0, '{"status":"ok"}');
      const other = sim(first, 2);
      replaceSim(dir, first.param_id, 1, JSON.stringify({ ...other, key: `sim-${first.param_id}-1`, replicate: 1 })); // replicate 2's seed
      const lying = sim(second, 0);
      lying.outputs.value.size += 5;
      replaceSim(dir, second.param_id, 0, JSON.stringify(lying));
      writeFileSync(path.join(dir, 'aggs', `${second.param_id.slice(0, 16)}.json`), '{"status":"ok"}');
      rmSync(path.join(dir, 'aggs', `${first.param_id.slice(0, 16)}.json`)); // its sims are partly stubs: aggregated again

      const resumed = cli([...runArgs('--resume', dir), '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const events = jsonEvents(resumed.stdout);
      const start = events.find((e) => e.type === 'job-start');
      assert.equal(start.skipped_sims, 3, 'only the three real results count');
      const ran = events
        .filter((e) => e.type === 'task-done')
        .map((e) => e.key)
        .sort();
      assert.deepEqual(ran, [`sim-${first.param_id}-0`, `sim-${first.param_id}-1`, `sim-${second.param_id}-0`].sort());
      assert.deepEqual(
        events
          .filter((e) => e.type === 'agg-done')
          .map((e) => e.key)
          .sort(),
        [`agg-${first.param_id}`, `agg-${second.param_id}`].sort(),
      );
      const notice = events.find((e) => e.type === 'results-folder');
      assert.match(notice.message, /^4 records are not a valid result of this job, so their tasks run again: /);
      assert.match(notice.message, /jsonl line \d+ \(replicate is "undefined"/);
      assert.match(notice.message, /replicate 1 \(seed \d+ is not this replicate's seed \d+\)/);
      for (const [set, i] of [
        [first, 0],
        [first, 1],
        [second, 0],
      ] as const) {
        const record = sim(set, i);
        assert.equal(record.status, 'ok');
        assert.equal(record.seed, set.seeds[i]);
      }
      assert.equal(readJson(path.join(dir, 'manifest.json')).counts.sims.ok, 6);
    });

    it("a torn last line of a set's .jsonl (a kill mid-append) is cut on resume, said, and its replicate runs again; nothing else is lost", () => {
      const { dir } = finishedFolder();
      const job = readJson(path.join(dir, 'job.json'));
      const [first] = job.parameter_sets;
      const torn = simRecord(dir, first.param_id, 2);
      replaceSim(dir, first.param_id, 2);
      const line = JSON.stringify(torn);
      appendFileSync(simsFile(dir, first.param_id), line.slice(0, line.length >> 1)); // half a record, no newline
      rmSync(path.join(dir, 'aggs', `${first.param_id.slice(0, 16)}.json`)); // killed before the set aggregated
      assert.deepEqual(jsonLinesProblems(dir), [`${first.param_id.slice(0, 16)}.jsonl: a torn last line`]);

      const resumed = cli([...runArgs('--resume', dir), '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const events = jsonEvents(resumed.stdout);
      assert.equal(events.find((e) => e.type === 'job-start').skipped_sims, 5);
      assert.deepEqual(
        events.filter((e) => e.type === 'task-done').map((e) => e.key),
        [`sim-${first.param_id}-2`],
      );
      assert.ok(
        events.some(
          (e) =>
            e.type === 'results-folder' &&
            /^Cut a torn last line \(\d+ bytes\) off sims\/[0-9a-f]{16}\.jsonl, left by a run that was stopped mid-write/.test(
              e.message,
            ),
        ),
        resumed.stdout,
      );
      assert.deepEqual(jsonLinesProblems(dir), [], 'whole JSON Lines after');
      assert.equal(simKeys(dir).length, 6);
      assert.equal(simRecord(dir, first.param_id, 2).seed, first.seeds[2]);
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.equal(manifest.status, 'succeeded');
      assert.equal(manifest.layout, 2);
      assert.deepEqual(manifest.counts.sims, { total: 6, ok: 6, failed: 0, pending: 0 });
    });

    it('a set aggregated ok is counted from its aggregation: its .jsonl is not read on resume', () => {
      const { dir } = finishedFolder();
      const job = readJson(path.join(dir, 'job.json'));
      // were it read, these lines would be named as not results and the set's replicates run again
      for (const set of job.parameter_sets) writeFileSync(simsFile(dir, set.param_id), 'not a record\n');
      const resumed = cli([...runArgs('--resume', dir), '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const events = jsonEvents(resumed.stdout);
      assert.equal(events.find((e) => e.type === 'job-start').skipped_sims, 6);
      assert.deepEqual(
        events.filter((e) => e.type === 'task-done' || e.type === 'results-folder'),
        [],
      );
      assert.deepEqual(readJson(path.join(dir, 'manifest.json')).counts.sims, {
        total: 6,
        ok: 6,
        failed: 0,
        pending: 0,
      });
    });

    it('a folder of results layout 1 (a file per simulation) is read as it is, and converted to .jsonl by a resume, said', async () => {
      const { dir } = finishedFolder();
      const job = readJson(path.join(dir, 'job.json'));
      const [first, second] = job.parameter_sets;
      // what modelops-debugger 0.1.0 wrote before layout 2: sims/<param16>/<i>.json, no layout in the manifest
      for (const sim of simRecords(dir)) {
        mkdirSync(path.join(dir, 'sims', sim.set), { recursive: true });
        writeFileSync(path.join(dir, 'sims', sim.set, `${sim.replicate}.json`), sim.line);
      }
      for (const set of job.parameter_sets) rmSync(simsFile(dir, set.param_id));
      const manifest = readJson(path.join(dir, 'manifest.json'));
      delete manifest.layout;
      writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
      rmSync(path.join(dir, 'sims', first.param_id.slice(0, 16), '1.json'));
      rmSync(path.join(dir, 'aggs', `${first.param_id.slice(0, 16)}.json`));

      // read-only readers (the editor, replicate) read it as it is
      const spec = (await readJobJson(dir)).job;
      const read = await readSimResult(dir, spec.parameterSets[1], 2);
      assert.equal(read.state, 'found');
      assert.match(read.file, /\/sims\/[0-9a-f]{16}\/2\.json$/);
      assert.deepEqual((await readJobFolder(dir)).counts.sims, { total: 6, ok: 5, failed: 0, pending: 1 });

      const resumed = cli([...runArgs('--resume', dir), '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const events = jsonEvents(resumed.stdout);
      assert.deepEqual(
        events.filter((e) => e.type === 'task-done').map((e) => e.key),
        [`sim-${first.param_id}-1`],
      );
      assert.ok(
        events.some(
          (e) =>
            e.type === 'results-folder' &&
            /^Converted 2 parameter sets from results layout 1 \(a file per simulation, written by modelops-debugger 0\.1\.0 before results layout 2\) to layout 2/.test(
              e.message,
            ),
        ),
        resumed.stdout,
      );
      assert.deepEqual(readdirSync(path.join(dir, 'sims')).sort(), [
        ...[first, second].map((set) => `${set.param_id.slice(0, 16)}.jsonl`).sort(),
      ]);
      assert.deepEqual(jsonLinesProblems(dir), []);
      assert.equal(simKeys(dir).length, 6);
      const after = readJson(path.join(dir, 'manifest.json'));
      assert.equal(after.layout, 2);
      assert.deepEqual(after.counts.sims, { total: 6, ok: 6, failed: 0, pending: 0 });
    });

    it('a bundle changed since the run is refused; --allow-bundle-change runs it and the manifest records the change', () => {
      const { dir, bundle } = finishedFolder(true);
      const recorded = readJson(path.join(dir, 'job.json')).bundle_digest;
      assert.match(recorded, /^[0-9a-f]{64}$/, 'job.json records the digest at creation');
      replaceSim(dir, readdirSync(path.join(dir, 'sims'))[0], 0);
      writeFileSync(path.join(bundle, 'wire.py'), `${readFileSync(path.join(bundle, 'wire.py'), 'utf8')}\n# changed\n`);
      const before = snapshot(dir);
      const refused = cli(runArgs('--resume', dir));
      assert.equal(refused.code, 2, refused.stderr);
      assertOneSentence(
        refused,
        /The bundle \S+ changed since this job ran \(digest [0-9a-f]{12} then, [0-9a-f]{12} now\); its results would mix two bundles, so it is not resumed \(--allow-bundle-change runs it anyway\)\./,
      );
      assert.deepEqual(snapshot(dir), before);

      const allowed = cli([...runArgs('--resume', dir), '--allow-bundle-change']);
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.match(allowed.stderr, /⚠ The bundle changed since this job ran/);
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.deepEqual(manifest.bundle_change, {
        recorded,
        now: manifest.environment.bundle.digest,
        allowed_by: '--allow-bundle-change',
      });
      assert.notEqual(recorded, manifest.environment.bundle.digest);
    });

    it('symbolic links in the results folder are refused (events.jsonl, a sims folder, the folder itself), and nothing is written outside', () => {
      const { dir, out } = finishedFolder();
      const around = path.dirname(out);
      const outside = path.join(around, 'outside.jsonl');
      writeFileSync(outside, 'precious\n');
      const events = path.join(dir, 'events.jsonl');
      rmSync(events);
      symlinkSync(outside, events);
      const before = snapshot(around);
      const refused = cli(runArgs('--resume', dir));
      assert.equal(refused.code, 2, refused.stderr);
      assertOneSentence(
        refused,
        /\S+\/events\.jsonl is a symbolic link; a results folder holds only the files this tool wrote, so it is not resumed \(remove the link\)\./,
      );
      assert.deepEqual(snapshot(around), before);
      assert.equal(readFileSync(outside, 'utf8'), 'precious\n');

      rmSync(events);
      writeFileSync(events, '');
      const set = readdirSync(path.join(dir, 'sims'))[0];
      const elsewhere = path.join(around, 'elsewhere');
      cpSync(path.join(dir, 'sims', set), elsewhere, { recursive: true });
      rmSync(path.join(dir, 'sims', set), { recursive: true });
      symlinkSync(elsewhere, path.join(dir, 'sims', set));
      const linkedSims = cli(runArgs('--rerun-failed', dir));
      assert.equal(linkedSims.code, 2, linkedSims.stderr);
      assertOneSentence(linkedSims, new RegExp(`sims/${set} is a symbolic link`));

      const link = path.join(around, 'linked-folder');
      symlinkSync(dir, link);
      const linkedFolder = cli(runArgs('--resume', link));
      assert.equal(linkedFolder.code, 2, linkedFolder.stderr);
      assertOneSentence(linkedFolder, /linked-folder is a symbolic link; give the results folder itself\./);
      assert.equal(readFileSync(outside, 'utf8'), 'precious\n');
    });

    it('a FIFO in place of job.json or events.jsonl is refused at once (reading it would wait for ever), nothing written', () => {
      for (const name of ['job.json', 'events.jsonl']) {
        const { dir, out } = finishedFolder();
        const around = path.dirname(out);
        rmSync(path.join(dir, name));
        const made = spawnSync('mkfifo', [path.join(dir, name)], { encoding: 'utf8' });
        assert.equal(made.status, 0, made.stderr);
        const before = snapshot(around);
        const refused = cli(runArgs('--resume', dir)); // spawnSync: a blocked read would hit the test's timeout
        assert.equal(refused.code, 2, refused.stderr);
        assertOneSentence(
          refused,
          new RegExp(
            `\\S+/${name.replace('.', '\\.')} is not a regular file; a results folder holds only the files this tool wrote, so it is not resumed \\(remove it\\)\\.`,
          ),
        );
        assert.deepEqual(snapshot(around), before);
      }
    });
  });
});
