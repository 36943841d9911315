/**
 * A bundle whose runners are SIGKILLed as the kernel's OOM killer would (test/unit/oom.test.ts
 * and test/dask/oom.test.ts): a real OOM kill cannot be caused safely in a test, so the runner
 * fills its memory, waits to be sampled, and SIGKILLs itself.
 */
import * as assert from 'node:assert/strict';
import { runReport } from '../../src/engine/report/runReport';
import { writeBundle } from '../unit/helpers';

/**
 * Each replicate writes a line, then `big` fills 224 MiB (`small` nothing), and both wait to be
 * sampled and SIGKILL themselves; `big-hang` fills and waits.
 */
export const OOM_WIRE = `import os
import signal
import sys
import time


def fill(mib):
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


def wire(entrypoint, params, seed):
    mode = params["mode"]
    sys.stderr.write("mode=%s\\n" % mode)
    sys.stderr.flush()
    block = fill(224) if mode in ("big", "big-hang") else None
    if mode == "big-hang":
        time.sleep(30)
    if mode in ("big", "small"):
        time.sleep(0.7)  # two sample periods and more
        os.kill(os.getpid(), signal.SIGKILL)
    return {"value": b"1", "size": str(len(block or b"")).encode()}
`;

export const OOM_TARGETS = `import os
import signal
import time


def big_target(sim_returns, target_data):
    block = bytearray(224 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(0.7)
    os.kill(os.getpid(), signal.SIGKILL)
`;

export function oomBundle(dir: string): string {
  return writeBundle(dir, { 'wire.py': OOM_WIRE, 'targets.py': OOM_TARGETS });
}

/** The message of a runner blamed on a 256 MB `setting` limit. */
export const OOM_MESSAGE_256 =
  /^Runner was killed by SIGKILL \(signal 9\) during the (simulation|aggregation), most likely by the kernel's OOM killer: the runner used 2\d\d MB of a 256 MB limit \(setting\) \d+ ms before it died$/;

/** The message of a SIGKILL not blamed on memory. */
export const PLAIN_SIGKILL =
  /^Runner was killed by SIGKILL \(signal 9\) \(killed: out of memory, or by another process\) during the simulation$/;

/**
 * The run report of a run with one OOM-killed replicate, one plain SIGKILL and an OOM-killed
 * aggregation tells them apart: its failure groups (replicates), and its timeline's crash marks
 * (the editor's timeline draws the same).
 */
export async function assertReportTellsOomApart(dir: string): Promise<void> {
  const report = await runReport(dir);
  const groups = report.failures.map((group) => [group.signature, group.count, group.oom ?? false]);
  assert.deepEqual(
    groups.sort(),
    [
      ['process-crashed', 1, false],
      ['process-crashed · OOM-killed', 1, true],
    ].sort(),
  );
  // the two replicates' crashes, and the aggregation's (its target fills its memory too)
  const crashes = report.timeline.marks.filter((mark) => mark.kind === 'crash');
  assert.deepEqual(
    crashes.map((mark) => /most likely by the kernel's OOM killer/.test(mark.text)).sort(),
    [false, true, true],
    JSON.stringify(crashes),
  );
}
