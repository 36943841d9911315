/**
 * A job as its results folder tells it (src/engine/job/onDisk.ts): what the editor's Jobs tree
 * is rebuilt from. Real jobs, real runners; the folder is then changed as a kill would leave it.
 */
import * as assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { freshJobId, readJobFolder, runsOf } from '../../src/engine/job/onDisk';
import { ResultsExist, ResultsStore } from '../../src/engine/job/results';
import { runJob } from '../../src/engine/job/run';
import { jobFromParamsFile } from '../../src/engine/job/spec';
import { replaceSim } from '../shared/simRecords';
import { oneRunner, scratchDir, writeBundle } from './helpers';

const PYTHON = '/usr/bin/python3';

describe('a job read back from its results folder', () => {
  const scratch = scratchDir('mo-ondisk-');

  it('every result, each aggregation, the status and the warnings, as the folder holds them; a run killed mid-way is interrupted', async () => {
    const bundle = writeBundle(path.join(scratch, 'bundle'), {
      'wire.py':
        'import subprocess\n\ndef wire(entrypoint, params, seed):\n    if params["x"] == 2.0:\n        raise ValueError("x must not be 2")\n    if params["x"] == 3.0:\n        subprocess.Popen(["sleep", "3611"])\n    return {"value": b"1"}\n',
    });
    writeFileSync(path.join(scratch, 'params.json'), JSON.stringify([{ x: 1.5 }, { x: 2.0 }, { x: 3.0 }]));
    const job = await jobFromParamsFile({
      bundleDir: bundle,
      paramsFile: path.join(scratch, 'params.json'),
      replicates: 3,
      entrypoint: 'main',
      targets: [],
      jobId: 'disk-job',
    });
    const out = path.join(scratch, 'out');
    const store = await ResultsStore.create(out, job);
    const outcome = await runJob(job, store, oneRunner(PYTHON));
    assert.equal(outcome.status, 'failed');

    const disk = await readJobFolder(outcome.dir);
    assert.equal(disk.status, 'failed');
    assert.deepEqual(disk.counts, outcome.counts);
    const [healthy, failing, forking] = job.parameterSets.map((set) => disk.sets.get(set.paramId)!);
    assert.deepEqual(
      [...healthy.sims.values()].map((r) => r.status),
      ['ok', 'ok', 'ok'],
    );
    assert.equal(healthy.agg?.status, 'ok');
    assert.deepEqual(
      [...failing.sims.values()].map((r) => r.kind),
      ['task-exception', 'task-exception', 'task-exception'],
    );
    assert.equal(failing.agg?.status, 'skipped');
    assert.equal(forking.agg?.status, 'ok');
    const lingering = disk.warnings.get(`sim-${job.parameterSets[2].paramId}-0`) ?? [];
    assert.equal(lingering[0]?.kind, 'lingering-descendants', JSON.stringify([...disk.warnings.keys()]));
    assert.deepEqual(disk.problems, []);

    // killed mid-way through a resume: a job-start with no job-done, a result and an aggregation missing, a torn line
    replaceSim(outcome.dir, job.parameterSets[0].paramId, 2);
    rmSync(store.aggFile(job.parameterSets[0].paramId));
    appendFileSync(
      path.join(outcome.dir, 'events.jsonl'),
      `${JSON.stringify({ t: new Date().toISOString(), type: 'job-start', job_id: 'disk-job' })}\n{"t":"2026-`,
    );
    const killed = await readJobFolder(outcome.dir);
    assert.equal(killed.status, 'interrupted');
    assert.equal(killed.failure, undefined);
    assert.deepEqual(killed.counts.sims, { total: 9, ok: 5, failed: 3, pending: 1 });
    assert.deepEqual(killed.counts.aggregations, { total: 3, ok: 1, failed: 0, skipped: 1, pending: 1 });
    assert.equal(killed.sets.get(job.parameterSets[0].paramId)!.agg, undefined);
    assert.ok(
      killed.problems.some((p) => /events\.jsonl: 1 line is not JSON/.test(p)),
      killed.problems.join('; '),
    );
    assert.ok(
      killed.problems.some((p) => /stopped without writing its manifest/.test(p)),
      killed.problems.join('; '),
    );

    // a result file that is not a result is named, and not counted
    replaceSim(outcome.dir, job.parameterSets[0].paramId, 2, '{"status": "ok"}');
    const stub = await readJobFolder(outcome.dir);
    assert.equal(stub.counts.sims.ok, 5);
    assert.ok(
      stub.problems.some((p) => p.startsWith(`sims/${job.parameterSets[0].paramId.slice(0, 16)}.jsonl line `)),
      stub.problems.join('; '),
    );

    // a second run of the job id: refused with the folder, which every consumer words its own way
    await assert.rejects(
      ResultsStore.create(out, job),
      (error) => error instanceof ResultsExist && error.dir === outcome.dir && !/--resume/.test(error.message),
    );
  });

  it('a warning is of the run that last ran its task, though a task that ends fast has no task-start; a line as the engine writes it is skimmed, any other read whole', async () => {
    const bundle = writeBundle(path.join(scratch, 'bundle-skim'), {
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n',
    });
    writeFileSync(path.join(scratch, 'params-skim.json'), JSON.stringify([{ x: 1 }]));
    const job = await jobFromParamsFile({
      bundleDir: bundle,
      paramsFile: path.join(scratch, 'params-skim.json'),
      replicates: 3,
      entrypoint: 'main',
      targets: [],
      jobId: 'skim-job',
    });
    const store = await ResultsStore.create(path.join(scratch, 'out-skim'), job);
    const outcome = await runJob(job, store, oneRunner(PYTHON));
    assert.equal(outcome.status, 'succeeded');
    const [k0, k1, k2] = [0, 1, 2].map((i) => `sim-${job.parameterSets[0].paramId}-${i}`);
    const warning = (key: string, message: string) =>
      JSON.stringify({ t: 1, type: 'warning', kind: 'stdout-pollution', message, key });
    const lines = [
      warning(k0, 'a'),
      warning(k1, 'b'),
      warning(k2, 'z'),
      JSON.stringify({ t: 2, type: 'job-start', job_id: 'skim-job' }),
      // ran again, fast: a task-done and no task-start (t a number, then an ISO string as older builds wrote)
      JSON.stringify({ t: 3, type: 'task-done', key: k0, status: 'ok', attempt: 1, pid: 1, ms: 1 }),
      JSON.stringify({
        t: '2026-12-01T00:00:00.000Z',
        type: 'task-done',
        key: k1,
        status: 'ok',
        attempt: 1,
        pid: 1,
        ms: 1,
      }),
      // fields in another order: not skimmed, read whole
      JSON.stringify({ type: 'warning', t: 4, kind: 'stdout-pollution', message: 'c', key: k1 }),
      // a key with an escape: read whole
      JSON.stringify({ t: 5, type: 'task-done', key: 'sim-"odd"', status: 'ok', attempt: 1, pid: 1, ms: 1 }),
      JSON.stringify({ t: 6, type: 'job-done', job_id: 'skim-job', status: 'succeeded', ms: 4, exit_code: 0 }),
    ];
    appendFileSync(path.join(outcome.dir, 'events.jsonl'), `${lines.join('\n')}\n`);
    const disk = await readJobFolder(outcome.dir);
    const messages = (key: string) => disk.warnings.get(key)?.map((w) => w.message);
    assert.equal(messages(k0), undefined, 'k0 ran again: its warning is past');
    assert.deepEqual(messages(k1), ['c'], 'k1 ran again and warned again');
    assert.deepEqual(messages(k2), ['z'], 'k2 did not run again');
    assert.equal(disk.status, 'succeeded');
    assert.equal(disk.ms, 4);
    assert.equal(typeof disk.startedAt, 'number');
    assert.deepEqual(disk.problems, []);
  });

  it('the runs of a job id, newest first, and a fresh id for the next', () => {
    const out = path.join(scratch, 'runs');
    for (const name of ['sweep', 'sweep-2', 'sweep-3', 'sweep-x', 'sweep-10', 'other']) {
      mkdirSync(path.join(out, name), { recursive: true });
      writeFileSync(path.join(out, name, 'job.json'), '{}');
    }
    mkdirSync(path.join(out, 'sweep-11')); // no job.json: not a run
    assert.deepEqual(
      runsOf(out, 'sweep').map((dir) => path.basename(dir)),
      ['sweep-10', 'sweep-3', 'sweep-2', 'sweep'],
    );
    assert.equal(freshJobId(out, 'sweep'), 'sweep-12');
    assert.deepEqual(runsOf(path.join(scratch, 'nowhere'), 'sweep'), []);
    assert.equal(freshJobId(out, 'x'.repeat(128)).length, 122);
  });
});
