/**
 * Every way a simulation can end, on the Dask backend (a real scheduler and workers on
 * 127.0.0.1): the same kinds, messages and lines as locally (test/unit/endings.test.ts).
 */
import * as assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { assertEveryEnding, cli, endingsJob, ENDINGS_BUNDLE, simRecords, writeJob } from '../shared/endings';
import { events, readJson, scratchDir } from '../unit/helpers';
import { clusterForSuite, DaskCluster } from './cluster';

const scratch = scratchDir('mo-endings-dask-');

describe('every way a simulation can end, on Dask (a real scheduler and two workers on 127.0.0.1)', function () {
  this.timeout(240_000);
  const cluster = clusterForSuite();

  it('the same kinds, messages and raising lines as locally; the warm runners on the workers survive every ending', () => {
    const out = path.join(scratch, 'out-endings-dask');
    const result = cli([
      'run',
      endingsJob('endings-dask'),
      '--out',
      out,
      '--backend',
      'dask',
      '--scheduler',
      cluster().address,
      '--task-timeout',
      '20',
    ]);
    assert.equal(result.code, 1, result.stderr);
    const dir = path.join(out, 'endings-dask');
    assertEveryEnding(dir);
    // one thread per worker, one warm runner each: every simulation ran in one of at most two pids
    const pids = new Set(simRecords(dir).map((s) => s.pid));
    assert.ok(pids.size <= 2 && [...pids].every((pid) => Number.isInteger(pid)), `pids: ${[...pids]}`);
    const log = events(dir);
    assert.ok(log.filter((e) => e.type === 'process-start').length <= 2, 'no runner was started again');
    for (const sim of simRecords(dir))
      assert.ok(sim.evidence === undefined || sim.evidence.notes.some((n: string) => /^on Dask worker tcp:/.test(n)));
  });

  it("workers whose venvs directory is a file: venv-create-failed naming the worker's path and the errno, exit 3, not protocol-error", async () => {
    const file = path.join(scratch, 'worker-venvs-is-a-file');
    writeFileSync(file, 'not a directory\n');
    const broken = await DaskCluster.start({ workers: 1, env: { MODELOPS_VENVS_DIR: file } });
    try {
      const job = writeJob({
        job_id: 'homeless-workers',
        bundle: ENDINGS_BUNDLE,
        entrypoint: 'a/b',
        parameter_sets: [{ mode: 'ok' }],
        replicates: 2,
      });
      const out = path.join(scratch, 'out-homeless-workers');
      const result = cli(['run', job, '--out', out, '--backend', 'dask', '--scheduler', broken.address]);
      assert.equal(result.code, 3, result.stderr);
      const manifest = readJson(path.join(out, 'homeless-workers', 'manifest.json'));
      assert.deepEqual([manifest.status, manifest.failure.kind], ['aborted', 'venv-create-failed']);
      assert.match(
        manifest.failure.message,
        new RegExp(
          `^The venvs directory ${file} on Dask worker tcp://127\\.0\\.0\\.1:\\d+ cannot be used: could not put the job's bundle in place at ${file}/\\.dask-runner \\(ENOTDIR: not a directory\\)`,
        ),
      );
    } finally {
      await broken.stop();
    }
  });
});
