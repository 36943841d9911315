/**
 * `modelops-debugger trace <out>/<job_id> [-o FILE]`: the job's run as a Chrome Trace Event
 * file (engine/trace/chromeTrace.ts), made from its results folder, for local and Dask runs
 * alike; by default `trace.json` in that folder. Open it in Perfetto (ui.perfetto.dev, or its
 * trace processor offline) or chrome://tracing.
 */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { unexpectedFailure } from '../engine/failure';
import { readEarlierJob } from '../engine/job/resume';
import { chromeTrace } from '../engine/trace/chromeTrace';
import { sayError } from './replicateCommand';
import { writeStdout } from './stdio';

interface TraceFlags {
  output?: string;
  json?: boolean;
}

export function traceCommand(): Command {
  return new Command('trace')
    .description(
      "Write a job's run as a Chrome Trace Event file (Perfetto, chrome://tracing): a track per warm-process slot, a bar per task, crashes, timeouts, retries and stdout pollution marked, tasks in flight and peak RSS as counters.",
    )
    .argument('<results>', "a job's results folder <out>/<job_id>")
    .option('-o, --output <file>', 'where to write it (default: trace.json in the results folder)')
    .option('--json', 'print one JSON object on stdout: the file and what it holds')
    .action(async (input: string, flags: TraceFlags) => {
      process.exitCode = await trace(input, flags);
    });
}

async function trace(input: string, flags: TraceFlags): Promise<number> {
  try {
    const { dir, job } = await readEarlierJob(input);
    const { trace: made, summary } = chromeTrace(dir, job);
    const file = path.resolve(flags.output ?? path.join(dir, 'trace.json'));
    writeFileSync(file, JSON.stringify(made));
    if (flags.json) writeStdout(`${JSON.stringify({ file, ...summary })}\n`);
    else
      writeStdout(
        `Wrote ${file}: ${summary.tasks} tasks on ${summary.slots} runner slot${summary.slots === 1 ? '' : 's'} (${summary.runners} runner${summary.runners === 1 ? '' : 's'}) of ${summary.hosts} host${summary.hosts === 1 ? '' : 's'}, ${summary.instants} marked event${summary.instants === 1 ? '' : 's'}${summary.unreadable ? `; ${summary.unreadable} unreadable line${summary.unreadable === 1 ? '' : 's'} of events.jsonl left out` : ''}.\nOpen it in Perfetto (https://ui.perfetto.dev) or chrome://tracing.\n`,
      );
    return 0;
  } catch (error) {
    return sayError(unexpectedFailure(error, 'writing the trace'), undefined, flags.json);
  }
}
