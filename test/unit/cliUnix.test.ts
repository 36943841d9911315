/**
 * The command line as a Unix citizen: real `node dist/cli.js` processes whose stdout is closed
 * under them, that get hang-ups and terminations, that are handed FIFOs, devices, the root of
 * the file system and folders they cannot write to; and timeouts that race a runner's exit,
 * fuzzed on WarmProcess directly and end to end.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { checkBundleDir, MAX_BUNDLE_FILES } from '../../src/engine/bundle/bundleDir';
import { Failure, type FailureKind } from '../../src/engine/failure';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { simRecords } from '../shared/simRecords';
import { CLI, events, readJson, ROOT, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-unix-');
let counter = 0;
const EXAMPLE_BUNDLE = path.join(ROOT, 'examples', 'sir', 'bundle');

function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  const started = performance.now();
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  return {
    code: result.status,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
    ms: performance.now() - started,
  };
}

/** cli() without blocking this process, so that runs started together wait out their timeouts together. */
function cliAsync(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 120_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  child.stdin!.end(); // as spawnSync leaves it: an empty stdin
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

function writeJob(job: unknown): string {
  const file = path.join(scratch, `job-${++counter}.json`);
  writeFileSync(file, typeof job === 'string' ? job : JSON.stringify(job));
  return file;
}

/** A bundle whose simulations take `SLEEP_MS` each: long enough to be stopped halfway, short enough to finish. */
function sleepyBundle(): string {
  return writeBundle(path.join(scratch, `sleepy-${++counter}`), {
    'wire.py':
      'import json, time\n\n\ndef wire(entrypoint, params, seed):\n    time.sleep(params["sleep_ms"] / 1000.0)\n    return {"value": json.dumps(seed % 1000).encode()}\n',
  });
}

function simCount(dir: string): number {
  return simRecords(dir).length;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

async function until(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What an engine that crashed leaves on stderr: never acceptable, whatever the outcome. */
function assertNoCrash(stderr: string): void {
  assert.doesNotMatch(
    stderr,
    /internal error|Unexpected engine error|Unhandled|TimeoutOverflowWarning|\n\s+at .+:\d+:\d+\)?\n/,
    stderr,
  );
}

describe('the CLI as a Unix citizen', function () {
  this.timeout(180_000);

  describe('run --json | head -1: stdout closed under the job', () => {
    it("the job finishes and writes its manifest; the first EPIPE is said once on stderr, later ones are ignored; exit 0 (the job's own code)", async () => {
      const bundle = sleepyBundle();
      const job = writeJob({
        job_id: 'epipe',
        bundle,
        entrypoint: 'a.b/c',
        parameter_sets: [{ sleep_ms: 2 }, { sleep_ms: 3 }],
        replicates: 100,
      });
      const out = path.join(scratch, 'out-epipe');
      const child = spawn(process.execPath, [CLI, 'run', job, '--out', out, '--json', '--workers', '2'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      let stdout = '';
      // head -1: read the first line, then close the read end of the pipe
      await new Promise<void>((resolve) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('\n')) {
            child.stdout!.destroy();
            resolve();
          }
        });
      });
      const { code } = await exited(child);
      assert.equal(JSON.parse(stdout.split('\n')[0]).type, 'job-start');
      const dir = path.join(out, 'epipe');
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.equal(manifest.status, 'succeeded', stderr);
      assert.deepEqual(manifest.counts.sims, { total: 200, ok: 200, failed: 0, pending: 0 });
      assert.equal(manifest.counts.aggregations.ok, 2);
      assert.equal(simCount(dir), 200);
      assert.equal(events(dir).at(-1)!.type, 'job-done', 'every event is still in events.jsonl');
      // exit code: the job's outcome. A reader that stops early (head) is ordinary use, not a
      // failure of the job, and not 141 (SIGPIPE), which `set -o pipefail` would treat as one.
      assert.equal(code, 0, stderr);
      assert.equal(stderr.match(/stdout was closed \(EPIPE\)/g)?.length, 1, stderr);
      assertNoCrash(stderr);
    });

    it('2>&1 | head -1: with stderr closed as well, the job still finishes (exit 0, manifest succeeded)', async () => {
      const job = writeJob({
        job_id: 'both-closed',
        bundle: sleepyBundle(),
        entrypoint: 'a.b/c',
        parameter_sets: [{ sleep_ms: 1 }],
        replicates: 150,
      });
      const out = path.join(scratch, 'out-both-closed');
      const child = spawn(process.execPath, [CLI, 'run', job, '--out', out, '--workers', '2'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      await new Promise<void>((resolve) => {
        child.stderr!.once('data', () => {
          child.stdout!.destroy();
          child.stderr!.destroy();
          resolve();
        });
      });
      const { code } = await exited(child);
      assert.equal(code, 0);
      const manifest = readJson(path.join(out, 'both-closed', 'manifest.json'));
      assert.equal(manifest.status, 'succeeded');
      assert.equal(simCount(path.join(out, 'both-closed')), 150);
    });
  });

  describe('stop signals: SIGHUP like SIGINT and SIGTERM, exit 128 + the signal', () => {
    // 128 + signal number, as a shell reports a process that signal killed: scripts and
    // supervisors tell a hang-up (129) from a Ctrl-C (130) and a termination (143)
    const cases: [NodeJS.Signals, number, 'process' | 'group'][] = [
      ['SIGHUP', 129, 'process'],
      ['SIGHUP', 129, 'group'], // a closed terminal signals the whole foreground job, runners too
      ['SIGTERM', 143, 'process'],
      ['SIGINT', 130, 'process'],
    ];
    for (const [signal, expected, target] of cases) {
      it(`${signal} to the ${target === 'group' ? 'process group (a terminal hang-up)' : 'CLI'}: manifest interrupted, exit ${expected}, --resume finishes`, async () => {
        const jobId = `stop-${signal}-${target}`;
        const job = writeJob({
          job_id: jobId,
          bundle: sleepyBundle(),
          entrypoint: 'a.b/c',
          parameter_sets: [{ sleep_ms: 5 }, { sleep_ms: 6 }],
          replicates: 150,
        });
        const out = path.join(scratch, `out-${jobId}`);
        const child = spawn(process.execPath, [CLI, 'run', job, '--out', out, '--workers', '2'], {
          stdio: ['ignore', 'ignore', 'pipe'],
          detached: target === 'group',
        });
        let stderr = '';
        child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const dir = path.join(out, jobId);
        await until('20 results', () => simCount(dir) >= 20);
        if (target === 'group') process.kill(-child.pid!, signal);
        else child.kill(signal);
        const { code } = await exited(child);
        assert.equal(code, expected, stderr);
        assert.match(stderr, new RegExp(`interrupted by ${signal}: stopping the runners and writing the manifest`));
        assertNoCrash(stderr);
        const manifest = readJson(path.join(dir, 'manifest.json'));
        assert.equal(manifest.status, 'interrupted');
        assert.equal(manifest.exit_code, expected);
        assert.equal(manifest.interrupted_by, signal);
        assert.ok(manifest.counts.sims.pending > 0, JSON.stringify(manifest.counts));
        assert.equal(
          manifest.counts.sims.failed,
          0,
          'runners stopped by the same signal are not failures of their tasks',
        );
        const resumed = cli(['run', '--resume', dir]);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(simCount(dir), 300);
        assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
      });
    }
  });

  describe('a stop signal at an awkward moment still ends the job', () => {
    it('SIGHUP while the runner is being prepared (before any runner started): interrupted at once, not ignored', async () => {
      // a "python" that takes a second for everything it runs: the signal lands in the preparation
      const slowPython = path.join(scratch, 'slow-python');
      writeFileSync(slowPython, '#!/bin/sh\nsleep 1\nexec python3 "$@"\n');
      chmodSync(slowPython, 0o755);
      const job = writeJob({
        job_id: 'early-hup',
        bundle: sleepyBundle(),
        entrypoint: 'a.b/c',
        parameter_sets: [{ sleep_ms: 20 }],
        replicates: 300,
      });
      const out = path.join(scratch, 'out-early-hup');
      const child = spawn(process.execPath, [CLI, 'run', job, '--out', out, '--workers', '2', '--python', slowPython], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      await until('the job to start', () => /job early-hup: 300 simulations/.test(stderr));
      child.kill('SIGHUP');
      const { code } = await exited(child);
      assert.equal(code, 129, stderr);
      const manifest = readJson(path.join(out, 'early-hup', 'manifest.json'));
      assert.equal(manifest.status, 'interrupted');
      assert.equal(manifest.counts.sims.pending, 300, 'nothing ran after the signal');
    });

    it('Ctrl-C or SIGHUP while crashed runners are being replaced: the CLI ends (it used to wait forever)', async () => {
      const bundle = writeBundle(path.join(scratch, 'crashy'), {
        'wire.py':
          'import os, signal, time\n\n\ndef wire(entrypoint, params, seed):\n    time.sleep(0.01)\n    os.kill(os.getpid(), signal.SIGKILL)\n',
      });
      const job = writeJob({
        job_id: 'crashy',
        bundle,
        entrypoint: 'a.b/c',
        parameter_sets: [{ x: 1 }],
        replicates: 300,
      });
      for (const [round, signal] of (['SIGINT', 'SIGHUP', 'SIGINT', 'SIGHUP'] as const).entries()) {
        const out = path.join(scratch, `out-crashy-${round}`);
        const child = spawn(process.execPath, [CLI, 'run', job, '--out', out, '--workers', '2'], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        await until('crashes being retried', () => (stderr.match(/retrying /g)?.length ?? 0) > round + 1);
        child.kill(signal);
        const ended = await Promise.race([
          exited(child),
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000)),
        ]);
        if (!ended) child.kill('SIGKILL');
        assert.ok(ended, `round ${round}: the CLI did not end within 20 s of ${signal}`);
        assert.equal(ended.code, signal === 'SIGINT' ? 130 : 129, stderr);
        assert.equal(readJson(path.join(out, 'crashy', 'manifest.json')).status, 'interrupted');
      }
    });
  });

  describe('a job file that is not a regular file: exit 2 at once, one sentence', () => {
    let baselineMs = 0;
    before(() => {
      // "at once" is measured against the CLI's own start-up on this (shared, busy) machine
      baselineMs = cli(['--version']).ms;
    });
    const fifo = path.join(scratch, 'job.fifo');
    const socket = path.join(scratch, 'job.sock');
    let server: net.Server;
    before(async () => {
      assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
      server = net.createServer();
      await new Promise<void>((resolve) => server.listen(socket, resolve));
    });
    after(() => server.close());

    const cases: [string, () => string[], RegExp][] = [
      [
        'a FIFO (opening it would block forever)',
        () => ['run', fifo],
        /job\.fifo is a FIFO \(named pipe\), not a job file\.\n$/,
      ],
      [
        '/dev/null (a device)',
        () => ['run', '/dev/null'],
        /^modelops-debugger: \/dev\/null is a character device, not a job file\.\n$/,
      ],
      [
        '/dev/zero (reading it would never end)',
        () => ['run', '/dev/zero'],
        /^modelops-debugger: \/dev\/zero is a character device, not a job file\.\n$/,
      ],
      ['a Unix socket', () => ['run', socket], /job\.sock is a socket, not a job file\.\n$/],
      [
        'a directory without --params',
        () => ['run', scratch],
        /is a bundle directory: give --params FILE and --replicates N too \(or a job file\)\.\n$/,
      ],
      [
        'a parameters file that is a FIFO',
        () => ['run', EXAMPLE_BUNDLE, '--params', fifo, '--replicates', '1'],
        /job\.fifo is a FIFO \(named pipe\), not a parameters file\.\n$/,
      ],
      [
        'a parameters file that is /dev/zero',
        () => ['run', EXAMPLE_BUNDLE, '--params', '/dev/zero', '--replicates', '1'],
        /\/dev\/zero is a character device, not a parameters file\.\n$/,
      ],
      [
        'a job whose bundle is a FIFO',
        () => ['run', writeJob({ bundle: fifo, entrypoint: 'a.b/c', parameter_sets: [{ x: 1 }], replicates: 1 })],
        /job\.fifo is a FIFO \(named pipe\), not a bundle directory\.\n$/,
      ],
      [
        'a transcript to replay that is a FIFO',
        () => ['handshake', EXAMPLE_BUNDLE, '--replay', fifo],
        /job\.fifo is a FIFO \(named pipe\), not a transcript\./,
      ],
    ];
    for (const [what, args, message] of cases) {
      it(what, () => {
        const out = path.join(scratch, `out-special-${++counter}`);
        const argv = args();
        const { code, stderr, stdout, ms } = cli([...argv, ...(argv[0] === 'run' ? ['--out', out] : [])], {}, 15_000);
        assert.equal(code, 2, stdout + stderr);
        assert.match(stdout + stderr, message);
        assert.ok(ms < baselineMs + 1000, `took ${ms.toFixed(0)} ms (start-up alone: ${baselineMs.toFixed(0)} ms)`);
        assert.equal(existsSync(out), false, 'nothing written');
      });
    }
  });

  describe('replicates written as a float', () => {
    it('replicates: 1.0 is 1, and 2.0 is 2', () => {
      for (const [text, expected] of [
        ['1.0', 1],
        ['2.0', 2],
        ['1e0', 1],
      ] as const) {
        const jobId = `float-${++counter}`;
        const job = writeJob(
          `{"job_id": "${jobId}", "bundle": "${EXAMPLE_BUNDLE}", "entrypoint": "models.sir/baseline", "parameter_sets": [{"beta": 0.3, "gamma": 0.1}, {"beta": 0.4, "gamma": 0.1}], "replicates": ${text}}`,
        );
        const out = path.join(scratch, `out-${jobId}`);
        const { code, stderr } = cli(['run', job, '--out', out]);
        assert.equal(code, 0, stderr);
        const normalised = readJson(path.join(out, jobId, 'job.json'));
        assert.deepEqual(
          normalised.parameter_sets.map((s: { seeds: unknown[] }) => s.seeds.length),
          [expected, expected],
          text,
        );
        assert.equal(simCount(path.join(out, jobId)), 2 * expected);
      }
    });

    for (const [text, shown] of [
      ['1.5', '1.5'],
      ['-1', '-1'],
      ['"1"', '"1"'],
      ['0.0', '0'],
      ['true', 'true'],
      ['1e400', 'Infinity'],
      ['99999999999999999999', '99999999999999999999'],
      ['null', 'null'],
    ]) {
      it(`replicates: ${text} is refused naming the field`, () => {
        const job = writeJob(
          `{"bundle": "${EXAMPLE_BUNDLE}", "entrypoint": "models.sir/baseline", "parameter_sets": [{"beta": 0.3}], "replicates": ${text}}`,
        );
        const out = path.join(scratch, `out-reps-${++counter}`);
        const { code, stderr } = cli(['run', job, '--out', out]);
        assert.equal(code, 2, stderr);
        assert.equal(
          stderr,
          `modelops-debugger: ${job}: replicates must be a whole number from 1 to 10000000, not ${shown}.\n`,
        );
        assert.equal(existsSync(out), false);
      });
    }
  });

  describe('a bundle that is not a project folder: refused before anything is created', () => {
    const root = path.join(scratch, 'to-root');
    const many = path.join(scratch, 'many-files');
    const nested = path.join(scratch, 'many-nested');
    before(() => {
      symlinkSync('/', root);
      mkdirSync(many);
      for (let i = 0; i <= MAX_BUNDLE_FILES; i++) writeFileSync(path.join(many, `f${i}.txt`), '');
      writeFileSync(path.join(many, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
      for (let d = 0; d < 11; d++) {
        mkdirSync(path.join(nested, `d${d}`, 'sub'), { recursive: true });
        for (let i = 0; i < 1000; i++) writeFileSync(path.join(nested, `d${d}`, 'sub', `f${i}.py`), '');
      }
      writeFileSync(path.join(nested, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
    });

    const cases: [string, () => string, RegExp][] = [
      ['the root of the file system', () => '/', /^\/ is the root of the file system, not a bundle directory\.$/],
      ['a symbolic link to /', () => root, /to-root \(\/\) is the root of the file system, not a bundle directory\.$/],
      [
        `${MAX_BUNDLE_FILES + 2} files in one folder`,
        () => many,
        /many-files holds more than 10000 files, too many for a bundle directory/,
      ],
      [
        '11 000 files in nested folders',
        () => nested,
        /many-nested holds more than 10000 files, too many for a bundle directory/,
      ],
      ['/usr (a tree far larger, counted with an early stop)', () => '/usr', /^\/usr holds more than 10000 files/],
    ];
    for (const [what, dir, message] of cases) {
      it(`${what}: run (job file and shortcut) and handshake exit 2; no results folder, no venv`, () => {
        const venvs = path.join(scratch, `venvs-${++counter}`);
        const env = { MODELOPS_VENVS_DIR: venvs };
        const job = writeJob({
          job_id: 'big',
          bundle: dir(),
          entrypoint: 'a.b/c',
          parameter_sets: [{ x: 1 }],
          replicates: 1,
        });
        const params = writeJob([{ x: 1 }]);
        const outs = [path.join(scratch, `out-bundle-${counter}-a`), path.join(scratch, `out-bundle-${counter}-b`)];
        for (const [args, out] of [
          [['run', job, '--out', outs[0]], outs[0]],
          [['run', dir(), '--params', params, '--replicates', '1', '--out', outs[1]], outs[1]],
          [['handshake', dir()], undefined],
        ] as const) {
          const { code, stderr, stdout } = cli([...args], env, 30_000);
          assert.equal(code, 2, stdout + stderr);
          const line =
            (stdout + stderr)
              .trim()
              .split('\n')
              .find((l) => /root of the file system|too many/.test(l)) ?? stdout + stderr;
          assert.match(line.replace(/^(modelops-debugger|✘ bad-input): /, ''), message);
          if (out) assert.equal(existsSync(out), false, 'no results folder');
          assert.equal(existsSync(venvs), false, 'no venv');
        }
      });
    }

    it(`exactly ${MAX_BUNDLE_FILES} files is a bundle; files under .git, node_modules, .venv and __pycache__ do not count`, async () => {
      const dir = path.join(scratch, 'just-enough');
      mkdirSync(dir);
      for (let i = 0; i < MAX_BUNDLE_FILES; i++) writeFileSync(path.join(dir, `f${i}.txt`), '');
      for (const skipped of ['.git', 'node_modules', '.venv', '__pycache__']) {
        mkdirSync(path.join(dir, skipped));
        for (let i = 0; i < 500; i++) writeFileSync(path.join(dir, skipped, `x${i}`), '');
      }
      assert.equal(await checkBundleDir(dir), dir);
      writeFileSync(path.join(dir, 'one-more.txt'), '');
      await assert.rejects(
        checkBundleDir(dir),
        (error: Failure) => error.kind === 'bad-input' && /holds more than 10000 files/.test(error.message),
      );
    });
  });

  describe('handshake --transcript where it cannot be written: exit 2 before the handshake', () => {
    // a "python" that leaves a mark whenever anything runs it: no mark, no runner (nor probe) started
    const marker = path.join(scratch, 'python-ran');
    const python = path.join(scratch, 'marking-python');
    before(() => {
      writeFileSync(python, `#!/bin/sh\ntouch '${marker}'\nexec python3 "$@"\n`);
      chmodSync(python, 0o755);
    });
    const blocked = path.join(scratch, 'transcript.fifo');
    const cases: [string, () => string, RegExp][] = [
      [
        'a missing folder',
        () => path.join(scratch, 'no-such-folder', 't.json'),
        /^--transcript .*no-such-folder\/t\.json: the folder .*no-such-folder does not exist\.$/,
      ],
      [
        'a folder that is a file',
        () => path.join(ROOT, 'package.json', 't.json'),
        /^--transcript .*package\.json\/t\.json: .*package\.json is not a folder\.$/,
      ],
      ['a path that is a directory', () => scratch, /^--transcript .* is a directory, not a file to write\.$/],
      [
        'a FIFO (a write would block)',
        () => (spawnSync('mkfifo', [blocked]), blocked),
        /^--transcript .*transcript\.fifo is a FIFO \(named pipe\), not a file to write\.$/,
      ],
    ];
    for (const [what, file, message] of cases) {
      it(what, () => {
        const { code, stdout, stderr } = cli(
          ['handshake', EXAMPLE_BUNDLE, '--python', python, '--transcript', file()],
          {},
          30_000,
        );
        assert.equal(code, 2, stdout + stderr);
        assert.match(stderr.replace(/^modelops-debugger: /, '').trim(), message);
        assert.equal(existsSync(marker), false, 'no runner was started');
      });
    }

    it('a writable path: the handshake runs (the marking python does mark) and the transcript is written', () => {
      const file = path.join(scratch, 'ok.transcript.json');
      const { code, stdout } = cli(['handshake', EXAMPLE_BUNDLE, '--python', python, '--transcript', file], {}, 60_000);
      assert.equal(code, 0, stdout);
      assert.equal(existsSync(marker), true);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).version, 1);
    });
  });

  describe("timeouts that race a runner's exit never crash the engine", () => {
    /**
     * wire(): sleeps `delay_ms` (about the timeout), then answers, exits, crashes, or, asked for
     * its stacks (SIGUSR1 on a timeout), exits instead of dumping them. At import it may sleep
     * and exit too, to race --ready-timeout.
     */
    const RACY_WIRE = `import os, signal, time

_delay = os.environ.get("MO_IMPORT_DELAY_MS")
if _delay:
    time.sleep(int(_delay) / 1000.0)
if os.environ.get("MO_IMPORT_EXIT"):
    os._exit(int(os.environ["MO_IMPORT_EXIT"]))


def _exit_now(signum, frame):
    os._exit(0)


def wire(entrypoint, params, seed):
    mode = params["mode"]
    if mode == "usr1-exit":
        signal.signal(signal.SIGUSR1, _exit_now)
    time.sleep(params["delay_ms"] / 1000.0)
    if mode == "exit":
        os._exit(0)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "usr1-exit" or mode == "hang":
        time.sleep(3)
    return {"value": b"1"}
`;
    const MODES = ['answer', 'exit', 'crash', 'usr1-exit', 'hang'] as const;
    const TYPED: FailureKind[] = ['task-timeout', 'process-crashed', 'handshake-timeout', 'runner-exited-before-ready'];
    let racy: string;
    let python: string;
    before(async () => {
      racy = writeBundle(path.join(scratch, 'racy'), { 'wire.py': RACY_WIRE });
      python = (await resolvePython()).path;
    });

    /** A small deterministic generator: a failing run can be replayed with MO_FUZZ_SEED. */
    function prng(seed: number): () => number {
      let state = seed >>> 0;
      return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
    }

    it('WarmProcess, 50 runs: timeouts of 1–50 ms against runners that answer, exit, crash or die on the stack-dump signal at about that time', async () => {
      const seed = Number(process.env.MO_FUZZ_SEED ?? Date.now() % 1e9);
      const random = prng(seed);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const outcomes: string[] = [];
      try {
        const one = async (run: number) => {
          const timeoutMs = 1 + Math.floor(random() * 50);
          const delayMs = Math.max(0, timeoutMs + Math.floor(random() * 21) - 10);
          const mode = MODES[Math.floor(random() * MODES.length)];
          const raceReady = run % 5 === 0; // every fifth run races the ready timeout instead
          const logFile = path.join(scratch, `fuzz-${seed}-${run}.stderr`);
          // as in jobs: stderr straight to a file, closed as soon as the runner is done with
          const fd = openSync(logFile, 'a');
          const env: Record<string, string> = raceReady
            ? { MO_IMPORT_DELAY_MS: String(delayMs), ...(random() < 0.5 ? { MO_IMPORT_EXIT: '0' } : {}) }
            : {};
          const runner = WarmProcess.start({
            python,
            runnerScript: ourRunnerScript(),
            bundleDir: racy,
            venvPath: '',
            bundleDigest: 'fuzz',
            env,
            stderrFile: { path: logFile, fd },
          });
          void runner.exited.then(() => {
            runner.closeStderr();
            closeSync(fd);
          });
          const what = `run ${run} (seed ${seed}): ${raceReady ? `ready within ${timeoutMs} ms, import ${JSON.stringify(env)}` : `${mode} after ${delayMs} ms, timeout ${timeoutMs} ms`}`;
          const settle = async (promise: Promise<unknown>): Promise<string> => {
            let timer: NodeJS.Timeout | undefined;
            const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('HUNG'), 15_000)));
            const outcome = promise.then(
              () => 'ok',
              (error: unknown) => (error instanceof Failure ? error.kind : `NOT A FAILURE: ${String(error)}`),
            );
            const result = await Promise.race([outcome, hung]);
            clearTimeout(timer);
            return result;
          };
          let outcome = await settle(runner.ready(raceReady ? timeoutMs : 20_000));
          if (!raceReady) {
            assert.equal(outcome, 'ok', `${what}: ready`);
            outcome = await settle(
              runner.request(
                ExecuteRequest.type,
                { entrypoint: 'a.b/c', params: { mode, delay_ms: delayMs }, seed: run },
                { timeoutMs },
              ),
            );
          }
          outcomes.push(`${what} → ${outcome}`);
          assert.ok(outcome === 'ok' || TYPED.includes(outcome as FailureKind), `${what} ended in ${outcome}`);
          await runner.kill();
          await new Promise((resolve) => setTimeout(resolve, 20)); // let the exit handlers run
        };
        // three at a time: the machine is shared, and load is part of the race
        for (let run = 0; run < 50; run += 3) {
          await Promise.all([run, run + 1, run + 2].filter((r) => r < 50).map(one));
        }
        // the stack-dump wait outlives a runner that exits during it: give it time to end
        await new Promise((resolve) => setTimeout(resolve, 2000));
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      assert.deepEqual(unhandled.map(String), [], `seed ${seed}:\n${outcomes.join('\n')}`);
      assert.equal(outcomes.length, 50);
    });

    it('the CLI, a handful of runs with --task-timeout / --ready-timeout of 0.001–0.05 s: exit 0, 1 or 3, a manifest, no internal error', async () => {
      const job = writeJob({
        job_id: 'racy',
        bundle: racy,
        entrypoint: 'a.b/c',
        parameter_sets: MODES.flatMap((mode) => [5, 30].map((delay_ms) => ({ mode, delay_ms }))),
        replicates: 1,
      });
      const runs: [string, string, Record<string, string>][] = [
        ['0.001', '30', {}],
        ['0.01', '30', {}],
        ['0.02', '30', {}],
        ['0.05', '30', {}],
        ['0.02', '0.001', {}],
        ['0.02', '0.05', { MO_IMPORT_DELAY_MS: '40' }],
        ['0.02', '0.05', { MO_IMPORT_DELAY_MS: '45', MO_IMPORT_EXIT: '0' }],
      ];
      // all at once: most of a run is waiting out hung tasks' timeouts and stack dumps, and the load of
      // the others is part of the race
      const codes = await Promise.all(
        runs.map(async ([taskTimeout, readyTimeout, env]) => {
          const out = path.join(scratch, `out-racy-${++counter}`);
          const timeouts = ['--task-timeout', taskTimeout, '--ready-timeout', readyTimeout];
          const { code, stderr } = await cliAsync(['run', job, '--out', out, '--workers', '2', ...timeouts], env);
          const what = `--task-timeout ${taskTimeout} --ready-timeout ${readyTimeout} ${JSON.stringify(env)}`;
          assert.ok(code === 0 || code === 1 || code === 3, `${what}: exit ${code}\n${stderr}`);
          assertNoCrash(stderr);
          const manifest = readJson(path.join(out, 'racy', 'manifest.json'));
          assert.equal(manifest.exit_code, code, what);
          assert.ok(['succeeded', 'failed', 'aborted'].includes(manifest.status), what);
          if (manifest.status === 'aborted')
            assert.ok(TYPED.includes(manifest.failure.kind), `${what}: aborted with ${manifest.failure.kind}`);
          return code!;
        }),
      );
      // the runs with room to start: tasks ended one way or another, typed
      assert.ok(
        codes.slice(0, 4).every((c) => c === 1),
        `with tiny task timeouts every job has failed tasks: ${codes}`,
      );
    });

    it('a timeout beyond what a timer can wait is refused (Node would fire it at once)', () => {
      const { code, stderr } = cli([
        'run',
        path.join(ROOT, 'examples', 'sir', 'job.json'),
        '--task-timeout',
        '3000000',
      ]);
      assert.equal(code, 2);
      assert.match(
        stderr,
        /--task-timeout <seconds>' argument '3000000' is invalid\. expected at most 2147483 seconds \(24\.8 days\)/,
      );
    });
  });
});
