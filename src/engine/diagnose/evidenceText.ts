/**
 * Failures as text: a source location and the evidence, as the command line prints them and
 * the editor shows them in its reports. Shared, so the two never word the same failure apart.
 */
import * as path from 'node:path';
import type { Evidence, SourceLocation } from '../failure';
import { oomCause } from './oom';

const STDERR_LINES_SHOWN = 12;

/** Relative to `cwd` when the file is inside it (shorter, and clickable in a terminal or an editor). */
export function displayPath(file: string, cwd: string | undefined): string {
  if (cwd === undefined) return file;
  const relative = path.relative(cwd, file);
  return relative && !relative.startsWith('..') ? relative : file;
}

export function renderLocation(location: SourceLocation | undefined, cwd: string | undefined): string {
  if (!location) return '';
  return `${displayPath(location.file, cwd)}:${location.line}${location.function ? ` in ${location.function}()` : ''}`;
}

export function renderEvidence(evidence: Evidence): string[] {
  const lines = ['  evidence:'];
  if (evidence.pid !== undefined) lines.push(`    pid: ${evidence.pid}`);
  if (evidence.signal) lines.push(`    signal: ${evidence.signal}`);
  else if (evidence.exitCode !== undefined && evidence.exitCode !== null)
    lines.push(`    exit code: ${evidence.exitCode}`);
  if (evidence.phase) lines.push(`    phase: ${evidence.phase}`);
  if (evidence.oom) lines.push(`    out of memory: ${oomCause(evidence.oom)}`);
  if (evidence.elapsedMs !== undefined)
    lines.push(
      `    elapsed: ${evidence.elapsedMs} ms${evidence.timeoutMs ? ` of a ${evidence.timeoutMs} ms timeout` : ''}`,
    );
  if (evidence.tried?.length) lines.push(`    tried: ${evidence.tried.join(', ')}`);
  if (evidence.stdoutNoise) lines.push('    stdout bytes that are not frames:', ...indent(evidence.stdoutNoise, 6));
  if (evidence.exception?.traceback) lines.push('    traceback:', ...indent(evidence.exception.traceback.trimEnd(), 6));
  if (evidence.stacks) lines.push('    stacks:', ...indent(evidence.stacks, 6));
  if (evidence.engineStack) lines.push('    engine stack:', ...indent(evidence.engineStack, 6));
  for (const note of evidence.notes ?? []) lines.push(`    note: ${note}`);
  if (evidence.stderrTail && !evidence.exception?.traceback) {
    const tail = evidence.stderrTail.trimEnd().split('\n').slice(-STDERR_LINES_SHOWN).join('\n');
    if (tail)
      lines.push(
        `    stderr (last ${STDERR_LINES_SHOWN} lines of ${evidence.stderrBytes ?? '?'} bytes):`,
        ...indent(tail, 6),
      );
  }
  return lines.length > 1 ? lines : [];
}

export function indent(text: string, spaces: number): string[] {
  return text.split('\n').map((line) => `${' '.repeat(spaces)}${line}`);
}
