/**
 * `npm run bench:startup`: what the command line costs before and after the work of a job, on a
 * 1-task job (one parameter set × one replicate of a trivial simulation, plus its summary
 * aggregation): `node <cli> run <job.json> --out <tmp> --base-python <python>`, spawn → exit, its
 * venv built by an untimed warm-up run. Also `handshake <bundle>`, spawn → exit.
 *
 * Contestants, interleaved and rotated round by round (BENCH_ROUNDS, default 9; medians):
 *  - this build (dist/cli.js), its code cache written by the warm-up run;
 *  - this build with MODELOPS_CODE_CACHE=off: the cache's share;
 *  - BENCH_CLI=path/to/cli.js, another build (e.g. main's), when given.
 * Each run has the preload test/bench/startup/marks.cjs (in every contestant alike), whose marks
 * and the job's events.jsonl give the phase breakdown printed after the totals.
 *
 * Each run is timed by test/bench/startup/timed.py (wall, and the CPU of the CLI with the runner
 * it reaped, from wait4). The machine may be shared: each round prints the CPU the rest of the
 * machine used meanwhile (Linux: /proc/stat minus that CPU), and flags the rounds where that was
 * more than half a core; the CPU row is the steadier measure there.
 *
 * BENCH_PYTHON: the base interpreter (default /usr/bin/python3, else python3 on PATH).
 * BENCH_KEEP=1 keeps the temp dir.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventTime } from '../../src/engine/job/events';
import { median } from './stats';

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 9));
const KEEP = process.env.BENCH_KEEP === '1';
const ROOT = path.resolve(__dirname, '..', '..');
const THIS_CLI = path.join(ROOT, 'dist', 'cli.js');
const MARKS = path.join(ROOT, 'test', 'bench', 'startup', 'marks.cjs');
const TIMED = path.join(ROOT, 'test', 'bench', 'startup', 'timed.py');
const PYTHON = process.env.BENCH_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
/** Runs timed.py (any Python ≥ 3.9). */
const TIMER_PYTHON = 'python3';
const TIMEOUT_MS = 120_000;
/** Others' CPU above this (cores, averaged over the run) marks a round as disturbed. */
const BUSY_CORES = 0.5;

interface Contestant {
  label: string;
  cli: string;
  env: NodeJS.ProcessEnv;
}

interface Marks {
  origin: number;
  preload: number;
  mainStart?: number;
  mainEnd?: number;
  compiles: { file?: string; ms: number; cached: boolean; rejected: boolean }[];
  spawns: { file?: string; start: number; end: number }[];
  exit: number;
  v8Start: number;
  cpuMs: number;
}

/** What timed.py says: ms, epoch ms for spawn and reaped. */
interface Timed {
  code: number;
  wall_ms: number;
  cpu_ms: number;
  spawn: number;
  reaped: number;
}

interface Sample {
  wallMs: number;
  /** The loader's vm.Script had cached data that V8 took. */
  cacheUsed: boolean;
  /** Phase → ms. */
  phases: Record<string, number>;
  cpuMs: number;
  othersCores?: number;
}

// ---------------------------------------------------------------------------------------------
// the machine

/** Busy and total jiffies of all CPUs (Linux); undefined elsewhere. */
function cpuTimes(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3] + (fields[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux ABI that exposes it

// ---------------------------------------------------------------------------------------------
// one run

/**
 * Node, spawn → exit, through test/bench/startup/timed.py: Node cannot have a child's rusage,
 * and on a shared machine the CPU a run used says more than its wall.
 */
function runTimed(args: string[], env: NodeJS.ProcessEnv): Promise<Timed & { stderr: string }> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const child = spawn(TIMER_PYTHON, [TIMED, process.execPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`timed.py exit ${code}: ${stderr.slice(-2000)}`));
      resolve({ ...(JSON.parse(stdout) as Timed), stderr });
    });
  });
}

/** First time of each event type in the job's events.jsonl (ms since the epoch). */
function eventTimes(file: string): Record<string, number> {
  const times: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const event = JSON.parse(line) as { t: number | string; type: string };
    times[event.type] ??= eventTime(event); // a base build's are ISO strings
  }
  return times;
}

/**
 * The phases of a 1-task run, in order; each ends where the next begins. Engine events carry
 * millisecond timestamps, the rest are sub-millisecond.
 */
const PHASES = [
  ['node start (exec, V8, bootstrap)', 'spawn', 'preload'],
  ['CLI module: read, compile, evaluate', 'preload', 'mainEnd'],
  ['args, job file, param ids, digest, results folder', 'mainEnd', 'job-start'],
  ['venv key + validity, interpreter (cached)', 'job-start', 'runnerSpawn'],
  ['runner fork/exec (sync in Node)', 'runnerSpawn', 'runnerSpawned'],
  ['Python start, runner import, ready', 'runnerSpawned', 'process-start'],
  ['the task', 'process-start', 'task-done'],
  ['aggregation', 'task-done', 'agg-done'],
  ['runner shutdown', 'agg-done', 'process-end'],
  ['results, manifest', 'process-end', 'job-done'],
  ['close, summary, event loop drains', 'job-done', 'exit'],
  ['exit, teardown', 'exit', 'reaped'],
] as const;

const V8_START = '  of which exec → V8 start';
const VM_COMPILE = "  of which vm.Script compile (a loader's)";

async function runOnce(contestant: Contestant, setup: Setup, round: number): Promise<Sample> {
  const out = path.join(setup.root, 'out', `${round}-${contestant.label.replace(/\W+/g, '_')}`);
  const marksFile = path.join(setup.root, `marks-${round}.json`);
  const env = { ...contestant.env, BENCH_MARKS_FILE: marksFile };
  const args = ['--require', MARKS, contestant.cli, 'run', setup.job, '--out', out, '--base-python', PYTHON];
  const before = cpuTimes();
  const result = await runTimed(args, env);
  const after = cpuTimes();
  if (result.code !== 0) throw new Error(`${contestant.label}: exit ${result.code}\n${result.stderr.slice(-2000)}`);
  const marks = JSON.parse(readFileSync(marksFile, 'utf8')) as Marks;
  const events = eventTimes(path.join(out, 'one', 'events.jsonl'));
  const runner = marks.spawns[0];
  const points: Record<string, number | undefined> = {
    spawn: result.spawn,
    preload: marks.preload,
    mainEnd: marks.mainEnd,
    runnerSpawn: runner?.start,
    runnerSpawned: runner?.end,
    exit: marks.exit,
    reaped: result.reaped,
    ...events,
  };
  const phases: Record<string, number> = {};
  for (const [name, from, to] of PHASES) {
    const [a, b] = [points[from], points[to]];
    if (a !== undefined && b !== undefined) phases[name] = b - a;
  }
  if (marks.compiles.length) phases[VM_COMPILE] = marks.compiles.reduce((sum, c) => sum + c.ms, 0);
  phases[V8_START] = marks.v8Start - result.spawn;
  let othersCores: number | undefined;
  if (before && after && after.total > before.total) {
    const cores = os.cpus().length;
    const wallTicks = (after.total - before.total) / cores;
    const busyMs = (after.busy - before.busy) * TICK_MS;
    othersCores = Math.max(0, (busyMs - result.cpu_ms) / (wallTicks * TICK_MS));
  }
  rmSync(out, { recursive: true, force: true });
  const cacheUsed = marks.compiles.some((c) => c.cached && !c.rejected);
  return { wallMs: result.wall_ms, cacheUsed, phases, cpuMs: result.cpu_ms, othersCores };
}

async function handshakeOnce(contestant: Contestant, setup: Setup): Promise<number> {
  const result = await runTimed([contestant.cli, 'handshake', setup.bundle, '--base-python', PYTHON], contestant.env);
  if (result.code !== 0) throw new Error(`${contestant.label} handshake: exit ${result.code}\n${result.stderr}`);
  return result.wall_ms;
}

// ---------------------------------------------------------------------------------------------
// setup and report

interface Setup {
  root: string;
  bundle: string;
  job: string;
}

function makeSetup(): Setup {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-startup-'));
  const bundle = path.join(root, 'bundle');
  mkdirSync(bundle);
  writeFileSync(path.join(bundle, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n');
  const job = path.join(root, 'job.json');
  writeFileSync(
    job,
    JSON.stringify({ job_id: 'one', bundle, entrypoint: 'main', parameter_sets: [{ p: 1.5 }], replicates: 1 }),
  );
  return { root, bundle, job };
}

const fmt = (ms: number) => (Number.isNaN(ms) ? 'n/a' : ms.toFixed(1)).padStart(16);

async function main(): Promise<void> {
  const setup = makeSetup();
  const shared = {
    ...process.env,
    MODELOPS_VENVS_DIR: path.join(setup.root, 'venvs'),
    // a code cache of the bench's own, written by the warm-up runs
    XDG_CACHE_HOME: path.join(setup.root, 'cache'),
  };
  const contestants: Contestant[] = [
    { label: 'this build', cli: THIS_CLI, env: shared },
    { label: 'this, cache off', cli: THIS_CLI, env: { ...shared, MODELOPS_CODE_CACHE: 'off' } },
  ];
  if (process.env.BENCH_CLI)
    contestants.push({ label: 'BENCH_CLI', cli: path.resolve(process.env.BENCH_CLI), env: shared });
  for (const c of contestants) if (!existsSync(c.cli)) throw new Error(`${c.cli} is missing: run \`npm run build\``);
  try {
    console.log(`1-task job, spawn → exit; ${ROUNDS} rounds, interleaved and rotated; python ${PYTHON}`);
    for (const c of contestants) console.log(`  ${c.label.padEnd(16)} ${c.cli}`);
    // warm-up: builds the venv, writes each build's code cache, warms the page cache
    for (const c of contestants) await runOnce(c, setup, -1);
    for (const c of contestants) await handshakeOnce(c, setup);

    const samples = contestants.map(() => [] as Sample[]);
    const handshakes = contestants.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      const order = contestants.map((_, i) => (i + round) % contestants.length);
      const line: string[] = [];
      for (const i of order) {
        const sample = await runOnce(contestants[i], setup, round);
        samples[i].push(sample);
        handshakes[i].push(await handshakeOnce(contestants[i], setup));
        const others = sample.othersCores;
        const flag = others !== undefined && others > BUSY_CORES ? ' BUSY' : '';
        line.push(
          `${contestants[i].label} ${sample.wallMs.toFixed(0)} ms` +
            (others !== undefined ? ` (others ${others.toFixed(2)} cores${flag})` : ''),
        );
      }
      console.log(`  round ${round + 1}: ${line.join('; ')}`);
    }

    const header = ['', ...contestants.map((c) => c.label.padStart(16))].join(' ');
    console.log(`\nmedians (ms)${' '.repeat(40)}${header}`);
    const row = (name: string, values: number[]) => console.log(`${name.padEnd(52)} ${values.map(fmt).join(' ')}`);
    row(
      '1-task job wall',
      samples.map((s) => median(s.map((x) => x.wallMs))),
    );
    row(
      'handshake wall',
      handshakes.map((h) => median(h)),
    );
    row(
      'CPU of the CLI and its runner (rusage)',
      samples.map((s) => median(s.map((x) => x.cpuMs))),
    );
    const undisturbed = samples.map((s) =>
      s.filter((x) => x.othersCores === undefined || x.othersCores <= BUSY_CORES).map((x) => x.wallMs),
    );
    if (undisturbed.every((u) => u.length))
      row(
        `1-task wall, rounds others < ${BUSY_CORES} core`,
        undisturbed.map((u) => median(u)),
      );
    const used = samples.map((s) => `${s.filter((x) => x.cacheUsed).length}/${s.length}`.padStart(16));
    console.log(`${'runs that used a code cache'.padEnd(52)} ${used.join(' ')}`);
    const base = contestants.length - 1;
    if (base > 0) {
      const wall = samples.map((s) => median(s.map((x) => x.wallMs)));
      const hs = handshakes.map((h) => median(h));
      const ratio = (values: number[]) => (values[0] / values[base]).toFixed(3);
      console.log(`\nratio this build / ${contestants[base].label}: job ${ratio(wall)}, handshake ${ratio(hs)}`);
    }
    console.log('\nwhere the time goes (medians, ms)');
    const subRows: Record<string, string> = {
      [PHASES[0][0]]: V8_START,
      [PHASES[1][0]]: VM_COMPILE,
    };
    const ordered = PHASES.flatMap(([name]) => (subRows[name] ? [name, subRows[name]] : [name]));
    for (const name of ordered) {
      const values = samples.map((s) => {
        const xs = s.map((x) => x.phases[name]).filter((v): v is number => v !== undefined);
        return xs.length ? median(xs) : NaN;
      });
      row(name, values);
    }
    console.log(
      '\n(engine events carry millisecond timestamps; "close, summary" includes ending the results store;' +
        " the vm.Script compile is a loader's own, with the cache it is a deserialisation)",
    );
  } finally {
    if (KEEP) console.log(`kept ${setup.root}`);
    else rmSync(setup.root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
