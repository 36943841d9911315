/**
 * A task's tooltip in the Jobs view: its failure, and for a runner that died under it, how it
 * ended, where it was, its stack and its last stderr lines, all from the engine's crash facts
 * (the same ones the CLI and events.jsonl carry).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { oomCause } from '../../engine/diagnose/oom';
import type { SourceLocation } from '../../engine/failure';
import type { TaskInfo } from './jobModel';

export function taskTooltip(task: TaskInfo): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${task.key}**`);
  if (task.message) {
    md.appendMarkdown(`\n\n${task.kind}: ${task.message}`);
  }
  const { crash } = task;
  if (crash) {
    const how = crash.signal ? `killed by ${crash.signal}` : `exit code ${crash.exit_code}`;
    md.appendMarkdown(`\n\n**${how}** · ${crash.phase ?? 'phase unknown'}`);
    if (crash.oom) md.appendMarkdown(`\n\n**out of memory**: ${oomCause(crash.oom)}`);
  }
  if (task.location) md.appendMarkdown(`\n\nat ${link(task.location)}`);
  if (crash?.stack?.length) {
    md.appendMarkdown('\n\nstack (innermost first):\n');
    for (const frame of crash.stack) md.appendMarkdown(`\n- \`${escapeCode(frame.function)}()\` ${link(frame)}`);
  }
  if (crash?.stderr_lines.length) {
    md.appendMarkdown(
      `\n\nlast stderr lines${task.stderr ? ` (of ${task.stderr.end - task.stderr.start} bytes this task wrote)` : ''}:`,
    );
    md.appendCodeblock(crash.stderr_lines.join('\n'), 'text');
  } else if (crash) {
    md.appendMarkdown('\n\nno stderr from this task');
  }
  for (const warning of task.warnings ?? []) {
    md.appendMarkdown(`\n\n⚠ ${warning.kind}: ${warning.message}`);
    if (warning.location) md.appendMarkdown(` (at ${link(warning.location)})`);
  }
  if (task.stderr)
    md.appendMarkdown(
      `\n\nstderr: bytes ${task.stderr.start}–${task.stderr.end} of \`${task.stderr.log}\` (Show Stderr)`,
    );
  return md;
}

/** `file:line`, a link that opens the line. */
function link(location: Pick<SourceLocation, 'file' | 'line'>): string {
  const uri = vscode.Uri.file(location.file).with({ fragment: `L${location.line}` });
  return `[\`${escapeCode(`${path.basename(location.file)}:${location.line}`)}\`](${uri.toString()} "${escapeTitle(location.file)}:${location.line}")`;
}

function escapeCode(text: string): string {
  return text.replace(/`/g, "'");
}

function escapeTitle(text: string): string {
  return text.replace(/"/g, "'");
}
