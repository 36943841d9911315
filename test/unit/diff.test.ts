/**
 * `modelops-debugger diff`: real runs of real jobs compared from their results folders: the
 * same seeded job twice (they agree), an unseeded bundle (its outputs differ, named), a rerun
 * after a code fix, and two venvs (environment said, not counted).
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-diff-');
let counter = 0;

const SEEDED = `import json, random


def wire(entrypoint, params, seed):
    if params["x"] == 2:
        raise ValueError("x must not be 2")
    return {"value": json.dumps(random.Random(seed).random()).encode()}
`;

function cli(args: string[]) {
  const ran = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: ran.status, stdout: ran.stdout, stderr: ran.stderr };
}

/**
 * The job (x = 1, 2, 3 × 3 replicates) of `bundleDir`, run into a folder of its own: with the
 * system Python as it is (no venv to build) unless `venv`.
 */
function run(bundleDir: string, expected: number, sets = [1, 2, 3], venv = false): string {
  const n = ++counter;
  const file = path.join(scratch, `job-${n}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      job_id: 'compared',
      bundle: bundleDir,
      entrypoint: 'm.m/x',
      parameter_sets: sets.map((x) => ({ x })),
      replicates: 3,
    }),
  );
  const out = path.join(scratch, `out-${n}`);
  const ran = cli(['run', file, '--out', out, '--workers', '1', ...(venv ? [] : ['--python', '/usr/bin/python3'])]);
  assert.equal(ran.code, expected, ran.stderr);
  return path.join(out, 'compared');
}

function diffJson(a: string, b: string) {
  const ran = cli(['diff', a, b, '--json']);
  return { code: ran.code, diff: JSON.parse(ran.stdout) as Record<string, any>, stderr: ran.stderr };
}

/** The seeded bundle with x=2 fixed: it no longer raises. */
const FIXED = SEEDED.replace('raise ValueError("x must not be 2")', 'pass');

describe('modelops-debugger diff', () => {
  // one venv per bundle is built, and each run serves the tests that compare it
  let seeded: string;
  let fixed: string;
  before(() => {
    seeded = run(writeBundle(path.join(scratch, 'seeded'), { 'wire.py': SEEDED }), 1);
    fixed = run(writeBundle(path.join(scratch, 'fixed'), { 'wire.py': FIXED }), 0);
  });

  it('the same seeded job run twice: the runs agree (exit 0), whatever their timings', () => {
    const a = seeded;
    const b = run(path.join(scratch, 'seeded'), 1);
    const { code, diff } = diffJson(a, b);
    assert.equal(code, 0);
    assert.equal(diff.agree, true);
    assert.equal(
      diff.message,
      'the runs agree: 3 parameter sets, the same aggregates and byte-equal replicate outputs',
    );
    assert.deepEqual(
      diff.sets.map((set: any) => set.status),
      ['same', 'same', 'same'],
    );
    assert.ok(diff.timings.a.p50_ms >= 0 && diff.timings.b.run_ms > 0, JSON.stringify(diff.timings));
    const text = cli(['diff', a, b]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^✔ the runs agree/);
    assert.doesNotMatch(text.stdout, /parameter set [0-9a-f]{16}/, 'only what differs is shown');
  });

  it('a bundle drawing unseeded numbers: the runs differ (exit 1), each replicate named with the output that differs', () => {
    const bundleDir = writeBundle(path.join(scratch, 'unseeded'), {
      'wire.py':
        'import json, random\n\n\ndef wire(entrypoint, params, seed):\n    return {"value": json.dumps(random.random()).encode(), "same": b"1"}\n',
    });
    const a = run(bundleDir, 0);
    const b = run(bundleDir, 0);
    const { code, diff } = diffJson(a, b);
    assert.equal(code, 1);
    assert.equal(diff.message, 'the runs differ: 3 of 3 parameter sets (9 replicates)');
    for (const set of diff.sets) {
      assert.equal(set.status, 'different');
      for (const replicate of set.replicates)
        assert.match(replicate.difference, /^outputs differ: value \([0-9a-f]{12} vs [0-9a-f]{12}\)$/);
      assert.ok(
        set.differences.some((d: string) => d.startsWith('summary statistics differ: outputs.value.')),
        set.differences.join(' | '),
      );
    }
    assert.deepEqual(diff.environment, [], 'the same environment');
  });

  it('a rerun after a code fix: the fixed set differs (failed, then ok; its aggregation skipped, then ok), the others agree; the bundle digest is said', () => {
    const a = seeded;
    const b = fixed;
    const { code, diff } = diffJson(a, b);
    assert.equal(code, 1);
    const [one, two, three] = diff.sets;
    assert.equal(one.status, 'same');
    assert.equal(three.status, 'same');
    assert.equal(two.status, 'different');
    assert.deepEqual(two.differences, ['aggregation skipped in run A, ok in run B']);
    assert.deepEqual(
      two.replicates.map((r: any) => r.difference),
      Array(3).fill('failed (task-exception: ValueError: x must not be 2) in run A, ok in run B'),
    );
    assert.ok(
      diff.environment.some((e: any) => e.field === 'bundle digest'),
      JSON.stringify(diff.environment),
    );
    const text = cli(['diff', a, b]).stdout;
    assert.match(
      text,
      /✘ parameter set [0-9a-f]{16} \(x=2\)\n {6}aggregation skipped in run A, ok in run B\n {6}replicate 0: failed/,
    );
    assert.match(text, /environment \(not counted as a difference\):\n {6}bundle digest: [0-9a-f]{64} vs [0-9a-f]{64}/);
  });

  it('two venvs (another deps hash): environment said, the runs still agree; a set in one run only differs; not a results folder is exit 2', () => {
    const withDeps = writeBundle(path.join(scratch, 'with-deps'), {
      'wire.py': FIXED,
      'requirements.txt': '# no dependencies, but another deps hash\n',
    });
    const a = run(path.join(scratch, 'fixed'), 0, [1, 2, 3], true);
    const b = run(withDeps, 0, [1, 2, 3], true);
    const { code, diff } = diffJson(a, b);
    assert.equal(code, 0, JSON.stringify(diff.sets));
    const fields = diff.environment.map((e: any) => e.field);
    assert.ok(fields.includes('venv key') && fields.includes('deps hash'), fields.join(', '));

    const fewer = run(path.join(scratch, 'fixed'), 0, [1, 3]);
    const partial = diffJson(fixed, fewer);
    assert.equal(partial.code, 1);
    assert.deepEqual(
      partial.diff.sets.map((set: any) => set.status),
      ['same', 'only-in-a', 'same'],
    );
    assert.equal(cli(['diff', fixed, scratch]).code, 2);
  });
});
