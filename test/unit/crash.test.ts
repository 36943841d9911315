/**
 * A runner that dies under a task, and a task that writes to stdout behind the runner's back:
 * what the event stream, the result files and the command line say, from real runners.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { StderrMarks } from '../../src/engine/process/stderrMarks';
import { WarmProcess, type StderrSpan } from '../../src/engine/process/warmProcess';
import { simRecord } from '../shared/simRecords';
import { bundle, CLI, events, lineOf, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-crash-');
const CRASH_BUNDLE = bundle('crash-kinds');
const WIRE = path.join(CRASH_BUNDLE, 'wire.py');
const MODES = ['ok', 'segv', 'exit17', 'sigkill', 'thread-print', 'child-echo'];

function cli(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('crashes and stray stdout, on every surface', () => {
  let log: Record<string, any>[];
  let dir: string;
  let human: string;
  const byMode = (mode: string) =>
    log.find((e) => e.type === 'task-done' && e.key.endsWith(`-0`) && taskMode(e.key) === mode)!;
  const keyOf = new Map<string, string>();
  const taskMode = (key: string) => keyOf.get(key);

  before(function () {
    this.timeout(240_000);
    const job = path.join(scratch, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({
        job_id: 'crashes',
        bundle: CRASH_BUNDLE,
        entrypoint: 'a/b',
        parameter_sets: MODES.map((mode) => ({ mode })),
        replicates: 1,
      }),
    );
    const result = cli(['run', job, '--out', path.join(scratch, 'out'), '--workers', '1', '--retries', '0', '--json']);
    assert.equal(result.code, 1, result.stderr);
    // the same job without --json: the lines a person reads
    human = cli(['run', job, '--out', path.join(scratch, 'out-human'), '--workers', '1', '--retries', '0']).stderr;
    dir = path.join(scratch, 'out', 'crashes');
    log = events(dir);
    const sets = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8')).parameter_sets as {
      param_id: string;
      params: { mode: string };
    }[];
    for (const set of sets) keyOf.set(`sim-${set.param_id}-0`, set.params.mode);
    assert.deepEqual(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).type),
      log.map((e) => e.type),
      '--json prints the events of events.jsonl',
    );
  });

  it('SIGSEGV: the signal, the phase, the last stderr lines and the faulthandler stack, located at the bundle line', () => {
    const done = byMode('segv');
    assert.equal(done.kind, 'process-crashed');
    assert.match(
      done.message,
      /^Runner was killed by SIGSEGV \(signal 11\).* during the simulation at crash_in_native\(\)$/,
    );
    assert.deepEqual([done.location.file, done.location.line], [WIRE, lineOf(WIRE, 'segv')]);
    assert.equal(done.crash.signal, 'SIGSEGV');
    assert.equal(done.crash.exit_code, null);
    assert.match(done.crash.phase, /^during the simulation/);
    assert.deepEqual(
      done.crash.stderr_lines,
      [`computing mode=segv seed=${seedOf(done.key)}`],
      'its own line, without the fault dump',
    );
    const frames = done.crash.stack.map((f: any) => `${f.function}:${f.line}`);
    const at = frames.indexOf(`crash_in_native:${lineOf(WIRE, 'segv')}`);
    assert.deepEqual(
      frames.slice(at, at + 2),
      [`crash_in_native:${lineOf(WIRE, 'segv')}`, `wire:${lineOf(WIRE, 'segv-call')}`],
      'innermost first',
    );
    assert.ok(
      done.crash.stack.every((f: any) => !/modelops_(debugger_)?runner\.py$/.test(f.file)),
      "the runner's own frames are not the stack shown",
    );
    // the command line says the same
    assert.ok(
      human.includes(`✘ ${done.key}: process-crashed: ${done.message} (${WIRE}:${lineOf(WIRE, 'segv')})`),
      human,
    );
  });

  it('os._exit(17): the exit code, the phase, and the line that called it', () => {
    const done = byMode('exit17');
    assert.equal(
      done.message,
      'Runner exited with code 17 during the simulation: the bundle called os._exit(17) in wire()',
    );
    assert.deepEqual([done.location.file, done.location.line], [WIRE, lineOf(WIRE, 'exit17')]);
    assert.equal(done.crash.exit_code, 17);
    assert.equal(done.crash.signal, null);
    assert.equal(done.crash.stderr_lines[0], `computing mode=exit17 seed=${seedOf(done.key)}`);
    const record = simRecord(dir, done.key.slice(4, 68), 0);
    assert.equal(record.evidence.exitCode, 17, 'the result file keeps the evidence');
    assert.deepEqual(record.stderr, done.stderr, 'and the stderr range');
  });

  it('SIGKILL: named, with the phase and the stderr line before it', () => {
    const done = byMode('sigkill');
    assert.match(done.message, /^Runner was killed by SIGKILL \(signal 9\).* during the simulation$/);
    assert.equal(done.crash.signal, 'SIGKILL');
    assert.deepEqual(done.crash.stderr_lines, [`computing mode=sigkill seed=${seedOf(done.key)}`]);
  });

  it("each task's stderr range in its runner's log holds its own line and no other task's", () => {
    for (const mode of MODES) {
      const done = byMode(mode);
      assert.ok(done.stderr, `${mode}: no stderr range`);
      assert.match(done.stderr.log, /^logs\/runner-\d+\.stderr$/);
      const bytes = readFileSync(path.join(dir, done.stderr.log))
        .subarray(done.stderr.start, done.stderr.end)
        .toString();
      const computing = bytes.split('\n').filter((line) => line.startsWith('computing '));
      assert.deepEqual(
        computing,
        [`computing mode=${mode} seed=${seedOf(done.key)}`],
        `${mode}: ${JSON.stringify(bytes)}`,
      );
    }
  });

  it("a background thread's print and a child process's echo after ready are stdout-pollution warnings on their task, at their line", () => {
    const warnings = log.filter((e) => e.type === 'warning' && e.kind === 'stdout-pollution');
    const thread = warnings.find((w) => w.key === byMode('thread-print').key);
    assert.ok(thread, JSON.stringify(warnings));
    assert.match(
      thread.message,
      /^print from thread "chatty" during execute wrote "hello from a thread\\n" to stdout; this runner absorbed it, but it would corrupt the production runner's frames/,
    );
    assert.deepEqual([thread.location.file, thread.location.line], [WIRE, lineOf(WIRE, 'thread-print')]);
    const child = warnings.find((w) => w.key === byMode('child-echo').key);
    assert.ok(child, JSON.stringify(warnings));
    assert.match(
      child.message,
      /^write to fd 1 \(a child process or C code\) during execute wrote "hello from a child\\n" to stdout; this runner absorbed it/,
    );
    assert.deepEqual([child.location.file, child.location.line], [WIRE, lineOf(WIRE, 'child-echo')]);
    assert.equal(warnings.length, 2, JSON.stringify(warnings));
    // what is said about a task comes after its start, even when the task ended too fast for its
    // start to be announced otherwise (JobBook.taskStarted)
    for (const warning of warnings) {
      const start = log.findIndex((e) => e.type === 'task-start' && e.key === warning.key);
      assert.ok(start >= 0 && start < log.indexOf(warning), `${warning.key}: task-start before its warning`);
      assert.ok(log[start].t <= warning.t);
    }
    assert.ok(human.includes(`⚠ ${thread.message}`), human);
  });

  function seedOf(key: string): string {
    const job = JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8')) as {
      parameter_sets: { param_id: string; seeds: number[] }[];
    };
    return String(job.parameter_sets.find((s) => key.startsWith(`sim-${s.param_id}`))!.seeds[0]);
  }
});

describe("a task's stderr when the engine reads it through a pipe (the editor)", () => {
  it('marks split the stream exactly, whatever the chunks, and take nothing else', () => {
    const stream = Buffer.from('a\n\0MO|7\0b\0c\n\0MO|8\0\0MO|x\0');
    for (let cut = 0; cut <= stream.length; cut++) {
      const marks = new StderrMarks();
      const pieces = [...marks.split(stream.subarray(0, cut)), ...marks.split(stream.subarray(cut))];
      const rest = marks.flush();
      const flat: (string | number)[] = [];
      for (const piece of pieces) {
        if ('mark' in piece) flat.push(piece.mark);
        else if (typeof flat.at(-1) === 'string') flat[flat.length - 1] += piece.data.toString('latin1');
        else flat.push(piece.data.toString('latin1'));
      }
      if (rest) flat.push(rest.toString('latin1'));
      const joined = flat.reduce<(string | number)[]>(
        (out, part) =>
          typeof part === 'string' && typeof out.at(-1) === 'string'
            ? [...out.slice(0, -1), `${out.at(-1)}${part}`]
            : [...out, part],
        [],
      );
      assert.deepEqual(joined, ['a\n', 7, 'b\0c\n', 8, '\0MO|x\0'], `cut at ${cut}`);
    }
  });

  it('three requests queued at once: each span holds exactly its own stderr, and each chunk is tagged with its task', async () => {
    const python = (await resolvePython()).path;
    const dir = writeBundle(path.join(scratch, 'pipe'), {
      'wire.py':
        'import sys\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("task %d\\n" % seed)\n    return {"v": b"1"}\n',
    });
    const seen: { text: string; tag: string | undefined }[] = [];
    const runner = WarmProcess.start({
      python,
      runnerScript: ourRunnerScript(),
      bundleDir: dir,
      venvPath: '',
      bundleDigest: 'd',
      onStderr: (chunk, tag) => seen.push({ text: chunk.toString(), tag }),
    });
    try {
      await runner.ready(20_000);
      const spans: StderrSpan[] = [{}, {}, {}];
      await Promise.all(
        spans.map((span, i) =>
          runner.request(
            ExecuteRequest.type,
            { entrypoint: 'a/b', params: {}, seed: i + 1 },
            { timeoutMs: 20_000, tag: `t${i + 1}`, span },
          ),
        ),
      );
      const all = seen.map((s) => s.text).join('');
      assert.ok(!all.includes('\0'), 'no mark reaches the log or the channel');
      assert.deepEqual(
        spans.map((s) => all.slice(s.start, s.end)),
        ['task 1\n', 'task 2\n', 'task 3\n'],
      );
      const tagged = seen.flatMap((s) =>
        s.text
          .split('\n')
          .filter(Boolean)
          .map((line) => `${s.tag}:${line}`),
      );
      assert.deepEqual(tagged, ['t1:task 1', 't2:task 2', 't3:task 3']);
    } finally {
      await runner.shutdown();
    }
  });
});

describe('an answer is the answer of its own request', function () {
  this.timeout(60_000);

  it("a raise answered just before the runner exits (the next queued task's os._exit(17)) is a task-exception without that exit", async () => {
    const dir = writeBundle(path.join(scratch, 'raise-then-exit'), {
      'wire.py':
        'import os\n\n\ndef wire(entrypoint, params, seed):\n    if params["mode"] == "raise":\n        raise ValueError("x must not be 2")\n    os._exit(17)\n',
    });
    const python = (await resolvePython('/usr/bin/python3')).path;
    for (let round = 0; round < 5; round++) {
      const runner = WarmProcess.start({
        python,
        runnerScript: ourRunnerScript(),
        bundleDir: dir,
        venvPath: '',
        bundleDigest: 'test',
        // stderr followed as the editor follows it: answers are delivered a turn later, after
        // the stderr read with them, by when the runner's exit may have been seen
        onStderr: () => undefined,
      });
      try {
        await runner.ready(30_000);
        const ask = (mode: string) =>
          runner
            .request(ExecuteRequest.type, { entrypoint: 'm/x', params: { mode }, seed: 1 }, { timeoutMs: 30_000 })
            .then(
              () => assert.fail(`${mode} answered`),
              (failure: { kind: string; evidence: { exitCode?: number | null } }) => failure,
            );
        const raised = ask('raise');
        const exited = ask('exit');
        // the engine busy meanwhile: the answer and the exit are read in the same turn
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
        const [raise, exit] = await Promise.all([raised, exited]);
        assert.equal(raise.kind, 'task-exception');
        assert.equal(
          raise.evidence.exitCode,
          undefined,
          `round ${round}: the raise carries the exit that came after it`,
        );
        assert.equal(exit.evidence.exitCode, 17);
      } finally {
        await runner.kill();
      }
    }
  });
});
