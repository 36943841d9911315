/**
 * Descendants of runners on the Dask backend: the same checks as test/unit/descendants.test.ts,
 * with the runners on the workers of a real cluster on 127.0.0.1.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import {
  alive,
  assertEndsPromptly,
  assertWarned,
  descendantBundle,
  endLeftRunning,
  leftRunning,
  lingeringWarnings,
  processesRunning,
  runCli,
} from '../shared/descendants';
import { lineOf } from '../unit/helpers';
import { clusterForSuite, DaskCluster } from './cluster';

describe('descendants of runners on the Dask backend (a real scheduler and two workers on 127.0.0.1)', function () {
  this.timeout(240_000);
  after(endLeftRunning);
  const cluster = clusterForSuite();

  const dask = () => ['--backend', 'dask', '--scheduler', cluster().address];

  it('subprocess.Popen of a long sleep (inheriting the runner fds): the job ends, the CLI exits within 2 s, each task is warned about at its line, the worker retired the runner and ended its group', async () => {
    const bundle = descendantBundle('dask-popen', '', '    subprocess.Popen(["sleep", "3610"])  # MARK:popen');
    const run = await runCli(bundle, dask(), 3);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3610$/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    for (const warning of lingeringWarnings(run)) assert.match(warning.worker, /^tcp:\/\/127\.0\.0\.1:/);
    for (const d of found) assert.equal(alive(d.pid), false, `pid ${d.pid} was ended on the worker`);
    const retired = run.events.filter((e) => e.type === 'process-end' && e.why === 'its task left processes running');
    assert.equal(retired.length, 3);
  });

  it('an os.fork child and a multiprocessing helper: ended with the group, reported at their lines', async () => {
    const bundle = descendantBundle(
      'dask-fork',
      'def helper():\n    time.sleep(3600)\n',
      [
        '    multiprocessing.get_context("fork").Process(target=helper).start()  # MARK:mp',
        '    if os.fork() == 0:  # MARK:fork',
        '        time.sleep(3600)',
        '        os._exit(0)',
      ].join('\n'),
    );
    const run = await runCli(bundle, dask(), 2);
    assertEndsPromptly(run);
    const found = assertWarned(run, bundle, {
      command: /modelops_runner\.py/,
      escaped: false,
      line: lineOf(path.join(bundle, 'wire.py'), 'mp'),
      perTask: 2,
    });
    for (const d of found) assert.equal(alive(d.pid), false);
  });

  it('subprocess.Popen with setsid on a worker: reported as escaped and left running, the job still ends promptly', async () => {
    const bundle = descendantBundle(
      'dask-setsid',
      '',
      '    subprocess.Popen(["sleep", "3611"], start_new_session=True)  # MARK:popen',
    );
    const run = await runCli(bundle, dask(), 2);
    const found = assertWarned(run, bundle, {
      command: /^sleep 3611$/,
      escaped: true,
      line: lineOf(path.join(bundle, 'wire.py'), 'popen'),
    });
    found.forEach((d) => leftRunning.add(d.pid));
    assertEndsPromptly(run);
    for (const d of found) assert.equal(alive(d.pid), true);
  });

  it("worker teardown ends an idle runner's process group (a descendant started below Python, which the runner cannot report)", async function () {
    if (process.platform !== 'linux') this.skip(); // finds the sleep through /proc
    const own = await DaskCluster.start({ workers: 1, env: { MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR! } });
    try {
      // os.system forks in C: no report, so the runner stays warm on the worker with it
      const bundle = descendantBundle('dask-teardown', '', '    os.system("sleep 3612 &")');
      const run = await runCli(bundle, ['--backend', 'dask', '--scheduler', own.address], 1);
      assertEndsPromptly(run);
      const sleeps = processesRunning('sleep 3612');
      assert.equal(sleeps.length, 1, 'the background sleep runs on the worker after the job');
      await own.stop();
      assert.equal(alive(sleeps[0]), false, 'stopping the worker ended the runner and its group');
    } finally {
      await own.stop();
    }
  });
});
