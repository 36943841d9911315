/**
 * `npm run bench:queue-depth`: does keeping the next request waiting in the runner's pipe
 * (`--queue-depth 2`) beat one request at a time (`--queue-depth 1`), and does `auto` (the
 * default: up to 16 queued while tasks are this short) beat both? The whole CLI on a
 * trivial 20 × 200 job, results on tmpfs when there is one (the disk's file-creation cost
 * would hide the difference), interleaved rounds, medians.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { median } from './stats';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROOT = path.resolve(__dirname, '..', '..');
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';

type Depth = 1 | 2 | 'auto';
const DEPTHS: Depth[] = [1, 2, 'auto'];

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(ROOT, 'tmp-bench-depth-'));
  const outRoot = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/mo-bench-depth-') : path.join(root, 'out');
  const bundle = path.join(root, 'bundle');
  mkdirSync(bundle);
  writeFileSync(
    path.join(bundle, 'wire.py'),
    'def wire(entrypoint, params, seed):\n    return {"value": str(seed % 97).encode()}\n',
  );
  const job = path.join(root, 'job.json');
  writeFileSync(
    job,
    JSON.stringify({
      bundle,
      entrypoint: 'b.b/b',
      parameter_sets: Array.from({ length: 20 }, (_, p) => ({ p })),
      replicates: 200,
    }),
  );
  const env = { ...process.env, MODELOPS_VENVS_DIR: path.join(root, 'venvs') };
  const run = async (depth: Depth) => {
    const out = path.join(outRoot, `d${depth}`);
    const started = performance.now();
    await execa(
      process.execPath,
      [
        path.join(ROOT, 'dist', 'cli.js'),
        'run',
        job,
        '--out',
        out,
        '--workers',
        '2',
        '--queue-depth',
        String(depth),
        '--base-python',
        PYTHON,
      ],
      { env },
    );
    const ms = performance.now() - started;
    rmSync(out, { recursive: true, force: true });
    return ms;
  };
  await run(1); // builds the venv
  const samples: Record<Depth, number[]> = { 1: [], 2: [], auto: [] };
  // each round starts with another contestant: none is always the one after a quiet pause
  for (let round = 0; round < ROUNDS; round++)
    for (let i = 0; i < DEPTHS.length; i++) {
      const depth = DEPTHS[(round + i) % DEPTHS.length];
      samples[depth].push(await run(depth));
    }
  console.log(
    `4000 trivial simulations + 20 aggregations, 2 workers, whole CLI, results in ${outRoot}, medians of ${ROUNDS}:`,
  );
  for (const depth of DEPTHS) console.log(`  --queue-depth ${depth}: ${median(samples[depth]).toFixed(0)} ms`);
  console.log(`  depth 2 / depth 1: ${(median(samples[2]) / median(samples[1])).toFixed(2)}`);
  console.log(`  auto / depth 2: ${(median(samples.auto) / median(samples[2])).toFixed(2)}`);
  rmSync(root, { recursive: true, force: true });
  rmSync(outRoot, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
