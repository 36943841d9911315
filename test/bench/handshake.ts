/**
 * `npm run bench:handshake`: spawn → `ready` of our runner, side by side with the floor — a
 * bare `python -c pass` (spawn → exit) on the same interpreter — in one interleaved run.
 * Also the production-style runner, for reference. Prints medians and ratios; the target is
 * our runner within 1.3× of the floor.
 *
 * The bundle is a minimal one (a wire function that imports nothing), so what is measured is
 * the runner's own cost; the example bundle's import time is shown apart, for information.
 *
 * Interpreters measured: `python3` on PATH (resolved past any pyenv shim), Debian's
 * /usr/bin/python3, and a venv of it (what the venv cache will run; base interpreters here
 * load a sandbox .pth at every start that venvs skip).
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { median, quantile } from './stats';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const WARMUP = 3;
const ROOT = path.resolve(__dirname, '..', '..');
const EXAMPLE_BUNDLE = path.join(ROOT, 'examples', 'sir', 'bundle');
const PROD_RUNNER = path.join(ROOT, 'test', 'fixtures', 'runners', 'prod_style_runner.py');

async function bare(python: string): Promise<number> {
  const started = performance.now();
  await execa(python, ['-c', 'pass'], { stdin: 'ignore' });
  return performance.now() - started;
}

async function runnerReady(python: string, runnerScript: string, bundleDir: string): Promise<number> {
  const started = performance.now();
  const runner = WarmProcess.start({ python, runnerScript, bundleDir, venvPath: '', bundleDigest: 'bench' });
  await runner.ready(30_000);
  const elapsed = performance.now() - started;
  await runner.kill();
  return elapsed;
}

async function main(): Promise<void> {
  const interpreters: { label: string; python: string }[] = [
    { label: 'python3 on PATH', python: (await resolvePython()).path },
  ];
  let venvDir: string | undefined;
  if (existsSync('/usr/bin/python3')) {
    interpreters.push({ label: 'Debian /usr/bin/python3', python: '/usr/bin/python3' });
    venvDir = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-venv-'));
    const made = await execa('/usr/bin/python3', ['-m', 'venv', '--without-pip', venvDir], { reject: false });
    if (made.exitCode === 0)
      interpreters.push({ label: 'venv of Debian python3', python: path.join(venvDir, 'bin', 'python') });
  }
  const ours = ourRunnerScript();
  const minimal = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-bundle-'));
  writeFileSync(path.join(minimal, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n');
  console.log(`spawn → ready, ${ROUNDS} rounds each (interleaved, after ${WARMUP} warm-up rounds), minimal bundle`);
  console.log(
    `${'interpreter'.padEnd(26)} ${'python -c pass'.padStart(16)} ${'our runner'.padStart(16)} ${'prod-style'.padStart(16)} ${'ours/floor'.padStart(11)} ${'target'.padStart(7)}`,
  );
  let allMet = true;
  const examples: string[] = [];
  for (const { label, python } of interpreters) {
    const samples = { bare: [] as number[], ours: [] as number[], prod: [] as number[], example: [] as number[] };
    for (let round = 0; round < ROUNDS + WARMUP; round++) {
      const b = await bare(python);
      const o = await runnerReady(python, ours, minimal);
      const p = await runnerReady(python, PROD_RUNNER, minimal);
      const e = await runnerReady(python, ours, EXAMPLE_BUNDLE);
      if (round >= WARMUP) {
        samples.bare.push(b);
        samples.ours.push(o);
        samples.prod.push(p);
        samples.example.push(e);
      }
    }
    examples.push(`${label}: ${median(samples.example).toFixed(1)} ms`);
    const cell = (values: number[]) =>
      `${median(values).toFixed(1)} ms`.padStart(9) +
      ` ±${((quantile(values, 0.9) - quantile(values, 0.1)) / 2).toFixed(1)}`.padStart(7);
    const ratio = median(samples.ours) / median(samples.bare);
    const met = ratio <= 1.3;
    allMet &&= met;
    console.log(
      `${label.padEnd(26)} ${cell(samples.bare)} ${cell(samples.ours)} ${cell(samples.prod)} ${`${ratio.toFixed(2)}×`.padStart(11)} ${(met ? '≤1.3 ✔' : '>1.3 ✘').padStart(7)}`,
    );
  }
  console.log('(median, ± half the p10–p90 spread; ours/floor = median of our runner ÷ median of python -c pass)');
  console.log(`our runner on the example bundle (its imports included): ${examples.join('; ')}`);
  if (venvDir) rmSync(venvDir, { recursive: true, force: true });
  rmSync(minimal, { recursive: true, force: true });
  if (!allMet) console.log('target missed on at least one interpreter');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
