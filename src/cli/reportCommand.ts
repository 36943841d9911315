/**
 * `modelops-debugger report <out>/<job_id> [-o FILE]`: the run as one self-contained HTML file
 * (engine/report/), made from its results folder alone; by default `report.html` in it.
 */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { unexpectedFailure } from '../engine/failure';
import { reportHtml } from '../engine/report/reportHtml';
import { runReport } from '../engine/report/runReport';
import { sayError } from './replicateCommand';
import { writeStdout } from './stdio';

export function reportCommand(): Command {
  return new Command('report')
    .description(
      'Write a run report: one HTML file with everything inlined (it opens offline): outcome and where the time went, the timeline, a table of the parameter sets, failures grouped by signature with what their parameters share, the slowest replicates, durations and the environment.',
    )
    .argument('<results>', "a job's results folder <out>/<job_id>")
    .option('-o, --output <file>', 'where to write it (default: report.html in the results folder)')
    .action(async (input: string, flags: { output?: string }) => {
      try {
        const report = await runReport(input);
        const file = path.resolve(flags.output ?? path.join(report.dir, 'report.html'));
        const html = reportHtml(report);
        writeFileSync(file, html);
        writeStdout(
          `Wrote ${file} (${(Buffer.byteLength(html) / 1024).toFixed(0)} KB): ${report.counts.total} replicates in ${report.counts.sets} parameter sets, ${report.failures.length} failure signature${report.failures.length === 1 ? '' : 's'}.\n`,
        );
        process.exitCode = 0;
      } catch (error) {
        process.exitCode = sayError(unexpectedFailure(error, 'writing the report'), undefined);
      }
    });
}
