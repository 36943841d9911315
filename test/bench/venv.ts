/**
 * `npm run bench:venv`, side by side in one run on the same interpreter:
 *  1. cache-hit validation per process start (the checklist a reuse passes; target: median
 *     ≤ 5 ms), and a whole `ensure()` on a hit (dependency files read, key, checklist, touch);
 *  2. cold creation by the cache — a bundle without dependencies, and one with a dependency
 *     installed offline from a local wheel — against a bare `python -m venv` (with pip, its
 *     default) and `python -m venv --without-pip`.
 *
 * BENCH_PYTHON picks the interpreter (default: python3 on PATH); BENCH_ROUNDS the cold rounds.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleDigest } from '../../src/engine/bundle/bundleDir';
import { resolvePython } from '../../src/engine/process/python';
import { VenvCache } from '../../src/engine/venv/cache';
import { probeInterpreter, binaryIdentity } from '../../src/engine/venv/interpreter';
import { validateVenv } from '../../src/engine/venv/marker';
import { median } from './stats';

const COLD_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HIT_ROUNDS = 500;

function spread(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `p10 ${sorted[Math.floor(sorted.length * 0.1)].toFixed(2)}, p90 ${sorted[Math.floor(sorted.length * 0.9)].toFixed(2)}`;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function makeWheel(dir: string, python: string): Promise<unknown> {
  mkdirSync(dir, { recursive: true });
  const script = [
    'import base64, hashlib, zipfile, os, sys',
    'out = sys.argv[1]',
    'files = {"mo_benchdep/__init__.py": b"VALUE = 1\\n", "mo_benchdep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: mo-benchdep\\nVersion: 1.0\\n", "mo_benchdep-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}',
    'record = ["%s,sha256=%s,%d" % (k, base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").decode(), len(v)) for k, v in files.items()]',
    'with zipfile.ZipFile(os.path.join(out, "mo_benchdep-1.0-py3-none-any.whl"), "w") as w:',
    '    [w.writestr(k, v) for k, v in files.items()]',
    '    w.writestr("mo_benchdep-1.0.dist-info/RECORD", "\\n".join(record + ["mo_benchdep-1.0.dist-info/RECORD,,"]) + "\\n")',
  ].join('\n');
  return execa(python, ['-c', script, dir]);
}

function bundle(root: string, name: string, deps: string[]): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'pyproject.toml'),
    `[project]\nname = "${name}"\nversion = "0.1"\ndependencies = [${deps.map((d) => `"${d}"`).join(', ')}]\n`,
  );
  writeFileSync(path.join(dir, 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n');
  return dir;
}

async function main(): Promise<void> {
  const python = (await resolvePython(process.env.BENCH_PYTHON ?? 'python3')).path;
  const root = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-venv-'));
  const wheels = path.join(root, 'wheels');
  await makeWheel(wheels, python);
  const env = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels };
  const base = await probeInterpreter(python, path.join(root, 'probe-cache'));
  const noDeps = bundle(root, 'nodeps', []);
  const withDep = bundle(root, 'withdep', ['mo-benchdep==1.0']);
  console.log(`interpreter ${python} (Python ${base.version})`);

  // 1. cache hit
  const hitCache = new VenvCache({ dir: path.join(root, 'hit'), env });
  const lease = await hitCache.ensure(withDep, base);
  const identity = await binaryIdentity(python);
  const digest = await bundleDigest(withDep);
  const validation: number[] = [];
  const ensureHit: number[] = [];
  for (let i = 0; i < HIT_ROUNDS; i++) {
    validation.push(await timed(() => validateVenv(lease.path, lease.key, identity)));
    ensureHit.push(await timed(() => hitCache.ensure(withDep, base, { digest })));
  }
  const hitMedian = median(validation);
  console.log('\ncache hit, per process start (ms, median of %d):', HIT_ROUNDS);
  console.log(
    `  validity checklist            ${hitMedian.toFixed(3)} ms  (${spread(validation)})  target ≤ 5 ms ${hitMedian <= 5 ? '✔' : '✘'}`,
  );
  console.log(
    `  ensure() on a hit             ${median(ensureHit).toFixed(3)} ms  (${spread(ensureHit)})  deps files + key + checklist + last-used`,
  );

  // 2. cold creation, interleaved
  const samples: Record<string, number[]> = {
    'python -m venv (with pip)': [],
    'python -m venv --without-pip': [],
    'cache: no dependencies': [],
    'cache: 1 dependency (offline wheel)': [],
  };
  for (let round = 0; round < COLD_ROUNDS; round++) {
    const scratch = path.join(root, `cold-${round}`);
    samples['python -m venv (with pip)'].push(
      await timed(() => execa(python, ['-m', 'venv', path.join(scratch, 'bare')])),
    );
    samples['python -m venv --without-pip'].push(
      await timed(() => execa(python, ['-m', 'venv', '--without-pip', path.join(scratch, 'bare-nopip')])),
    );
    samples['cache: no dependencies'].push(
      await timed(() => new VenvCache({ dir: path.join(scratch, 'c1'), env }).ensure(noDeps, base)),
    );
    samples['cache: 1 dependency (offline wheel)'].push(
      await timed(() => new VenvCache({ dir: path.join(scratch, 'c2'), env }).ensure(withDep, base)),
    );
    rmSync(scratch, { recursive: true, force: true });
  }
  const floor = median(samples['python -m venv (with pip)']);
  console.log(
    `\ncold creation (ms, median of ${COLD_ROUNDS}, interleaved; the cache's figures include its functional check, a runner answering ready):`,
  );
  for (const [label, values] of Object.entries(samples)) {
    console.log(
      `  ${label.padEnd(38)} ${median(values).toFixed(0).padStart(6)} ms   ${(median(values) / floor).toFixed(2)}× bare venv with pip`,
    );
  }
  rmSync(root, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
