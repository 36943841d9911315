/** `modelops-debugger`: the command-line twin of the extension, on the same engine. */
import { Command, CommanderError } from 'commander';
import { ExitCode, exitCodeFor, unexpectedFailure } from '../engine/failure';
import { clusterCommand } from './clusterCommand';
import { determinismCommand } from './determinismCommand';
import { traceCommand } from './traceCommand';
import { diffCommand } from './diffCommand';
import { reportCommand } from './reportCommand';
import { handshakeCommand } from './handshakeCommand';
import { currentDir, renderFailureLine } from './render';
import { replicateCommand } from './replicateCommand';
import { runCommand } from './runCommand';
import { guardStdio, writeStderr } from './stdio';
import { venvCommand } from './venvCommand';

const VERSION = '0.1.0';

export async function main(argv: string[]): Promise<number> {
  guardStdio();
  const program = new Command('modelops-debugger')
    .description('Run, watch and diagnose ModelOps simulation bundles.')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    .addCommand(runCommand().exitOverride())
    .addCommand(handshakeCommand().exitOverride())
    .addCommand(replicateCommand().exitOverride())
    .addCommand(determinismCommand().exitOverride())
    .addCommand(traceCommand().exitOverride())
    .addCommand(diffCommand().exitOverride())
    .addCommand(reportCommand().exitOverride())
    .addCommand(exitOverrideAll(venvCommand()))
    .addCommand(exitOverrideAll(clusterCommand()));
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? ExitCode.ok);
  } catch (error) {
    if (error instanceof CommanderError) {
      // help and version are not errors; everything else commander rejects is usage
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
    }
    throw error;
  }
}

/**
 * Whatever a command let through: an `engine-error` with its stack and a request to report it,
 * exit 3 like every engine-error (it used to be "internal error", exit 70).
 */
export function reportUnexpected(error: unknown): number {
  const failure = unexpectedFailure(error);
  writeStderr(
    renderFailureLine(failure, currentDir()).replace('modelops-debugger: ', `modelops-debugger: ${failure.kind}: `),
  );
  return exitCodeFor(failure.kind);
}

/** Commander's errors become exit code 2 only if every subcommand throws instead of exiting. */
function exitOverrideAll(command: Command): Command {
  command.exitOverride();
  for (const sub of command.commands) exitOverrideAll(sub);
  return command;
}

/** The command line as a process: its exit code is the command's (the process ends once its writes are flushed). */
export function runAsMain(): void {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.exitCode = reportUnexpected(error);
    },
  );
}

// dist/cli-main.js run directly; dist/cli.js (bin.ts) calls runAsMain itself
if (require.main === module) runAsMain();
