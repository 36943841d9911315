/**
 * Failures and warnings on the source lines that caused them. One entry per line and
 * message, however many replicates hit it; a bundle's entries are cleared when it runs again.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { FailureKind, SourceLocation } from '../engine/failure';
import { isInside } from '../engine/diagnose/pythonTrace';
import type { LingeringDescendant } from '../engine/process/descendants';
import { Coalesced } from './util/coalesce';

/** A failure as jobs and handshakes report it: a task's, an aggregation's, a job's or a handshake's. */
export interface FailureFinding {
  kind: FailureKind;
  message: string;
  location?: SourceLocation;
  /** The bundle's frames that led there, outermost first. */
  callers?: SourceLocation[];
  /** The replicate that failed so (for a job's failure): what "Debug this replicate" debugs. */
  replicate?: FailedReplicate;
}

/** A replicate of a job's results folder, as the debug type names one. */
export interface FailedReplicate {
  job: string;
  param: string;
  replicate: number;
  seed?: string;
}

/** A warning as jobs and handshakes report it (stdout-pollution, lingering-descendants…). */
export interface WarningFinding {
  kind: FailureKind;
  message: string;
  location?: SourceLocation;
  descendants?: LingeringDescendant[];
}

/** A warning's text at its line: one per line and cause, however many tasks hit it (the count says). */
export function warningText(warning: WarningFinding): string {
  if (warning.kind === 'lingering-descendants') {
    const started = warning.descendants?.find((d) => d.location) ?? warning.descendants?.[0];
    const fate = started?.escaped
      ? 'it escaped its process group (setsid) and was left running'
      : "it was ended with its runner's process group";
    const command = started?.command ?? '?';
    return `lingering-descendants: a process started here (\`${command.length > 80 ? `${command.slice(0, 79)}…` : command}\`) was still running after its task; ${fate}`;
  }
  return warning.message;
}

interface Entry {
  location: SourceLocation;
  kind: FailureKind;
  message: string;
  severity: vscode.DiagnosticSeverity;
  count: number;
  /** The bundle's frames that led here (the first occurrence's). */
  callers: SourceLocation[];
  /** The first replicate that failed here. */
  replicate?: FailedReplicate;
}

export class FailureDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection('modelops');
  private readonly entries = new Map<string, Entry>();
  /** The published diagnostics' entries (for the code actions on them). */
  private published = new WeakMap<vscode.Diagnostic, Entry>();
  private readonly publishing = new Coalesced(() => this.publish());

  /** A new run of this bundle: what it reported before no longer stands. */
  clearBundle(bundleDir: string): void {
    this.clearWhere((file) => isInside(file, bundleDir));
  }

  /** A job file run again (or its bundle's handshake): what was said about that file no longer stands. */
  clearFile(file: string): void {
    this.clearWhere((other) => path.resolve(other) === path.resolve(file));
  }

  private clearWhere(stale: (file: string) => boolean): void {
    for (const [key, entry] of this.entries) if (stale(entry.location.file)) this.entries.delete(key);
    this.publishing.cancel(); // nothing older may be published after this
    this.publish();
  }

  /** At its line, as `<kind>: <message>`; a failure with no line has none (its job row and notification say it). */
  addFailure(failure: FailureFinding): void {
    if (failure.location)
      this.add(
        failure.location,
        failure.kind,
        `${failure.kind}: ${failure.message}`,
        vscode.DiagnosticSeverity.Error,
        failure.callers,
        failure.replicate,
      );
  }

  addWarning(warning: WarningFinding): void {
    if (warning.location)
      this.add(warning.location, warning.kind, warningText(warning), vscode.DiagnosticSeverity.Warning);
  }

  add(
    location: SourceLocation,
    kind: FailureKind,
    message: string,
    severity = vscode.DiagnosticSeverity.Error,
    callers: SourceLocation[] = [],
    replicate?: FailedReplicate,
  ): void {
    const key = `${location.file}:${location.line}:${kind}:${message}`;
    const entry = this.entries.get(key);
    if (entry) entry.count++;
    else this.entries.set(key, { location, kind, message, severity, count: 1, callers, replicate });
    this.publishing.schedule();
  }

  /** Shows what was added since the last publication now (a job has ended). */
  flush(): void {
    this.publishing.flush();
  }

  get(uri: vscode.Uri): readonly vscode.Diagnostic[] {
    return this.collection.get(uri) ?? [];
  }

  /** The replicate that failed where this diagnostic (one of ours) says. */
  replicateOf(diagnostic: vscode.Diagnostic): FailedReplicate | undefined {
    return this.published.get(diagnostic)?.replicate;
  }

  private publish(): void {
    const byFile = new Map<string, vscode.Diagnostic[]>();
    for (const entry of this.entries.values()) {
      const line = Math.max(0, entry.location.line - 1);
      const times = entry.count > 1 ? ` (${entry.count} times)` : '';
      const diagnostic = new vscode.Diagnostic(
        new vscode.Range(line, 0, line, Number.MAX_SAFE_INTEGER),
        `${entry.message}${times}`,
        entry.severity,
      );
      diagnostic.source = 'ModelOps';
      diagnostic.code = entry.kind;
      this.published.set(diagnostic, entry);
      if (entry.callers.length) {
        diagnostic.relatedInformation = entry.callers.map(
          (caller) =>
            new vscode.DiagnosticRelatedInformation(
              new vscode.Location(vscode.Uri.file(caller.file), new vscode.Position(Math.max(0, caller.line - 1), 0)),
              `called from ${caller.function ?? 'here'}()`,
            ),
        );
      }
      const list = byFile.get(entry.location.file) ?? [];
      list.push(diagnostic);
      byFile.set(entry.location.file, list);
    }
    this.collection.clear();
    for (const [file, list] of byFile) this.collection.set(vscode.Uri.file(file), list);
  }

  dispose(): void {
    this.publishing.dispose();
    this.collection.dispose();
  }
}
