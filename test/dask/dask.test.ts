/**
 * The Dask backend against a real cluster: a `dask scheduler` and two `dask worker` processes
 * on 127.0.0.1 (Debian's python3-distributed), started before these tests and stopped after
 * them. Every job also runs on the local backend, and the result files are compared field by
 * field: the Dask backend must give the same ids, seeds, values and failure kinds.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { paramId, replicateSeeds, type Params } from '../../src/engine/job/ids';
import { clusterForSuite, DASK_PYTHON, DaskCluster } from './cluster';
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
} from '../unit/helpers';
import { simAt, simKeys, simRecords } from '../shared/simRecords';

const scratch = scratchDir('mo-dask-');
let counter = 0;

/**
 * Replicates whose seed is a multiple of 3 misbehave as their set's `mode` says; the others
 * succeed. Keyed by seed, not by call order, so which replicates fail is the same on one
 * local runner and on two Dask workers. A crash happens on the first two calls of a seed (its
 * retry crashes too), a hang on the first call. Marker files count the calls.
 */
function modesWire(markers: string): string {
  return `import json, os, signal, sys, time

MARKERS = ${JSON.stringify(markers)}

${FIRST_CALLS}
def wire(entrypoint, params, seed):
    mode = params["mode"]
    victim = seed % 3 == 0
    sys.stderr.write("replicate with seed %d in mode %s\\n" % (seed, mode))
    if mode == "raise" and victim:
        raise ValueError("replicate failed on purpose")  # MARK:raise
    if mode == "crash" and victim and first_calls("crash-%d" % seed, 2):
        os.kill(os.getpid(), signal.SIGKILL)  # MARK:crash
    if mode == "hang" and victim and first_calls("hang-%d" % seed, 1):
        while True:
            time.sleep(0.05)  # MARK:hang
    if mode == "slow":
        time.sleep(params["sleep"])
    if mode == "kill-worker" and first_calls("kill-worker", 1):
        os.kill(os.getppid(), signal.SIGKILL)  # the Dask worker process that started this runner
    return {"value": json.dumps(params.get("x", 1.0) * (seed % 1000) / 1000.0).encode()}
`;
}

function modesBundle(): string {
  const n = ++counter;
  return writeBundle(path.join(scratch, `modes-${n}`), {
    'wire.py': modesWire(scratchDir('mo-dask-markers-')),
    'targets.py': MEAN_VALUE_TARGET,
  });
}

function writeJob(job: Record<string, unknown>): string {
  const file = path.join(scratch, `job-${++counter}.json`);
  writeFileSync(file, JSON.stringify(job, null, 2));
  return file;
}

function cli(args: string[], timeout = 180_000) {
  const started = Date.now();
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, ms: Date.now() - started };
}

/** The events written so far by a running job (its last line may be half written). */
function eventsSoFar(dir: string): Record<string, any>[] {
  const file = path.join(dir, 'events.jsonl');
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.pop();
  return lines.map((line) => JSON.parse(line));
}

function resultFiles(dir: string, sub: 'aggs'): string[] {
  const root = path.join(dir, sub);
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.json')).sort();
}

/** What must be the same wherever a simulation ran (not its pid, worker, timing or paths). */
function simEssence(record: Record<string, any>) {
  return {
    key: record.key,
    status: record.status,
    param_id: record.param_id,
    replicate: record.replicate,
    seed: record.seed,
    attempts: record.attempts,
    outputs: record.outputs,
    kind: record.kind,
    message: record.message,
    line: record.location?.line,
    function: record.location?.function,
    signal: record.evidence?.signal,
    exception: record.evidence?.exception?.type,
  };
}

function aggEssence(record: Record<string, any>) {
  const targets = Object.fromEntries(
    Object.entries(record.targets as Record<string, any>).map(([name, t]) => [
      name,
      { ...t, location: t.location?.line },
    ]),
  );
  return {
    key: record.key,
    status: record.status,
    n_replicates: record.n_replicates,
    targets,
    summary: record.summary,
    kind: record.kind,
    message: record.message,
    failed_replicates: record.failed_replicates,
  };
}

/** The two runs' result files, compared one by one. */
function assertSameResults(local: string, dask: string): void {
  assert.deepEqual(
    readJson(path.join(dask, 'job.json')).parameter_sets,
    readJson(path.join(local, 'job.json')).parameter_sets,
    'param ids and seeds',
  );
  const sims = simKeys(local);
  assert.deepEqual(simKeys(dask), sims, 'the same simulation files');
  for (const file of sims)
    assert.deepEqual(simEssence(simAt(dask, file)), simEssence(simAt(local, file)), `sims/${file}`);
  const aggs = resultFiles(local, 'aggs');
  assert.deepEqual(resultFiles(dask, 'aggs'), aggs, 'the same aggregation files');
  for (const file of aggs)
    assert.deepEqual(
      aggEssence(readJson(path.join(dask, 'aggs', file))),
      aggEssence(readJson(path.join(local, 'aggs', file))),
      `aggs/${file}`,
    );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('the Dask backend (a real scheduler and two workers on 127.0.0.1)', function () {
  this.timeout(240_000);
  const cluster = clusterForSuite();

  it('the example job: the same param ids, seeds, outputs and aggregates as the local backend; backend in the manifest', () => {
    const example = JSON.parse(readFileSync(path.join(ROOT, 'examples', 'sir', 'job.json'), 'utf8')) as {
      parameter_sets: unknown[];
    };
    const job = writeJob({
      ...example,
      job_id: 'sir-small',
      bundle: path.join(ROOT, 'examples', 'sir', 'bundle'),
      parameter_sets: example.parameter_sets.slice(0, 4),
      replicates: 25,
    });
    const out = path.join(scratch, 'out-example');
    const local = cli(['run', job, '--out', path.join(out, 'local')]);
    assert.equal(local.code, 0, local.stderr);
    const dask = cli([
      'run',
      job,
      '--out',
      path.join(out, 'dask'),
      '--backend',
      'dask',
      '--scheduler',
      cluster().address,
    ]);
    assert.equal(dask.code, 0, dask.stderr);
    const daskDir = path.join(out, 'dask', 'sir-small');
    assertSameResults(path.join(out, 'local', 'sir-small'), daskDir);
    assert.equal(simKeys(daskDir).length, 100);
    assert.equal(resultFiles(daskDir, 'aggs').length, 4);

    const manifest = readJson(path.join(daskDir, 'manifest.json'));
    assert.equal(manifest.status, 'succeeded');
    assert.equal(manifest.options.backend, 'dask');
    assert.equal(manifest.options.scheduler, cluster().address);
    assert.deepEqual(
      [...manifest.environment.dask.workers].sort(),
      cluster()
        .workers.map((w) => w.address)
        .sort(),
    );
    assert.equal(readJson(path.join(out, 'local', 'sir-small', 'manifest.json')).options.backend, 'local');

    const log = events(daskDir);
    assert.equal(log[0].type, 'job-start');
    assert.equal(log[0].backend, 'dask');
    assert.equal(log.at(-1)!.type, 'job-done');
    const workersUsed = new Set(log.filter((e) => e.type === 'task-start').map((e) => e.worker));
    assert.equal(workersUsed.size, 2, 'both workers ran simulations');
    for (const key of log.filter((e) => e.type === 'task-done').map((e) => e.key)) {
      assert.ok(
        log.findIndex((e) => e.type === 'task-start' && e.key === key) <
          log.findIndex((e) => e.type === 'task-done' && e.key === key),
        `${key} started before it was done`,
      );
    }
    assert.equal(log.filter((e) => e.type === 'agg-done' && e.status === 'ok').length, 4);
    // progress as it happens: each simulation is reported finished before its set's results arrive
    const finished = log.filter((e) => e.type === 'task-finished').map((e) => e.key);
    assert.equal(new Set(finished).size, 100);
    for (const key of finished) {
      assert.ok(
        log.findIndex((e) => e.type === 'task-finished' && e.key === key) <
          log.findIndex((e) => e.type === 'task-done' && e.key === key),
        `${key} finished before its outcome came`,
      );
    }

    // what each simulation and each aggregation (its targets) cost its runner on the worker, as locally
    for (const event of log.filter((e) => e.type === 'task-done' || e.type === 'agg-done')) {
      const r = event.resources;
      assert.ok(r && r.wall_ms >= 0 && r.cpu_user_ms >= 0 && r.peak_rss_kb > 0, JSON.stringify(event));
    }
    const aggRecord = readJson(path.join(daskDir, 'aggs', `${readdirSync(path.join(daskDir, 'aggs'))[0]}`));
    const wall = aggRecord.resources?.wall_ms; // a float as Python wrote it (PyFloat), or an int
    assert.ok(Number(wall?.value ?? wall) > 0, JSON.stringify(aggRecord.resources));
    // `diff` says the local and the Dask run agree (same aggregates, byte-equal outputs), the backend apart
    const diff = cli(['diff', path.join(out, 'local', 'sir-small'), daskDir, '--json']);
    assert.equal(diff.code, 0, diff.stdout + diff.stderr);
    const compared = JSON.parse(diff.stdout);
    assert.equal(compared.agree, true);
    assert.ok(
      compared.environment.some((e: any) => e.field === 'backend' && e.a === 'local' && e.b === 'dask'),
      JSON.stringify(compared.environment),
    );
    // and its trace has a process track per worker
    const trace = cli(['trace', daskDir, '--json']);
    assert.equal(trace.code, 0, trace.stderr);
    const traced = JSON.parse(readFileSync(path.join(daskDir, 'trace.json'), 'utf8'));
    const hosts = traced.traceEvents.filter((e: any) => e.ph === 'M' && e.name === 'process_name');
    assert.equal(
      JSON.parse(trace.stdout).hosts,
      2,
      JSON.stringify(traced.traceEvents.filter((e: any) => e.ph === 'M')),
    );
    assert.ok(
      hosts.every((e: any) => /^tcp:\/\/127\.0\.0\.1:\d+$/.test(e.args.name)),
      JSON.stringify(hosts),
    );
  });

  it('the mixed-failure job: the same failure kinds, attempts, signals and source lines as locally; stderr in logs/', () => {
    const sets = ['ok', 'raise', 'crash', 'hang'].map((mode) => ({ mode, x: 2.0 }));
    const replicates = 6;
    // the test means something only if each misbehaving set has failing and succeeding replicates
    for (const set of sets) {
      const victims = replicateSeeds(paramId(set as unknown as Params), replicates).filter(
        (seed) => seed % 3 === 0,
      ).length;
      assert.ok(
        victims > 0 && victims < replicates,
        `${set.mode}: ${victims} of ${replicates} seeds are multiples of 3`,
      );
    }
    const run = (backend: 'local' | 'dask') => {
      const bundle = modesBundle();
      const job = writeJob({
        job_id: 'mixed',
        bundle,
        entrypoint: 'modes.m/x',
        parameter_sets: sets,
        replicates,
        targets: ['targets:mean_value'],
      });
      const out = path.join(scratch, `out-mixed-${backend}`);
      const extra = backend === 'dask' ? ['--backend', 'dask', '--scheduler', cluster().address] : ['--workers', '2'];
      const result = cli(['run', job, '--out', out, '--task-timeout', '2', ...extra]);
      assert.equal(result.code, 1, result.stderr);
      return { dir: path.join(out, 'mixed'), wire: path.join(bundle, 'wire.py') };
    };
    const local = run('local');
    const dask = run('dask');
    assertSameResults(local.dir, dask.dir);

    const kinds = new Map<string, string>();
    for (const file of simKeys(dask.dir)) {
      const sim = simAt(dask.dir, file);
      if (sim.status === 'failed') kinds.set(sim.kind, sim.key);
      if (sim.kind === 'task-exception')
        assert.deepEqual(
          [sim.location.file, sim.location.line],
          [dask.wire, lineOf(dask.wire, 'raise')],
          'the source line, at the local path of the bundle',
        );
      if (sim.kind === 'process-crashed') assert.deepEqual([sim.attempts, sim.evidence.signal], [2, 'SIGKILL']);
      if (sim.kind === 'task-timeout') {
        assert.equal(sim.location.line, lineOf(dask.wire, 'hang'));
        assert.match(sim.evidence.stacks, /most recent call first/);
      }
    }
    assert.deepEqual([...kinds.keys()].sort(), ['process-crashed', 'task-exception', 'task-timeout']);
    const manifest = readJson(path.join(dask.dir, 'manifest.json'));
    assert.deepEqual([manifest.status, manifest.exit_code], ['failed', 1]);
    assert.deepEqual(manifest.counts.aggregations, { total: 4, ok: 1, failed: 0, skipped: 3, pending: 0 });
    const log = events(dask.dir);
    assert.ok(
      log.some(
        (e) => e.type === 'task-retry' && e.key === kinds.get('process-crashed') && e.kind === 'process-crashed',
      ),
      'the crash was retried, and said so',
    );

    const logs = readdirSync(path.join(dask.dir, 'logs')).filter((f) =>
      /^dask-127\.0\.0\.1_\d+-runner-\d+\.stderr$/.test(f),
    );
    assert.ok(logs.length >= 2, `a stderr log per runner on the workers: ${logs}`);
    const stderr = logs.map((f) => readFileSync(path.join(dask.dir, 'logs', f), 'utf8')).join('');
    for (const seed of readJson(path.join(dask.dir, 'job.json')).parameter_sets[0].seeds)
      assert.ok(stderr.includes(`replicate with seed ${seed} in mode ok\n`), `stderr of seed ${seed}`);
    assert.match(stderr, /most recent call first/, "the hung runner's stack dump, from its own stderr");
  });

  it('killing one worker mid-job: the job completes, Dask reschedules, and the event log records the lost worker', async () => {
    // results are recorded a parameter set at a time: kill the worker after the first of eight;
    // simulations of 0.3 s keep it busy with one nearly all the time (not between tasks, nor aggregating)
    const job = writeJob({
      job_id: 'lose-one',
      bundle: modesBundle(),
      entrypoint: 'm.m/x',
      parameter_sets: [1, 2, 3, 4, 5, 6, 7, 8].map((x) => ({ mode: 'slow', sleep: 0.3, x })),
      replicates: 10,
    });
    const out = path.join(scratch, 'out-lose-one');
    const child = spawn(
      process.execPath,
      [CLI, 'run', job, '--out', out, '--backend', 'dask', '--scheduler', cluster().address],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const dir = path.join(out, 'lose-one');
    const victim = cluster().workers[0];
    const deadline = Date.now() + 60_000;
    // wait until the victim has run a few tasks (it has more queued then)
    while (eventsSoFar(dir).filter((e) => e.type === 'task-done' && e.worker === victim.address).length < 2) {
      if (Date.now() > deadline) assert.fail(`the job did not get going: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await cluster().killWorker(victim);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise((resolve) => (timer = setTimeout(() => resolve('still running after 120 s'), 120_000))),
    ]);
    clearTimeout(timer);
    child.kill('SIGKILL');
    await cluster().addWorker(); // two workers again for the tests after this one
    if (code !== 0) {
      // what the job itself recorded, so that a failure here explains itself
      const failures = eventsSoFar(dir).filter((e) => /fail|erred|lost|abort|retry/.test(`${e.type} ${e.status}`));
      assert.fail(`exit ${code}\nstdout: ${stdout}\nstderr: ${stderr}\nevents: ${JSON.stringify(failures, null, 1)}`);
    }

    const log = events(dir);
    const lost = log.find((e) => e.type === 'worker-lost');
    assert.ok(lost, 'a worker-lost event');
    assert.equal(lost.worker, victim.address);
    assert.match(lost.cause, /connection closed/);
    const manifest = readJson(path.join(dir, 'manifest.json'));
    assert.equal(manifest.status, 'succeeded');
    assert.deepEqual(manifest.counts.sims, { total: 80, ok: 80, failed: 0, pending: 0 });
    assert.equal(simKeys(dir).length, 80);
    // what the lost worker held, Dask ran again elsewhere
    const held = (lost.processing as string[]).filter((key) => key.startsWith('sim-'));
    assert.ok(held.length > 0, 'the worker held tasks when it was killed');
    const byKey = new Map(simRecords(dir).map(({ record }) => [record.key, record]));
    for (const key of held) {
      assert.equal(byKey.get(key)?.status, 'ok', key);
      assert.notEqual(byKey.get(key)?.worker, victim.address, `${key} ran again on the other worker`);
    }
  });

  it('a task whose result is lost with its worker after it finished, before the driver looked: no failure is reported; Dask computes it again and that result is reported', async () => {
    // as_completed yielded it finished; the driver pauses between looks (REPORT_INTERVAL_S); the
    // worker holding its only copy dies in that pause. Before the fix this was a task-erred "NoneType"
    // (seen in CI as the lose-one job above exiting 1)
    const child = spawn(DASK_PYTHON, [path.join(ROOT, 'test', 'dask', 'lost_result.py'), cluster().address], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // one listener for the whole run: a line may come in pieces, and nothing may be read while none listens
    let stdout = '';
    let stderr = '';
    const seen: (() => void)[] = [];
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      for (const look of [...seen]) look();
    });
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    /** A whole line of stdout that `pattern` matches (its groups), once written. */
    const line = (pattern: RegExp) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} within 60 s: ${stdout}\n${stderr}`)), 60_000);
        const look = () => {
          const match = stdout
            .split('\n')
            .slice(0, -1) // the last piece is not a whole line yet
            .map((text) => pattern.exec(text))
            .find(Boolean);
          if (!match) return false;
          clearTimeout(timer);
          if (seen.includes(look)) seen.splice(seen.indexOf(look), 1);
          resolve(match);
          return true;
        };
        if (look()) return;
        seen.push(look);
        void closed.then(() => {
          if (seen.includes(look)) reject(new Error(`lost_result.py ended without ${pattern}: ${stdout}\n${stderr}`));
        });
      });
    let killed = false;
    try {
      const holder = (await line(/^holder (\S+)$/))[1];
      const victim = cluster().workers.find((w) => w.address === holder);
      assert.ok(victim, `the worker holding the result, ${holder}, is one of the cluster's`);
      await cluster().killWorker(victim);
      killed = true;
      child.stdin!.write('killed\n');
      const report = JSON.parse((await line(/^(\{.*\})$/))[1]);
      assert.equal(await closed, 0, stderr);
      assert.match(report.status_when_taken, /^(lost|pending)$/);
      assert.deepEqual(report.sent_while_lost, [], 'nothing is reported while the result is being computed again');
      assert.deepEqual(
        report.sent.map((m: any) => [m.method, m.params.key, m.params.result?.status]),
        [['dask/sim-done', 'sim-lost-0', 'ok']],
      );
      assert.notDeepEqual(report.computed_on, [holder], 'computed again on the other worker');
    } finally {
      child.kill('SIGKILL');
      if (killed) await cluster().addWorker(); // two workers again for the tests after this one
    }
  });

  it('a task that kills its Dask worker: Dask gives up on it (KilledWorker); that is a dask-task-erred event and result, and the job still ends with a manifest', async () => {
    // a cluster of its own that gives up on a task after one worker death
    const strict = await DaskCluster.start({
      workers: 2,
      env: { MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR! },
      schedulerEnv: { DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES: '0' },
    });
    try {
      const job = writeJob({
        job_id: 'killer',
        bundle: modesBundle(),
        entrypoint: 'm.m/x',
        parameter_sets: [{ mode: 'kill-worker' }],
        replicates: 1,
      });
      const out = path.join(scratch, 'out-killer');
      const result = cli(['run', job, '--out', out, '--backend', 'dask', '--scheduler', strict.address]);
      assert.equal(result.code, 1, result.stderr);
      const dir = path.join(out, 'killer');
      const [file] = simKeys(dir);
      const sim = simAt(dir, file);
      assert.deepEqual([sim.status, sim.kind], ['failed', 'dask-task-erred']);
      assert.match(sim.message, /KilledWorker/);
      const log = events(dir);
      assert.ok(
        log.some((e) => e.type === 'worker-lost'),
        'the worker it killed is reported lost',
      );
      assert.ok(
        log.some((e) => e.type === 'dask-task-erred' && e.exc_type === 'KilledWorker'),
        'the erred task is an event with its cause',
      );
      const manifest = readJson(path.join(dir, 'manifest.json'));
      assert.equal(manifest.status, 'failed');
      assert.deepEqual(manifest.counts.aggregations, { total: 1, ok: 0, failed: 0, skipped: 1, pending: 0 });
    } finally {
      await strict.stop();
    }
  });

  it('a scheduler nobody listens at: scheduler-unreachable, exit 3, a manifest, and no hang', async () => {
    const address = `tcp://127.0.0.1:${await freePort()}`;
    const job = writeJob({
      job_id: 'nowhere',
      bundle: path.join(ROOT, 'examples', 'sir', 'bundle'),
      entrypoint: 'models.sir/baseline',
      parameter_sets: [{ beta: 0.3, gamma: 0.1 }],
      replicates: 2,
    });
    const out = path.join(scratch, 'out-nowhere');
    const result = cli(
      ['run', job, '--out', out, '--backend', 'dask', '--scheduler', address, '--connect-timeout', '2'],
      60_000,
    );
    assert.equal(result.code, 3, result.stderr);
    assert.ok(result.ms < 30_000, `it took ${result.ms} ms`);
    const manifest = readJson(path.join(out, 'nowhere', 'manifest.json'));
    assert.equal(manifest.status, 'aborted');
    assert.equal(manifest.failure.kind, 'scheduler-unreachable');
    assert.match(manifest.failure.message, new RegExp(`Could not connect to the Dask scheduler at ${address}`));
    assert.match(result.stderr, /scheduler-unreachable/);
  });

  it('the scheduler killed mid-job: scheduler-lost (an event and the failure), exit 3, a manifest, no hang; --resume finishes elsewhere', async () => {
    const doomed = await DaskCluster.start({
      workers: 1,
      env: { MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR! },
    });
    // results are recorded a parameter set at a time (they come back with its aggregation)
    const job = writeJob({
      job_id: 'orphaned',
      bundle: modesBundle(),
      entrypoint: 'm.m/x',
      parameter_sets: [1, 2, 3, 4].map((x) => ({ mode: 'slow', sleep: 0.1, x })),
      replicates: 10,
    });
    const out = path.join(scratch, 'out-orphaned');
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [CLI, 'run', job, '--out', out, '--backend', 'dask', '--scheduler', doomed.address],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const dir = path.join(out, 'orphaned');
    try {
      while (simKeys(dir).length < 10) {
        if (Date.now() - started > 60_000) assert.fail(`the job did not get going: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const killedAt = Date.now();
      await doomed.killScheduler();
      const code = await Promise.race([
        exited,
        new Promise((resolve) => setTimeout(() => resolve('still running after 60 s'), 60_000)),
      ]);
      assert.equal(code, 3, stderr);
      assert.ok(Date.now() - killedAt < 30_000, `it took ${Date.now() - killedAt} ms to end`);
    } finally {
      child.kill('SIGKILL');
      await doomed.stop();
    }
    const manifest = readJson(path.join(dir, 'manifest.json'));
    assert.equal(manifest.status, 'aborted');
    assert.equal(manifest.failure.kind, 'scheduler-lost');
    assert.ok(manifest.counts.sims.pending > 0);
    const log = events(dir);
    assert.ok(
      log.some((e) => e.type === 'scheduler-lost' && e.scheduler === doomed.address),
      'a scheduler-lost event',
    );
    assert.equal(log.at(-1)!.type, 'job-done');

    const resumed = cli(['run', '--resume', dir, '--backend', 'dask', '--scheduler', cluster().address]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(simKeys(dir).length, 40);
    assert.equal(readJson(path.join(dir, 'manifest.json')).status, 'succeeded');
  });

  it('a print at import is a stdout-pollution warning at its line in the local bundle, as locally', () => {
    const bundle = path.join(ROOT, 'test', 'fixtures', 'bundles', 'print-at-import');
    const job = writeJob({ job_id: 'printer', bundle, entrypoint: 'a.b/c', parameter_sets: [{ x: 1 }], replicates: 2 });
    const out = path.join(scratch, 'out-printer');
    const result = cli(['run', job, '--out', out, '--backend', 'dask', '--scheduler', cluster().address]);
    assert.equal(result.code, 0, result.stderr);
    const warnings = events(path.join(out, 'printer')).filter(
      (e) => e.type === 'warning' && e.kind === 'stdout-pollution',
    );
    const wire = path.join(bundle, 'wire.py');
    assert.ok(warnings.length >= 1, 'a warning');
    assert.deepEqual([warnings[0].location.file, warnings[0].location.line], [wire, lineOf(wire, 'print-at-import')]);
    assert.match(warnings[0].message, /would corrupt the production runner's frames/);
  });

  it('a bundle that needs another Python: the worker says so; the job aborts with python-mismatch at the requires-python line, as locally', () => {
    const bundle = writeBundle(path.join(scratch, 'future-bundle'), {
      'pyproject.toml': '[project]\nname = "future"\nversion = "1"\nrequires-python = ">=3.99"  # MARK:requires\n',
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {}\n',
    });
    const job = writeJob({ job_id: 'future', bundle, entrypoint: 'a.b/c', parameter_sets: [{ x: 1 }], replicates: 2 });
    const out = path.join(scratch, 'out-future');
    const result = cli(['run', job, '--out', out, '--backend', 'dask', '--scheduler', cluster().address]);
    assert.equal(result.code, 3, result.stderr);
    const manifest = readJson(path.join(out, 'future', 'manifest.json'));
    assert.equal(manifest.status, 'aborted');
    assert.equal(manifest.failure.kind, 'python-mismatch');
    assert.match(
      manifest.failure.message,
      /^The bundle requires Python >=3\.99 \(pyproject\.toml requires-python\), but the Dask worker's .* is Python 3\./,
    );
    const pyproject = path.join(bundle, 'pyproject.toml');
    assert.deepEqual(
      [manifest.failure.location.file, manifest.failure.location.line],
      [pyproject, lineOf(pyproject, 'requires')],
    );
    assert.ok(
      manifest.failure.evidence.notes.some((note: string) => /^on Dask worker tcp:\/\/127\.0\.0\.1:\d+$/.test(note)),
    );
    assert.equal(manifest.counts.sims.pending, 2, 'nothing ran');
    assert.match(result.stderr, /--resume/);
  });

  describe('--dask-performance-report: Dask\'s own performance_report(filename, mode="inline") around the job', () => {
    /**
     * Whether the scheduler can make the report: it renders it with bokeh (Debian has no bokeh, so
     * Debian's python3-distributed cannot). The cluster's scheduler runs DASK_PYTHON.
     */
    const schedulerCanReport = () =>
      spawnSync(DASK_PYTHON, ['-c', 'import distributed.dashboard.components.scheduler'], { encoding: 'utf8' })
        .status === 0;
    const reportJob = (jobId: string) =>
      writeJob({
        job_id: jobId,
        bundle: path.join(ROOT, 'examples', 'sir', 'bundle'),
        entrypoint: 'models.sir/baseline',
        parameter_sets: [{ beta: 0.3, gamma: 0.1 }],
        replicates: 2,
      });

    it("where the scheduler can make it: the job runs inside it and the file is Dask's HTML report, inlined", function () {
      if (!schedulerCanReport()) this.skip(); // the next test runs instead
      const out = path.join(scratch, 'out-perf-report');
      const file = path.join(scratch, 'dask-perf-report.html');
      const args = ['--backend', 'dask', '--scheduler', cluster().address, '--dask-performance-report', file];
      const result = cli(['run', reportJob('perf-report'), '--out', out, ...args]);
      assert.equal(result.code, 0, result.stderr);
      const html = readFileSync(file, 'utf8');
      assert.match(html, /^\s*<!DOCTYPE html>/i);
      assert.ok(html.includes('Dask Performance Report'), "Dask's report");
      assert.ok(html.includes('Task Stream'), 'its task stream tab');
      assert.doesNotMatch(html, /<script[^>]+src=["']?https?:/, 'mode="inline": bokeh\'s JS is in the file');
      const manifest = readJson(path.join(out, 'perf-report', 'manifest.json'));
      assert.deepEqual(manifest.environment.dask.performance_report, { file, bytes: Buffer.byteLength(html) });
    });

    it('where it cannot (no bokeh on the scheduler): dask-report-unavailable, exit 3, naming why, before any task runs', function () {
      if (schedulerCanReport()) this.skip(); // the test above runs instead
      const out = path.join(scratch, 'out-perf-report-unavailable');
      const file = path.join(scratch, 'dask-perf-report-unavailable.html');
      const args = ['--backend', 'dask', '--scheduler', cluster().address, '--dask-performance-report', file];
      const result = cli(['run', reportJob('perf-report-unavailable'), '--out', out, ...args]);
      assert.equal(result.code, 3, result.stderr);
      const manifest = readJson(path.join(out, 'perf-report-unavailable', 'manifest.json'));
      assert.equal(manifest.status, 'aborted');
      assert.equal(manifest.failure.kind, 'dask-report-unavailable');
      assert.match(
        manifest.failure.message,
        new RegExp(
          `^The Dask scheduler at ${cluster().address} cannot make Dask's performance report \\(--dask-performance-report\\): (ModuleNotFoundError: No module named 'bokeh'|ImportError: .*bokeh)`,
        ),
      );
      assert.match(result.stderr, /dask-report-unavailable/);
      assert.equal(manifest.counts.sims.pending, 2, 'no task ran');
      assert.equal(existsSync(file), false);
    });
  });

  it('refuses what only means something locally, and a missing scheduler, before writing anything', () => {
    const job = writeJob({
      job_id: 'refused',
      bundle: path.join(ROOT, 'examples', 'sir', 'bundle'),
      entrypoint: 'models.sir/baseline',
      parameter_sets: [{ beta: 0.3, gamma: 0.1 }],
      replicates: 1,
    });
    const out = path.join(scratch, 'out-refused');
    for (const [args, message] of [
      [['--backend', 'dask'], /--backend dask needs --scheduler/],
      [['--backend', 'dask', '--scheduler', 'localhost'], /not a scheduler address/],
      [
        ['--backend', 'dask', '--scheduler', cluster().address, '--executor', 'cold'],
        /--executor cold is not supported with --backend dask/,
      ],
      [['--scheduler', cluster().address], /--scheduler goes with --backend dask/],
      [
        ['--dask-performance-report', path.join(scratch, 'r.html')],
        /--dask-performance-report goes with --backend dask/,
      ],
      [
        ['--backend', 'dask', '--scheduler', cluster().address, '--dask-performance-report', '/nowhere/r.html'],
        /--dask-performance-report \/nowhere\/r\.html: the folder \/nowhere does not exist/,
      ],
    ] as const) {
      const result = cli(['run', job, '--out', out, ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
    }
    assert.equal(existsSync(out), false, 'nothing written');
  });
});
