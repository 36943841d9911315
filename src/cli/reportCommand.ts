/**
 * `modelops-debugger report <out>/<job_id> [-o FILE]`: the run as one self-contained HTML file
 * (engine/report/), made from its results folder alone; by default `report.html` in it.
 * `report --from-logs <files…> [-o FILE]`: the same report from production's worker logs
 * (their SIM_TIMING and AGG_TIMING lines); by default `report.html` here.
 */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Failure, unexpectedFailure } from '../engine/failure';
import { reportFromLogs } from '../engine/report/fromLogs';
import { readProductionLogs } from '../engine/report/productionLogs';
import { reportHtml } from '../engine/report/reportHtml';
import { runReport, type RunReport } from '../engine/report/runReport';
import { sayError } from './replicateCommand';
import { writeStderr, writeStdout } from './stdio';

export function reportCommand(): Command {
  return new Command('report')
    .description(
      'Write a run report: one HTML file with everything inlined (it opens offline): outcome and where the time went, the timeline, a table of the parameter sets, failures grouped by signature with what their parameters share, the slowest replicates, durations and the environment. With --from-logs, the same from production worker logs.',
    )
    .argument('[results]', "a job's results folder <out>/<job_id>")
    .option(
      '--from-logs <files...>',
      'production worker logs (plain or .gz; - is stdin) instead of a results folder: their SIM_TIMING and AGG_TIMING lines',
    )
    .option(
      '-o, --output <file>',
      'where to write it (default: report.html in the results folder, or here with --from-logs)',
    )
    .action(async (input: string | undefined, flags: { output?: string; fromLogs?: string[] }) => {
      try {
        if (flags.fromLogs && input)
          throw new Failure('bad-input', `Give a results folder or --from-logs, not both (${input}).`);
        if (!flags.fromLogs && !input)
          throw new Failure('bad-input', "Give a job's results folder <out>/<job_id>, or --from-logs <files…>.");
        const report = flags.fromLogs
          ? reportFromLogs(await readProductionLogs(flags.fromLogs))
          : await runReport(input!);
        const file = path.resolve(
          flags.output ?? (flags.fromLogs ? 'report.html' : path.join(report.dir, 'report.html')),
        );
        const html = reportHtml(report);
        writeFileSync(file, html);
        writeStdout(`Wrote ${file} (${(Buffer.byteLength(html) / 1024).toFixed(0)} KB): ${summary(report)}.\n`);
        const unparsed = report.logs?.unparsed;
        if (unparsed?.count)
          writeStderr(
            `⚠ ${unparsed.count} line${unparsed.count === 1 ? '' : 's'} with SIM_TIMING: or AGG_TIMING: did not parse and ${unparsed.count === 1 ? 'is' : 'are'} not counted:\n${unparsed.first
              .map((u) => `  ${u.file}:${u.line}: ${u.why}\n`)
              .join(
                '',
              )}${unparsed.count > unparsed.first.length ? `  … and ${unparsed.count - unparsed.first.length} more (listed in the report)\n` : ''}`,
          );
        process.exitCode = 0;
      } catch (error) {
        process.exitCode = sayError(unexpectedFailure(error, 'writing the report'), undefined);
      }
    });
}

function summary(report: RunReport): string {
  if (report.logs) {
    const { logs } = report;
    return `${logs.sims.n} simulations and ${logs.aggs.n} aggregations in ${report.sets.length} parameter sets on ${logs.workers.length} workers, from ${logs.files.length} file${logs.files.length === 1 ? '' : 's'}${logs.timestamps.with ? '' : ' (no timestamps: no timeline)'}`;
  }
  return `${report.counts.total} replicates in ${report.counts.sets} parameter sets, ${report.failures.length} failure signature${report.failures.length === 1 ? '' : 's'}`;
}
