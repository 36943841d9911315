// `npm test` and its tiers: `node test/run.mjs [unit|dask|editor]…` (no tier: all of them) runs
// their suites one after the other, prints each suite's time, then one closing line
// "N passed, N failed". npm's pre-scripts have already type-checked and built dist/ and out/.
// No suite is run again when it fails: a flaky test is fixed or reported, never retried.
import { spawn } from 'node:child_process';

/**
 * Each suite prints a summary that gives the counts (mocha's, or unittest's for Python). The
 * editor suite runs mocha inside a real VS Code (code-server + headless Chromium, installed on
 * first use); the UI suite installs the packaged .vsix there and drives it as a person would,
 * saving screenshots in test-results/.
 */
const SUITES = {
  unit: { command: 'node_modules/.bin/mocha', args: [], summary: mochaCounts },
  python: {
    command: 'python3',
    args: ['-m', 'unittest', 'discover', '-s', 'test/python', '-t', '.', '-v'],
    summary: unittestCounts,
  },
  dask: { command: 'node_modules/.bin/mocha', args: ['--config', 'test/dask/.mocharc.json'], summary: mochaCounts },
  vscode: { command: process.execPath, args: ['test/vscode/run.mjs'], summary: mochaCounts },
  ui: { command: process.execPath, args: ['test/e2e/ui.mjs'], summary: mochaCounts },
};
const TIERS = { unit: ['unit', 'python'], dask: ['dask'], editor: ['vscode', 'ui'] };

function mochaCounts(output) {
  const count = (word) => Number(output.match(new RegExp(`^\\s*(\\d+) ${word}`, 'm'))?.[1] ?? 0);
  return { passed: count('passing'), failed: count('failing'), skipped: count('pending') };
}

/** unittest's closing lines: "Ran N tests in Xs", then "OK (skipped=S)" or "FAILED (failures=F, errors=E)". */
function unittestCounts(output) {
  const ran = Number(output.match(/^Ran (\d+) tests? in /m)?.[1] ?? 0);
  const verdict = output.match(/^(OK|FAILED)(?: \((.*)\))?$/m);
  const detail = Object.fromEntries(
    (verdict?.[2] ?? '')
      .split(', ')
      .filter(Boolean)
      .map((part) => part.split('=')),
  );
  const number = (key) => Number(detail[key] ?? 0);
  const failed = number('failures') + number('errors') + number('unexpected successes');
  const skipped = number('skipped');
  return { passed: ran - failed - skipped, failed, skipped };
}

function runSuite(name) {
  const suite = SUITES[name];
  const started = Date.now();
  return new Promise((resolve) => {
    // unittest writes its report to stderr: both streams are read, and shown as they come
    const child = spawn(suite.command, suite.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk) => {
      process.stderr.write(chunk);
      output += chunk.toString();
    });
    let error;
    child.on('error', (e) => (error = e));
    child.on('close', (code, signal) => {
      // unittest (Python ≥ 3.12) exits 5 when it found no test: that is 0 tests, not a failure
      const ok = code === 0 || (name === 'python' && code === 5);
      resolve({ name, ok, code, signal, error, seconds: (Date.now() - started) / 1000, ...suite.summary(output) });
    });
  });
}

function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds); // 119.7 s is 2 min 0 s, not 1 min 60 s
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

const asked = process.argv.slice(2);
const unknown = asked.filter((tier) => !(tier in TIERS));
if (unknown.length) {
  console.error(`unknown tier ${unknown.join(', ')}: the tiers are ${Object.keys(TIERS).join(', ')}`);
  process.exit(2);
}
const names = (asked.length ? asked : Object.keys(TIERS)).flatMap((tier) => TIERS[tier]);

const results = [];
for (const name of names) results.push(await runSuite(name));

let passed = 0;
let failed = 0;
let skipped = 0;
console.log('\nsuite    time       passed  failed');
for (const result of results) {
  passed += result.passed;
  failed += result.failed;
  skipped += result.skipped;
  console.log(
    `${result.name.padEnd(8)} ${duration(result.seconds).padEnd(10)} ${String(result.passed).padStart(6)}  ${String(result.failed).padStart(6)}`,
  );
  if (!result.ok && result.failed === 0) {
    const how = result.error
      ? `could not start (${result.error.message})`
      : `ended with ${result.signal ?? `exit code ${result.code}`}`;
    console.error(`suite ${result.name} ${how} without reporting a failed test: counted as one failure`);
    failed += 1;
  }
}
const total = results.reduce((sum, result) => sum + result.seconds, 0);
console.log(`total    ${duration(total)}`);
if (passed + failed === 0) console.error('no test ran');
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 && passed > 0 && results.every((result) => result.ok) ? 0 : 1);
