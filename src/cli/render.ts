/**
 * Human-readable output of the command line. The text it shares with the editor (handshake and
 * replay reports, evidence, locations) is the engine's: handshake/describe.ts, diagnose/evidenceText.ts.
 */
import type { Failure } from '../engine/failure';
import { indent, renderLocation } from '../engine/diagnose/evidenceText';

/** The current directory, or undefined when it was deleted (process.cwd() then throws). */
export function currentDir(): string | undefined {
  try {
    return process.cwd();
  } catch {
    return undefined;
  }
}

export function renderFailureLine(failure: Failure, cwd: string | undefined): string {
  const where = failure.location ? ` (${renderLocation(failure.location, cwd)})` : '';
  const tried = failure.evidence.tried?.length ? `\n  tried: ${failure.evidence.tried.join(', ')}` : '';
  const notes = (failure.evidence.notes ?? []).map((note) => `\n  note: ${note}`).join('');
  const stack = failure.evidence.engineStack ? `\n${indent(failure.evidence.engineStack, 2).join('\n')}` : '';
  return `modelops-debugger: ${failure.message}${where}${tried}${notes}${stack}\n`;
}
