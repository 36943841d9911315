/**
 * `modelops-debugger handshake <bundle-dir>`: start a runner, get `ready`, explain the result.
 */
import { Command } from 'commander';
import { parse as losslessParse } from 'lossless-json';
import * as fs from 'node:fs/promises';
import { exitCodeFor, ExitCode, Failure, isFailure } from '../engine/failure';
import { handshake, type HandshakeOptions } from '../engine/handshake/handshake';
import { readTranscript, replay } from '../engine/handshake/replay';
import type { ParamValue } from '../engine/protocol';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { renderFailureLine, renderHandshake, renderReplay } from './render';
import { positiveNumber } from './parsers';
import { frameCapBytes } from '../engine/process/frameCap';
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

const MAX_SEED = 2n ** 64n - 1n;

export function handshakeCommand(): Command {
  const command = new Command('handshake')
    .description('Start a runner for a bundle, get `ready`, and explain the outcome.')
    .argument('<bundle-dir>', 'the bundle directory')
    .option('--python <path>', "run with this interpreter as it is, without the bundle's venv")
    .option('--runner <path>', "another runner script, e.g. production's subprocess_runner.py")
    .option('--timeout <seconds>', 'how long the runner may take to answer ready', positiveNumber, 30)
    .option('--execute <entrypoint>', 'run one replicate after the handshake')
    .option('--params <json>', 'parameters of that replicate, a JSON object (with --execute)')
    .option('--seed <n>', 'seed of that replicate, 0 to 2^64-1 (with --execute)')
    .option('--max-frame-mb <n>', 'the largest answer read from a runner, in MB (MiB): a bigger result is result-too-large (default: 64)', positiveNumber)
    .option('--transcript <file>', 'write every JSON-RPC frame both ways to this file')
    .option('--replay <file>', 'send the requests of a recorded transcript to a fresh runner and diff the responses')
    .option('--stderr', "stream the runner's stderr to this stderr as it comes")
    .option('--json', 'print one JSON object on stdout');
  return addVenvOptions(command)
    .action(async (bundleDir: string, flags: HandshakeFlags) => {
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
  } catch (error) {
    return printFailure(error, flags.json);
  }

  if (flags.replay) {
    try {
      const report = await replay(await readTranscript(flags.replay), options);
      process.stdout.write(flags.json ? `${stringifyWireJson(report)}\n` : renderReplay(report));
      return report.same ? ExitCode.ok : ExitCode.failedWork;
    } catch (error) {
      return printFailure(error, flags.json);
    }
  }

  const { report, transcript } = await handshake(options);
  if (flags.transcript && transcript) {
    await fs.writeFile(flags.transcript, `${stringifyWireJson(transcript)}\n`);
  }
  process.stdout.write(flags.json ? `${stringifyWireJson(report)}\n` : renderHandshake(report, process.cwd()));
  return report.ok ? ExitCode.ok : exitCodeFor(report.kind!);
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
      throw new Failure('bad-input', `--params: "${key}" must be a number, string or boolean, not ${Array.isArray(item) ? 'an array' : 'an object'}.`);
    }
    if (item === null) throw new Failure('bad-input', `--params: "${key}" is null; parameters are numbers, strings or booleans.`);
  }
  return value as Record<string, ParamValue>;
}

function parseSeed(text: string): number | bigint {
  if (!/^\d+$/.test(text.trim())) throw new Failure('bad-input', `--seed must be a whole number from 0 to 2^64-1, not ${JSON.stringify(text)}.`);
  const seed = BigInt(text.trim());
  if (seed > MAX_SEED) throw new Failure('bad-input', `--seed ${text} is above 2^64-1.`);
  return seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed;
}

function printFailure(error: unknown, json: boolean | undefined): number {
  const failure = isFailure(error) ? error : new Failure('protocol-error', `Unexpected engine error: ${String(error)}`);
  if (json) {
    process.stdout.write(`${stringifyWireJson({ ok: false, kind: failure.kind, message: failure.message, location: failure.location, phases: [], evidence: failure.evidence, warnings: [] })}\n`);
  } else {
    process.stderr.write(renderFailureLine(failure, process.cwd()));
  }
  return exitCodeFor(failure.kind);
}
