/**
 * `npm run bench:resume`: `run --resume <dir>` of a big job's results folder, this build against
 * another (BENCH_OTHER_CLI, default /work/main/dist/cli.js if it exists), interleaved round by
 * round. Four folders per build: 40k and 400k tasks (200 replicates a set), completed and
 * half-done (the first half of the sets aggregated, the rest not started).
 *
 * - completed: spawn → exit (nothing to run: the resume counts, writes its manifest and ends);
 * - half-done: spawn → the first `task-start` or `task-done` event on stdout (`--json`), which
 *   includes starting one Python runner (`--python`, no venv); the process group is then killed,
 *   so each round finds the folder as the last left it (a few more results, a lock to take over).
 *
 * The folders are made once (kept under BENCH_DIR, default $TMPDIR/mo-bench-resume, and reused):
 * this build's with the engine's own store (ResultsStore: job.json, sims/<param>.jsonl, aggs,
 * a manifest, events.jsonl with one task-done per task as a real run writes); the other build's in
 * results layout 1 (sims/<param>/<i>.json), the same records written one file each, as that
 * build wrote them. Warm page cache (nothing is dropped between rounds). BENCH_ROUNDS (default 3),
 * medians printed; goals: 40k completed < 0.3 s, 400k completed < 2 s. BENCH_SIZES=40000: that size only.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleDigest } from '../../src/engine/bundle/bundleDir';
import type { AggRecord, SimRecord } from '../../src/engine/job/records';
import { ResultsStore } from '../../src/engine/job/results';
import { loadJobFile, type JobSpec } from '../../src/engine/job/spec';
import { aggKey, simKey } from '../../src/engine/job/taskKeys';
import { median } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const OURS = path.join(ROOT, 'dist', 'cli.js');
const OTHER = process.env.BENCH_OTHER_CLI ?? (existsSync('/work/main/dist/cli.js') ? '/work/main/dist/cli.js' : '');
const BENCH_DIR = process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'mo-bench-resume');
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const REPLICATES = 200;
/** BENCH_SIZES=40000: only that size (comma-separated task counts; default both). */
const SIZES = (process.env.BENCH_SIZES ?? '40000,400000').split(',').map(Number);
const STATES = ['completed', 'half-done'] as const;
/** The longest a resume may take before the round is called failed. */
const TIMEOUT_MS = 300_000;
/** Marks a folder as made whole; renamed whenever what a folder holds changes, so old ones are made again. */
const MADE = '.made-job-json-sha256';

type Layout = 1 | 2;

function folderName(tasks: number, state: (typeof STATES)[number], layout: Layout): string {
  return `L${layout}-${tasks / 1000}k-${state}`;
}

/** The sim record a trivial task leaves (one 3-byte output). */
function simRecord(job: JobSpec, set: number, replicate: number): SimRecord {
  const { paramId, seeds } = job.parameterSets[set];
  return {
    key: simKey(paramId, replicate),
    status: 'ok',
    param_id: paramId,
    replicate,
    seed: seeds[replicate],
    attempts: 1,
    pid: 4242,
    ms: 1,
    outputs: { value: { size: 3, inline: 'MC4x' } },
    stderr: { log: 'logs/runner-4242.stderr', start: 0, end: 0 },
  };
}

function aggRecord(job: JobSpec, set: number): AggRecord {
  const { paramId, params } = job.parameterSets[set];
  return {
    key: aggKey(paramId),
    status: 'ok',
    param_id: paramId,
    params,
    n_replicates: REPLICATES,
    ms: 3,
    targets: {},
    summary: { value: { count: REPLICATES, mean: 0.1, std: 0, min: 0.1, max: 0.1 } },
  };
}

/** A results folder of `tasks` tasks, made with the engine's store (layout 2) or written as layout 1 was. */
async function makeFolder(tasks: number, state: (typeof STATES)[number], layout: Layout): Promise<string> {
  const name = folderName(tasks, state, layout);
  const out = path.join(BENCH_DIR, 'out');
  const dir = path.join(out, name);
  if (existsSync(path.join(dir, MADE))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const bundle = path.join(BENCH_DIR, 'bundle');
  mkdirSync(bundle, { recursive: true });
  writeFileSync(path.join(bundle, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {"value": b"0.1"}\n');
  const sets = tasks / REPLICATES;
  const jobFile = path.join(BENCH_DIR, `${name}.job.json`);
  writeFileSync(
    jobFile,
    JSON.stringify({
      job_id: name,
      bundle,
      entrypoint: 'bench/x',
      parameter_sets: Array.from({ length: sets }, (_, i) => ({ i })),
      replicates: REPLICATES,
    }),
  );
  const started = performance.now();
  const job = await loadJobFile(jobFile);
  const store = await ResultsStore.create(out, job, await bundleDigest(bundle));
  const doneSets = state === 'completed' ? sets : sets / 2;
  let events = '';
  for (let set = 0; set < doneSets; set++) {
    for (let replicate = 0; replicate < REPLICATES; replicate++) {
      const record = simRecord(job, set, replicate);
      if (layout === 2) store.writeSim(record);
      else {
        const folder = path.join(dir, 'sims', job.parameterSets[set].paramId.slice(0, 16));
        if (replicate === 0) mkdirSync(folder, { recursive: true });
        writeFileSync(path.join(folder, `${replicate}.json`), JSON.stringify(record));
      }
      events += `${JSON.stringify({ t: Date.now(), type: 'task-done', key: record.key, status: 'ok', attempt: 1, pid: 4242, ms: 1 })}\n`;
    }
    store.writeAgg(aggRecord(job, set));
    if (events.length > 1 << 20) {
      appendFileSync(path.join(dir, 'events.jsonl'), events);
      events = '';
    }
  }
  store.flushSims();
  appendFileSync(path.join(dir, 'events.jsonl'), events);
  const done = doneSets * REPLICATES;
  store.writeJson('manifest.json', {
    job_id: name,
    ...(layout === 2 ? { layout: 2 } : {}),
    status: state === 'completed' ? 'succeeded' : 'interrupted',
    // as a run of this build records the job.json it wrote (a resume then does not hash its seeds again)
    ...(layout === 2 ? { job_json_sha256: store.jobJsonSha256 } : {}),
    counts: {
      sims: { total: tasks, ok: done, failed: 0, pending: tasks - done },
      aggregations: { total: sets, ok: doneSets, failed: 0, skipped: 0, pending: sets - doneSets },
    },
  });
  await store.close();
  writeFileSync(path.join(dir, MADE), '');
  console.error(`  made ${name} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

/** One resume: ms to exit (completed) or to the first task event (half-done, then the group is killed). */
function resumeOnce(cli: string, dir: string, state: (typeof STATES)[number]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [cli, 'run', '--resume', dir, '--json', '--python', PYTHON], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let done = false;
    const finish = (error?: Error, ms?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (state === 'half-done') {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (error) reject(error);
      else resolve(ms!);
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer in ${TIMEOUT_MS} ms: ${stderr.slice(-500)}`)),
      TIMEOUT_MS,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (state === 'half-done' && /"type":\s*"task-(start|done)"/.test(stdout))
        finish(undefined, performance.now() - started);
      if (stdout.length > 1 << 16) stdout = stdout.slice(-4096);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => {
      if (state === 'completed') {
        const ms = performance.now() - started;
        if (code === 0) finish(undefined, ms);
        else finish(new Error(`${cli} exited ${code}: ${stderr.slice(-800)}`));
      } else if (!done) finish(new Error(`${cli} exited ${code} before a task ran: ${stderr.slice(-800)}`));
    });
  });
}

async function main(): Promise<void> {
  const builds: { label: string; cli: string; layout: Layout }[] = [{ label: 'this build', cli: OURS, layout: 2 }];
  if (OTHER) builds.push({ label: `other (${OTHER})`, cli: OTHER, layout: 1 });
  console.log(`--resume of big jobs, ${ROUNDS} rounds interleaved, warm cache; folders in ${BENCH_DIR}`);
  const cases: { tasks: number; state: (typeof STATES)[number] }[] = SIZES.flatMap((tasks) =>
    STATES.map((state) => ({ tasks, state })),
  );
  const dirs = new Map<string, string>();
  for (const { tasks, state } of cases)
    for (const build of builds)
      dirs.set(`${build.label}/${tasks}/${state}`, await makeFolder(tasks, state, build.layout));
  if (ROUNDS === 0) return; // BENCH_ROUNDS=0: make the folders only
  const times = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++)
    for (const { tasks, state } of cases)
      for (const build of builds) {
        const key = `${build.label}/${tasks}/${state}`;
        const ms = await resumeOnce(build.cli, dirs.get(key)!, state);
        times.set(key, [...(times.get(key) ?? []), ms]);
      }
  console.log('');
  console.log('| job | state | measured | this build (median) | other build (median) | ratio | goal |');
  console.log('|---|---|---|---|---|---|---|');
  for (const { tasks, state } of cases) {
    const ours = median(times.get(`${builds[0].label}/${tasks}/${state}`)!);
    const other = builds[1] ? median(times.get(`${builds[1].label}/${tasks}/${state}`)!) : undefined;
    const goal = state === 'completed' ? (tasks === 40_000 ? '< 300 ms' : '< 2000 ms') : '';
    console.log(
      `| ${tasks / 1000}k | ${state} | ${state === 'completed' ? 'spawn → exit' : 'spawn → first task event'} | ${ours.toFixed(0)} ms | ${other === undefined ? '—' : `${other.toFixed(0)} ms`} | ${other === undefined ? '—' : `${(other / ours).toFixed(1)}×`} | ${goal} |`,
    );
  }
  for (const [key, list] of times) console.log(`  ${key}: ${list.map((ms) => ms.toFixed(0)).join(', ')} ms`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
