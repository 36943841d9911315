/**
 * Failures and warnings on the source lines that caused them. One entry per line and
 * message, however many replicates hit it; a bundle's entries are cleared when it runs again.
 */
import * as vscode from 'vscode';
import type { FailureKind, SourceLocation } from '../engine/failure';
import { isInside } from '../engine/diagnose/pythonTrace';
import { Coalesced } from './util/coalesce';

interface Entry {
  location: SourceLocation;
  kind: FailureKind;
  message: string;
  severity: vscode.DiagnosticSeverity;
  count: number;
  /** The bundle's frames that led here (the first occurrence's). */
  callers: SourceLocation[];
}

export class FailureDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection('modelops');
  private readonly entries = new Map<string, Entry>();
  private readonly publishing = new Coalesced(() => this.publish());

  /** A new run of this bundle: what it reported before no longer stands. */
  clearBundle(bundleDir: string): void {
    for (const [key, entry] of this.entries) if (isInside(entry.location.file, bundleDir)) this.entries.delete(key);
    this.publishing.cancel(); // nothing older may be published after this
    this.publish();
  }

  add(location: SourceLocation, kind: FailureKind, message: string, severity = vscode.DiagnosticSeverity.Error, callers: SourceLocation[] = []): void {
    const key = `${location.file}:${location.line}:${kind}:${message}`;
    const entry = this.entries.get(key);
    if (entry) entry.count++;
    else this.entries.set(key, { location, kind, message, severity, count: 1, callers });
    this.publishing.schedule();
  }

  /** Shows what was added since the last publication now (a job has ended). */
  flush(): void {
    this.publishing.flush();
  }

  get(uri: vscode.Uri): readonly vscode.Diagnostic[] {
    return this.collection.get(uri) ?? [];
  }

  private publish(): void {
    const byFile = new Map<string, vscode.Diagnostic[]>();
    for (const entry of this.entries.values()) {
      const line = Math.max(0, entry.location.line - 1);
      const times = entry.count > 1 ? ` (${entry.count} times)` : '';
      const diagnostic = new vscode.Diagnostic(new vscode.Range(line, 0, line, Number.MAX_SAFE_INTEGER), `${entry.message}${times}`, entry.severity);
      diagnostic.source = 'ModelOps';
      diagnostic.code = entry.kind;
      if (entry.callers.length) {
        diagnostic.relatedInformation = entry.callers.map(
          (caller) => new vscode.DiagnosticRelatedInformation(new vscode.Location(vscode.Uri.file(caller.file), new vscode.Position(Math.max(0, caller.line - 1), 0)), `called from ${caller.function ?? 'here'}()`),
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
