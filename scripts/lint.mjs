// `npm run lint`: every linter and format check, each run to its end so one run shows all findings; the
// closing lines say how long each took and which failed. `npm run format` (--fix): ESLint's fixes (which by
// ESLint's contract keep behaviour; suggestions are not applied), then Prettier and ruff format the files.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
// path.matchesGlob, which scripts/ruff.mjs uses for ruff.toml's globs, is still experimental on Node 20
const ruff = [process.execPath, '--disable-warning=ExperimentalWarning', path.join(root, 'scripts', 'ruff.mjs')];

const fix = process.argv.includes('--fix');
const steps = fix
  ? [
      ['eslint --fix', [bin('eslint'), '--fix', '.']],
      ['prettier --write', [bin('prettier'), '--write', '--log-level', 'warn', '.']],
      ['ruff format', [...ruff, 'format']],
    ]
  : [
      ['eslint', [bin('eslint'), '.']],
      ['prettier --check', [bin('prettier'), '--check', '.']],
      ['ruff check', [...ruff, 'check']],
      ['ruff format --check', [...ruff, 'format', '--check']],
    ];

// a linter that hangs ends the run, named, instead of holding CI until its own limit
const TIMEOUT_MS = 15 * 60_000;

const results = steps.map(([name, [command, ...args]]) => {
  console.log(`\n> ${name}`);
  const started = performance.now();
  const run = spawnSync(command, args, { cwd: root, stdio: 'inherit', timeout: TIMEOUT_MS });
  const seconds = (performance.now() - started) / 1000;
  const failure = run.error ? run.error.message : run.status !== 0 ? `exit ${run.status ?? run.signal}` : undefined;
  return { name, seconds, failure };
});

console.log('');
for (const { name, seconds, failure } of results) {
  console.log(`${failure ? '✘' : '✔'} ${name} (${seconds.toFixed(1)} s)${failure ? `: ${failure}` : ''}`);
}
const failed = results.filter((result) => result.failure);
const what = fix ? 'format' : 'lint';
console.log(failed.length === 0 ? `${what}: clean` : `${what}: ${failed.length} of ${results.length} steps failed`);
process.exit(failed.length === 0 ? 0 : 1);
