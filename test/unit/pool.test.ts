/**
 * The warm pool's queue depth with real runners: `auto` queues more requests per process when
 * tasks are short (so a runner never waits in `read()` for the engine's next write) and keeps
 * two when they are not; a number is kept as given; a process never holds more than the depth.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { AUTO_DEPTH_MAX, WarmPool } from '../../src/engine/backends/local/pool';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { CLI, events, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-pool-');

/** A bundle whose task sleeps `params.ms` milliseconds (0: returns at once). */
const bundleDir = writeBundle(path.join(scratch, 'bundle'), {
  'wire.py':
    'import time\n\n\ndef wire(entrypoint, params, seed):\n    if params["ms"]:\n        time.sleep(params["ms"] / 1000.0)\n    return {"value": b"1"}\n',
});

/**
 * Runs `tasks` tasks of `ms` each through a pool of `size` processes, keeping as many in flight
 * as the pool allows (as the job scheduler does); returns the pool's depth at the end and the
 * most requests any process held at once.
 */
async function drive(
  depth: number | 'auto',
  ms: number,
  tasks: number,
  size = 2,
): Promise<{ depth: number; mostHeld: number; done: number; serviceMs?: number }> {
  const python = (await resolvePython('/usr/bin/python3')).path;
  const pool = new WarmPool({
    size,
    depth,
    executor: 'warm',
    maxReuse: 0,
    spawn: async () => {
      const process = WarmProcess.start({
        python,
        runnerScript: ourRunnerScript(),
        bundleDir,
        venvPath: '',
        bundleDigest: 'pool-test',
      });
      await process.ready(30_000);
      return process;
    },
  });
  let mostHeld = 0;
  let done = 0;
  let next = 0;
  const inflight = new Set<Promise<void>>();
  try {
    while (done < tasks) {
      while (next < tasks && inflight.size < size * pool.depth) {
        const seed = next++;
        const task: Promise<void> = pool
          .run((process) => {
            const answer = process.request(
              ExecuteRequest.type,
              { entrypoint: 'm.m/x', params: { ms }, seed },
              { timeoutMs: 30_000 },
            );
            mostHeld = Math.max(mostHeld, process.inFlight);
            return answer;
          })
          .then(() => {
            done++;
            inflight.delete(task);
          });
        inflight.add(task);
      }
      await Promise.race(inflight);
    }
    return { depth: pool.depth, mostHeld, done, serviceMs: pool.serviceMs };
  } finally {
    await pool.close();
  }
}

describe('the warm pool: requests queued per process', function () {
  this.timeout(120_000);

  it('auto: trivial tasks queue more than two per process (at most the depth, never more than the maximum); a number is kept as given', async () => {
    const auto = await drive('auto', 0, 3000);
    assert.equal(auto.done, 3000);
    assert.ok(
      auto.depth > 2,
      `trivial tasks: depth ${auto.depth}, expected more than 2 (a task took ${auto.serviceMs?.toFixed(3)} ms in a process)`,
    );
    assert.ok(auto.depth <= AUTO_DEPTH_MAX, `depth ${auto.depth} beyond the maximum ${AUTO_DEPTH_MAX}`);
    assert.ok(auto.mostHeld > 2, `a process held at most ${auto.mostHeld} requests at once`);
    assert.ok(auto.mostHeld <= AUTO_DEPTH_MAX, `a process held ${auto.mostHeld} requests at once`);

    const fixed = await drive(2, 0, 1000);
    assert.equal(fixed.depth, 2);
    assert.ok(fixed.mostHeld <= 2, `depth 2, yet a process held ${fixed.mostHeld} requests at once`);
    const one = await drive(1, 0, 300);
    assert.equal(one.mostHeld, 1);
  });

  it('auto: tasks of 5 ms keep two per process, so the last tasks never wait behind a busy process', async () => {
    const slow = await drive('auto', 5, 200);
    assert.equal(slow.done, 200);
    assert.equal(slow.depth, 2, `a task took ${slow.serviceMs?.toFixed(3)} ms in a process`);
    assert.ok(slow.mostHeld <= 2, `a process held ${slow.mostHeld} requests at once`);
  });
});

describe("a request queued in a runner's pipe is not running yet", function () {
  this.timeout(120_000);

  it('each task is timed, and announced as running, from when its runner began it: never more tasks at once than runners', () => {
    // 4 ms tasks: a deeper queue than 2 would be kept for shorter ones, and what counts is
    // that the queued one is not yet said to run
    const job = path.join(scratch, 'queued.json');
    writeFileSync(
      job,
      JSON.stringify({
        job_id: 'queued',
        bundle: bundleDir,
        entrypoint: 'm.m/x',
        parameter_sets: [{ ms: 4 }, { ms: 100 }],
        replicates: 60,
      }),
    );
    const out = path.join(scratch, 'queued-out');
    const run = spawnSync(
      process.execPath,
      [CLI, 'run', job, '--out', out, '--workers', '2', '--queue-depth', '3', '--base-python', '/usr/bin/python3'],
      { encoding: 'utf8', timeout: 100_000 },
    );
    assert.equal(run.status, 0, run.stderr);
    const all = events(path.join(out, 'queued'));
    const done = all.filter((e) => e.type === 'task-done' && String(e.key).startsWith('sim'));
    assert.equal(done.length, 120);
    // the 100 ms tasks' spans, from their task-start when they had one, else t − ms; 25 ms trimmed
    // off each end: a queued task's start is known when the answer before it is read, a few ms
    // late on a busy machine, 10–20 when it is overloaded (sent, it would be a whole task early:
    // 3 or 4 "at once")
    const spans = done
      .filter((e) => e.ms >= 95)
      .map((e) => {
        const start = all.find((s) => s.type === 'task-start' && s.key === e.key);
        return { key: e.key, from: (start?.t ?? e.t - e.ms) + 25, to: e.t - 25 };
      });
    const mostAtOnce = Math.max(...spans.map((a) => spans.filter((b) => b.from <= a.from && a.from < b.to).length));
    assert.ok(mostAtOnce <= 2, `${mostAtOnce} tasks running at once on 2 runners`);
    // a 100 ms task queued behind another is not timed from when it was sent
    const slow = done.filter((e) => e.ms >= 95);
    assert.equal(slow.length, 60);
    for (const e of slow) assert.ok(e.ms < 170, `${e.key} took ${e.ms} ms: it was timed while it waited`);
    const announced = all.filter((e) => e.type === 'task-start' && done.some((d) => d.key === e.key && d.ms >= 95));
    assert.ok(announced.length >= 50, `${announced.length} of the 100 ms tasks announced as running`);
  });
});
