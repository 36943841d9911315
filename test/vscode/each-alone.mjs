// Runs every extension-host test alone, each in its own code-server (MODELOPS_VSCODE_GREP of its
// exact title), and reports which fail: a test that passes only after others is order-dependent.
// Not part of `npm test` (about 20 s a test). Build first (`npm run build`).
// `node test/vscode/each-alone.mjs [regexp] [--from N]` checks only the tests whose title matches,
// from the Nth on.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './codeServer.mjs';

const RUN = path.join(ROOT, 'test', 'vscode', 'run.mjs');
const args = process.argv.slice(2);
const from = args.includes('--from') ? Number(args.splice(args.indexOf('--from'), 2)[1]) : 1;
const only = args[0] ? new RegExp(args[0]) : undefined;

function run(env) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [RUN], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('close', (code, signal) => resolve({ code, signal, output, seconds: (Date.now() - started) / 1000 }));
  });
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const listed = await run({ MODELOPS_VSCODE_LIST: '1' });
const titles = [...listed.output.matchAll(/^TEST\t(.*)$/gm)]
  .map((match) => match[1])
  .filter((t) => !only || only.test(t));
if (listed.code !== 0 || titles.length === 0) {
  console.error(`listing the tests failed (exit ${listed.code ?? listed.signal}):\n${listed.output}`);
  process.exit(1);
}
console.log(`${titles.length} tests, each alone`);
const failures = [];
for (const [index, title] of titles.entries()) {
  if (index + 1 < from) continue;
  const result = await run({ MODELOPS_VSCODE_GREP: `^${escape(title)}$` });
  const passing = Number(result.output.match(/(\d+) passing/)?.[1] ?? 0);
  const failing = Number(result.output.match(/(\d+) failing/)?.[1] ?? 0);
  // exactly this one test ran and passed
  const ok = result.code === 0 && passing === 1 && failing === 0;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${index + 1}/${titles.length} ${result.seconds.toFixed(0)} s  ${title}`);
  if (!ok) {
    failures.push(title);
    const failed = result.output.slice(result.output.search(/\d+ passing|editor tests could not run/));
    console.log(
      failed
        .split('\n')
        .slice(0, 30)
        .map((line) => `      ${line}`)
        .join('\n'),
    );
  }
}
console.log(`\n${titles.length - failures.length} passed alone, ${failures.length} failed alone`);
for (const title of failures) console.log(`  failed alone: ${title}`);
process.exit(failures.length ? 1 : 0);
