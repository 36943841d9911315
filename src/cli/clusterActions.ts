/**
 * `modelops-debugger cluster handshake|rm-venv|clear-lock|rm-orphans`: one action on one worker
 * of a production Dask cluster, through its scheduler only (src/engine/cluster/actions.ts and
 * workerHandshake.ts). Each asks on a terminal, naming the worker and the path, and needs
 * `--yes` anywhere else: without it, it refuses (exit 2) and nothing is done.
 *
 * Exit codes: 0 done (a handshake: ok); 1 refused on the worker (a runner uses the venv, the lock's
 * holder is alive, consent not given at the prompt), or the action failed there; a handshake that
 * failed exits as `handshake` does for its kind; 2 bad input (no such worker or venv, a path
 * outside the venvs directory, `--yes` missing off a terminal); 3 no scheduler there, or the
 * worker did not answer.
 */
import { Command } from 'commander';
import * as fs from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import {
  clearLock,
  removeOrphans,
  removeVenv,
  type ActionBase,
  type ActionTarget,
  type VenvRemoval,
} from '../engine/cluster/actions';
import {
  handshakeOnWorker,
  workerHandshakeHeading,
  type WorkerHandshakeResult,
} from '../engine/cluster/workerHandshake';
import { RUN_DEFAULTS } from '../engine/backends/contract';
import { ExitCode, exitCodeFor, Failure, unexpectedFailure } from '../engine/failure';
import { renderHandshake } from '../engine/handshake/describe';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { checkSchedulerAddress, timeoutSeconds } from './parsers';
import { currentDir } from './render';
import { writeStderr, writeStdout } from './stdio';

const DEFAULT_ANSWER_TIMEOUT_S = 30;
/** Connecting to the scheduler, for `cluster inspect` and the actions alike. */
export const DEFAULT_CONNECT_TIMEOUT_S = 10;

interface ActionFlags {
  scheduler?: string;
  worker?: string;
  venvsDir?: string;
  timeout: number;
  connectTimeout: number;
  daskPython?: string;
  yes?: boolean;
  json?: boolean;
}

interface HandshakeFlags extends ActionFlags {
  venv: string;
  bundle?: string;
  bundlesDir?: string;
  bundleDigest?: string;
  runner?: string;
  transcript?: string;
}

type AnyResult = ActionBase & { action: string };

export function clusterActionCommands(): Command[] {
  const handshake = withTarget(
    new Command('handshake')
      .description(
        "Start a runner on one worker with one of its cached venvs and a bundle, with production's argv, and diagnose the handshake as `handshake --runner` does.",
      )
      .requiredOption('--venv <name-or-path>', "a venv in the worker's venvs directory (its key, or its path there)")
      .option('--bundle <name-or-path>', "a bundle in the worker's bundles cache (default: the venv key's digest)")
      .option(
        '--bundles-dir <dir>',
        'the bundles cache on the worker (default: its $MODELOPS_BUNDLES_CACHE_DIR, else /tmp/modelops/bundles)',
      )
      .option('--bundle-digest <digest>', "--bundle-digest for the runner (default: the bundle directory's name)")
      .option(
        '--runner <path>',
        "a runner script on the worker, e.g. production's subprocess_runner.py (default: ours, sent there)",
      )
      .option(
        '--transcript <file>',
        'write every JSON-RPC frame both ways to this file (what `handshake --replay` reads)',
      ),
    'how long the runner may take to answer ready',
    RUN_DEFAULTS.handshakeTimeoutMs / 1000,
  ).action(async (flags: HandshakeFlags) => {
    process.exitCode = await runAction(flags, async (target) => {
      await consent(`Start a runner on worker ${target.worker} with venv ${flags.venv}?`, flags);
      const result = await handshakeOnWorker({
        ...target,
        timeoutS: DEFAULT_ANSWER_TIMEOUT_S,
        venv: flags.venv,
        bundle: flags.bundle,
        bundlesDir: flags.bundlesDir,
        bundleDigest: flags.bundleDigest,
        runnerPath: flags.runner,
        handshakeTimeoutMs: flags.timeout * 1000,
      });
      if (flags.transcript && result.transcript)
        await fs.writeFile(flags.transcript, `${stringifyWireJson(result.transcript)}\n`);
      return result;
    });
  });

  const rmVenv = withTarget(
    new Command('rm-venv')
      .description(
        'Remove one venv on one worker (and its {key}.lock if nobody holds it); refused while a runner uses it.',
      )
      .requiredOption('--venv <name-or-path>', "a venv in the worker's venvs directory (its key, or its path there)")
      .option('--force', 'remove it even while a runner process uses it'),
  ).action(async (flags: ActionFlags & { venv: string; force?: boolean }) => {
    process.exitCode = await runAction(flags, async (target) => {
      await consent(`Remove venv ${flags.venv} on worker ${target.worker}${flags.force ? ' (forced)' : ''}?`, flags);
      return removeVenv(target, flags.venv, Boolean(flags.force));
    });
  });

  const clear = withTarget(
    new Command('clear-lock')
      .description("Remove a venv's lock on one worker, only when its holder is dead.")
      .requiredOption(
        '--lock <name-or-path>',
        "a lock in the worker's venvs directory: {key}.lock, the key, or its path",
      ),
  ).action(async (flags: ActionFlags & { lock: string }) => {
    process.exitCode = await runAction(flags, async (target) => {
      await consent(`Clear lock ${flags.lock} on worker ${target.worker} (only if its holder is dead)?`, flags);
      return clearLock(target, flags.lock);
    });
  });

  const orphans = withTarget(
    new Command('rm-orphans').description(
      'Remove the fresh venvs (-{uuid8}) no runner process uses on one worker, listing each one removed.',
    ),
  ).action(async (flags: ActionFlags) => {
    process.exitCode = await runAction(flags, async (target) => {
      await consent(
        `Remove the orphan fresh venvs in ${target.venvsDir ?? "the worker's venvs directory"} on worker ${target.worker}?`,
        flags,
      );
      return removeOrphans(target);
    });
  });
  return [handshake, rmVenv, clear, orphans];
}

function withTarget(
  command: Command,
  timeoutHelp = 'how long the worker has to answer',
  timeoutDefault = DEFAULT_ANSWER_TIMEOUT_S,
): Command {
  return command
    .option('--scheduler <address>', 'the Dask scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS)')
    .requiredOption(
      '--worker <address>',
      'the worker, as the scheduler knows it (tcp://HOST:PORT; see `cluster inspect`)',
    )
    .option(
      '--venvs-dir <dir>',
      'the venvs directory on the worker (default: its $MODELOPS_VENVS_DIR, else /tmp/modelops/venvs and ~/.cache/modelops-debugger/venvs)',
    )
    .option('--timeout <seconds>', timeoutHelp, timeoutSeconds, timeoutDefault)
    .option(
      '--connect-timeout <seconds>',
      'how long to try to reach the scheduler',
      timeoutSeconds,
      DEFAULT_CONNECT_TIMEOUT_S,
    )
    .option('--dask-python <path>', 'a Python that can import distributed (default: /usr/bin/python3, then python3)')
    .option('--yes', 'do it without asking (needed when not on a terminal)')
    .option('--json', 'print one JSON object on stdout');
}

/** Not given on a terminal: nobody to ask, so nothing is done. */
class NotConsented extends Error {}

async function consent(question: string, flags: ActionFlags): Promise<void> {
  if (flags.yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY)
    throw new Failure(
      'bad-input',
      `${question.replace(/\?$/, '')}: not done. Not on a terminal, so nobody can be asked: add --yes to do it.`,
    );
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim()))
      throw new NotConsented(`${question.replace(/\?$/, '')}: not done (answered no).`);
  } finally {
    prompt.close();
  }
}

async function runAction(flags: ActionFlags, body: (target: ActionTarget) => Promise<AnyResult>): Promise<number> {
  try {
    const scheduler = flags.scheduler ?? process.env.DASK_SCHEDULER_ADDRESS;
    if (!scheduler)
      throw new Failure('bad-input', 'cluster actions need --scheduler tcp://HOST:PORT (or DASK_SCHEDULER_ADDRESS).');
    const worker = flags.worker!;
    if (!/^[a-z][a-z0-9+]*:\/\/[^\s/]+$/i.test(worker))
      throw new Failure(
        'bad-input',
        `--worker ${JSON.stringify(worker)} is not a worker address like tcp://HOST:PORT.`,
      );
    const result = await body({
      scheduler: checkSchedulerAddress(scheduler),
      worker,
      venvsDir: flags.venvsDir,
      timeoutS: flags.timeout,
      python: flags.daskPython,
      connectTimeoutMs: flags.connectTimeout * 1000,
    });
    writeStdout(flags.json ? `${stringifyWireJson(result)}\n` : renderResult(result));
    return exitCodeOf(result);
  } catch (error) {
    if (error instanceof NotConsented) {
      writeStderr(`modelops-debugger: ${error.message}\n`);
      return ExitCode.failedWork;
    }
    const failure = unexpectedFailure(error, 'acting on the worker');
    if (flags.json) writeStdout(`${JSON.stringify({ ok: false, ...failure.toJSON() }, null, 2)}\n`);
    else writeStderr(`modelops-debugger: ${failure.kind}: ${failure.message}\n`);
    return exitCodeFor(failure.kind);
  }
}

function exitCodeOf(result: AnyResult): number {
  if (result.outcome === 'refused') return result.badInput ? ExitCode.badInput : ExitCode.failedWork;
  if (result.action === 'handshake') {
    const report = (result as WorkerHandshakeResult).report!;
    return report.ok ? ExitCode.ok : exitCodeFor(report.kind!);
  }
  if (result.action === 'rm-orphans' && (result as unknown as { kept: VenvRemoval[] }).kept.length)
    return ExitCode.failedWork;
  return ExitCode.ok;
}

function renderResult(result: AnyResult): string {
  if (result.action !== 'handshake' || result.outcome === 'refused')
    return `${result.outcome === 'done' ? '✔' : '✘'} ${result.message}\n`;
  const shake = result as WorkerHandshakeResult;
  return `${workerHandshakeHeading(shake)}${renderHandshake(shake.report!, currentDir())}`;
}
