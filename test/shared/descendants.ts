/**
 * What the descendants tests share, locally and on Dask: `modelops-debugger run` timed against its
 * last result, the bundles whose simulations start processes, and the checks of the warnings.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, scratchDir, writeBundle } from '../unit/helpers';

const scratch = scratchDir('mo-desc-');
let counter = 0;
export const PYTHON = '/usr/bin/python3';
/** What "promptly" means here: the bound between the last result and the CLI's exit. */
export const EXIT_BOUND_MS = 2000;

/**
 * Processes these tests must end themselves (escapees), by pid: ended when each describe block
 * ends (a root-level hook would wait for every other test file of the run).
 */
export const leftRunning = new Set<number>();
export function endLeftRunning(): void {
  for (const pid of leftRunning) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  leftRunning.clear();
}

/** A bundle whose wire function runs `body` (indented by the caller) before returning a value. */
export function descendantBundle(name: string, prelude: string, body: string): string {
  const wire = `import json, multiprocessing, os, subprocess, sys, time
${prelude}

def wire(entrypoint, params, seed):
${body}
    return {"value": json.dumps(seed % 7).encode()}
`;
  return writeBundle(path.join(scratch, `${name}-${++counter}`), { 'wire.py': wire });
}

export interface Run {
  code: number | null;
  signal: string | null;
  events: Record<string, any>[];
  /** ms from the last result (task-done/agg-done line on stdout) to the CLI's exit. */
  afterLastResultMs: number;
  stderr: string;
  dir: string;
}

/**
 * `modelops-debugger run BUNDLE --json`, timing the CLI's exit against its last result. Local
 * runs use /usr/bin/python3 as it is (`--python`); Dask runs (`--backend dask` in `extra`) build
 * the bundle's venv on the workers.
 */
export function runCli(
  bundleDir: string,
  extra: string[] = [],
  replicates = 2,
  onEvent?: (event: Record<string, any>, child: ReturnType<typeof spawn>) => void,
): Promise<Run> {
  const out = path.join(scratch, `out-${++counter}`);
  const params = path.join(scratch, `params-${counter}.json`);
  writeFileSync(params, JSON.stringify([{ x: 1.0 }]));
  const interpreter = extra.includes('--backend') ? [] : ['--python', PYTHON];
  const args = [
    CLI,
    'run',
    bundleDir,
    '--params',
    params,
    '--replicates',
    String(replicates),
    '--out',
    out,
    ...interpreter,
    '--json',
    ...extra,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: Record<string, any>[] = [];
    let lastResultAt = performance.now();
    let buffered = '';
    let stderr = '';
    const killer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the CLI did not exit within 60 s; stderr: ${stderr}`));
    }, 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const event = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        events.push(event);
        if (event.type === 'task-done' || event.type === 'agg-done') lastResultAt = performance.now();
        onEvent?.(event, child);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      const afterLastResultMs = performance.now() - lastResultAt;
      const dir = path.join(out, readdirSync(out)[0] ?? '');
      resolve({ code, signal, events, afterLastResultMs, stderr, dir });
    });
  });
}

export function lingeringWarnings(run: Run): Record<string, any>[] {
  return run.events.filter((e) => e.type === 'warning' && e.kind === 'lingering-descendants');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie is dead; /proc says so on Linux
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    return process.platform !== 'linux';
  }
}

export function assertEndsPromptly(run: Run): void {
  assert.equal(run.code, 0, run.stderr);
  assert.ok(
    run.afterLastResultMs < EXIT_BOUND_MS,
    `the CLI exited ${Math.round(run.afterLastResultMs)} ms after its last result`,
  );
  const done = run.events.find((e) => e.type === 'job-done');
  assert.equal(done?.status, 'succeeded');
}

/** Each task's warning: names it, lists pids and command lines, located at `line` when given. */
export function assertWarned(
  run: Run,
  bundleDir: string,
  expect: { command: RegExp; escaped: boolean; line?: number; perTask?: number },
): Record<string, any>[] {
  const warnings = lingeringWarnings(run);
  const keys = run.events.filter((e) => e.type === 'task-done').map((e) => e.key);
  assert.equal(warnings.length, keys.length, `one warning per task: ${JSON.stringify(warnings, null, 1)}`);
  const descendants: Record<string, any>[] = [];
  for (const warning of warnings) {
    assert.ok(keys.includes(warning.key), `the warning names a task of the job: ${warning.key}`);
    assert.ok(warning.message.includes(warning.key));
    assert.equal(warning.descendants.length, expect.perTask ?? 1, JSON.stringify(warning.descendants));
    for (const d of warning.descendants) {
      assert.match(d.command, expect.command);
      assert.equal(d.escaped, expect.escaped, JSON.stringify(d));
      assert.ok(warning.message.includes(`pid ${d.pid}`), warning.message);
      descendants.push(d);
    }
    if (expect.line !== undefined) {
      assert.deepEqual(
        { file: warning.location?.file, line: warning.location?.line },
        { file: path.join(bundleDir, 'wire.py'), line: expect.line },
      );
    } else {
      assert.equal(warning.location, undefined);
    }
  }
  // in events.jsonl too, as the CLI printed them
  const logged = readFileSync(path.join(run.dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.kind === 'lingering-descendants');
  assert.deepEqual(
    logged.map((e) => e.message),
    warnings.map((e) => e.message),
  );
  return descendants;
}

/** Linux: pids whose command line is exactly `command`. */
export function processesRunning(command: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0+$/, '').split('\0').join(' ') === command;
      } catch {
        return false;
      }
    })
    .map(Number);
}
