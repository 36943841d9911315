/**
 * `modelops-debugger check-determinism`: a sample of each parameter set's replicates run cold,
 * warm after other sets, and cold again (engine/replicate/determinism.ts), and each judged
 * deterministic, nondeterministic with the same seed, or dependent on process history.
 */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Failure, unexpectedFailure } from '../engine/failure';
import { frameCapBytes } from '../engine/process/frameCap';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { checkDeterminism, DEFAULT_SAMPLE } from '../engine/replicate/determinism';
import { renderDeterminismReport } from '../engine/replicate/text';
import { wholeNumber } from './parsers';
import { addRunnerLimits, sayError } from './replicateCommand';
import { writeStderr, writeStdout } from './stdio';
import { onStopSignals } from './stopSignals';
import { addVenvOptions, printVenvEvent, venvCacheOptions, type VenvFlags } from './venvOptions';

interface DeterminismFlags extends VenvFlags {
  sample: number;
  readyTimeout: number;
  taskTimeout?: number;
  maxFrameMb?: number;
  json?: boolean;
}

function sampleSize(text: string): number {
  const value = wholeNumber(text);
  if (value < 1) throw new InvalidArgumentError('expected 1 or more replicates per parameter set.');
  return value;
}

export function determinismCommand(): Command {
  const command = new Command('check-determinism')
    .description(
      "Run a sample of each parameter set's replicates three ways (each in a fresh process; in one warm process after other sets' replicates; fresh again) and say whether each is deterministic, nondeterministic with the same seed, or depends on what ran before in its process.",
    )
    .argument('<results>', "a job's results folder <out>/<job_id>")
    .option('--sample <k>', 'replicates per parameter set, spread over its replicates', sampleSize, DEFAULT_SAMPLE);
  addRunnerLimits(command, 'each runner', 'each replicate').option('--json', 'print one JSON object on stdout');
  return addVenvOptions(command).action(async (input: string, flags: DeterminismFlags) => {
    process.exitCode = await check(input, flags);
  });
}

/** Each venv event said once: every fresh process looks the venv up again, and finds it the same. */
function once<T>(say: (event: T) => void): (event: T) => void {
  const said = new Set<string>();
  return (event) => {
    const key = JSON.stringify(event);
    if (said.has(key)) return;
    said.add(key);
    say(event);
  };
}

async function check(input: string, flags: DeterminismFlags): Promise<number> {
  const stop = onStopSignals('stopping the runners');
  try {
    const folder = path.resolve(input);
    if (!existsSync(path.join(folder, 'job.json')))
      throw new Failure('bad-input', `${folder} is not a results folder <out>/<job_id> (it has no job.json).`);
    const report = await checkDeterminism(folder, {
      sample: flags.sample,
      basePython: flags.basePython,
      venv: venvCacheOptions(flags, flags.json ? undefined : once(printVenvEvent)),
      readyTimeoutMs: flags.readyTimeout * 1000,
      taskTimeoutMs: flags.taskTimeout === undefined ? undefined : flags.taskTimeout * 1000,
      maxFrameBytes: flags.maxFrameMb === undefined ? undefined : frameCapBytes(flags.maxFrameMb),
      signal: stop.signal,
      onProgress: flags.json ? undefined : (text) => writeStderr(`${text}…\n`),
    });
    writeStdout(flags.json ? `${stringifyWireJson(report)}\n` : renderDeterminismReport(report));
    return report.exit_code;
  } catch (error) {
    return sayError(unexpectedFailure(error, 'checking determinism'), stop.signal, flags.json);
  } finally {
    stop.dispose();
  }
}
