/** Human-readable output of the command line: verdicts, failures, evidence, diffs. */
import * as path from 'node:path';
import type { Evidence, Failure, SourceLocation } from '../engine/failure';
import type { HandshakeReport } from '../engine/handshake/handshake';
import type { ReplayReport } from '../engine/handshake/replay';

const STDERR_LINES_SHOWN = 12;

/** The current directory, or undefined when it was deleted (process.cwd() then throws). */
export function currentDir(): string | undefined {
  try {
    return process.cwd();
  } catch {
    return undefined;
  }
}

export function displayPath(file: string, cwd: string | undefined): string {
  if (cwd === undefined) return file;
  const relative = path.relative(cwd, file);
  return relative && !relative.startsWith('..') ? relative : file;
}

export function renderLocation(location: SourceLocation | undefined, cwd: string | undefined): string {
  if (!location) return '';
  return `${displayPath(location.file, cwd)}:${location.line}${location.function ? ` in ${location.function}()` : ''}`;
}

export function renderHandshake(report: HandshakeReport, cwd: string | undefined): string {
  const lines: string[] = [];
  if (report.ok) {
    lines.push(`✔ ${report.message}`);
  } else {
    lines.push(`✘ ${report.kind}: ${report.message}`);
    if (report.location) lines.push(`  at ${renderLocation(report.location, cwd)}`);
  }
  if (report.phases.length) {
    const width = Math.max(...report.phases.map((p) => p.name.length));
    lines.push('  phases:');
    for (const phase of report.phases) lines.push(`    ${phase.name.padEnd(width)}  ${phase.ms.toFixed(1).padStart(8)} ms`);
  }
  const outputs = report.evidence.execute?.outputs;
  if (outputs) {
    lines.push('  outputs:');
    for (const [name, view] of Object.entries(outputs)) {
      lines.push(`    ${name}: ${view.text !== undefined ? view.text : `${view.bytes} bytes, starting ${view.head}`}`);
    }
  }
  if (!report.ok) lines.push(...renderEvidence(report.evidence));
  for (const warning of report.warnings) {
    lines.push(`⚠ ${warning.kind}${warning.location ? ` at ${renderLocation(warning.location, cwd)}` : ''}`);
    lines.push(`  ${warning.message}`);
  }
  for (const harmless of report.evidence.harmlessStdout ?? []) {
    lines.push(`ℹ stdout during a call (production redirects it to stderr too)${harmless.location ? ` at ${renderLocation(harmless.location, cwd)}` : ''}: ${JSON.stringify(harmless.text)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function renderEvidence(evidence: Evidence): string[] {
  const lines = ['  evidence:'];
  if (evidence.pid !== undefined) lines.push(`    pid: ${evidence.pid}`);
  if (evidence.signal) lines.push(`    signal: ${evidence.signal}`);
  else if (evidence.exitCode !== undefined && evidence.exitCode !== null) lines.push(`    exit code: ${evidence.exitCode}`);
  if (evidence.phase) lines.push(`    phase: ${evidence.phase}`);
  if (evidence.elapsedMs !== undefined) lines.push(`    elapsed: ${evidence.elapsedMs} ms${evidence.timeoutMs ? ` of a ${evidence.timeoutMs} ms timeout` : ''}`);
  if (evidence.tried?.length) lines.push(`    tried: ${evidence.tried.join(', ')}`);
  if (evidence.stdoutNoise) lines.push('    stdout bytes that are not frames:', ...indent(evidence.stdoutNoise, 6));
  if (evidence.exception?.traceback) lines.push('    traceback:', ...indent(evidence.exception.traceback.trimEnd(), 6));
  if (evidence.stacks) lines.push('    stacks:', ...indent(evidence.stacks, 6));
  if (evidence.engineStack) lines.push('    engine stack:', ...indent(evidence.engineStack, 6));
  for (const note of evidence.notes ?? []) lines.push(`    note: ${note}`);
  if (evidence.stderrTail && !evidence.exception?.traceback) {
    const tail = evidence.stderrTail.trimEnd().split('\n').slice(-STDERR_LINES_SHOWN).join('\n');
    if (tail) lines.push(`    stderr (last ${STDERR_LINES_SHOWN} lines of ${evidence.stderrBytes ?? '?'} bytes):`, ...indent(tail, 6));
  }
  return lines.length > 1 ? lines : [];
}

export function renderFailureLine(failure: Failure, cwd: string | undefined): string {
  const where = failure.location ? ` (${renderLocation(failure.location, cwd)})` : '';
  const tried = failure.evidence.tried?.length ? `\n  tried: ${failure.evidence.tried.join(', ')}` : '';
  const notes = (failure.evidence.notes ?? []).map((note) => `\n  note: ${note}`).join('');
  const stack = failure.evidence.engineStack ? `\n${indent(failure.evidence.engineStack, 2).join('\n')}` : '';
  return `modelops-debugger: ${failure.message}${where}${tried}${notes}${stack}\n`;
}

export function renderReplay(report: ReplayReport): string {
  const lines = [report.same ? `✔ ${report.message}` : `✘ ${report.message}`];
  for (const d of report.differences) {
    lines.push(`  ${d.request} ${d.path}:`, `    recorded: ${JSON.stringify(d.recorded)}`, `    replayed: ${JSON.stringify(d.replayed)}`);
  }
  return `${lines.join('\n')}\n`;
}

function indent(text: string, spaces: number): string[] {
  return text.split('\n').map((line) => `${' '.repeat(spaces)}${line}`);
}
