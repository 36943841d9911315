/**
 * Handshake and replay reports as text: what `modelops-debugger handshake` prints and what the
 * editor's "Handshake Bundle…" / "Replay Handshake…" show, from one place.
 */
import { renderEvidence, renderLocation } from '../diagnose/evidenceText';
import type { HandshakeReport } from './handshake';
import type { ReplayReport } from './replay';

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
    for (const phase of report.phases)
      lines.push(`    ${phase.name.padEnd(width)}  ${phase.ms.toFixed(1).padStart(8)} ms`);
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
    lines.push(
      `ℹ stdout during a call (production redirects it to stderr too)${harmless.location ? ` at ${renderLocation(harmless.location, cwd)}` : ''}: ${JSON.stringify(harmless.text)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The verdict in one line, as a notification says it: the kind first when it failed. */
export function handshakeVerdict(report: HandshakeReport): string {
  return report.ok ? report.message : `${report.kind}: ${report.message}`;
}

export function renderReplay(report: ReplayReport): string {
  const lines = [report.same ? `✔ ${report.message}` : `✘ ${report.message}`];
  for (const d of report.differences) {
    lines.push(
      `  ${d.request} ${d.path}:`,
      `    recorded: ${JSON.stringify(d.recorded)}`,
      `    replayed: ${JSON.stringify(d.replayed)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
