/**
 * `modelops-debugger handshake <bundle-dir>`: start a runner, get `ready`, explain the result.
 */
import { Command } from 'commander';
import { parse as losslessParse } from 'lossless-json';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { exitCodeFor, ExitCode, Failure, unexpectedFailure } from '../engine/failure';
import { handshake, type HandshakeOptions } from '../engine/handshake/handshake';
import { readTranscript, replay } from '../engine/handshake/replay';
import { describeSpecialFile } from '../engine/inputFile';
import type { ParamValue } from '../engine/protocol';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { renderHandshake, renderReplay } from '../engine/handshake/describe';
import { currentDir, renderFailureLine } from './render';
import { parseSeed, positiveNumber, timeoutSeconds } from './parsers';
import { writeStderr, writeStdout } from './stdio';
import { RUN_DEFAULTS } from '../engine/backends/contract';
import { DEFAULT_FRAME_MB, frameCapBytes } from '../engine/process/frameCap';
import { addVenvOptions, printVenvEvent, venvCacheOptions, type VenvFlags } from './venvOptions';

interface HandshakeFlags extends VenvFlags {
  python?: string;
  runner?: string;
  timeout: number;
  execute?: string;
  params?: string;
  seed?: string;
  transcript?: string;
  replay?: string;
  json?: boolean;
  stderr?: boolean;
  maxFrameMb?: number;
}

export function handshakeCommand(): Command {
  const command = new Command('handshake')
    .description('Start a runner for a bundle, get `ready`, and explain the outcome.')
    .argument('<bundle-dir>', 'the bundle directory')
    .option('--python <path>', "run with this interpreter as it is, without the bundle's venv")
    .option('--runner <path>', "another runner script, e.g. production's subprocess_runner.py")
    .option(
      '--timeout <seconds>',
      'how long the runner may take to answer ready',
      timeoutSeconds,
      RUN_DEFAULTS.handshakeTimeoutMs / 1000,
    )
    .option('--execute <entrypoint>', 'run one replicate after the handshake')
    .option('--params <json>', 'parameters of that replicate, a JSON object (with --execute)')
    .option('--seed <n>', 'seed of that replicate, 0 to 2^64-1 (with --execute)')
    .option(
      '--max-frame-mb <n>',
      `the largest answer read from a runner, in MB (MiB): a bigger result is result-too-large (default: ${DEFAULT_FRAME_MB})`,
      positiveNumber,
    )
    .option('--transcript <file>', 'write every JSON-RPC frame both ways to this file')
    .option('--replay <file>', 'send the requests of a recorded transcript to a fresh runner and diff the responses')
    .option('--stderr', "stream the runner's stderr to this stderr as it comes")
    .option('--json', 'print one JSON object on stdout');
  return addVenvOptions(command).action(async (bundleDir: string, flags: HandshakeFlags) => {
    process.exitCode = await runHandshake(bundleDir, flags);
  });
}

async function runHandshake(bundleDir: string, flags: HandshakeFlags): Promise<number> {
  let options: HandshakeOptions;
  try {
    options = {
      bundleDir,
      python: flags.python,
      basePython: flags.basePython,
      venv: venvCacheOptions(flags, flags.json ? undefined : printVenvEvent),
      runnerScript: flags.runner,
      timeoutMs: flags.timeout * 1000,
      execute: executeFlags(flags),
      recordTranscript: flags.transcript !== undefined,
      maxFrameBytes: frameCapBytes(flags.maxFrameMb),
      onStderr: flags.stderr ? (chunk) => process.stderr.write(chunk) : undefined,
    };
    // found out now, not after the runner has done its work
    if (flags.transcript !== undefined) await checkOutputFile(flags.transcript, '--transcript');
  } catch (error) {
    return printFailure(error, flags.json);
  }

  if (flags.replay) {
    try {
      const report = await replay(await readTranscript(flags.replay), options);
      writeStdout(flags.json ? `${stringifyWireJson(report)}\n` : renderReplay(report));
      return report.same ? ExitCode.ok : ExitCode.failedWork;
    } catch (error) {
      return printFailure(error, flags.json);
    }
  }

  const { report, transcript } = await handshake(options);
  let unwritten: string | undefined;
  if (flags.transcript && transcript) {
    try {
      await fs.writeFile(flags.transcript, `${stringifyWireJson(transcript)}\n`);
    } catch (error) {
      unwritten = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    }
  }
  writeStdout(flags.json ? `${stringifyWireJson(report)}\n` : renderHandshake(report, currentDir()));
  if (unwritten) {
    // checked before the handshake, so the disk changed meanwhile (full, read-only): the environment's doing
    writeStderr(`modelops-debugger: the transcript could not be written to ${flags.transcript} (${unwritten}).\n`);
    if (report.ok) return ExitCode.environment;
  }
  return report.ok ? ExitCode.ok : exitCodeFor(report.kind!);
}

/**
 * A file the command will write when it is done: its folder must exist and be writable, and
 * the path must not be something a write would block on (a FIFO) or that is not a file.
 */
async function checkOutputFile(file: string, option: string): Promise<void> {
  const folder = path.dirname(path.resolve(file));
  const folderStat = await fs.stat(folder).catch(() => undefined);
  if (!folderStat) throw new Failure('bad-input', `${option} ${file}: the folder ${folder} does not exist.`);
  if (!folderStat.isDirectory()) throw new Failure('bad-input', `${option} ${file}: ${folder} is not a folder.`);
  const existing = await fs.stat(file).catch(() => undefined);
  const kind = existing && describeSpecialFile(existing);
  if (kind) throw new Failure('bad-input', `${option} ${file} is ${kind}, not a file to write.`);
  try {
    await fs.access(folder, fsConstants.W_OK);
  } catch (error) {
    throw new Failure(
      'bad-input',
      `${option} ${file}: the folder ${folder} is not writable (${(error as NodeJS.ErrnoException).code}).`,
    );
  }
}

function executeFlags(flags: HandshakeFlags): HandshakeOptions['execute'] {
  if (!flags.execute) {
    if (flags.params !== undefined || flags.seed !== undefined) {
      throw new Failure('bad-input', '--params and --seed go with --execute <entrypoint>.');
    }
    return undefined;
  }
  return { entrypoint: flags.execute, params: parseParams(flags.params ?? '{}'), seed: parseSeed(flags.seed ?? '0') };
}

/** Parsed losslessly, so `1.0` reaches Python as a float and big integers stay exact. */
function parseParams(text: string): Record<string, ParamValue> {
  let value: unknown;
  try {
    value = losslessParse(text);
  } catch (error) {
    throw new Failure('bad-input', `--params is not valid JSON: ${(error as Error).message}.`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Failure('bad-input', '--params must be a JSON object such as {"beta": 0.3}.');
  }
  for (const [key, item] of Object.entries(value)) {
    if (item !== null && typeof item === 'object' && !('isLosslessNumber' in item)) {
      throw new Failure(
        'bad-input',
        `--params: "${key}" must be a number, string or boolean, not ${Array.isArray(item) ? 'an array' : 'an object'}.`,
      );
    }
    if (item === null)
      throw new Failure('bad-input', `--params: "${key}" is null; parameters are numbers, strings or booleans.`);
  }
  return value as Record<string, ParamValue>;
}

function printFailure(error: unknown, json: boolean | undefined): number {
  const failure = unexpectedFailure(error);
  if (json) {
    writeStdout(
      `${stringifyWireJson({ ok: false, kind: failure.kind, message: failure.message, location: failure.location, phases: [], evidence: failure.evidence, warnings: [] })}\n`,
    );
  } else {
    writeStderr(renderFailureLine(failure, currentDir()));
  }
  return exitCodeFor(failure.kind);
}
