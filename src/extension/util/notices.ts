/**
 * The extension's notifications, each with the buttons that act on what it says. The latest
 * are kept (text, buttons, and what each button does) so tests and the log can read what the
 * user was told without a screen.
 */
import * as vscode from 'vscode';

export type NoticeSeverity = 'info' | 'warning' | 'error';

export interface Notice {
  severity: NoticeSeverity;
  text: string;
  /** The buttons, in order. */
  actions: string[];
  /** Does what pressing that button does (what the notification runs when it is pressed). */
  choose(action: string): Promise<void>;
}

const KEPT = 50;

export class Notices {
  readonly recent: Notice[] = [];

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** Not awaited by callers: a command returns at once, the notification stays until answered. */
  show(severity: NoticeSeverity, text: string, actions: Record<string, () => unknown> = {}): Notice {
    const notice: Notice = {
      severity,
      text,
      actions: Object.keys(actions),
      choose: async (action) => {
        await actions[action]?.();
      },
    };
    this.recent.push(notice);
    if (this.recent.length > KEPT) this.recent.shift();
    const shown =
      severity === 'error'
        ? vscode.window.showErrorMessage
        : severity === 'warning'
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    shown(text, ...notice.actions)
      .then((choice) => (choice ? notice.choose(choice) : undefined))
      .then(undefined, (error: unknown) =>
        this.log.error(`"${text}": ${error instanceof Error ? error.message : String(error)}`),
      );
    return notice;
  }
}

/** Opens a file at a 1-based line (a failure's location). */
export async function openAt(location: { file: string; line: number }): Promise<void> {
  const line = Math.max(0, location.line - 1);
  await vscode.window.showTextDocument(vscode.Uri.file(location.file), {
    selection: new vscode.Range(line, 0, line, 0),
    preview: false,
  });
}
