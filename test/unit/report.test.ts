/**
 * `modelops-debugger report`: a real job's run as one self-contained HTML file, its failures
 * grouped by signature with what their parameter sets share.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runReport } from '../../src/engine/report/runReport';
import { TASK_FIELDS } from '../../src/engine/trace/timeline';
import { assertSelfContainedReport, CLI, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-report-');

/** Fails for beta ≥ 0.5 (a ValueError at one line), and for beta = 0.2 another way (a KeyError). */
const WIRE = `import json, random


def wire(entrypoint, params, seed):
    beta = params["beta"]
    if beta >= 0.5:
        raise ValueError("beta too high")  # MARK:high
    if beta == 0.2:
        return {}["missing"]
    return {"value": json.dumps(random.Random(seed).random()).encode()}
`;

describe('modelops-debugger report', () => {
  let dir: string;
  before(() => {
    const bundleDir = writeBundle(path.join(scratch, 'bundle'), { 'wire.py': WIRE });
    const file = path.join(scratch, 'job.json');
    writeFileSync(
      file,
      JSON.stringify({
        job_id: 'reported',
        bundle: bundleDir,
        entrypoint: 'm.m/x',
        parameter_sets: [0.1, 0.2, 0.3, 0.5, 0.7].map((beta) => ({ beta })),
        replicates: 4,
      }),
    );
    const out = path.join(scratch, 'out');
    const ran = spawnSync(process.execPath, [CLI, 'run', file, '--out', out, '--python', '/usr/bin/python3'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(ran.status, 1, ran.stderr);
    dir = path.join(out, 'reported');
  });

  it('groups the failures by kind, exception and line, and says what their parameter sets share against the others', async () => {
    const report = await runReport(dir);
    assert.deepEqual(report.counts, { ok: 8, failed: 12, missing: 0, total: 20, sets: 5 });
    assert.deepEqual(
      report.failures.map((group) => [group.signature, group.count, group.shared]),
      [
        ['task-exception · ValueError · wire.py:7', 8, ['all 8 failures have beta ≥ 0.5']],
        ['task-exception · KeyError · wire.py:9', 4, ['all 4 failures have beta = 0.2']],
      ],
    );
    assert.deepEqual(
      report.sets.map((set) => [set.params.beta, set.ok, set.failed, set.aggregation]),
      [
        ['0.1', 4, 0, 'ok'],
        ['0.2', 0, 4, 'skipped'],
        ['0.3', 4, 0, 'ok'],
        ['0.5', 0, 4, 'skipped'],
        ['0.7', 0, 4, 'skipped'],
      ],
    );
    assert.equal(report.slowest.length, 20);
    assert.equal(
      report.histogram.reduce((sum, bucket) => sum + bucket.count, 0),
      20,
      'every replicate in the histogram',
    );
    assert.equal(report.timeline.tasks.length / TASK_FIELDS, 25, 'every task on the timeline');
    assert.ok(report.environment.some((row) => row.field === 'Python'));
  });

  it('writes one HTML file that asks for nothing outside itself (a CSP that allows no request), with every section', () => {
    const file = path.join(scratch, 'report.html');
    const ran = spawnSync(process.execPath, [CLI, 'report', dir, '-o', file], { encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /^Wrote \S+report\.html \(\d+ KB\): 20 replicates in 5 parameter sets, 2 failure signatures\.$/m,
    );
    const html = readFileSync(file, 'utf8');
    assertSelfContainedReport(html, [
      'Where the time went',
      'Timeline',
      'Parameter sets',
      'Failures, grouped',
      'slowest replicates',
      'Durations',
      'Environment',
    ]);
    assert.ok(html.includes('all 8 failures have beta ≥ 0.5'));
    // the default place: in the results folder
    assert.equal(spawnSync(process.execPath, [CLI, 'report', dir]).status, 0);
    assert.ok(readFileSync(path.join(dir, 'report.html'), 'utf8').startsWith('<!DOCTYPE html>'));
  });
});
