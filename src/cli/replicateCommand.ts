/**
 * `modelops-debugger replicate`: one replicate again, exactly — from a job's results folder
 * (compared with its recorded result) or from a bundle, an entrypoint, params and a seed.
 */
import { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { exitCodeFor, exitCodeForStop, Failure, unexpectedFailure } from '../engine/failure';
import { paramsFromText } from '../engine/job/spec';
import { RUN_DEFAULTS } from '../engine/backends/contract';
import { DEFAULT_FRAME_MB, frameCapBytes } from '../engine/process/frameCap';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import {
  reproduceReplicate,
  runReplicate,
  type ReplicateOptions,
  type ReplicateReport,
} from '../engine/replicate/replicate';
import { renderReplicateReport } from '../engine/replicate/text';
import { debugpyRunner } from '../engine/replicate/debug';
import { parseSeed, portNumber, positiveNumber, timeoutSeconds, wholeNumber } from './parsers';
import { displayPath, renderLocation } from '../engine/diagnose/evidenceText';
import { currentDir, renderFailureLine } from './render';
import { writeStderr, writeStdout } from './stdio';
import { onStopSignals } from './stopSignals';
import { addVenvOptions, printVenvEvent, venvCacheOptions, type VenvFlags } from './venvOptions';

/** debugpy's own default. */
const DEFAULT_DEBUG_PORT = 5678;

interface ReplicateFlags extends VenvFlags {
  param?: string;
  replicate?: number;
  entrypoint?: string;
  params?: string;
  seed?: string;
  cold?: boolean;
  python?: string;
  runner?: string;
  readyTimeout: number;
  taskTimeout?: number;
  maxFrameMb?: number;
  stderr?: boolean;
  json?: boolean;
  exportStudy?: string;
  debug?: boolean;
  debugPort: number;
  debugpyPath?: string;
}

export function replicateCommand(): Command {
  const command = new Command('replicate')
    .description(
      'Run one replicate again, exactly (params, seed, entrypoint, the venv), in a fresh runner; from a results folder, compare it with the recorded result.',
    )
    .argument(
      '<results-or-bundle>',
      "a job's results folder <out>/<job_id>, or a bundle directory with --entrypoint, --params and --seed",
    )
    .option(
      '--param <index|prefix>',
      'with a results folder: the parameter set, by index (0, 1, …) or by a prefix of its param_id (8+ hex digits, or any with a letter a-f)',
    )
    .option('--replicate <n>', 'with a results folder: the replicate, 0 to replicates-1', wholeNumber)
    .option('--entrypoint <entrypoint>', 'with a bundle directory: the entrypoint passed to the wire function')
    .option(
      '--params <json>',
      'with a bundle directory: the parameters, a JSON object ({"beta": 0.3}; 1.0 stays a float)',
    )
    .option('--seed <n>', 'with a bundle directory: the seed, 0 to 2^64-1')
    .option(
      '--cold',
      "as production's cold executor: a private venv built from scratch for this run (the same key; removed afterwards), as well as a fresh runner",
    )
    .option('--python <path>', "run with this interpreter as it is, not in the job's or the bundle's venv")
    .option('--runner <path>', 'another runner script (default: the one the job ran, else ours)');
  addRunnerLimits(command, 'the runner', 'the replicate')
    .option(
      '--export-study <file>',
      'also write the replicate to FILE as a production study with its explicit seed (one task in production), before it runs',
    )
    .option(
      '--debug',
      'run the replicate in this process under debugpy instead of a runner, waiting for a debugger to attach on 127.0.0.1 (--debug-port)',
    )
    .option('--debug-port <port>', 'with --debug: the port debugpy listens on', portNumber, DEFAULT_DEBUG_PORT)
    .option(
      '--debugpy-path <dir>',
      "with --debug: a directory that holds debugpy/ (default: the venv's, else a system one)",
    )
    .option('--stderr', "stream the runner's stderr to this stderr as it comes")
    .option('--json', 'print one JSON object on stdout');
  return addVenvOptions(command).action(async (input: string, flags: ReplicateFlags) => {
    process.exitCode = await replicate(input, flags);
  });
}

/** --ready-timeout, --task-timeout and --max-frame-mb, for commands that rerun a job's replicates. */
export function addRunnerLimits(command: Command, runner: string, replicate: string): Command {
  return command
    .option(
      '--ready-timeout <seconds>',
      `for ${runner} to answer ready`,
      timeoutSeconds,
      RUN_DEFAULTS.readyTimeoutMs / 1000,
    )
    .option(
      '--task-timeout <seconds>',
      `for ${replicate} (default: the job's, else ${RUN_DEFAULTS.taskTimeoutMs / 1000})`,
      timeoutSeconds,
    )
    .option(
      '--max-frame-mb <n>',
      `the largest answer read from ${runner}, in MiB (default: the job's, else ${DEFAULT_FRAME_MB})`,
      positiveNumber,
    );
}

async function replicate(input: string, flags: ReplicateFlags): Promise<number> {
  const stop = onStopSignals('stopping the runner');
  try {
    const report = await reproduce(input, flags, stop.signal);
    writeStdout(flags.json ? `${stringifyWireJson(report)}\n` : renderReplicateReport(report, showHere()));
    return report.exit_code;
  } catch (error) {
    return sayError(unexpectedFailure(error, 'reproducing a replicate'), stop.signal, flags.json);
  } finally {
    stop.dispose();
  }
}

/** A failure that ended the command: one JSON object with --json, else a line on stderr; its exit code. */
export function sayError(failure: Failure, signal: AbortSignal | undefined, json?: boolean): number {
  // stopped by a signal: 128 + its number, as `run` exits
  const exitCode = failure.kind === 'cancelled' && signal ? exitCodeForStop(signal.reason) : exitCodeFor(failure.kind);
  if (json) {
    writeStdout(
      `${stringifyWireJson({ verdict: 'error', kind: failure.kind, message: failure.message, location: failure.location, evidence: failure.evidence, exit_code: exitCode })}\n`,
    );
  } else {
    writeStderr(renderFailureLine(failure, currentDir()));
  }
  return exitCode;
}

async function reproduce(input: string, flags: ReplicateFlags, signal: AbortSignal): Promise<ReplicateReport> {
  const target = path.resolve(input);
  if (!existsSync(target)) throw new Failure('bad-input', `${target} does not exist.`);
  if (!statSync(target).isDirectory())
    throw new Failure('bad-input', `${target} is a file: give a results folder <out>/<job_id>, or a bundle directory.`);
  const venv = venvCacheOptions(flags, flags.json ? undefined : printVenvEvent);
  const options: ReplicateOptions = {
    python: flags.python,
    basePython: flags.basePython,
    runnerScript: flags.runner,
    venv: { ...venv, forceFresh: venv.forceFresh || Boolean(flags.cold) },
    readyTimeoutMs: flags.readyTimeout * 1000,
    taskTimeoutMs: flags.taskTimeout === undefined ? undefined : flags.taskTimeout * 1000,
    maxFrameBytes: flags.maxFrameMb === undefined ? undefined : frameCapBytes(flags.maxFrameMb),
    onStderr: flags.stderr ? (chunk) => process.stderr.write(chunk) : undefined,
    signal,
    exportStudy: flags.exportStudy,
    runWith: flags.debug
      ? debugpyRunner({
          port: flags.debugPort,
          debugpy: { configured: flags.debugpyPath, cacheDir: path.join(venv.dir, '.debugpy') },
          onListening: (address, debugpy) =>
            writeStderr(
              `debugpy ${debugpy.version} (${debugpy.source}) listens on ${address}: attach a debugger to it (VS Code: a "debugpy" attach configuration with "connect": {"host": "127.0.0.1", "port": ${flags.debugPort}}); the replicate starts once one is attached. Ctrl-C stops it.\n`,
            ),
          // the bundle's prints: on stdout, unless stdout is the JSON report's
          onStdout: (chunk) => (flags.json ? process.stderr : process.stdout).write(chunk),
        })
      : undefined,
  };
  if (existsSync(path.join(target, 'job.json'))) {
    for (const [given, name] of [
      [flags.entrypoint, '--entrypoint'],
      [flags.params, '--params'],
      [flags.seed, '--seed'],
    ] as const) {
      if (given !== undefined)
        throw new Failure(
          'bad-input',
          `${name} goes with a bundle directory; ${target} is a results folder, whose job says it (give --param and --replicate).`,
        );
    }
    if (flags.param === undefined)
      throw new Failure(
        'bad-input',
        `${target} is a results folder: give --param <index|param_id prefix> and --replicate N.`,
      );
    if (flags.replicate === undefined)
      throw new Failure('bad-input', `${target} is a results folder: give --replicate N as well (0 to replicates-1).`);
    return reproduceReplicate(target, { param: flags.param, replicate: flags.replicate }, options);
  }
  for (const [given, name] of [
    [flags.param, '--param'],
    [flags.replicate, '--replicate'],
  ] as const) {
    if (given !== undefined)
      throw new Failure('bad-input', `${name} goes with a results folder <out>/<job_id>; ${target} has no job.json.`);
  }
  const missing = [
    [flags.entrypoint, '--entrypoint'],
    [flags.params, '--params'],
    [flags.seed, '--seed'],
  ]
    .filter(([given]) => given === undefined)
    .map(([, name]) => name);
  if (missing.length)
    throw new Failure(
      'bad-input',
      `${target} is not a results folder (no job.json): as a bundle directory it needs ${missing.join(', ')}.`,
    );
  return runReplicate(
    {
      bundleDir: target,
      entrypoint: flags.entrypoint!,
      params: paramsFromText('--params', flags.params!),
      seed: parseSeed(flags.seed!),
    },
    options,
  );
}

export function showHere() {
  const cwd = currentDir();
  return {
    location: (location: Parameters<typeof renderLocation>[0]) => renderLocation(location, cwd),
    path: (file: string) => displayPath(file, cwd),
  };
}
