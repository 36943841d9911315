/**
 * "Handshake Bundle…" and "Replay Handshake…": start a runner on a bundle and say how the
 * handshake went; with a choice of runner (ours, or a production runner script) and the whole
 * JSON-RPC conversation shown and saved, or a saved conversation replayed against the bundle
 * as it is now.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { RUN_DEFAULTS } from '../../engine/backends/contract';
import { Failure, isFailure } from '../../engine/failure';
import { ourRunnerScript } from '../../engine/process/runnerScript';
import { handshake, type HandshakeReport, type TranscriptFile } from '../../engine/handshake/handshake';
import { readTranscript, replay, type ReplayReport } from '../../engine/handshake/replay';
import { renderTranscript } from '../../engine/handshake/transcriptText';
import { stringifyWireJson } from '../../engine/pyjson/pyjson';
import { describeVenvEvent } from '../../engine/venv/describe';
import { handshakeVerdict, renderHandshake, renderReplay } from '../../engine/handshake/describe';
import type { FailureDiagnostics } from '../diagnostics';
import type { ProtocolTrace } from '../output/protocolTrace';
import { runtimeSettings, seconds } from '../settings';
import { pickFile, pickFolder, resultsDir, showText } from '../util/commands';
import { openAt, type Notice, type Notices } from '../util/notices';

/** What tests may pass to "Replay Handshake…" instead of answering its prompt. */
export type ReplayChoice = { runner: 'ours' } | { runner: 'script'; script: string } | { transcript: string };

export interface RecordedHandshake {
  report: HandshakeReport;
  /** Where the conversation was saved (replayable). */
  transcriptFile?: string;
  /** The conversation as shown. */
  text?: string;
}

export function registerHandshakeCommands(
  log: vscode.LogOutputChannel,
  trace: ProtocolTrace,
  diagnostics: FailureDiagnostics,
  notices: Notices,
): vscode.Disposable[] {
  const options = (bundle: vscode.Uri, runnerScript?: string) => ({
    bundleDir: bundle.fsPath,
    ...runtimeSettings((event) => log.info(describeVenvEvent(event))),
    runnerScript,
    timeoutMs: seconds('handshakeTimeoutSeconds', RUN_DEFAULTS.handshakeTimeoutMs),
    onStderr: (chunk: Buffer) => log.append(chunk.toString('utf8')),
    onTrace: trace.listener(),
  });
  const cwd = (bundle: vscode.Uri) => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? bundle.fsPath;

  const say = (report: HandshakeReport, bundle: vscode.Uri, shown = renderHandshake(report, cwd(bundle))) => {
    sayHandshake(report, shown, { bundleDir: bundle.fsPath, log, diagnostics, notices });
    trace.flush();
  };

  return [
    vscode.commands.registerCommand('modelopsDebugger.handshake', async (uri?: vscode.Uri) => {
      const bundle = uri ?? (await pickFolder('Handshake Bundle'));
      if (!bundle) return undefined;
      const { report } = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `ModelOps: handshake ${vscode.workspace.asRelativePath(bundle)}`,
        },
        () => handshake(options(bundle)),
      );
      say(report, bundle);
      return report;
    }),
    vscode.commands.registerCommand(
      'modelopsDebugger.replayHandshake',
      async (uri?: vscode.Uri, given?: ReplayChoice) => {
        const bundle = uri ?? (await pickFolder('Replay Handshake'));
        if (!bundle) return undefined;
        const choice = given ?? (await askForRunner());
        if (!choice) return undefined;
        if ('transcript' in choice) return replayTranscript(bundle, choice.transcript);
        const runnerScript = choice.runner === 'script' ? choice.script : undefined;
        const title = `ModelOps: handshake ${vscode.workspace.asRelativePath(bundle)} with ${runnerScript ? path.basename(runnerScript) : 'our runner'}`;
        const { report, transcript } = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title },
          () => handshake({ ...options(bundle, runnerScript), recordTranscript: true }),
        );
        say(report, bundle);
        if (!transcript) return { report } satisfies RecordedHandshake; // it never got as far as a runner
        const transcriptFile = saveTranscript(bundle.fsPath, path.basename(bundle.fsPath), transcript);
        const verdict = renderHandshake(report, cwd(bundle));
        const text = `${verdict}\nsaved to ${transcriptFile} ("Replay Handshake…" replays it)\n\n${renderTranscript(transcript)}`;
        await showText(text, `handshake ${path.basename(bundle.fsPath)}.log`);
        return { report, transcriptFile, text } satisfies RecordedHandshake;
      },
    ),
  ];

  /** A replay that cannot start (no transcript, a broken bundle) is said as a handshake's failure is: at its line. */
  async function replayTranscript(bundle: vscode.Uri, file: string): Promise<ReplayReport | undefined> {
    let recorded: Awaited<ReturnType<typeof readTranscript>>;
    let report: ReplayReport;
    try {
      recorded = await readTranscript(file);
      report = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ModelOps: replaying ${path.basename(file)}` },
        () => replay(recorded, { ...options(bundle, replayRunner(recorded.runner)), recordTranscript: false }),
      );
    } catch (error) {
      if (!isFailure(error)) throw error; // a bug of ours: VS Code says it, with its stack
      log.error(`replay ${file}: ${error.kind}: ${error.message}`);
      diagnostics.clearBundle(bundle.fsPath);
      diagnostics.addFailure(error);
      diagnostics.flush();
      notices.show(
        'error',
        `ModelOps: ${error.kind}: ${error.message}`,
        error.location ? { Open: () => openAt(error.location!) } : { 'Show Output': () => log.show() },
      );
      return undefined;
    }
    const text = `${renderReplay(report)}\nrecorded: ${file}\n\n${renderTranscript(recorded)}`;
    await showText(text, `replay ${path.basename(file)}.log`);
    if (report.same) notices.show('info', `ModelOps: ${report.message}`);
    else
      notices.show('warning', `ModelOps: ${report.message}`, {
        Show: () => showText(text, `replay ${path.basename(file)}.log`),
      });
    return report;
  }
}

/**
 * A handshake's verdict in the log, in Problems as a job's would be (the failure at its line,
 * each warning at its own; a clean handshake clears what an earlier one of the bundle said), and
 * as a notification (not awaited: the command returns at once) whose "Show" opens the report.
 * The local "Handshake Bundle…" and the Cluster view's "Handshake on Worker" say it alike.
 */
export function sayHandshake(
  report: HandshakeReport,
  shown: string,
  to: {
    bundleDir: string;
    log: { appendLine(text: string): void };
    diagnostics: FailureDiagnostics;
    notices: Notices;
    /** Buttons beside "Show" (and "Open"). */
    more?: Record<string, () => unknown>;
  },
): Notice {
  to.log.appendLine(shown);
  to.diagnostics.clearBundle(to.bundleDir);
  if (!report.ok && report.kind)
    to.diagnostics.addFailure({ kind: report.kind, message: report.message, location: report.location });
  for (const warning of report.warnings) to.diagnostics.addWarning(warning);
  to.diagnostics.flush();
  const show = () => showText(shown, `handshake ${path.basename(to.bundleDir)}.log`);
  const text = `ModelOps: ${handshakeVerdict(report)}`;
  const more = to.more ?? {};
  if (!report.ok)
    return to.notices.show('error', text, {
      ...(report.location ? { Open: () => openAt(report.location!) } : {}),
      Show: show,
      ...more,
    });
  if (report.warnings.length) return to.notices.show('warning', text, { Show: show, ...more });
  return to.notices.show('info', text, more);
}

/** The runner the conversation was recorded with: a production script as it was, ours as installed now. */
function replayRunner(recorded: string): string | undefined {
  if (path.basename(recorded) === path.basename(ourRunnerScript())) return undefined;
  if (!existsSync(recorded))
    throw new Failure(
      'bad-input',
      `The transcript was recorded with ${recorded}, which is gone; record it again with that runner.`,
    );
  return recorded;
}

async function askForRunner(): Promise<ReplayChoice | undefined> {
  const picked = await vscode.window.showQuickPick(
    [
      {
        label: 'Our runner',
        description: 'modelops-debugger: diagnoses what the production runner cannot',
        id: 'ours',
      },
      { label: 'A production runner script…', description: "e.g. modelops' subprocess_runner.py", id: 'script' },
      {
        label: 'Replay a recorded transcript…',
        description: 'the same requests again; differences shown',
        id: 'transcript',
      },
    ],
    { title: 'Replay Handshake', placeHolder: 'Which runner?' },
  );
  if (!picked) return undefined;
  if (picked.id === 'ours') return { runner: 'ours' };
  const file =
    picked.id === 'script'
      ? await pickFile('Use Runner', { 'Python scripts': ['py'] })
      : await pickFile('Replay', { Transcripts: ['json'] });
  if (!file) return undefined;
  return picked.id === 'script' ? { runner: 'script', script: file.fsPath } : { transcript: file.fsPath };
}

/**
 * <results>/handshakes/<name>-<time>.json (the results folder of the workspace, or near `near`),
 * as "Replay Handshake…" reads it. The local handshakes and the workers' are saved so.
 */
export function saveTranscript(near: string, name: string, transcript: TranscriptFile): string {
  const dir = path.join(resultsDir(near), 'handshakes');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${stringifyWireJson(transcript)}\n`);
  return file;
}
