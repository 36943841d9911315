/**
 * What each task cost, measured by our runner and recorded with its result and its task-done
 * event: wall and CPU time, its own peak RSS (the high-water mark reset before each task, so a
 * small task after a big one in the same warm process reports its own peak), queue and transfer
 * time, and each output's bytes. Production's runner measures nothing: only the engine's part.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, events, MEAN_VALUE_TARGET, PROD_RUNNER, readJson, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-resources-');

/** Its sets, run in order by one warm process: a 96 MB allocation, then a small task, a busy loop, a sleep. */
const WIRE = `import time


def wire(entrypoint, params, seed):
    mode = params["mode"]
    if mode == "big":
        block = bytearray(96 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        del block
    elif mode == "busy":
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    elif mode == "sleep":
        time.sleep(0.3)
    return {"value": b"1", "blob": bytes(1000)}
`;

const SETS = ['big', 'small', 'busy', 'sleep'].map((mode) => ({ mode }));

function runJob(tag: string, extra: string[], env: Record<string, string> = {}): string {
  const bundleDir = writeBundle(path.join(scratch, `bundle-${tag}`), {
    'wire.py': WIRE,
    'targets.py': MEAN_VALUE_TARGET,
  });
  const file = path.join(scratch, `job-${tag}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      job_id: tag,
      bundle: bundleDir,
      entrypoint: 'm.m/x',
      parameter_sets: SETS,
      replicates: 1,
      targets: ['targets:mean_value'],
    }),
  );
  const out = path.join(scratch, `out-${tag}`);
  const ran = spawnSync(process.execPath, [CLI, 'run', file, '--out', out, '--workers', '1', ...extra], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  });
  assert.equal(ran.status, 0, ran.stderr);
  return path.join(out, tag);
}

/** Each set's one replicate record, by its mode. */
function simsByMode(dir: string): Record<string, Record<string, any>> {
  const records = readdirSync(path.join(dir, 'sims')).flatMap((name) =>
    readFileSync(path.join(dir, 'sims', name), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line)),
  );
  const job = readJson(path.join(dir, 'job.json'));
  const modes = new Map<string, string>(
    job.parameter_sets.map((set: { param_id: string; params: { mode: string } }) => [set.param_id, set.params.mode]),
  );
  return Object.fromEntries(records.map((record) => [modes.get(record.param_id)!, record]));
}

describe('what each task cost', () => {
  it("our runner: wall, CPU and each task's own peak RSS on its result and its task-done event; queue and transfer time; output bytes; an aggregation's too", () => {
    const dir = runJob('measured', []);
    const sims = simsByMode(dir);
    for (const [mode, record] of Object.entries(sims)) {
      const r = record.resources;
      assert.ok(r, `${mode}: resources recorded`);
      for (const field of ['wall_ms', 'cpu_user_ms', 'cpu_sys_ms', 'queue_ms', 'transfer_ms'])
        assert.ok(typeof r[field] === 'number' && r[field] >= 0, `${mode}: ${field} ${r[field]}`);
      assert.ok(r.wall_ms <= record.ms + 1, `${mode}: the runner's wall ${r.wall_ms} within the engine's ${record.ms}`);
      // said only when the peak is not the task's own (no /proc to reset it)
      assert.equal(r.peak_rss, process.platform === 'linux' ? undefined : 'process');
    }
    // the peak is each task's own: the small task after the 96 MB one reports far less
    assert.ok(sims.big.resources.peak_rss_kb > 90 * 1024, `big: ${sims.big.resources.peak_rss_kb} kB`);
    if (process.platform === 'linux')
      assert.ok(
        sims.small.resources.peak_rss_kb < sims.big.resources.peak_rss_kb - 80 * 1024,
        `small after big: ${sims.small.resources.peak_rss_kb} kB against ${sims.big.resources.peak_rss_kb} kB`,
      );
    // CPU is CPU, waiting is not
    // (asking for the process's CPU time in the loop is itself a system call: user and system together)
    const busy = sims.busy.resources;
    assert.ok(busy.cpu_user_ms + busy.cpu_sys_ms >= 250, `busy: ${JSON.stringify(busy)}`);
    assert.ok(sims.sleep.resources.wall_ms >= 290, `sleep: ${JSON.stringify(sims.sleep.resources)}`);
    assert.ok(
      sims.sleep.resources.cpu_user_ms + sims.sleep.resources.cpu_sys_ms < 100,
      `sleep: ${JSON.stringify(sims.sleep.resources)}`,
    );

    // the events say the same, and each output's bytes (the record's outputs have their sizes)
    const done = events(dir).filter((event) => event.type === 'task-done');
    assert.equal(done.length, 4);
    for (const event of done) {
      const record = Object.values(sims).find((sim) => sim.key === event.key)!;
      assert.deepEqual(event.resources, { ...record.resources, output_bytes: { blob: 1000, value: 1 } }, event.key);
      assert.deepEqual(
        Object.fromEntries(Object.entries(record.outputs).map(([name, output]: [string, any]) => [name, output.size])),
        { blob: 1000, value: 1 },
      );
    }
    // an aggregation: its target's request
    for (const name of readdirSync(path.join(dir, 'aggs'))) {
      const agg = JSON.parse(readFileSync(path.join(dir, 'aggs', name), 'utf8'));
      assert.ok(agg.resources.wall_ms >= 0 && agg.resources.peak_rss_kb > 0, JSON.stringify(agg.resources));
      const event = events(dir).find((e) => e.type === 'agg-done' && e.key === agg.key)!;
      assert.deepEqual(event.resources, agg.resources);
    }
  });

  it("production's runner measures nothing: only the engine's part (queue time)", () => {
    const dir = runJob('production', ['--runner', PROD_RUNNER]);
    for (const [mode, record] of Object.entries(simsByMode(dir))) {
      assert.deepEqual(Object.keys(record.resources), ['queue_ms'], mode);
    }
  });

  it('MODELOPS_RESOURCES=off (what bench:job measures the bookkeeping against): no measures anywhere, the results the same', () => {
    const dir = runJob('bare', [], { MODELOPS_RESOURCES: 'off' });
    const sims = simsByMode(dir);
    assert.deepEqual(Object.keys(sims).sort(), ['big', 'busy', 'sleep', 'small']);
    for (const [mode, record] of Object.entries(sims)) {
      assert.equal(record.status, 'ok', mode);
      assert.equal(record.resources, undefined, mode);
    }
    for (const event of events(dir).filter((e) => e.type === 'task-done' || e.type === 'agg-done')) {
      assert.equal(event.resources, undefined, event.key);
      assert.equal(event.status, 'ok', event.key);
    }
    for (const name of readdirSync(path.join(dir, 'aggs')))
      assert.equal(JSON.parse(readFileSync(path.join(dir, 'aggs', name), 'utf8')).resources, undefined, name);
  });
});
