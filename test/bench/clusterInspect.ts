/**
 * `npm run bench:cluster`: `cluster inspect` of 64 real Dask workers (BENCH_WORKERS) on 127.0.0.1,
 * every one pointed (by its environment, as production's are) at one production-shaped venvs
 * directory and bundles cache, against the floor: a bare `client.run` of a no-op on every worker,
 * from a Python process that connects to the same scheduler (test/bench/dask/run_floor.py).
 *
 * Timed side by side, interleaved, over BENCH_ROUNDS rounds (default 5), medians reported:
 * - the whole CLI (Node's start, the driver's, the scheduler's questions, every worker's answer,
 *   the verdicts, the JSON) against the floor's whole process (Python's start, distributed's
 *   import, the connection, one `client.run`);
 * - the driver's own `ms` (every worker asked, each on its own call with its own deadline) against
 *   the floor's `client.run` alone, and the floor asking each worker on its own call as the driver
 *   does (what that pattern costs by itself).
 * Then one worker is frozen (SIGSTOP): the inspection must come back within its --timeout (plus
 * the CLI's own start), that worker "no answer", every other answered.
 *
 * 2 cores here: 64 workers take a minute or two to start, ~80 MB each.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DASK_PYTHON, DaskCluster } from '../dask/cluster';
import { median, quantile } from './stats';

const WORKERS = Math.max(1, Number(process.env.BENCH_WORKERS ?? 64));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
/** Workers started at once: 2 cores, each importing distributed. */
const START_BATCH = 4;
const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const FLOOR = path.join(ROOT, 'test', 'bench', 'dask', 'run_floor.py');
const RUN_TIMEOUT_MS = 300_000;
const INSPECT_TIMEOUT_S = 30;
const FROZEN_TIMEOUT_S = 5;
/** What the CLI may take beyond its --timeout with one worker frozen: Node's and the driver's start. */
const FROZEN_SLACK_S = 15;

function run(command: string, args: string[]): Promise<{ stdout: string; code: number | null; wallS: number }> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-20_000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const wallS = (performance.now() - started) / 1000;
      if (signal) reject(new Error(`${path.basename(args[0])} ended by ${signal}:\n${stderr.slice(-3000)}`));
      else resolve({ stdout, code, wallS });
    });
  });
}

/** Production's layout (modelops-engine.md §2.2–2.4): a dozen venvs of several kinds, each with files to size. */
function layOut(root: string): { venvs: string; bundles: string } {
  const venvs = path.join(root, 'venvs');
  const bundles = path.join(root, 'bundles');
  for (const digest of ['sha256:abcde', 'sha256:12345']) {
    const dir = path.join(bundles, 'bundles', digest);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'pyproject.toml'), '[project]\nname = "sir"\nversion = "1.0"\ndependencies = []\n');
    writeFileSync(path.join(dir, '.complete'), '');
  }
  const keys = [
    ...['11111111', '22222222', '33333333', '44444444', '55555555'].map((d) => `sha256:abcde-py3.11-${d}`),
    ...['66666666', '77777777', '88888888'].map((d) => `sha256:12345-py3.11-${d}`),
    'sha256:abcde-py3.12-99999999',
    ...['0a1b2c3d', '1a2b3c4d', '2a3b4c5d'].map((f) => `sha256:abcde-py3.11-11111111-${f}`),
  ];
  for (const [i, key] of keys.entries()) {
    const venv = path.join(venvs, key);
    const site = path.join(venv, 'lib', 'python3.11', 'site-packages');
    mkdirSync(path.join(venv, 'bin'), { recursive: true });
    writeFileSync(path.join(venv, 'pyvenv.cfg'), 'home = /usr/bin\nversion = 3.11.2\n');
    if (i !== 4) symlinkSync(DASK_PYTHON, path.join(venv, 'bin', 'python')); // one half-built
    writeFileSync(path.join(venv, '.deps_installed'), i === 3 ? '0'.repeat(32) : 'f'.repeat(32));
    writeFileSync(`${venv}.lock`, '');
    // 300 files in 30 packages: a small real venv's size walk
    for (let p = 0; p < 30; p++) {
      mkdirSync(path.join(site, `pkg${p}`), { recursive: true });
      for (let f = 0; f < 10; f++) writeFileSync(path.join(site, `pkg${p}`, `m${f}.py`), 'x = 1\n'.repeat(50));
    }
    mkdirSync(path.join(venv, 'logs'));
    writeFileSync(path.join(venv, 'logs', `runner-${key.slice(0, 12)}-1.stderr`), 'runner started\n');
  }
  return { venvs, bundles };
}

interface InspectSample {
  wallS: number;
  driverMs: number;
  answered: number;
  /** Each answering worker's own time for its inspection (its facts' ms). */
  workerMs: number[];
}

async function inspect(scheduler: string, timeoutS: number): Promise<InspectSample & { report: Report }> {
  const { stdout, wallS } = await run(process.execPath, [
    CLI,
    'cluster',
    'inspect',
    '--scheduler',
    scheduler,
    '--timeout',
    String(timeoutS),
    // a scheduler with 64 workers on 2 busy cores can take long to answer a new client: timed, not failed
    '--connect-timeout',
    '120',
    '--json',
  ]);
  const report = JSON.parse(stdout) as Report;
  if (!report.workers) throw new Error(`cluster inspect failed: ${stdout.slice(0, 2000)}`);
  const workerMs = report.workers.flatMap((w) => (w.facts ? [w.facts.ms] : []));
  return { wallS, driverMs: report.ms, answered: report.health.answered, workerMs, report };
}

interface Report {
  ms: number;
  workers: { address: string; no_answer?: boolean; facts?: { pid: number; ms: number } }[];
  health: { answered: number; silent: string[]; counts: Record<string, number> };
}

interface FloorSample {
  wallS: number;
  runMs: number;
  perWorkerMs: number;
  workers: number;
}

async function floor(scheduler: string): Promise<FloorSample> {
  const { stdout, wallS, code } = await run(DASK_PYTHON, [FLOOR, scheduler]);
  if (code !== 0) throw new Error(`the floor script exited ${code}`);
  const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
  return { wallS, runMs: out.run_ms, perWorkerMs: out.per_worker_ms, workers: out.workers };
}

/** The cluster size the issue asks about; this machine cannot host that many workers (64 saturate its 2 cores). */
const PROJECT_TO = 64;

/**
 * One round's whole CLI projected to `workers` workers on machines of their own: what the CLI
 * spends outside the driver (Node's start, the driver's, the verdicts) stays; the workers scan in
 * parallel, so the slowest scan stays; what the driver spends beyond the slowest scan (a thread and
 * a `client.run` per worker, the answers' framing) grows with the count. Measured here with the
 * workers sharing 2 cores, that last part includes their contention, so the projection errs high.
 */
function projectTo(workers: number, sample: InspectSample): number {
  const driverS = sample.driverMs / 1000;
  const slowestS = Math.max(...sample.workerMs) / 1000;
  const perWorkerS = Math.max(0, driverS - slowestS) / WORKERS;
  return sample.wallS - driverS + slowestS + workers * perWorkerS;
}

function show(label: string, values: number[], unit: string, digits: number): string {
  const f = (v: number) => v.toFixed(digits);
  return `${label.padEnd(44)} median ${f(median(values))} ${unit}  (min ${f(Math.min(...values))}, p90 ${f(quantile(values, 0.9))}, n=${values.length})`;
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-cluster-'));
  const dirs = layOut(work);
  const cluster = await DaskCluster.start({
    workers: 0,
    env: { MODELOPS_VENVS_DIR: dirs.venvs, MODELOPS_BUNDLES_CACHE_DIR: dirs.bundles },
  });
  try {
    const startedAt = performance.now();
    for (let n = 0; n < WORKERS; n += START_BATCH)
      await Promise.all(
        // one more try for a worker that did not start within 60 s: a loaded machine, not what is measured
        Array.from({ length: Math.min(START_BATCH, WORKERS - n) }, () =>
          cluster.addWorker().catch((error: Error) => {
            console.error(`a worker did not start, trying once more: ${error.message.split('\n')[0]}`);
            return cluster.addWorker();
          }),
        ),
      );
    console.log(
      `Dask cluster ${cluster.address}: scheduler + ${cluster.workers.length} workers × 1 thread (no nanny), started in ${((performance.now() - startedAt) / 1000).toFixed(0)} s; ${DASK_PYTHON}; Node ${process.version}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${ROUNDS} round(s)`,
    );
    console.log(`every worker: ${dirs.venvs} (12 venvs × 300 files, their locks) and ${dirs.bundles} (2 bundles)\n`);
    // warm-up: the scheduler has met the driver's and the floor's clients once
    const warm = await inspect(cluster.address, INSPECT_TIMEOUT_S);
    console.log(`warm-up: ${warm.answered}/${WORKERS} answered in ${warm.wallS.toFixed(2)} s`);
    await floor(cluster.address);
    const ours: InspectSample[] = [];
    const floors: FloorSample[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? (['ours', 'floor'] as const) : (['floor', 'ours'] as const);
      for (const who of order) {
        if (who === 'ours') {
          const sample = await inspect(cluster.address, INSPECT_TIMEOUT_S);
          ours.push(sample);
          // a busy machine can keep workers from answering within the timeout: said, not hidden
          console.log(
            `round ${round}: inspect  CLI ${sample.wallS.toFixed(2)} s, driver ${(sample.driverMs / 1000).toFixed(2)} s, ` +
              `${sample.answered}/${WORKERS} answered, worker's own inspection median ${median(sample.workerMs).toFixed(0)} ms ` +
              `(max ${Math.max(...sample.workerMs).toFixed(0)})`,
          );
        } else {
          const sample = await floor(cluster.address);
          if (sample.workers !== WORKERS) throw new Error(`round ${round}: the floor saw ${sample.workers} workers`);
          floors.push(sample);
          console.log(
            `round ${round}: floor    process ${sample.wallS.toFixed(2)} s, client.run ${(sample.runMs / 1000).toFixed(3)} s, one call per worker ${(sample.perWorkerMs / 1000).toFixed(3)} s`,
          );
        }
      }
    }
    const cliWall = ours.map((s) => s.wallS);
    const driverS = ours.map((s) => s.driverMs / 1000);
    const floorWall = floors.map((s) => s.wallS);
    const floorRun = floors.map((s) => s.runMs / 1000);
    const floorPer = floors.map((s) => s.perWorkerMs / 1000);
    console.log('');
    console.log(show(`cluster inspect, whole CLI (${WORKERS} workers)`, cliWall, 's', 2));
    console.log(show('floor, whole process (client.run no-op)', floorWall, 's', 2));
    console.log(show('cluster inspect, driver ms', driverS, 's', 3));
    console.log(show('floor, client.run no-op on all', floorRun, 's', 3));
    console.log(show('floor, client.run no-op, one call per worker', floorPer, 's', 3));
    console.log(
      `\nratios (medians): CLI / floor process ${(median(cliWall) / median(floorWall)).toFixed(2)}×, ` +
        `driver / client.run ${(median(driverS) / median(floorRun)).toFixed(2)}×, ` +
        `driver / one call per worker ${(median(driverS) / median(floorPer)).toFixed(2)}×`,
    );
    console.log(`target: under 5 s for ${WORKERS} workers: ${median(cliWall) < 5 ? 'met' : 'NOT met'} (whole CLI)`);
    if (WORKERS < PROJECT_TO) {
      const projected = median(ours.map((sample) => projectTo(PROJECT_TO, sample)));
      console.log(
        `projected to ${PROJECT_TO} workers, each on its own machine (median of the rounds' projections): ` +
          `${projected.toFixed(2)} s — ${projected < 5 ? 'met' : 'NOT met'} (target under 5 s; see projectTo)`,
      );
    }

    // one worker frozen: it must be "no answer" within the timeout, never a hang
    const frozen = cluster.workers[0];
    process.kill(frozen.pid, 'SIGSTOP');
    try {
      const sample = await inspect(cluster.address, FROZEN_TIMEOUT_S);
      const silent = sample.report.health.silent;
      const ok =
        silent.length === 1 &&
        silent[0] === frozen.address &&
        sample.answered === WORKERS - 1 &&
        sample.wallS < FROZEN_TIMEOUT_S + FROZEN_SLACK_S;
      console.log(
        `\none worker frozen (SIGSTOP pid ${frozen.pid}, ${frozen.address}), --timeout ${FROZEN_TIMEOUT_S}: ` +
          `CLI ${sample.wallS.toFixed(2)} s, driver ${(sample.driverMs / 1000).toFixed(2)} s, ` +
          `${sample.answered} answered, no answer from ${silent.join(', ') || 'nobody'}: ${ok ? 'as it must' : 'WRONG'}`,
      );
      if (!ok) process.exitCode = 1;
    } finally {
      process.kill(frozen.pid, 'SIGCONT');
    }
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
