/**
 * The job engine end to end: real `modelops-debugger run` processes, real runners, results
 * read back from disk.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { paramId } from '../../src/engine/job/ids';
import { parsePythonJson } from '../../src/engine/pyjson/pyjson';
import type { Params } from '../../src/engine/job/ids';
import { simKeys, simRecord, simRecords } from '../shared/simRecords';
import {
  CLI,
  events,
  FIRST_CALLS,
  lineOf,
  MEAN_VALUE_TARGET,
  readJson,
  ROOT,
  scratchDir,
  writeBundle,
} from './helpers';

const scratch = scratchDir('mo-job-');
let counter = 0;

/**
 * A bundle whose parameter `mode` picks a misbehaviour for the first call(s) in that mode
 * (counted with marker files, so exactly that many replicates misbehave whatever the order).
 */
const MODES_WIRE = `import json, os, signal, sys, time

MARKERS = os.environ["MO_TEST_MARKERS"]

${FIRST_CALLS}
def wire(entrypoint, params, seed):
    mode = params["mode"]
    if mode == "raise" and first_calls(mode, 1):
        raise ValueError("replicate failed on purpose")  # MARK:raise
    if mode == "crash" and first_calls(mode, 2):
        os.kill(os.getpid(), signal.SIGKILL)  # MARK:crash
    if mode == "hang" and first_calls(mode, 1):
        while True:
            time.sleep(0.05)  # MARK:hang
    if mode == "noisy":
        chunk = "n" * 1023 + "\\n"
        for _ in range(20480):
            sys.stderr.write(chunk)
        sys.stderr.flush()
    return {"value": json.dumps(params.get("x", 1.0) * (seed % 1000) / 1000.0).encode()}
`;

function modesBundle(): string {
  return writeBundle(path.join(scratch, `modes-${++counter}`), {
    'wire.py': MODES_WIRE,
    'targets.py': MEAN_VALUE_TARGET,
  });
}

function writeJob(job: Record<string, unknown>): string {
  const file = path.join(scratch, `job-${++counter}.json`);
  writeFileSync(file, JSON.stringify(job, null, 2));
  return file;
}

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The replicates with a result, `<param16>/<replicate>` (test/shared/simRecords.ts knows the layout). */
const simFiles = simKeys;

/** The one job directory a run creates under `out` (the example job's id is generated). */
async function jobDir(out: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (!existsSync(out) || readdirSync(out).length === 0) {
    if (Date.now() > deadline) assert.fail(`no job directory appeared in ${out}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const [name] = readdirSync(out);
  // a generated id names the bundle (examples/sir/bundle: "sir") and the local start time
  assert.match(name, /^sir-\d{8}-\d{6}-[0-9a-f]{4}$/);
  return path.join(out, name);
}

describe('modelops-debugger run', () => {
  it('a job mixing failures finishes: each task has its kind, skipped aggregations name their failed replicates, the rest is aggregated, exit 1', () => {
    const bundle = modesBundle();
    const markers = scratchDir('mo-markers-');
    const sets = ['ok', 'raise', 'crash', 'hang'].map((mode) => ({ mode, x: 2.0 }));
    const job = writeJob({
      job_id: 'mixed',
      bundle,
      entrypoint: 'modes.m/x',
      parameter_sets: sets,
      replicates: 4,
      targets: ['targets:mean_value'],
    });
    const out = path.join(scratch, 'out-mixed');
    // one worker, one request at a time: the order of calls, and so which replicate misbehaves, is fixed
    const { code, stderr } = cli(
      ['run', job, '--out', out, '--workers', '1', '--queue-depth', '1', '--task-timeout', '2'],
      { MO_TEST_MARKERS: markers },
    );
    assert.equal(code, 1, stderr);
    const dir = path.join(out, 'mixed');
    const byMode = Object.fromEntries(sets.map((s) => [s.mode, paramId(s as unknown as Params)]));
    const sim = (mode: string, i: number) => simRecord(dir, byMode[mode], i);
    const agg = (mode: string) => readJson(path.join(dir, 'aggs', `${byMode[mode].slice(0, 16)}.json`));
    const wire = path.join(bundle, 'wire.py');

    assert.deepEqual(
      [0, 1, 2, 3].map((i) => sim('ok', i).status),
      ['ok', 'ok', 'ok', 'ok'],
    );
    assert.equal(agg('ok').status, 'ok');
    assert.equal(agg('ok').targets['targets:mean_value'].n_replicates, 4);
    assert.equal(agg('ok').summary.outputs.value.count, 4);

    const raised = sim('raise', 0);
    assert.deepEqual(
      [raised.status, raised.kind, raised.message],
      ['failed', 'task-exception', 'ValueError: replicate failed on purpose'],
    );
    assert.equal(raised.location.line, lineOf(wire, 'raise'));
    const crashed = sim('crash', 0);
    assert.deepEqual(
      [crashed.status, crashed.kind, crashed.attempts, crashed.evidence.signal],
      ['failed', 'process-crashed', 2, 'SIGKILL'],
    );
    const hung = sim('hang', 0);
    assert.deepEqual([hung.status, hung.kind], ['failed', 'task-timeout']);
    assert.equal(hung.location.line, lineOf(wire, 'hang'));
    assert.match(hung.evidence.stacks, /most recent call first/);
    for (const mode of ['raise', 'crash', 'hang']) {
      assert.deepEqual(
        [1, 2, 3].map((i) => sim(mode, i).status),
        ['ok', 'ok', 'ok'],
        `${mode}: the other replicates ran`,
      );
      const skipped = agg(mode);
      assert.equal(skipped.status, 'skipped');
      assert.equal(skipped.kind, 'aggregation-skipped');
      assert.deepEqual(
        skipped.failed_replicates.map((r: { replicate: number; key: string }) => [r.replicate, r.key]),
        [[0, `sim-${byMode[mode]}-0`]],
      );
      assert.match(skipped.message, /^1 of 4 replicates failed \(replicates 0 \(/);
    }
    const manifest = readJson(path.join(dir, 'manifest.json'));
    assert.equal(manifest.status, 'failed');
    assert.equal(manifest.exit_code, 1);
    assert.deepEqual(manifest.counts.sims, { total: 16, ok: 13, failed: 3, pending: 0 });
    assert.deepEqual(manifest.counts.aggregations, { total: 4, ok: 1, failed: 0, skipped: 3, pending: 0 });
    const log = events(dir);
    assert.ok(
      log.some((e) => e.type === 'task-retry' && e.key === `sim-${byMode.crash}-0` && e.kind === 'process-crashed'),
    );
    assert.equal(log.at(-1)!.type, 'job-done');
    assert.ok(readdirSync(path.join(dir, 'logs')).length >= 3, 'a stderr log per runner, crashed ones included');
  });

  it('a loss that is a whole number is written as the float it is (2.0, not 2), as production writes it', () => {
    const bundle = writeBundle(path.join(scratch, `whole-loss-${++counter}`), {
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n',
      'targets.py':
        'def whole(sim_returns, target_data):\n    return {"loss": 2, "diagnostics": {}, "n_replicates": len(sim_returns)}\n\n\ndef zero(sim_returns, target_data):\n    return {"loss": 0, "diagnostics": {}, "n_replicates": len(sim_returns)}\n',
    });
    const job = writeJob({
      job_id: 'whole-loss',
      bundle,
      entrypoint: 'm/x',
      parameter_sets: [{ x: 1 }],
      replicates: 2,
      targets: ['targets:whole', 'targets:zero'],
    });
    const out = path.join(scratch, 'out-whole-loss');
    const { code, stderr } = cli(['run', job, '--out', out]);
    assert.equal(code, 0, stderr);
    const [file] = readdirSync(path.join(out, 'whole-loss', 'aggs'));
    const text = readFileSync(path.join(out, 'whole-loss', 'aggs', file), 'utf8');
    assert.match(text, /"targets:whole": \{\s*"status": "ok",\s*"loss": 2\.0,/);
    assert.match(text, /"targets:zero": \{\s*"status": "ok",\s*"loss": 0\.0,/);
  });

  it('one event per finished task: fast tasks have only their task-done; a task still running at the next announcement has a task-start stamped when it began; t is milliseconds since the epoch', () => {
    const bundle = writeBundle(path.join(scratch, `starts-${++counter}`), {
      'wire.py':
        'import time\n\ndef wire(entrypoint, params, seed):\n    if params["slow"]:\n        time.sleep(0.3)\n    return {"value": b"1"}\n',
    });
    const fastSets = 40;
    const replicates = 10;
    const job = writeJob({
      job_id: 'starts',
      bundle,
      entrypoint: 'm/x',
      // the slow set last: the fast ones run first, back to back
      parameter_sets: [...Array.from({ length: fastSets }, (_, i) => ({ slow: 0, i })), { slow: 1, i: -1 }],
      replicates,
    });
    const out = path.join(scratch, 'out-starts');
    const before = Date.now();
    const { code, stderr } = cli(['run', job, '--out', out, '--workers', '2']);
    const after = Date.now();
    assert.equal(code, 0, stderr);
    const log = events(path.join(out, 'starts'));
    for (const event of log)
      assert.ok(typeof event.t === 'number' && event.t >= before && event.t <= after, JSON.stringify(event));
    const slowId = paramId({ slow: 1, i: -1 } as unknown as Params);
    const done = log.filter((e) => e.type === 'task-done');
    const starts = log.filter((e) => e.type === 'task-start');
    assert.equal(done.length, (fastSets + 1) * replicates);
    // the fast tasks: announced only when one happened to be running at an announcement, which
    // comes at most every 50 ms with at most the tasks in flight (2 workers × depth 2)
    const fastStarts = starts.filter((e) => !e.key.startsWith(`sim-${slowId}-`));
    assert.ok(fastStarts.length < (fastSets * replicates) / 4, `${fastStarts.length} fast tasks announced`);
    // each slow one (300 ms) announced before its task-done, stamped with when it began
    for (const end of done.filter((e) => e.key.startsWith(`sim-${slowId}-`))) {
      const startAt = log.findIndex((e) => e.type === 'task-start' && e.key === end.key);
      assert.ok(startAt >= 0 && startAt < log.indexOf(end), `${end.key} announced before it ended`);
      const start = log[startAt];
      assert.ok(end.ms >= 300, JSON.stringify(end));
      // the 300 ms of its own, not those of the one it was queued behind
      assert.ok(end.ms < 450, `${end.key} was timed while it waited: ${JSON.stringify(end)}`);
      // began when its time was taken, to the millisecond (the t are whole milliseconds) — or,
      // queued behind another, a little later: announced when the answer before it was read, its
      // time then taken back to its runner's own wall time (the engine reads answers a few ms
      // after they are written when its loop is busy, e.g. with a set's fdatasync)
      const late = start.t - (end.t - end.ms);
      assert.ok(late >= -2 && late <= 20, `${late} ms: ${JSON.stringify(start)} ${JSON.stringify(end)}`);
      assert.equal(start.attempt, 1);
      assert.equal(start.pid, end.pid);
    }
  });

  it('--rerun-failed runs exactly the failed tasks again, and the aggregations they feed', () => {
    const markers = scratchDir('mo-markers-');
    const job = writeJob({
      job_id: 'rerun',
      bundle: modesBundle(),
      entrypoint: 'm.m/x',
      parameter_sets: [{ mode: 'raise' }, { mode: 'ok' }],
      replicates: 3,
    });
    const out = path.join(scratch, 'out-rerun');
    assert.equal(cli(['run', job, '--out', out, '--workers', '1'], { MO_TEST_MARKERS: markers }).code, 1);
    const dir = path.join(out, 'rerun');
    const before = events(dir).length;
    // the raise happens on the first call only (a marker file): the rerun succeeds
    const rerun = cli(['run', '--rerun-failed', dir], { MO_TEST_MARKERS: markers });
    assert.equal(rerun.code, 0, rerun.stderr);
    const after = events(dir).slice(before);
    const raiseId = paramId({ mode: 'raise' } as unknown as Params);
    assert.deepEqual(
      after.filter((e) => e.type === 'task-done').map((e) => e.key),
      [`sim-${raiseId}-0`],
    );
    assert.deepEqual(
      after.filter((e) => e.type === 'agg-done').map((e) => [e.key, e.status]),
      [[`agg-${raiseId}`, 'ok']],
    );
    assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
  });

  it('--allow-partial aggregates the replicates that succeeded', () => {
    const markers = scratchDir('mo-markers-');
    const job = writeJob({
      job_id: 'partial',
      bundle: modesBundle(),
      entrypoint: 'm.m/x',
      parameter_sets: [{ mode: 'raise' }],
      replicates: 3,
    });
    const out = path.join(scratch, 'out-partial');
    const { code } = cli(['run', job, '--out', out, '--allow-partial', '--workers', '1'], { MO_TEST_MARKERS: markers });
    assert.equal(code, 1, 'a failed replicate still fails the job');
    const [aggFile] = readdirSync(path.join(out, 'partial', 'aggs'));
    const agg = readJson(path.join(out, 'partial', 'aggs', aggFile));
    assert.equal(agg.status, 'ok');
    assert.equal(agg.n_replicates, 2);
    assert.equal(agg.failed_replicates.length, 1);
  });

  it('SIGKILL halfway through the example job, then --resume: no finished task runs again, and the aggregates equal an uninterrupted run', async () => {
    const exampleJob = path.join(ROOT, 'examples', 'sir', 'job.json');
    const interruptedOut = path.join(scratch, 'out-killed');
    const child = spawn(process.execPath, [CLI, 'run', exampleJob, '--out', interruptedOut], {
      detached: true,
      stdio: 'ignore',
    });
    const dir = await jobDir(interruptedOut);
    const deadline = Date.now() + 60_000;
    while (simFiles(dir).length < 1500) {
      if (Date.now() > deadline) assert.fail('the job did not get halfway');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    const doneBefore = new Set(simFiles(dir));
    assert.ok(doneBefore.size >= 1500 && doneBefore.size < 4000, `killed with ${doneBefore.size} of 4000 done`);
    const eventsBefore = events(dir).length;

    const resumed = cli(['run', '--resume', dir]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const resumedEvents = events(dir).slice(eventsBefore);
    const start = resumedEvents.find((e) => e.type === 'job-start')!;
    assert.equal(start.resumed, true);
    assert.equal(start.skipped_sims, doneBefore.size);
    const rerun = resumedEvents.filter((e) => e.type === 'task-done').map((e) => e.key as string);
    assert.equal(rerun.length, 4000 - doneBefore.size, 'exactly the unfinished tasks ran');
    const job = readJson(path.join(dir, 'job.json'));
    const fileOf = new Map<string, string>();
    for (const set of job.parameter_sets)
      set.seeds.forEach((_: unknown, i: number) =>
        fileOf.set(`sim-${set.param_id}-${i}`, `${set.param_id.slice(0, 16)}/${i}`),
      );
    assert.deepEqual(
      rerun.filter((key) => doneBefore.has(fileOf.get(key)!)),
      [],
      'no finished task ran again',
    );

    const cleanOut = path.join(scratch, 'out-clean');
    assert.equal(cli(['run', exampleJob, '--out', cleanOut]).code, 0);
    const aggs = (root: string) =>
      Object.fromEntries(
        readdirSync(path.join(root, 'aggs')).map((f) => {
          const { targets, summary, n_replicates } = readJson(path.join(root, 'aggs', f));
          return [f, { targets, summary, n_replicates }];
        }),
      );
    assert.deepEqual(aggs(dir), aggs(await jobDir(cleanOut)));
    assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
  });

  it('Ctrl-C stops the runners, writes the manifest as interrupted, exits 130; --resume finishes', async () => {
    const exampleJob = path.join(ROOT, 'examples', 'sir', 'job.json');
    const out = path.join(scratch, 'out-sigint');
    const child = spawn(process.execPath, [CLI, 'run', exampleJob, '--out', out], { stdio: 'ignore' });
    const dir = await jobDir(out);
    while (simFiles(dir).length < 500) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGINT');
    const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 130);
    const manifest = readJson(path.join(dir, 'manifest.json'));
    assert.equal(manifest.status, 'interrupted');
    assert.ok(manifest.counts.sims.pending > 0);
    assert.equal(cli(['run', '--resume', dir]).code, 0);
    assert.equal(simFiles(dir).length, 4000);
  });

  it('a simulation writing 20 MB to stderr per task: the job completes and every byte is in the logs', () => {
    const job = writeJob({
      job_id: 'noisy',
      bundle: modesBundle(),
      entrypoint: 'm.m/x',
      parameter_sets: [{ mode: 'noisy' }],
      replicates: 4,
    });
    const out = path.join(scratch, 'out-noisy');
    const { code, stderr } = cli(['run', job, '--out', out, '--workers', '2'], {
      MO_TEST_MARKERS: scratchDir('mo-markers-'),
    });
    assert.equal(code, 0, stderr);
    const logs = path.join(out, 'noisy', 'logs');
    const bytes = readdirSync(logs).reduce((sum, f) => sum + readFileSync(path.join(logs, f)).length, 0);
    assert.equal(bytes, 4 * 20480 * 1024);
  });

  it('cold executor: a fresh process per task; --max-reuse retires processes', () => {
    const bundle = modesBundle();
    const job = writeJob({
      job_id: 'cold',
      bundle,
      entrypoint: 'm.m/x',
      parameter_sets: [{ mode: 'ok' }],
      replicates: 6,
    });
    const pids = (args: string[], name: string) => {
      const out = path.join(scratch, `out-${name}`);
      assert.equal(
        cli(['run', job, '--out', out, '--workers', '2', ...args], { MO_TEST_MARKERS: scratchDir('mo-markers-') }).code,
        0,
      );
      return simRecords(path.join(out, 'cold')).map((sim) => sim.record.pid as number);
    };
    assert.equal(new Set(pids(['--executor', 'cold'], 'cold')).size, 6);
    const reused = pids(['--max-reuse', '2'], 'reuse');
    const uses = new Map<number, number>();
    for (const pid of reused) uses.set(pid, (uses.get(pid) ?? 0) + 1);
    assert.ok(
      [...uses.values()].every((n) => n <= 2),
      JSON.stringify([...uses]),
    );
  });

  it('a print at import is a warning at its line; --trace keeps transcripts that handshake --replay accepts', () => {
    const job = writeJob({
      job_id: 'traced',
      bundle: path.join(ROOT, 'test', 'fixtures', 'bundles', 'print-at-import'),
      entrypoint: 'a.b/c',
      parameter_sets: [{ x: 1 }],
      replicates: 2,
    });
    const out = path.join(scratch, 'out-traced');
    const { code, stderr } = cli(['run', job, '--out', out, '--trace', '--workers', '1']);
    assert.equal(code, 0, stderr);
    const dir = path.join(out, 'traced');
    const wire = path.join(ROOT, 'test', 'fixtures', 'bundles', 'print-at-import', 'wire.py');
    const warning = events(dir).find((e) => e.type === 'warning' && e.kind === 'stdout-pollution')!;
    assert.deepEqual([warning.location.file, warning.location.line], [wire, lineOf(wire, 'print-at-import')]);
    assert.match(stderr, /would corrupt the production runner's frames/);
    const [transcript] = readdirSync(path.join(dir, 'transcripts'));
    const replay = cli(['handshake', path.dirname(wire), '--replay', path.join(dir, 'transcripts', transcript)]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    assert.match(replay.stdout, /Replayed 3 requests against a fresh runner: no differences/);
  });

  it('the shortcut: run <bundle-dir> --params FILE --replicates N', () => {
    const params = path.join(scratch, 'params.json');
    writeFileSync(
      params,
      JSON.stringify([
        { beta: 0.3, gamma: 0.1 },
        { beta: 0.5, gamma: 0.1 },
      ]),
    );
    const out = path.join(scratch, 'out-shortcut');
    const { code, stderr } = cli([
      'run',
      path.join(ROOT, 'examples', 'sir', 'bundle'),
      '--params',
      params,
      '--replicates',
      '3',
      '--entrypoint',
      'models.sir/baseline',
      '--target',
      'targets.prevalence:prevalence_target',
      '--job-id',
      'short',
      '--out',
      out,
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(simFiles(path.join(out, 'short')).length, 6);
    assert.equal(readdirSync(path.join(out, 'short', 'aggs')).length, 2);
  });

  it('a production SimJob runs with its declared seeds; a param_id that does not match its values is refused', () => {
    const values = { beta: 0.3, gamma: 0.1 };
    const id = paramId(parsePythonJson(JSON.stringify(values)) as Params);
    const task = (seed: number | string) =>
      `{"entrypoint": "models.sir/baseline", "bundle_ref": "sha256:${'a'.repeat(64)}", "params": {"param_id": "${id}", "values": {"beta": 0.3, "gamma": 0.1}}, "seed": ${seed}, "outputs": null}`;
    const simjob = path.join(scratch, 'simjob.json');
    writeFileSync(
      simjob,
      `{"job_type": "simulation", "job_id": "prod-job", "bundle_ref": "sha256:${'a'.repeat(64)}", "priority": 0, "metadata": {}, "tasks": [${task(11)}, ${task('18446744073709551615')}], "target_spec": {"data": {"target_entrypoints": ["targets.prevalence:prevalence_target"]}, "loss_function": "default", "weights": null, "metadata": {}}}`,
    );
    const out = path.join(scratch, 'out-simjob');
    const bundle = path.join(ROOT, 'examples', 'sir', 'bundle');
    const { code, stderr } = cli(['run', simjob, '--bundle', bundle, '--out', out]);
    assert.equal(code, 0, stderr);
    const seeds = simRecords(path.join(out, 'prod-job'))
      .map((sim) => sim.record.seed)
      .sort();
    assert.deepEqual(seeds, [11, 18446744073709551615n].sort());
    writeFileSync(simjob, readFileSync(simjob, 'utf8').replace('"beta": 0.3', '"beta": 0.31'));
    const refused = cli(['run', simjob, '--bundle', bundle, '--out', out]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /tasks\[0\]\.params\.param_id is [0-9a-f]+, but its values hash to [0-9a-f]+/);
  });

  describe('bad input: exit 2 with the field and why, nothing written', () => {
    const bundle = path.join(ROOT, 'examples', 'sir', 'bundle');
    const cases: [string, string, RegExp][] = [
      [
        'a NaN parameter',
        `{"bundle": "${bundle}", "entrypoint": "e.f/g", "replicates": 2, "parameter_sets": [{"beta": 0.3}, {"beta": NaN}]}`,
        /parameter_sets\[1\]\.beta is NaN; parameters must be finite numbers/,
      ],
      [
        'a duplicate parameter set',
        `{"bundle": "${bundle}", "entrypoint": "e.f/g", "replicates": 2, "parameter_sets": [{"beta": 0.3, "g": 1}, {"g": 1, "beta": 0.3}]}`,
        /parameter_sets\[1\] repeats parameter_sets\[0\]/,
      ],
      [
        'an unknown field',
        `{"bundle": "${bundle}", "entrypoint": "e.f/g", "replicates": 2, "parameter_sets": [{"beta": 0.3}], "replicate": 3}`,
        /unknown field "replicate" \(known: /,
      ],
      [
        'a job id that is not a safe file name',
        `{"job_id": "../escape", "bundle": "${bundle}", "entrypoint": "e.f/g", "replicates": 2, "parameter_sets": [{"beta": 0.3}]}`,
        /job_id "\.\.\/escape" is not a safe file name/,
      ],
      [
        'replicates that are not a whole number',
        `{"bundle": "${bundle}", "entrypoint": "e.f/g", "replicates": 2.5, "parameter_sets": [{"beta": 0.3}]}`,
        /replicates must be a whole number from 1 to/,
      ],
      [
        'a missing bundle',
        `{"bundle": "/no/such/bundle", "entrypoint": "e.f/g", "replicates": 2, "parameter_sets": [{"beta": 0.3}]}`,
        /Bundle directory \/no\/such\/bundle does not exist/,
      ],
    ];
    for (const [what, text, message] of cases) {
      it(what, () => {
        const file = path.join(scratch, `bad-${++counter}.json`);
        writeFileSync(file, text);
        const out = path.join(scratch, `out-bad-${counter}`);
        const { code, stderr } = cli(['run', file, '--out', out]);
        assert.equal(code, 2, stderr);
        assert.match(stderr, message);
        assert.equal(existsSync(out), false, 'nothing written');
      });
    }

    it('results of the same job id are never overwritten', () => {
      const job = writeJob({
        job_id: 'twice',
        bundle,
        entrypoint: 'models.sir/baseline',
        parameter_sets: [{ beta: 0.3, gamma: 0.1 }],
        replicates: 1,
      });
      const out = path.join(scratch, 'out-twice');
      assert.equal(cli(['run', job, '--out', out]).code, 0);
      const again = cli(['run', job, '--out', out]);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /already exist .* --resume/);
    });
  });
});
