// `npm test`: runs every test suite, then prints one closing line "N passed, N failed".
// npm's `pretest` has already type-checked and built dist/ and out/.
import { spawn } from 'node:child_process';

/**
 * Each suite prints a mocha-style summary that gives the counts. The editor suite runs mocha
 * inside a real VS Code (code-server + headless Chromium, installed on first use); the UI suite
 * installs the packaged .vsix there and drives it as a person would, saving screenshots in
 * test-results/.
 */
const suites = [
  { name: 'unit', command: 'node_modules/.bin/mocha', args: [] },
  { name: 'vscode', command: process.execPath, args: ['test/vscode/run.mjs'], attempts: 2 },
  { name: 'ui', command: process.execPath, args: ['test/e2e/ui.mjs'], attempts: 2 },
];

function runSuite(suite) {
  return new Promise((resolve) => {
    const child = spawn(suite.command, suite.args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      output += chunk.toString();
    });
    child.on('close', (code, signal) => {
      const count = (word) => Number(/(\d+) (?:passing|failing|pending)/.test(output) ? (output.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0) : 0);
      resolve({ name: suite.name, code, signal, passed: count('passing'), failed: count('failing'), skipped: count('pending') });
    });
  });
}

let passed = 0;
let failed = 0;
let skipped = 0;
let exitCode = 0;
for (const suite of suites) {
  // the editor suites drive a browser against a server: one retry, said out loud, never silent
  let result = await runSuite(suite);
  for (let attempt = 2; result.code !== 0 && attempt <= (suite.attempts ?? 1); attempt++) {
    console.error(`\nsuite ${suite.name} failed (${result.failed} failing); running it again, attempt ${attempt} of ${suite.attempts}`);
    result = await runSuite(suite);
  }
  passed += result.passed;
  failed += result.failed;
  skipped += result.skipped;
  if (result.code !== 0) {
    exitCode = 1;
    if (result.failed === 0) {
      console.error(`suite ${suite.name} ended with ${result.signal ?? `exit code ${result.code}`} without reporting a failed test`);
      failed += 1;
    }
  }
}
if (passed + failed === 0) {
  console.error('no test ran');
  exitCode = 1;
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(exitCode);
