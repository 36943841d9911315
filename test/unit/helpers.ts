/** Paths and small utilities shared by the unit tests (bundled to out/unit/, two levels below the root). */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunOptions } from '../../src/engine/backends/contract';
import { Failure } from '../../src/engine/failure';
import { parsePythonJson } from '../../src/engine/pyjson/pyjson';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUNDLES = path.join(ROOT, 'test', 'fixtures', 'bundles');
export const PROD_RUNNER = path.join(ROOT, 'test', 'fixtures', 'runners', 'prod_style_runner.py');
export const CLI = path.join(ROOT, 'dist', 'cli.js');

/**
 * Tests never touch the user's venv cache: one scratch cache per test run, shared by every
 * test file and inherited by the CLI processes the tests start. Under `npm run test:unit` it is
 * made once for the whole run by test/unit/globalFixtures.cjs (the files run in parallel
 * workers); a file run on its own (`mocha --no-config …`) makes its own. Each test process
 * removes its scratch directories when it exits (a root `after` hook would run at the end of the
 * first file of a parallel worker, under the feet of the files after it).
 */
const shared = globalThis as { __modelopsScratch?: string[] };
if (!shared.__modelopsScratch) {
  shared.__modelopsScratch = [];
  process.on('exit', () => {
    for (const dir of shared.__modelopsScratch!) rmSync(dir, { recursive: true, force: true });
  });
  process.env.MODELOPS_VENVS_DIR = process.env.MODELOPS_TEST_VENVS_DIR ?? scratchDir('mo-test-venvs-');
  // nor the command line's code cache (src/cli/codeCache.ts)
  process.env.MODELOPS_CODE_CACHE_DIR = scratchDir('mo-test-code-cache-');
}
delete process.env.MODELOPS_FORCE_FRESH_VENV;

/** A temporary directory removed when the test run ends. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  shared.__modelopsScratch!.push(dir);
  return dir;
}

export function bundle(name: string): string {
  return path.join(BUNDLES, name);
}

export { lineOf } from '../shared/marks';

/** A pure-Python wheel built on the spot (PyPI is out of reach; pip installs it offline). */
export function buildWheel(outDir: string, name: string, version: string): string {
  mkdirSync(outDir, { recursive: true });
  const script = [
    'import base64, hashlib, os, sys, zipfile',
    'name, version, out = sys.argv[1:4]',
    'mod = name.replace("-", "_")',
    'dist = "%s-%s" % (mod, version)',
    'files = {',
    '    mod + "/__init__.py": "VALUE = %r\\n" % version,',
    '    dist + ".dist-info/METADATA": "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, version),',
    '    dist + ".dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: modelops-debugger-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",',
    '}',
    'record = []',
    'path = os.path.join(out, dist + "-py3-none-any.whl")',
    'with zipfile.ZipFile(path, "w") as wheel:',
    '    for arcname, text in files.items():',
    '        data = text.encode()',
    '        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()',
    '        record.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))',
    '        wheel.writestr(arcname, data)',
    '    record.append(dist + ".dist-info/RECORD,,")',
    '    wheel.writestr(dist + ".dist-info/RECORD", "\\n".join(record) + "\\n")',
    'print(path)',
  ].join('\n');
  const result = spawnSync('python3', ['-c', script, name, version, outDir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`building the test wheel failed: ${result.stderr}`);
  return result.stdout.trim();
}

/** A bundle directory written by the test: file name → content. */
export function writeBundle(dir: string, files: Record<string, string>): string {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

/** A target (`targets:mean_value`) over bundles whose replicates return a JSON number `value`. */
export const MEAN_VALUE_TARGET = `import base64, json


def mean_value(sim_returns, target_data):
    values = [json.loads(base64.b64decode(r["outputs"]["value"]["inline"])) for r in sim_returns]
    return {"loss": sum(values) / len(values), "diagnostics": {"n": len(values)}, "n_replicates": len(values)}
`;

/** A result file, read as Python wrote it (big ints exact, floats that stay floats). */
export function readJson(file: string): Record<string, any> {
  return parsePythonJson(readFileSync(file, 'utf8')) as Record<string, any>;
}

/**
 * A run report that asks for nothing outside itself: a CSP that allows no request, no remote
 * content; and each of `headings` is in it.
 */
export function assertSelfContainedReport(html: string, headings: string[]): void {
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
  assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, 'no remote content');
  for (const heading of headings) assert.ok(html.includes(heading), heading);
}

/** A finished job's events. */
export function events(dir: string): Record<string, any>[] {
  return readFileSync(path.join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

/**
 * Python for test bundles: `first_calls(tag, n)` is true for the first n calls with that tag,
 * across processes (marker files in the directory MARKERS names), so a misbehaviour happens
 * exactly n times whatever runs it.
 */
export const FIRST_CALLS = `def first_calls(tag, n):
    for i in range(n):
        try:
            os.close(os.open(os.path.join(MARKERS, "%s-%d" % (tag, i)), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            continue
    return False
`;

/** The typed failure a promise is rejected with; fails the test if it resolves or throws anything else. */
export async function rejection(promise: Promise<unknown>): Promise<Failure> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Failure, `expected a Failure, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the request to fail');
}

/** runJob's options for a job run in this process: one warm runner of `python`, no venv, no retries. */
export function oneRunner(python: string): RunOptions {
  return {
    python,
    workers: 1,
    depth: 1,
    executor: 'warm',
    maxReuse: 0,
    retries: 0,
    taskTimeoutMs: 60_000,
    readyTimeoutMs: 60_000,
    allowPartial: false,
    resumed: false,
  };
}
