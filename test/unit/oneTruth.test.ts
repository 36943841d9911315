/**
 * One source of truth (issue 11, first part): the event stream carries the failure that aborts a
 * job, and a rule of diagnosis gives the same kind whichever command meets the bundle.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bundle, CLI, PROD_RUNNER, scratchDir } from './helpers';

const scratch = scratchDir('mo-truth-');

function cli(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('one source of truth', () => {
  for (const [runner, extra] of [
    ['our runner', []],
    ["production's runner", ['--runner', PROD_RUNNER]],
  ] as const) {
    it(`a bundle with no wire function (${runner}): handshake and run agree (bad-input, exit 2, one sentence), and job-done carries the failure`, () => {
      const handshake = cli(['handshake', bundle('no-wire'), '--json', ...extra]);
      assert.equal(handshake.code, 2, handshake.stderr);
      const report = JSON.parse(handshake.stdout) as { kind: string; message: string };
      assert.equal(report.kind, 'bad-input');
      assert.match(report.message, /has no wire function: add wire\.py/);

      const params = path.join(scratch, 'params.json');
      writeFileSync(params, '[{"x": 1.0}]');
      const out = path.join(scratch, `out-${extra.length}`);
      const run = cli([
        'run',
        bundle('no-wire'),
        '--params',
        params,
        '--replicates',
        '2',
        '--job-id',
        'no-wire',
        '--out',
        out,
        '--json',
        ...extra,
      ]);
      assert.equal(run.code, 2, run.stderr);
      const events = run.stdout
        .trim()
        .split('\n')
        .map(
          (line) =>
            JSON.parse(line) as {
              type: string;
              status?: string;
              exit_code?: number;
              failure?: { kind: string; message: string };
            },
        );
      const done = events.at(-1)!;
      assert.equal(done.type, 'job-done');
      assert.equal(done.status, 'aborted');
      assert.equal(done.exit_code, 2);
      assert.deepEqual(
        [done.failure?.kind, done.failure?.message],
        [report.kind, report.message],
        'the same words as the handshake',
      );
      const manifest = JSON.parse(readFileSync(path.join(out, 'no-wire', 'manifest.json'), 'utf8')) as {
        failure: { kind: string; message: string };
      };
      assert.deepEqual([manifest.failure.kind, manifest.failure.message], [report.kind, report.message]);
    });
  }

  it('a job that succeeds has no failure in its job-done event', () => {
    const params = path.join(scratch, 'params-ok.json');
    writeFileSync(params, '[{"x": 1.0}]');
    const run = cli([
      'run',
      bundle('healthy-wire-py'),
      '--params',
      params,
      '--replicates',
      '2',
      '--job-id',
      'fine',
      '--out',
      path.join(scratch, 'out-ok'),
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const done = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { type: string; failure?: unknown };
    assert.equal(done.type, 'job-done');
    assert.equal('failure' in done, false);
  });
});
