/**
 * Large legal results on the Dask backend (a real scheduler and two workers on 127.0.0.1): the
 * same random-byte outputs as test/unit/frames.test.ts, through the workers.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MB, randomBundle } from '../shared/frames';
import { CLI, events, lineOf, PROD_RUNNER, readJson, scratchDir } from '../unit/helpers';
import { simRecord } from '../shared/simRecords';
import { clusterForSuite } from './cluster';

const scratch = scratchDir('mo-frames-dask-');

describe('large frames: the Dask backend (a real scheduler and two workers on 127.0.0.1)', function () {
  this.timeout(600_000);
  const cluster = clusterForSuite({ startTimeoutMs: 180_000 });

  function daskRun(name: string, sets: Record<string, unknown>[], replicates: number, extra: string[] = []) {
    const bundle = randomBundle(`dask-${name}`);
    const file = path.join(scratch, `dask-${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({ job_id: name, bundle, entrypoint: 'frames.m/x', parameter_sets: sets, replicates }),
    );
    const out = path.join(scratch, 'dask-out');
    const result = spawnSync(
      process.execPath,
      [CLI, 'run', file, '--out', out, '--backend', 'dask', '--scheduler', cluster().address, ...extra],
      { encoding: 'utf8', timeout: 400_000 },
    );
    return {
      code: result.status,
      stderr: result.stderr,
      dir: path.join(out, name),
      wire: path.join(bundle, 'wire.py'),
    };
  }

  function sims(dir: string): Record<string, any>[] {
    const job = readJson(path.join(dir, 'job.json'));
    return job.parameter_sets.flatMap((set: Record<string, any>) =>
      set.seeds.map((_: unknown, i: number) => simRecord(dir, set.param_id, i)),
    );
  }

  it('8 MB and 20 MB random-byte outputs are results (two 20 MB replicates in one set: one report frame each)', () => {
    const run = daskRun('big', [{ mb: 8 }, { mb: 20 }], 2);
    assert.equal(run.code, 0, run.stderr);
    const records = sims(run.dir);
    assert.deepEqual(
      records.map((s) => [s.status, s.outputs.data.size]),
      [8, 8, 20, 20].map((mb) => ['ok', Math.floor((mb * MB) / 3) * 3]),
    );
    for (const sim of records) {
      const data = Buffer.from(sim.outputs.data.inline, 'base64');
      assert.equal(
        createHash('sha256').update(data).digest('hex'),
        Buffer.from(sim.outputs.sha256.inline, 'base64').toString(),
      );
      for (const token of ['NaN', 'Infinity', '1234567890123456']) assert.ok(sim.outputs.data.inline.includes(token));
    }
  });

  it('--max-frame-mb 1: an over-cap output is result-too-large at its return line, at the local path; the set under the cap succeeds', () => {
    const run = daskRun('capped', [{ mb: 2 }, { mb: 0.5 }], 1, ['--max-frame-mb', '1']);
    assert.equal(run.code, 1, run.stderr);
    const [big, small] = sims(run.dir);
    assert.equal(big.status, 'failed');
    assert.equal(big.kind, 'result-too-large');
    assert.match(big.message, /^Output "data" is 2\.0 MB \(2\.7 MB encoded\)/);
    assert.deepEqual([big.location.file, big.location.line], [run.wire, lineOf(run.wire, 'return')]);
    assert.equal(small.status, 'ok');
  });

  it('the production-style runner on a worker: its over-cap answer is passed unread by the worker, result-too-large; the runner stays warm', () => {
    const run = daskRun('capped-prod', [{ mb: 2 }, { mb: 0.5 }], 2, ['--max-frame-mb', '1', '--runner', PROD_RUNNER]);
    assert.equal(run.code, 1, run.stderr);
    const records = sims(run.dir);
    assert.deepEqual(
      records.map((s) => [s.status, s.kind]),
      [
        ['failed', 'result-too-large'],
        ['failed', 'result-too-large'],
        ['ok', undefined],
        ['ok', undefined],
      ],
    );
    assert.match(records[0].message, /^The result of 2\.7 MB exceeds the 1\.0 MB frame cap/);
    const log = events(run.dir);
    assert.deepEqual(
      log.filter((e) => e.type === 'process-end'),
      [],
      'no runner was retired for it',
    );
  });
});
