/**
 * The endings job shared by test/unit/endings.test.ts and test/dask/endings.test.ts: one
 * parameter set per way a simulation can end, and the kinds, messages and lines it must give.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { paramId, type Params } from '../../src/engine/job/ids';
import { bundle, CLI, events, lineOf, readJson, scratchDir } from '../unit/helpers';
import { simRecords as allSimRecords } from '../shared/simRecords';

const scratch = scratchDir('mo-endings-jobs-');
let counter = 0;
export function writeJob(job: Record<string, unknown>): string {
  const file = path.join(scratch, `job-${++counter}.json`);
  writeFileSync(file, JSON.stringify(job, null, 2));
  return file;
}

export function cli(args: string[], env: Record<string, string> = {}, timeout = 180_000) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

// ---- every way a simulation can end ------------------------------------------------------------

export const ENDINGS_BUNDLE = bundle('every-ending');
export const ENDINGS_PY = path.join(ENDINGS_BUNDLE, 'endings.py');

/** Each mode, the message the user reads for a simulation that ends so (a target says "target"). */
export const ENDINGS: Record<string, (who: string) => RegExp> = {
  exit0: (who) =>
    new RegExp(
      `^SystemExit: the ${who} called sys\\.exit\\(0\\) \\(an exit status of success, but the task returned nothing\\)$`,
    ),
  exit3: (who) => new RegExp(`^SystemExit: the ${who} called sys\\.exit\\(3\\)$`),
  keyboard: (who) => new RegExp(`^KeyboardInterrupt raised by the ${who}'s code$`),
  base: () => /^Meltdown: the reactor is gone$/,
  'generator-exit': () => /^GeneratorExit: closed early$/,
  'str-raises': () => /^Unprintable: <__str__ raised RuntimeError>$/,
  'str-hangs': () => /^Endless: <__str__ did not return within 2 s>$/,
};
export const MODES = Object.keys(ENDINGS);
export const target = (mode: string) => `targets:${mode.replace('-', '_')}`;

/** One parameter set per ending (each replicate ends so) and one that returns, aggregated by a target per ending. */
export function endingsJob(jobId: string): string {
  return writeJob({
    job_id: jobId,
    bundle: ENDINGS_BUNDLE,
    entrypoint: 'every.ending/run',
    parameter_sets: [...MODES, 'ok'].map((mode) => ({ mode })),
    replicates: 2,
    targets: [...MODES.map(target), 'targets:fine'],
  });
}

export function simRecords(dir: string): Record<string, any>[] {
  return allSimRecords(dir).map((sim) => sim.record);
}

/** The kinds, messages and lines of a finished endings job, whichever backend ran it. */
export function assertEveryEnding(dir: string): void {
  const sims = simRecords(dir);
  assert.equal(sims.length, (MODES.length + 1) * 2);
  for (const mode of MODES) {
    const id = paramId({ mode } as unknown as Params);
    for (const sim of sims.filter((s) => s.param_id === id)) {
      assert.deepEqual(
        [sim.status, sim.kind, sim.attempts],
        ['failed', 'task-exception', 1],
        `${mode}: ${sim.message}`,
      );
      assert.match(sim.message, ENDINGS[mode]('simulation'), mode);
      assert.doesNotMatch(sim.message, /SIGINT|signal|cancel|interrupted/i, `${mode}: never a signal from the user`);
      assert.deepEqual(
        [path.resolve(sim.location.file), sim.location.line],
        [ENDINGS_PY, lineOf(ENDINGS_PY, mode)],
        `${mode}: at its raising line`,
      );
    }
    const skipped = readJson(path.join(dir, 'aggs', `${id.slice(0, 16)}.json`));
    assert.equal(skipped.kind, 'aggregation-skipped', mode);
  }
  const ok = paramId({ mode: 'ok' } as unknown as Params);
  assert.deepEqual(
    sims.filter((s) => s.param_id === ok).map((s) => s.status),
    ['ok', 'ok'],
  );
  const agg = readJson(path.join(dir, 'aggs', `${ok.slice(0, 16)}.json`));
  assert.equal(agg.status, 'failed');
  assert.equal(agg.targets['targets:fine'].status, 'ok');
  assert.equal(agg.targets['targets:fine'].loss.value, 0.5);
  for (const mode of MODES) {
    const result = agg.targets[target(mode)];
    assert.deepEqual([result.status, result.kind], ['failed', 'aggregation-failed'], mode);
    assert.match(result.message, ENDINGS[mode]('target'), mode);
    assert.deepEqual(
      [path.resolve(result.location.file), result.location.line],
      [ENDINGS_PY, lineOf(ENDINGS_PY, mode)],
      `${mode}: the target's raising line`,
    );
  }
  const keyboard = sims.find((s) => s.param_id === paramId({ mode: 'keyboard' } as unknown as Params))!;
  assert.ok(
    keyboard.evidence.notes.includes('no signal reached the runner: the code raised KeyboardInterrupt itself'),
    JSON.stringify(keyboard.evidence.notes),
  );
  const base = sims.find((s) => s.param_id === paramId({ mode: 'base' } as unknown as Params))!;
  assert.ok(
    base.evidence.notes.includes(
      'Meltdown derives from BaseException, not Exception; the runner caught it and stays warm',
    ),
  );
  const manifest = readJson(path.join(dir, 'manifest.json'));
  assert.deepEqual([manifest.status, manifest.exit_code], ['failed', 1], 'failed work, never interrupted (130)');
  const crashed = events(dir).filter((e) => e.type === 'process-end' && e.why !== 'pool closed');
  assert.deepEqual(crashed, [], 'no runner ended before the job did');
}
