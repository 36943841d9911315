/**
 * Readable job ids, the bundle's entrypoints found without importing it, and the reproduce
 * command line, run through a real shell and the real CLI.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { findEntrypoints } from '../../src/engine/bundle/entrypoints';
import { jobCommandLine, replicateCommandLine, shellQuote } from '../../src/engine/job/reproduce';
import { paramId, replicateSeeds } from '../../src/engine/job/ids';
import { bundleName, generatedJobId, jobFromResultsJson, jobLabel } from '../../src/engine/job/spec';
import { stringifyWireJson } from '../../src/engine/pyjson/pyjson';
import { CLI, MEAN_VALUE_TARGET, readJson, ROOT, scratchDir, writeBundle } from './helpers';

const SIR = path.join(ROOT, 'examples', 'sir', 'bundle');

describe('readable job ids', () => {
  it('a generated id names the bundle and the local time, stays a safe file name, and reads back as "sir · 21:06"', () => {
    const at = new Date(2026, 11, 1, 21, 6, 3);
    const id = generatedJobId(SIR, at);
    assert.match(id, /^sir-20261201-210603-[0-9a-f]{4}$/);
    assert.equal(jobLabel(id, new Date(2026, 11, 1, 23, 0)), 'sir · 21:06');
    assert.equal(jobLabel(id, new Date(2026, 11, 2, 9, 0)), 'sir · 2026-12-01 21:06', 'another day says the date');
    assert.equal(jobLabel('sir-sweep'), 'sir-sweep', 'an id the user chose is shown as it is');
    assert.equal(bundleName('/x/My Model (v2)'), 'My-Model-v2');
    assert.equal(bundleName('/x/..hidden..dir'), 'hidden.dir');
    assert.equal(bundleName('/x/$$$'), 'job');
    assert.equal(bundleName(`/x/${'a'.repeat(60)}`).length, 40);
    for (const dir of ['/x/My Model (v2)', '/x/..hidden..dir', '/x/$$$', '/tmp/bundle']) {
      assert.match(generatedJobId(dir), /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
      assert.ok(!generatedJobId(dir).includes('..'));
    }
  });
});

describe("job.json's input", () => {
  it('is checked when a results folder is opened again, like every other field', () => {
    const params = { x: 1 };
    const id = paramId(params);
    const normalised = (input: unknown) => ({
      job_id: 'j',
      bundle: '/b',
      entrypoint: 'm.m/x',
      source: 'job file',
      targets: [],
      target_data: null,
      notes: [],
      parameter_sets: [{ param_id: id, params, seeds: replicateSeeds(id, 2) }],
      input,
    });
    assert.deepEqual(jobFromResultsJson('/r/j/job.json', normalised({ job_file: '/w/job.json' }), 'j').job.input, {
      job_file: '/w/job.json',
    });
    assert.deepEqual(
      jobFromResultsJson(
        '/r/j/job.json',
        normalised({ params_file: '/w/p.json', replicates: 2, job_id_given: false }),
        'j',
      ).job.input,
      { params_file: '/w/p.json', replicates: 2, job_id_given: false },
    );
    assert.equal(
      jobFromResultsJson('/r/j/job.json', normalised(undefined), 'j').job.input,
      undefined,
      'a folder of an earlier version has none',
    );
    assert.throws(
      () => jobFromResultsJson('/r/j/job.json', normalised({ job_file: 'relative.json' }), 'j'),
      /input must be/,
    );
    assert.throws(
      () => jobFromResultsJson('/r/j/job.json', normalised({ job_file: '/w/job.json', extra: 1 }), 'j'),
      /unknown field input\."extra"/,
    );
  });
});

describe("a bundle's entrypoints", () => {
  it('the SIR example: its wire table and its target, found by reading files only', async () => {
    const found = await findEntrypoints(SIR);
    assert.deepEqual(
      found.map((e) => `${e.kind} ${e.value} ${path.relative(SIR, e.file)}:${e.line}`),
      ['model models.sir/baseline wire.py:13', 'target targets.prevalence:prevalence_target targets/prevalence.py:13'],
    );
  });

  it("a registry's models with their scenarios and its targets; a bundle whose import would fail is never imported", async () => {
    const dir = writeBundle(scratchDir('mo-entrypoints-'), {
      'wire.py': 'raise SystemExit("importing this bundle is not allowed")\n',
      '.modelops-bundle/registry.yaml': [
        'version: "1.0"',
        'models:',
        '  sir:',
        '    entrypoint: "models.seir:SEIR"',
        '    scenarios:',
        '      - baseline',
        '      - lockdown  # a comment',
        '    parameters: [beta]',
        'targets:',
        '  incidence:',
        "    entrypoint: 'targets.incidence:incidence_target'",
        '',
      ].join('\n'),
      'calib/loss.py': 'def _helper():\n    pass\n\ndef weekly_target(sim_returns, data):\n    return {}\n',
    });
    const found = await findEntrypoints(dir);
    assert.deepEqual(
      found.map((e) => `${e.kind} ${e.value}`),
      [
        'model models.seir/baseline',
        'model models.seir/lockdown',
        'target calib.loss:weekly_target',
        'target targets.incidence:incidence_target',
      ],
    );
  });
});

describe('the reproduce command', () => {
  it('quotes for a POSIX shell', () => {
    assert.equal(shellQuote('/a/b-c_d.json'), '/a/b-c_d.json');
    assert.equal(shellQuote("it's here"), `'it'\\''s here'`);
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote('$HOME'), "'$HOME'");
  });

  it('a replicate: `replicate <out>/<job_id> --param <12 hex> --replicate N`', () => {
    const id = 'ab'.repeat(32);
    assert.equal(
      replicateCommandLine('/r/out dir/j', id, 3).line,
      `modelops-debugger replicate '/r/out dir/j' --param ${id.slice(0, 12)} --replicate 3`,
    );
  });

  it('a bundle run with a parameters file: the line, pasted into sh, makes a job with the same param_ids and seeds', async () => {
    // spaces and a quote in every path: the line must survive the shell
    const scratch = path.join(scratchDir('mo-reproduce-'), "it's a dir");
    const bundle = writeBundle(path.join(scratch, 'my bundle'), {
      'wire.py':
        'import json\n\ndef wire(entrypoint, params, seed):\n    return {"value": json.dumps(params["x"] + seed % 7).encode()}\n',
      'targets.py': MEAN_VALUE_TARGET,
    });
    writeFileSync(path.join(scratch, 'params.json'), '[{"x": 1.0}, {"x": 2}]');
    const out = path.join(scratch, 'results');
    const first = spawnSync(
      process.execPath,
      [
        CLI,
        'run',
        bundle,
        '--params',
        path.join(scratch, 'params.json'),
        '--replicates',
        '3',
        '--entrypoint',
        'm.m/x',
        '--target',
        'targets:mean_value',
        '--out',
        out,
        '--workers',
        '1',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(first.status, 0, first.stderr);
    const [jobId] = readdirSync(out);
    assert.match(jobId, /^my-bundle-\d{8}-\d{6}-[0-9a-f]{4}$/);
    const dir = path.join(out, jobId);

    const reproduction = await jobCommandLine(dir);
    assert.equal(reproduction.caveat, undefined);
    assert.deepEqual(reproduction.args, [
      'modelops-debugger',
      'run',
      bundle,
      '--params',
      path.join(scratch, 'params.json'),
      '--replicates',
      '3',
      '--entrypoint',
      'm.m/x',
      '--target',
      'targets:mean_value',
      '--out',
      out,
    ]);

    const bin = path.join(scratch, 'bin');
    mkdirSync(bin);
    symlinkSync(CLI, path.join(bin, 'modelops-debugger'));
    const again = spawnSync('sh', ['-c', reproduction.line], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    });
    assert.equal(again.status, 0, again.stderr);
    const second = readdirSync(out).find((name) => name !== jobId)!;
    assert.ok(second, 'a second job was made');
    const sets = (name: string) =>
      (readJson(path.join(out, name, 'job.json')).parameter_sets as { param_id: string; seeds: number[] }[]).map(
        (s) => [s.param_id, s.seeds],
      );
    assert.deepEqual(sets(second), sets(jobId));

    // the parameters file changed since: the line still runs it, and says what it would not reproduce
    writeFileSync(path.join(scratch, 'params.json'), '[{"x": 1.0}, {"x": 3}]');
    assert.match(
      (await jobCommandLine(dir)).caveat ?? '',
      /parameter sets or replicates are not the ones this job ran/,
    );

    // a results folder of an earlier version records no input: said, not guessed
    const old = readJson(path.join(dir, 'job.json'));
    delete old.input;
    renameSync(path.join(dir, 'job.json'), path.join(dir, 'job.json.bak'));
    writeFileSync(path.join(dir, 'job.json'), stringifyWireJson(old));
    await assert.rejects(jobCommandLine(dir), /does not record what job .* was made from/);
  });
});
