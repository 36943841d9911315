/**
 * A runner on a Dask worker SIGKILLed as the kernel's OOM killer would: the worker gathers the
 * facts (the runner's resident size sampled while it works, the limit from the worker's own
 * MODELOPS_MEMORY_LIMIT_MB, the kernel's OOM-kill count), the engine judges them by the rule a
 * local runner is judged by. A real scheduler and worker on 127.0.0.1; the runners fill their
 * memory, wait to be sampled and SIGKILL themselves (test/shared/oomBundle.ts).
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { paramId, type Params } from '../../src/engine/job/ids';
import { assertReportTellsOomApart, oomBundle, OOM_MESSAGE_256, PLAIN_SIGKILL } from '../shared/oomBundle';
import { simRecord } from '../shared/simRecords';
import { CLI, events, readJson, scratchDir } from '../unit/helpers';
import { DaskCluster } from './cluster';

const scratch = scratchDir('mo-dask-oom-');

describe('a runner SIGKILLed under a task on a Dask worker (a real scheduler and worker on 127.0.0.1)', function () {
  this.timeout(120_000);
  let cluster: DaskCluster | undefined;
  before(async function () {
    // one worker, whose environment sets the limit: the engine's knows nothing of it
    cluster = await DaskCluster.start({
      workers: 1,
      env: { MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR!, MODELOPS_MEMORY_LIMIT_MB: '256' },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("near the worker's 256 MB limit: blamed on the replicate and the aggregation in flight, in the result, the event, the trace, the timeline and the report; a small runner killed the same way is a plain crash", () => {
    const sets = ['big', 'small', 'ok'].map((mode) => ({ mode }));
    const job = path.join(scratch, 'job.json');
    writeFileSync(
      job,
      JSON.stringify({
        job_id: 'oom',
        bundle: oomBundle(path.join(scratch, 'bundle')),
        entrypoint: 'oom.m/x',
        parameter_sets: sets,
        replicates: 1,
        targets: ['targets:big_target'],
      }),
    );
    const out = path.join(scratch, 'out');
    const args = ['run', job, '--out', out, '--retries', '0', '--backend', 'dask', '--scheduler', cluster!.address];
    const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 90_000 });
    assert.equal(result.status, 1, result.stderr);
    const dir = path.join(out, 'oom');
    const log = events(dir);
    const replicate = (mode: string) => {
      const id = paramId({ mode } as unknown as Params);
      const event = log.find((e) => e.type === 'task-done' && e.key === `sim-${id}-0`);
      assert.ok(event, `no task-done for ${mode}`);
      return { event, record: simRecord(dir, id, 0) };
    };

    const big = replicate('big');
    assert.equal(big.record.kind, 'process-crashed', 'the kind stays: it retries and counts like any crash');
    assert.match(big.record.message, OOM_MESSAGE_256);
    const oom = big.record.evidence.oom;
    assert.ok(oom, JSON.stringify(big.record.evidence));
    assert.deepEqual(
      [oom.limit_kb, oom.limit_source],
      [256 * 1024, 'setting'],
      "the worker's MODELOPS_MEMORY_LIMIT_MB",
    );
    assert.ok(oom.rss_kb >= 224 * 1024 && oom.rss_kb < 256 * 1024, `rss ${oom.rss_kb} kB`);
    assert.ok(oom.sampled_ms_before_death >= 0 && oom.sampled_ms_before_death < 1000, JSON.stringify(oom));
    assert.equal(oom.oom_kill_counter, undefined, 'no OOM kill happened: the kernel counted none');
    assert.ok(
      big.record.evidence.notes.some((note: string) => /sampled by the worker (from \/proc|with ps)/.test(note)),
      JSON.stringify(big.record.evidence.notes),
    );
    assert.equal(big.event.kind, 'process-crashed');
    assert.match(big.event.message, OOM_MESSAGE_256);
    assert.deepEqual(big.event.crash.oom, oom, 'the task-done event carries it as crash.oom');

    const small = replicate('small');
    assert.equal(small.record.kind, 'process-crashed');
    assert.match(small.record.message, PLAIN_SIGKILL);
    assert.equal(small.record.evidence.oom, undefined, 'a SIGKILL with little memory used is not blamed on memory');
    assert.equal(small.event.crash.oom, undefined);

    // the set whose replicate succeeded was aggregated, in a runner on the worker too
    const okId = paramId({ mode: 'ok' } as unknown as Params);
    const agg = readJson(path.join(dir, 'aggs', `${okId.slice(0, 16)}.json`));
    const target = agg.targets['targets:big_target'];
    assert.equal(target.kind, 'process-crashed');
    assert.match(target.message, /^Runner was killed by SIGKILL \(signal 9\) during the aggregation, most likely/);
    assert.match(target.message, OOM_MESSAGE_256);
    assert.ok(target.oom.rss_kb >= 224 * 1024, JSON.stringify(target.oom));

    // the trace's crash mark says it, as locally
    const trace = JSON.parse(readFileSync(path.join(dir, 'trace.json'), 'utf8'));
    const crashes = trace.traceEvents.filter((e: { ph: string; name: string }) => e.ph === 'i' && e.name === 'crash');
    assert.equal(crashes.length, 2, JSON.stringify(crashes));
    assert.deepEqual(crashes.map((e: { args: { message: string } }) => OOM_MESSAGE_256.test(e.args.message)).sort(), [
      false,
      true,
    ]);
    // the run report groups it apart from the plain crash, as locally
    return assertReportTellsOomApart(dir);
  });
});
