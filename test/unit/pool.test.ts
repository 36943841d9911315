/**
 * The warm pool's queue depth with real runners: `auto` queues more requests per process when
 * tasks are short (so a runner never waits in `read()` for the engine's next write) and keeps
 * two when they are not; a number is kept as given; a process never holds more than the depth.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { AUTO_DEPTH_MAX, WarmPool } from '../../src/engine/backends/local/pool';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { scratchDir, writeBundle } from './helpers';

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
