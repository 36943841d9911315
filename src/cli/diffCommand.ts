/**
 * `modelops-debugger diff <runA> <runB> [--json]`: two runs of a job compared from their results
 * folders (engine/compare/diff.ts); exit 0 when they agree, 1 when they differ, as diff(1).
 */
import { Command } from 'commander';
import { unexpectedFailure } from '../engine/failure';
import { diffRuns } from '../engine/compare/diff';
import { renderRunDiff } from '../engine/compare/text';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { sayError } from './replicateCommand';
import { writeStdout } from './stdio';

export function diffCommand(): Command {
  return new Command('diff')
    .description(
      'Compare two runs of a job: per parameter set the aggregates and each replicate (outputs byte for byte); environment and timings are said, not counted. Exit 0 when they agree, 1 when they differ.',
    )
    .argument('<runA>', "a job's results folder <out>/<job_id>")
    .argument('<runB>', 'another one')
    .option('--json', 'print one JSON object on stdout')
    .action(async (a: string, b: string, flags: { json?: boolean }) => {
      try {
        const diff = await diffRuns(a, b);
        writeStdout(flags.json ? `${stringifyWireJson(diff)}\n` : renderRunDiff(diff));
        process.exitCode = diff.exit_code;
      } catch (error) {
        process.exitCode = sayError(unexpectedFailure(error, 'comparing the runs'), undefined, flags.json);
      }
    });
}
