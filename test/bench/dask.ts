/**
 * `npm run bench:dask`: the example job (examples/sir/job.json, 20 parameter sets × 200
 * replicates + 20 aggregations) on one running Dask cluster — a scheduler and 2 workers × 1
 * thread on 127.0.0.1, as the tests start it — through our Dask backend and through plain Dask
 * client code (test/bench/dask/plain_dask.py: the same tasks, keys and aggregations, the wire
 * function called inside the worker). Interleaved round by round (BENCH_ROUNDS, default 3),
 * medians reported, and the ratio ours / plain printed; the target is 1.2× or less.
 *
 * Both are timed as whole processes, spawn to exit, each connecting to the already running
 * cluster: ours includes Node's start, the driver's (Python importing distributed), shipping the
 * bundle, the runners' round trips and every result written to disk; plain includes Python's
 * start and its client. The job-only part (first submit to last result) is shown as well. One
 * untimed warm-up of each first: the workers' venv is built and their runners warm, and the
 * plain workers have imported the bundle. Their aggregates must agree, or nothing is reported.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DASK_PYTHON, DaskCluster } from '../dask/cluster';
import { eventTime } from '../../src/engine/job/events';
import { median, quantile } from './stats';

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const JOB = path.join(ROOT, 'examples', 'sir', 'job.json');
const PLAIN = path.join(ROOT, 'test', 'bench', 'dask', 'plain_dask.py');
const RUN_TIMEOUT_MS = 600_000;
const TARGET_RATIO = 1.2;

interface Sample {
  wallS: number;
  jobS: number;
  /** param_id → target → loss */
  losses: Record<string, Record<string, number>>;
}

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ stdout: string; stderr: string; wallS: number }> {
  const started = performance.now();
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-20_000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const wallS = (performance.now() - started) / 1000;
      if (code === 0) resolve({ stdout, stderr, wallS });
      else reject(new Error(`${path.basename(args[0])} ended with ${signal ?? code}:\n${stderr.slice(-3000)}`));
    });
  });
}

async function ours(scheduler: string, out: string, env: Record<string, string>): Promise<Sample> {
  const dir = mkdtempSync(path.join(out, 'ours-'));
  const { wallS } = await run(
    process.execPath,
    [CLI, 'run', JOB, '--out', dir, '--backend', 'dask', '--scheduler', scheduler],
    env,
  );
  const [jobId] = readdirSync(dir);
  const manifest = JSON.parse(readFileSync(path.join(dir, jobId, 'manifest.json'), 'utf8'));
  const submitted = readFileSync(path.join(dir, jobId, 'events.jsonl'), 'utf8')
    .split('\n')
    .find((line) => line.includes('"dask-connected"'));
  const connectedAt = eventTime(JSON.parse(submitted!));
  const jobS = (Date.parse(manifest.finished_at) - connectedAt) / 1000;
  const losses: Sample['losses'] = {};
  const aggs = path.join(dir, jobId, 'aggs');
  for (const file of readdirSync(aggs)) {
    const agg = JSON.parse(readFileSync(path.join(aggs, file), 'utf8'));
    losses[agg.param_id] = Object.fromEntries(
      Object.entries(agg.targets as Record<string, { loss: number }>).map(([t, r]) => [t, r.loss]),
    );
  }
  rmSync(dir, { recursive: true, force: true });
  return { wallS, jobS, losses };
}

async function plain(scheduler: string, env: Record<string, string>): Promise<Sample> {
  const { stdout, wallS } = await run(DASK_PYTHON, [PLAIN, '--scheduler', scheduler, '--job', JOB], env);
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
  const losses: Sample['losses'] = {};
  for (const [paramId, targets] of Object.entries(
    result.aggregates as Record<string, Record<string, { loss: number }>>,
  )) {
    losses[paramId] = Object.fromEntries(Object.entries(targets).map(([t, r]) => [t, r.loss]));
  }
  return { wallS, jobS: result.job_s, losses };
}

function sameLosses(a: Sample['losses'], b: Sample['losses']): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}

function show(label: string, values: number[]): string {
  return `${label.padEnd(28)} median ${median(values).toFixed(2)} s  (min ${Math.min(...values).toFixed(2)}, p90 ${quantile(values, 0.9).toFixed(2)}, n=${values.length})`;
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-dask-'));
  const env = { MODELOPS_VENVS_DIR: path.join(work, 'venvs') };
  const cluster = await DaskCluster.start({ workers: 2, env });
  try {
    console.log(
      `Dask cluster ${cluster.address}: scheduler + ${cluster.workers.length} workers × 1 thread (no nanny), ${DASK_PYTHON}; Node ${process.version}, ${os.cpus().length} CPUs, ${ROUNDS} round(s)`,
    );
    console.log('job: examples/sir/job.json (20 parameter sets × 200 replicates + 20 aggregations)\n');
    const warmOurs = await ours(cluster.address, work, env);
    const warmPlain = await plain(cluster.address, env);
    if (!sameLosses(warmOurs.losses, warmPlain.losses))
      throw new Error('our aggregates differ from plain Dask: nothing to compare');
    const samples = { ours: [] as Sample[], plain: [] as Sample[] };
    for (let round = 1; round <= ROUNDS; round++) {
      // alternate who goes first, so neither always meets a cluster the other just warmed
      const order = round % 2 ? (['ours', 'plain'] as const) : (['plain', 'ours'] as const);
      for (const who of order) {
        const sample = who === 'ours' ? await ours(cluster.address, work, env) : await plain(cluster.address, env);
        if (!sameLosses(sample.losses, warmPlain.losses))
          throw new Error(`round ${round}: ${who}'s aggregates changed`);
        samples[who].push(sample);
        console.log(
          `round ${round}: ${who.padEnd(5)} wall ${sample.wallS.toFixed(2)} s, job ${sample.jobS.toFixed(2)} s`,
        );
      }
    }
    const wall = (who: 'ours' | 'plain') => samples[who].map((s) => s.wallS);
    const job = (who: 'ours' | 'plain') => samples[who].map((s) => s.jobS);
    console.log('');
    console.log(show('ours, whole CLI', wall('ours')));
    console.log(show('plain Dask, whole script', wall('plain')));
    console.log(show('ours, job only', job('ours')));
    console.log(show('plain Dask, job only', job('plain')));
    const ratio = median(wall('ours')) / median(wall('plain'));
    const jobRatio = median(job('ours')) / median(job('plain'));
    console.log(
      `\nratio ours / plain Dask: ${ratio.toFixed(2)}× whole process, ${jobRatio.toFixed(2)}× job only (target ≤ ${TARGET_RATIO}×): ${ratio <= TARGET_RATIO ? 'within target' : 'OVER target'}`,
    );
    console.log('the aggregates (every target loss) are identical in every run');
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
