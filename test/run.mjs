// `npm test` and its tiers: `node test/run.mjs [unit|dask|editor]…` (no tier: all of them) runs
// their suites, prints each suite's time, then one closing line "N passed, N failed". npm's
// pre-scripts have already type-checked and built dist/ and out/. No suite is run again when it
// fails: a flaky test is fixed or reported, never retried.
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
/**
 * Each tier's suites, in groups run one after the other; the suites of a group run at the same
 * time. The Python unit tests mostly wait (runners that hang or are killed, lock timeouts: about
 * 9 s, 4 s of it CPU), so they run beside mocha's unit files rather than alone after them; their
 * output is held and printed when mocha's ends.
 */
const TIERS = { unit: [['unit', 'python']], dask: [['dask']], editor: [['vscode'], ['ui']] };

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

/** `live`: its output shown as it comes; else held (in order, each stream to its own) for `result.show()`. */
function runSuite(name, live) {
  const suite = SUITES[name];
  const started = Date.now();
  const held = [];
  return new Promise((resolve) => {
    // unittest writes its report to stderr: both streams are read
    const child = spawn(suite.command, suite.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    for (const [from, to] of [
      [child.stdout, process.stdout],
      [child.stderr, process.stderr],
    ])
      from.on('data', (chunk) => {
        if (live) to.write(chunk);
        else held.push([to, chunk]);
        output += chunk.toString();
      });
    let error;
    child.on('error', (e) => (error = e));
    child.on('close', (code, signal) => {
      // unittest (Python ≥ 3.12) exits 5 when it found no test: that is 0 tests, not a failure
      const ok = code === 0 || (name === 'python' && code === 5);
      const show = () => held.splice(0).forEach(([to, chunk]) => to.write(chunk));
      const seconds = (Date.now() - started) / 1000;
      resolve({ name, ok, code, signal, error, seconds, show, ...suite.summary(output) });
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
const groups = (asked.length ? asked : Object.keys(TIERS)).flatMap((tier) => TIERS[tier]);

const results = [];
const startedAll = Date.now();
for (const [first, ...beside] of groups) {
  const besides = beside.map((name) => runSuite(name, false));
  results.push(await runSuite(first, true));
  for (const result of await Promise.all(besides)) {
    result.show();
    results.push({ ...result, beside: first });
  }
}

let passed = 0;
let failed = 0;
let skipped = 0;
console.log('\nsuite    time       passed  failed');
for (const result of results) {
  passed += result.passed;
  failed += result.failed;
  skipped += result.skipped;
  console.log(
    `${result.name.padEnd(8)} ${duration(result.seconds).padEnd(10)} ${String(result.passed).padStart(6)}  ${String(result.failed).padStart(6)}${result.beside ? `  (beside ${result.beside})` : ''}`,
  );
  if (!result.ok && result.failed === 0) {
    const how = result.error
      ? `could not start (${result.error.message})`
      : `ended with ${result.signal ?? `exit code ${result.code}`}`;
    console.error(`suite ${result.name} ${how} without reporting a failed test: counted as one failure`);
    failed += 1;
  }
}
console.log(`total    ${duration((Date.now() - startedAll) / 1000)}`);
if (passed + failed === 0) console.error('no test ran');
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 && passed > 0 && results.every((result) => result.ok) ? 0 : 1);
