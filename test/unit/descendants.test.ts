/**
 * Descendants of runners: simulations that start processes which outlive their task (a
 * multiprocessing helper, an os.fork child, subprocess.Popen with and without the runner's
 * pipes, with setsid, a double-forked daemon). Real `modelops-debugger run` processes, real
 * runners, real descendants that would sleep for an hour: the job ends, the CLI exits within
 * 2 s of its last result, the runner's process group is ended with it, escaped processes are
 * reported (named, with their command line and the bundle line that started them) and left
 * running, never waited for. The tests end what escaped, by pid.
 */
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runJob } from '../../src/engine/job/run';
import { ResultsStore } from '../../src/engine/job/results';
import { jobFromParamsFile } from '../../src/engine/job/spec';
import type { JobEvent } from '../../src/engine/job/events';
import {
  alive,
  assertEndsPromptly,
  assertWarned,
  descendantBundle,
  endLeftRunning,
  EXIT_BOUND_MS,
  leftRunning,
  lingeringWarnings,
  PYTHON,
  runCli,
} from '../shared/descendants';
import { lineOf, oneRunner, PROD_RUNNER, scratchDir } from './helpers';

const scratch = scratchDir('mo-desc-');
let counter = 0;

describe('descendants of runners', function () {
  this.timeout(120_000);
  after(endLeftRunning);

  it('a multiprocessing (fork) helper that sleeps for an hour: the job ends, the CLI exits within 2 s, the helper is ended with the group and reported at its start() line', async () => {
    const bundle = descendantBundle(
      'mp-fork',
      'def helper():\n    time.sleep(3600)\n',
      '    multiprocessing.get_context("fork").Process(target=helper).start()  # MARK:start',
    );
    const run = await runCli(bundle);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /modelops_runner\.py/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'start'),
    });
    for (const d of found) assert.equal(alive(d.pid), false, `pid ${d.pid} was ended`);
  });

  it('an os.fork() child that sleeps (holding every fd the runner had): ended with the group, reported at the fork line', async () => {
    const bundle = descendantBundle(
      'os-fork',
      '',
      '    if os.fork() == 0:  # MARK:fork\n        time.sleep(3600)\n        os._exit(0)',
    );
    const run = await runCli(bundle);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /modelops_runner\.py/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'fork'),
    });
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it('subprocess.Popen of a long sleep inheriting the runner stdout/stderr: ended with the group, reported with its command line', async () => {
    const bundle = descendantBundle('popen-inherit', '', '    subprocess.Popen(["sleep", "3601"])  # MARK:popen');
    const run = await runCli(bundle);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3601$/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it('subprocess.Popen sharing no fds (all to /dev/null): ended with the group, reported', async () => {
    const bundle = descendantBundle(
      'popen-devnull',
      '',
      '    subprocess.Popen(["sleep", "3602"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # MARK:popen',
    );
    const run = await runCli(bundle);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3602$/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it('subprocess.Popen with os.setsid (start_new_session): escaped the group, so reported as escaped and left running, not waited for', async () => {
    const bundle = descendantBundle(
      'popen-setsid',
      '',
      '    subprocess.Popen(["sleep", "3603"], start_new_session=True)  # MARK:popen',
    );
    const run = await runCli(bundle);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3603$/,
      escaped: true,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    found.forEach((d) => leftRunning.add(d.pid));
    assertEndsPromptly(run);
    for (const d of found) assert.equal(alive(d.pid), true, `escaped pid ${d.pid} is reported, not killed`);
    assert.match(lingeringWarnings(run)[0].message, /escaped its process group \(setsid\)/);
  });

  it('a double-forked daemon (fork, setsid, fork; re-parented to init): found through its session, reported at the first fork, left running', async () => {
    const bundle = descendantBundle(
      'daemon',
      '',
      [
        '    if os.fork() == 0:  # MARK:fork',
        '        os.setsid()',
        '        if os.fork() == 0:',
        '            time.sleep(3600)',
        '        os._exit(0)',
        '    os.wait()',
      ].join('\n'),
    );
    const run = await runCli(bundle);
    const found = assertWarned(run, bundle, {
      command: /modelops_runner\.py/,
      escaped: true,
      line: lineOf(path.join(bundle, 'wire.py'), 'fork'),
    });
    found.forEach((d) => leftRunning.add(d.pid));
    assertEndsPromptly(run);
    for (const d of found) {
      assert.equal(alive(d.pid), true);
      if (process.platform === 'linux')
        assert.match(readFileSync(`/proc/${d.pid}/stat`, 'latin1'), /\) S 1 /, 'the daemon was re-parented to init');
    }
  });

  it("production's runner (no spawn reports): an os.fork child holding the protocol pipes no longer keeps the CLI alive; the child is named by pid and command, without a line", async () => {
    const bundle = descendantBundle(
      'prod-fork',
      '',
      '    if os.fork() == 0:\n        time.sleep(3600)\n        os._exit(0)',
    );
    const run = await runCli(bundle, ['--runner', PROD_RUNNER, '--workers', '1', '--queue-depth', '1'], 1);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, { command: /prod_style_runner\.py/, escaped: false });
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it("production's runner and a setsid daemon holding the protocol pipes: the CLI still exits within 2 s; the daemon is reported as escaped", async () => {
    const bundle = descendantBundle(
      'prod-daemon',
      '',
      // the parent waits until the child has left the group, so the report cannot race the setsid
      [
        '    ready_r, ready_w = os.pipe()',
        '    if os.fork() == 0:',
        '        os.setsid()',
        '        os.write(ready_w, b"x")',
        '        time.sleep(3600)',
        '        os._exit(0)',
        '    os.read(ready_r, 1)',
      ].join('\n'),
    );
    const run = await runCli(bundle, ['--runner', PROD_RUNNER, '--workers', '1', '--queue-depth', '1'], 1);
    const found = assertWarned(run, bundle, { command: /prod_style_runner\.py/, escaped: true });
    found.forEach((d) => leftRunning.add(d.pid));
    assertEndsPromptly(run);
    for (const d of found) assert.equal(alive(d.pid), true);
  });

  it('--max-reuse 1: each runner is retired after its task and its group is ended then, before the job ends', async () => {
    // each task takes 0.6 s, so a runner ended when it is retired ends while later tasks run
    const bundle = descendantBundle(
      'retire',
      '',
      '    subprocess.Popen(["sleep", "3604"])  # MARK:popen\n    time.sleep(0.6)',
    );
    const run = await runCli(bundle, ['--max-reuse', '1', '--workers', '1', '--queue-depth', '1'], 3);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3604$/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    assert.equal(found.length, 3);
    const ends = run.events.filter((e) => e.type === 'process-end');
    for (const warning of lingeringWarnings(run)) {
      const index = run.events.indexOf(warning);
      const end = ends.find((e) => e.pid === warning.pid);
      assert.ok(end, `the runner ${warning.pid} ended`);
      assert.match(end.why, /--max-reuse/);
      assert.ok(run.events.indexOf(end) > index, 'the warning comes with its runner retirement');
    }
    // the first runners were retired (and their sleeps ended) while later tasks still ran
    const firstEnd = run.events.indexOf(ends[0]);
    const lastDone = run.events.map((e) => e.type).lastIndexOf('task-done');
    assert.ok(firstEnd < lastDone, 'a retired runner is ended at once, not at the end of the job');
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it('a task that hangs waiting on its child: at the timeout the runner is killed and the child with it (task-timeout, the sleep reported)', async () => {
    const bundle = descendantBundle('hang-on-child', '', '    subprocess.run(["sleep", "3605"])  # MARK:run');
    const run = await runCli(
      bundle,
      ['--task-timeout', '1', '--retries', '0', '--workers', '1', '--queue-depth', '1'],
      1,
    );
    assert.equal(run.code, 1, run.stderr);
    assert.ok(run.afterLastResultMs < EXIT_BOUND_MS);
    const done = run.events.find((e) => e.type === 'task-done')!;
    assert.equal(done.kind, 'task-timeout');
    const [warning] = lingeringWarnings(run);
    assert.equal(warning.key, done.key);
    assert.equal(warning.descendants[0].command, 'sleep 3605');
    assert.equal(warning.location.line, lineOf(path.join(bundle, 'wire.py'), 'run'));
    assert.equal(alive(warning.descendants[0].pid), false);
  });

  it('Ctrl-C (SIGINT to the CLI, whose runners are in their own sessions): the runners and their descendants are ended, exit 130', async () => {
    const bundle = descendantBundle('interrupt', '', '    subprocess.Popen(["sleep", "3606"])\n    time.sleep(3600)');
    const pids: number[] = [];
    const run = await runCli(bundle, ['--workers', '1', '--queue-depth', '1'], 1, (event, child) => {
      if (event.type === 'task-start') {
        pids.push(event.pid);
        setTimeout(() => child.kill('SIGINT'), 500);
      }
    });
    assert.equal(run.code, 130, run.stderr);
    assert.equal(pids.length, 1);
    assert.equal(alive(pids[0]), false, 'the runner was ended');
    const [warning] = lingeringWarnings(run);
    assert.equal(warning?.descendants[0].command, 'sleep 3606');
    assert.equal(alive(warning.descendants[0].pid), false);
  });

  it('the editor path (stderr followed live through a pipe): a setsid child holding that pipe neither delays runJob nor leaves a pipe handle open', async () => {
    const bundle = descendantBundle(
      'follow-stderr',
      '',
      '    subprocess.Popen(["sleep", "3607"], start_new_session=True)\n    sys.stderr.write("started\\n")',
    );
    const params = path.join(scratch, `params-${++counter}.json`);
    writeFileSync(params, JSON.stringify([{ x: 1.0 }]));
    const job = await jobFromParamsFile({
      bundleDir: bundle,
      paramsFile: params,
      replicates: 2,
      entrypoint: 'main',
      targets: [],
    });
    const store = await ResultsStore.create(path.join(scratch, `out-${counter}`), job);
    const pipesBefore = process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap').length;
    const seen: JobEvent[] = [];
    let stderr = '';
    let lastResult = 0;
    const outcome = await runJob(job, store, {
      ...oneRunner(PYTHON),
      onRunnerStderr: (_pid, chunk) => (stderr += chunk.toString('utf8')),
      onEvent: (event) => {
        seen.push(event);
        if (event.type === 'agg-done') lastResult = performance.now();
      },
    });
    const afterLastResult = performance.now() - lastResult;
    assert.equal(outcome.status, 'succeeded');
    assert.ok(
      afterLastResult < EXIT_BOUND_MS,
      `runJob returned ${Math.round(afterLastResult)} ms after the last result`,
    );
    assert.match(stderr, /started/);
    const warnings = seen.filter((e) => e.type === 'warning' && e.kind === 'lingering-descendants') as Extract<
      JobEvent,
      { type: 'warning' }
    >[];
    assert.equal(warnings.length, 2);
    for (const w of warnings)
      for (const d of w.descendants ?? []) {
        leftRunning.add(d.pid);
        assert.equal(d.escaped, true);
        assert.equal(alive(d.pid), true);
      }
    await new Promise((resolve) => setImmediate(resolve));
    const pipesAfter = process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap').length;
    assert.ok(
      pipesAfter <= pipesBefore,
      `pipe handles before ${pipesBefore}, after ${pipesAfter}: our ends of the runner's pipes were closed`,
    );
  });

  it('a simulation that starts nothing gets no warning', async () => {
    const bundle = descendantBundle('quiet', '', '    subprocess.run(["true"])');
    const run = await runCli(bundle);
    assertEndsPromptly(run);
    assert.deepEqual(lingeringWarnings(run), []);
  });
});
