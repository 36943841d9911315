/**
 * A reproduction's report in words, for the command line and (later) the editor alike; paths
 * and source locations are shown the way the caller shows them (relative to its directory).
 */
import type { SourceLocation } from '../failure';
import { scalarJson } from '../job/ids';
import type { DeterminismReport, DeterminismVerdict, RunOutcome } from './determinism';
import type { OutputComparison, ReplicateReport } from './replicate';

export interface Show {
  location: (location: SourceLocation) => string;
  path: (file: string) => string;
}

const VERDICT_MARK: Record<ReplicateReport['verdict'], string> = {
  same: '✔',
  ok: '✔',
  different: '✘',
  'failed-like-before': '✘',
  'failed-differently': '✘',
  failed: '✘',
};

export function renderReplicateReport(report: ReplicateReport, show: Show): string {
  const lines = [`${VERDICT_MARK[report.verdict]} ${report.message}`];
  if (report.failure?.location) lines.push(`  at ${show.location(report.failure.location)}`);
  const params = Object.entries(report.params)
    .map(([key, value]) => `${key}=${scalarJson(value)}`)
    .join(', ');
  const set = `${report.param_index !== undefined ? `parameter set ${report.param_index} ` : ''}(${report.param_id.slice(0, 16)}: ${params || 'no parameters'})`;
  lines.push(
    `  replicate${report.replicate !== undefined ? ` ${report.replicate} of` : ' of'} ${set}, seed ${String(report.seed)}, entrypoint ${report.entrypoint}${report.job_id ? `, job ${report.job_id}` : ''}`,
  );
  const { ran } = report;
  const venv = ran.venv
    ? `venv ${ran.venv.key} (${ran.venv.fresh ? 'built fresh for this run, removed after' : ran.venv.built ? 'built' : 'reused'}${ran.job_venv_key ? "; the job's key" : ''})`
    : `python ${show.path(ran.python)}`;
  lines.push(`  ran in ${ran.ms} ms in a fresh runner${ran.pid !== undefined ? ` (pid ${ran.pid})` : ''}, ${venv}`);
  if (report.recorded_failure && report.verdict !== 'failed-like-before') {
    lines.push(
      `  recorded: ${report.recorded_failure.kind}: ${report.recorded_failure.message}${report.recorded_failure.location ? ` at ${show.location(report.recorded_failure.location)}` : ''}`,
    );
  }
  if (report.outputs.length) {
    lines.push('  outputs:');
    const width = Math.max(...report.outputs.map((output) => output.name.length));
    for (const output of report.outputs) lines.push(...renderOutput(output, width));
  }
  const stderrTail = (report.failure?.evidence as { stderrTail?: string } | undefined)?.stderrTail;
  if (stderrTail?.trim()) {
    lines.push('  stderr (last lines):');
    for (const line of stderrTail.trimEnd().split('\n').slice(-8)) lines.push(`    ${line}`);
  }
  for (const warning of report.warnings)
    lines.push(
      `⚠ ${warning.kind}${warning.location ? ` at ${show.location(warning.location)}` : ''}: ${warning.message}`,
    );
  for (const note of report.notes) lines.push(`  note: ${note}`);
  if (report.study)
    lines.push(`  study: ${show.path(report.study)} (this replicate for production: its params and explicit seed)`);
  return `${lines.join('\n')}\n`;
}

function renderOutput(output: OutputComparison, width: number): string[] {
  const name = output.name.padEnd(width);
  const bytes = (size: number, checksum: string) => `${size} B, blake2b ${checksum.slice(0, 12)}`;
  switch (output.status) {
    case 'same':
      return [`    ${name}  ${bytes(output.size!, output.checksum!)}  = recorded`];
    case 'produced':
      return [`    ${name}  ${bytes(output.size!, output.checksum!)}`];
    case 'new':
      return [`    ${name}  ${bytes(output.size!, output.checksum!)}  new: not in the recorded result`];
    case 'missing':
      return [`    ${name}  not produced now; recorded ${bytes(output.recorded!.size, output.recorded!.checksum)}`];
    case 'different': {
      const diff = output.first_difference!;
      return [
        `    ${name}  ${bytes(output.size!, output.checksum!)}  ≠ recorded ${bytes(output.recorded!.size, output.recorded!.checksum)}`,
        `    ${' '.repeat(width)}  first difference at byte ${diff.offset}: now "${diff.now.text}" (${diff.now.hex || 'end'}), recorded "${diff.recorded.text}" (${diff.recorded.hex || 'end'})`,
      ];
    }
  }
}

const DETERMINISM_MARK: Record<DeterminismVerdict, string> = {
  deterministic: '✔',
  nondeterministic: '✘',
  'history-dependent': '✘',
};

/** A determinism check in words: the verdict, a line per parameter set, then each replicate that is not. */
export function renderDeterminismReport(report: DeterminismReport): string {
  const lines = [`${DETERMINISM_MARK[report.verdict]} ${report.message}`];
  lines.push(
    `  job ${report.job_id}, ${report.sample} replicate${report.sample === 1 ? '' : 's'} per parameter set, entrypoint ${report.entrypoint}`,
  );
  for (const set of report.sets) {
    const params = Object.entries(set.params)
      .map(([key, value]) => `${key}=${scalarJson(value)}`)
      .join(', ');
    lines.push(
      `  ${DETERMINISM_MARK[set.verdict]} parameter set ${set.param_index} (${set.param_id.slice(0, 16)}: ${params || 'no parameters'}): ${set.verdict} (replicates ${set.replicates.map((r) => r.replicate).join(', ')})`,
    );
    for (const check of set.replicates) {
      if (check.verdict === 'deterministic') continue;
      lines.push(`      replicate ${check.replicate}, seed ${String(check.seed)}: ${check.message}`);
      lines.push(
        `        cold ${outcomeText(check.cold)} · warm ${outcomeText(check.warm)} · cold again ${outcomeText(check.cold_again)}`,
      );
    }
  }
  for (const note of report.notes) lines.push(`  note: ${note}`);
  return `${lines.join('\n')}\n`;
}

function outcomeText(outcome: RunOutcome): string {
  if (outcome.status === 'failed') return `failed (${outcome.kind})`;
  const names = Object.keys(outcome.outputs);
  return names.map((name) => `${name} ${outcome.outputs[name].checksum.slice(0, 12)}`).join(', ') || 'no outputs';
}
