/**
 * `modelops-debugger check-determinism`: real jobs run by the CLI, then a sample of their
 * replicates run cold, warm and cold again in real runners, with a fixture bundle for each verdict.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { checkDeterminism, spread } from '../../src/engine/replicate/determinism';
import { CLI, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-determinism-');
let counter = 0;

/** Its outputs follow from params and seed alone; the set with `fail` raises, the same way each time. */
const SEEDED = `import json, random


def wire(entrypoint, params, seed):
    if params.get("fail"):
        raise ValueError("x is %s" % params["x"])
    rng = random.Random(seed)
    return {"value": json.dumps([params["x"], rng.random()]).encode()}
`;

/** The module's generator, never seeded: other bytes in every process. */
const UNSEEDED = `import json, random


def wire(entrypoint, params, seed):
    return {"value": json.dumps([params["x"], random.random()]).encode(), "fixed": b"always"}
`;

/** A module-level cache: each parameter set the process has served adds to the result. */
const HISTORY = `import json, random

_seen = set()


def wire(entrypoint, params, seed):
    _seen.add(params["x"])
    rng = random.Random(seed)
    return {"value": json.dumps([params["x"], rng.random() + len(_seen)]).encode(), "fixed": b"always"}
`;

function cli(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The bundle run as a job of 2 (or more) sets × 4 replicates; its results folder. */
function jobOf(wire: string, sets: Record<string, unknown>[], expectedCode = 0): string {
  const n = ++counter;
  const bundleDir = writeBundle(path.join(scratch, `bundle-${n}`), { 'wire.py': wire });
  const file = path.join(scratch, `job-${n}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      job_id: `det-${n}`,
      bundle: bundleDir,
      entrypoint: 'm.model/base',
      parameter_sets: sets,
      replicates: 4,
    }),
  );
  const out = path.join(scratch, `out-${n}`);
  const ran = cli(['run', file, '--out', out, '--workers', '1']);
  assert.equal(ran.code, expectedCode, ran.stderr);
  return path.join(out, `det-${n}`);
}

function checkJson(dir: string, extra: string[] = []) {
  const ran = cli(['check-determinism', dir, '--json', ...extra]);
  assert.equal(ran.stdout.trim().split('\n').length, 1, `one JSON object on stdout:\n${ran.stdout}\n${ran.stderr}`);
  return { code: ran.code, report: JSON.parse(ran.stdout) as Record<string, any> };
}

describe('modelops-debugger check-determinism', () => {
  it('a seeded model is deterministic (exit 0): each sampled replicate the same cold, warm after other sets, and cold again; a set that fails the same way each time is too', () => {
    const dir = jobOf(SEEDED, [{ x: 1 }, { x: 2, fail: true }, { x: 3 }], 1);
    const { code, report } = checkJson(dir);
    assert.equal(code, 0, JSON.stringify(report));
    assert.equal(report.verdict, 'deterministic');
    assert.deepEqual(report.counts, { deterministic: 6, nondeterministic: 0, 'history-dependent': 0 });
    assert.equal(report.sample, 2);
    assert.deepEqual(
      report.sets.map((set: any) => [set.param_index, set.verdict, set.replicates.map((r: any) => r.replicate)]),
      [
        [0, 'deterministic', [0, 3]],
        [1, 'deterministic', [0, 3]],
        [2, 'deterministic', [0, 3]],
      ],
    );
    const failing = report.sets[1].replicates[0];
    assert.equal(failing.cold.status, 'failed');
    assert.equal(failing.cold.kind, 'task-exception');
    assert.match(failing.message, /^deterministic: failed the same way each time \(task-exception: .*x is 2/);
    // fresh processes for (a) and (c), one warm process for (b) that had served other sets' tasks first
    const checks = report.sets.flatMap((set: any) => set.replicates);
    const warmPids = new Set(checks.map((c: any) => c.warm.pid));
    assert.equal(warmPids.size, 1, 'one warm process');
    const coldPids = checks.flatMap((c: any) => [c.cold.pid, c.cold_again.pid]);
    assert.equal(new Set(coldPids).size, coldPids.length, 'a fresh process for each cold run');
    assert.ok(!coldPids.some((pid: number) => warmPids.has(pid)));
    assert.deepEqual(
      checks.map((c: any) => c.warm.served),
      [1, 2, 3, 4, 5, 6],
      'the warm process ran a replicate of another set before the first set',
    );
    assert.equal(checks[0].cold.outputs.value.checksum, checks[0].warm.outputs.value.checksum);

    const human = cli(['check-determinism', dir, '--sample', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^✔ deterministic: 3 replicates of 3 parameter sets, each the same cold, warm/);
    assert.match(
      human.stdout,
      /\n {2}✔ parameter set 1 \([0-9a-f]{16}: x=2, fail=true\): deterministic \(replicates 0\)\n/,
    );
    assert.match(human.stderr, /\(a\) 3 replicates, each in a fresh process…\n/);
  });

  it('an unseeded random generator is nondeterministic with the same seed (exit 1), naming the output that differs', () => {
    const dir = jobOf(UNSEEDED, [{ x: 1 }, { x: 2 }]);
    const { code, report } = checkJson(dir);
    assert.equal(code, 1);
    assert.equal(report.verdict, 'nondeterministic');
    assert.deepEqual(report.counts, { deterministic: 0, nondeterministic: 4, 'history-dependent': 0 });
    for (const check of report.sets.flatMap((set: any) => set.replicates)) {
      assert.deepEqual(check.differing, ['value'], 'only the output that uses the generator');
      assert.notEqual(check.cold.outputs.value.checksum, check.cold_again.outputs.value.checksum);
      assert.match(
        check.message,
        /^nondeterministic with the same seed: two fresh processes gave other bytes in value$/,
      );
    }
    const human = cli(['check-determinism', dir]);
    assert.equal(human.code, 1);
    assert.match(
      human.stdout,
      /^✘ nondeterministic with the same seed: 4 of 4 replicates \(in 2 of 2 parameter sets\) differ between two fresh processes\n/,
    );
    assert.match(human.stdout, /\n {6}replicate 0, seed \d+: nondeterministic with the same seed/);
  });

  it('a module-level cache depends on process history (exit 1): the same in fresh processes, different in the warm one, which it names with the tasks it had run; so it does with one set checked', async () => {
    const dir = jobOf(HISTORY, [{ x: 1 }, { x: 2 }]);
    const { code, report } = checkJson(dir);
    assert.equal(code, 1);
    assert.equal(report.verdict, 'history-dependent');
    assert.deepEqual(report.counts, { deterministic: 0, nondeterministic: 0, 'history-dependent': 4 });
    for (const check of report.sets.flatMap((set: any) => set.replicates)) {
      assert.equal(check.cold.outputs.value.checksum, check.cold_again.outputs.value.checksum);
      assert.notEqual(check.cold.outputs.value.checksum, check.warm.outputs.value.checksum);
      assert.deepEqual(check.differing, ['value']);
      assert.equal(
        check.message,
        `depends on process history: the same in two fresh processes, other bytes in value in the warm process (pid ${check.warm.pid}) after it had run ${check.warm.served} other task${check.warm.served === 1 ? '' : 's'}`,
      );
    }

    // one set checked (the editor's "Run Twice and Compare" on a set): its replicates still run
    // warm after another set's, so the leak still shows; the other set is not checked
    const first = report.sets[0].param_id;
    const one = await checkDeterminism(dir, { params: [first] });
    assert.deepEqual(
      one.sets.map((set) => [set.param_id, set.verdict]),
      [[first, 'history-dependent']],
    );
    assert.ok(one.sets[0].replicates.every((check) => check.warm.served >= 1));
    await assert.rejects(
      checkDeterminism(dir, { params: ['0'.repeat(16)] }),
      /has none of the parameter sets asked for/,
    );
  });

  it('bad input is exit 2: not a results folder; a sample of 0', () => {
    const notResults = cli(['check-determinism', scratch]);
    assert.equal(notResults.code, 2);
    assert.match(notResults.stderr, /is not a results folder <out>\/<job_id> \(it has no job\.json\)/);
    const zero = cli(['check-determinism', scratch, '--sample', '0']);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /expected 1 or more replicates per parameter set/);
  });

  it('the sample is spread over the replicates, first and last included', () => {
    assert.deepEqual(spread(200, 2), [0, 199]);
    assert.deepEqual(spread(200, 3), [0, 100, 199]);
    assert.deepEqual(spread(4, 1), [0]);
    assert.deepEqual(spread(3, 5), [0, 1, 2]);
  });
});
