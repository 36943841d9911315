/**
 * The command line ends its process once the command is done (src/cli/main.ts, runAsMain),
 * without losing a byte of what it wrote, whoever reads it and however slowly.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bundle, CLI, scratchDir } from './helpers';

function job(dir: string, replicates: number): string {
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify({
      job_id: 'exit',
      bundle: bundle('healthy-wire-py'),
      entrypoint: 'main',
      parameter_sets: [{ a: 1.5 }, { a: 2.5 }],
      replicates,
    }),
  );
  return file;
}

/**
 * Runs the CLI with a reader that takes its time: it reads nothing until `ready()` says so (and
 * a moment more), so the command ends with its last writes still waiting for the reader.
 */
function runSlowlyRead(args: string[], ready: () => boolean): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let code: number | null = null;
    // a 'readable' listener from the start: without one, Node drains (and drops) an unread pipe
    // once its child exits (child_process flushStdio), which would lose what a late reader wants
    let reading = false;
    const drain = () => {
      for (let chunk: Buffer | null; reading && (chunk = child.stdout.read() as Buffer | null) !== null;)
        chunks.push(chunk);
    };
    child.stdout.on('readable', drain);
    const read = () => {
      reading = true;
      drain();
    };
    const poll = setInterval(() => {
      if (!ready()) return;
      clearInterval(poll);
      setTimeout(read, 300);
    }, 50);
    child.on('error', reject);
    child.on('exit', (exitCode) => (code = exitCode));
    child.on('close', () => {
      clearInterval(poll);
      resolve({ code, stdout: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

describe('the command line’s exit', () => {
  it('run --json: every event reaches a slow reader of the pipe, the last one job-done', async function () {
    this.timeout(120_000);
    const dir = scratchDir('mo-cli-exit-');
    // more events than a pipe holds (64 KiB on Linux): the last writes wait for the reader
    const args = ['run', job(dir, 150), '--out', dir, '--python', 'python3', '--json', '--workers', '2'];
    const events = path.join(dir, 'exit', 'events.jsonl');
    const done = () => {
      try {
        return readFileSync(events, 'utf8').includes('"job-done"');
      } catch {
        return false;
      }
    };
    const { code, stdout } = await runSlowlyRead(args, done);
    assert.equal(code, 0);
    const lines = stdout.trimEnd().split('\n');
    const logged = readFileSync(events, 'utf8').trimEnd().split('\n');
    assert.ok(stdout.length > 64 * 1024, `${stdout.length} bytes: more than a pipe's buffer`);
    assert.equal(lines.length, logged.length, 'as many events on stdout as in events.jsonl');
    assert.equal(JSON.parse(lines.at(-1)!).type, 'job-done');
  });

  it('--help through a pipe read late arrives whole', async () => {
    const started = Date.now();
    const { code, stdout } = await runSlowlyRead(['run', '--help'], () => Date.now() - started > 500);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: modelops-debugger run/);
    assert.match(stdout, /-h, --help +display help for command\n$/);
  });
});
