/**
 * `npm run bench:stderr`: does a runner's stderr slow a job by more than the writing itself?
 * Side by side in one run, on the same interpreter:
 *  - the job: 16 replicates on 2 workers, each writing 20 MB to stderr (drained by the engine
 *    into logs/runner-<pid>.stderr), whole CLI process;
 *  - the same job whose replicates write nothing (the engine's own cost);
 *  - the writing itself: the same 16 × 20 MB written to sys.stderr by 2 plain Python
 *    processes whose stderr is a file, unbuffered as runners are (PYTHONUNBUFFERED=1).
 * The target: noisy job − quiet job ≤ the writing itself (plus noise).
 */
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { median } from './stats';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const TASKS = 16;
const WRITE =
  'import sys\nchunk = "e" * 1023 + "\\n"\ndef noise(out):\n    for _ in range(20480):\n        out.write(chunk)\n    out.flush()\n';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(ROOT, 'tmp-bench-stderr-'));
  const bundle = path.join(root, 'bundle');
  mkdirSync(bundle);
  writeFileSync(
    path.join(bundle, 'wire.py'),
    `${WRITE}\ndef wire(entrypoint, params, seed):\n    if params["noisy"]:\n        noise(sys.stderr)\n    return {"value": b"1"}\n`,
  );
  const job = (noisy: boolean) => {
    const file = path.join(root, `job-${noisy}.json`);
    writeFileSync(
      file,
      JSON.stringify({ bundle, entrypoint: 'b.b/b', parameter_sets: [{ noisy }], replicates: TASKS }),
    );
    return file;
  };
  const env = { ...process.env, MODELOPS_VENVS_DIR: path.join(root, 'venvs') };
  const runJob = (file: string) =>
    execa(
      process.execPath,
      [CLI, 'run', file, '--out', path.join(root, 'out'), '--workers', '2', '--base-python', PYTHON],
      { env },
    );
  // as a runner writes it: sys.stderr, unbuffered (PYTHONUNBUFFERED=1, as runners run), into a file
  const writingItself = () =>
    Promise.all(
      [0, 1].map((w) =>
        execa(PYTHON, [
          '-c',
          `${WRITE}\nimport io\nout = io.TextIOWrapper(open("${root}/plain-${w}.log", "wb", buffering=0), write_through=True)\nfor i in range(${TASKS / 2}):\n    noise(out)\n`,
        ]),
      ),
    );

  await runJob(job(false)); // builds the venv
  const samples = { noisy: [] as number[], quiet: [] as number[], plain: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    samples.noisy.push(await timed(() => runJob(job(true))));
    samples.quiet.push(await timed(() => runJob(job(false))));
    samples.plain.push(await timed(writingItself));
    rmSync(path.join(root, 'out'), { recursive: true, force: true });
  }
  const [noisy, quiet, plain] = [median(samples.noisy), median(samples.quiet), median(samples.plain)];
  console.log(`${TASKS} replicates × 20 MB of stderr, 2 workers, ${PYTHON}, medians of ${ROUNDS}:`);
  console.log(`  job whose replicates write 20 MB each     ${noisy.toFixed(0).padStart(6)} ms`);
  console.log(`  the same job, replicates silent            ${quiet.toFixed(0).padStart(6)} ms`);
  console.log(`  the writing itself (2 processes, sys.stderr to files)  ${plain.toFixed(0).padStart(6)} ms`);
  const cost = noisy - quiet;
  console.log(
    `  stderr's cost to the job: ${cost.toFixed(0)} ms = ${(cost / plain).toFixed(2)}× the writing itself (target ≤ ~1: the engine adds nothing but the drain)`,
  );
  rmSync(root, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
