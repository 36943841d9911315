/**
 * The Cluster view's actions, with consent (issue 16): "Handshake on Worker", "Remove Venv on
 * Worker", "Clear Stale Lock" and "Remove Orphan Fresh Venvs", each on one worker through its
 * scheduler only (engine/cluster/actions.ts and workerHandshake.ts: the worker checks and does,
 * and refuses where the facts are). Each one here is refused in an untrusted workspace, never
 * runs beside another action on the same worker, asks in a modal naming the worker and the path,
 * logs what it did or why not to the "ModelOps Cluster" channel, says the outcome in a
 * notification, and inspects the cluster again so that the view shows the disk as it is now.
 * From a row of the view it acts on that row; from the palette it asks which row.
 */
import * as vscode from 'vscode';
import * as os from 'node:os';
import * as path from 'node:path';
import { RUN_DEFAULTS } from '../../engine/backends/contract';
import { clearLock, removeOrphans, removeVenv, type ActionBase } from '../../engine/cluster/actions';
import {
  handshakeOnWorker,
  workerHandshakeHeading,
  type WorkerHandshakeResult,
} from '../../engine/cluster/workerHandshake';
import { isFailure } from '../../engine/failure';
import { renderHandshake } from '../../engine/handshake/describe';
import { renderTranscript } from '../../engine/handshake/transcriptText';
import type { FailureDiagnostics } from '../diagnostics';
import { saveTranscript, sayHandshake } from '../handshake/handshakeCommands';
import { seconds } from '../settings';
import { showText } from '../util/commands';
import type { Notices } from '../util/notices';
import type { ClusterSession } from './clusterSession';
import type { ClusterNode, ClusterTreeProvider, LockItem, VenvItem, VenvsGroupItem, WorkerItem } from './clusterTree';

export const REMOVE = 'Remove';
export const FORCE = 'Remove Anyway (force)';
export const START = 'Start Runner';
export const SAVE_TRANSCRIPT = 'Save Transcript';
/** What is kept of the channel's text for `text` (the tests'). */
const KEPT_CHARS = 256 * 1024;

/** The confirmation, as shown: a modal warning with these buttons (and Cancel). */
export interface ConsentPrompt {
  message: string;
  detail: string;
  choices: string[];
}

/** What tests may pass after the row instead of answering the prompts (people always get them). */
export interface ClusterActionAnswers {
  /** The button pressed on the confirmation; undefined: cancelled. */
  confirm(prompt: ConsentPrompt): string | undefined;
  /** From the palette: the row picked among those offered. */
  pick?(rows: ClusterNode[]): ClusterNode | undefined;
}

/** done / refused: the worker's answer; the others: nothing was asked of it. */
export type ActionStatus = 'done' | 'refused' | 'failed' | 'cancelled' | 'untrusted' | 'busy';

export interface ClusterActionRun<R extends ActionBase = ActionBase> {
  status: ActionStatus;
  /** What was logged and notified. */
  message: string;
  prompt?: ConsentPrompt;
  result?: R;
}

/** The "ModelOps Cluster" output channel: a line per action (what was done where, or why not). */
export class ClusterActionLog implements vscode.Disposable {
  private readonly channel = vscode.window.createOutputChannel('ModelOps Cluster');
  private kept = '';

  /** `[time] STATUS action · worker W (host H) · path · message` */
  line(status: ActionStatus, action: string, worker: string, host: string | null, where: string, message: string) {
    const at = new Date().toISOString();
    this.append(
      `[${at}] ${status.toUpperCase()} ${action} · worker ${worker} (host ${host ?? '?'}) · ${where} · ${message}\n`,
    );
  }

  append(text: string): void {
    this.channel.append(text);
    this.kept = (this.kept + text).slice(-KEPT_CHARS);
  }

  show(): void {
    this.channel.show(true);
  }

  /** What the channel was given (its last 256 KiB). */
  get text(): string {
    return this.kept;
  }

  dispose(): void {
    this.channel.dispose();
  }
}

/** One action, planned on a row: what the prompt says, and what each button does. */
interface Plan<R extends ActionBase> {
  /** For the log: `handshake`, `rm-venv`, `clear-lock`, `rm-orphans`. */
  action: string;
  title: string;
  worker: string;
  /** What it acts on (the prompt and the log name it). */
  where: string;
  prompt: ConsentPrompt;
  run(choice: string): Promise<R>;
  /** Says the outcome itself (the handshake's report); else a notification of the message. */
  say?(result: R): void;
}

export function registerClusterActions(
  session: ClusterSession,
  tree: ClusterTreeProvider,
  actionLog: ClusterActionLog,
  diagnostics: FailureDiagnostics,
  notices: Notices,
): vscode.Disposable[] {
  /** Workers with an action in flight: a second one on the same worker is refused, not queued. */
  const inFlight = new Set<string>();
  const showLog = { 'Show Log': () => actionLog.show() };

  async function perform<R extends ActionBase>(
    plan: Plan<R>,
    answers: ClusterActionAnswers | undefined,
  ): Promise<ClusterActionRun<R>> {
    const { worker, where, action } = plan;
    const refuse = (status: ActionStatus, message: string): ClusterActionRun<R> => {
      actionLog.line(status, action, worker, null, where, message);
      if (status !== 'cancelled') notices.show('error', `ModelOps: ${message}`, showLog);
      return { status, message, prompt: plan.prompt };
    };
    // The extension declares `untrustedWorkspaces.supported: false`, so VS Code does not even
    // activate it in Restricted Mode; this stays as the actions' own guard should that become "limited".
    if (!vscode.workspace.isTrusted)
      return refuse('untrusted', `${plan.title} on ${worker}: not done: this workspace is not trusted.`);
    if (inFlight.has(worker))
      return refuse('busy', `${plan.title} on ${worker}: not done: another cluster action on this worker is running.`);
    inFlight.add(worker);
    try {
      const { prompt } = plan;
      const choice = answers
        ? answers.confirm(prompt)
        : await vscode.window.showWarningMessage(
            prompt.message,
            { modal: true, detail: prompt.detail },
            ...prompt.choices,
          );
      if (!choice || !prompt.choices.includes(choice))
        return refuse('cancelled', `${plan.title} on ${worker}: not done (cancelled at the confirmation).`);
      let result: R;
      try {
        result = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: `ModelOps: ${plan.title} on ${worker}…` },
          () => plan.run(choice),
        );
      } catch (error) {
        if (!isFailure(error)) throw error; // a bug of ours: VS Code says it, with its stack
        return refuse('failed', `${plan.title} on ${worker} failed: ${error.kind}: ${error.message}`);
      }
      actionLog.line(result.outcome, action, worker, result.host, where, result.message);
      if (plan.say && result.outcome === 'done') plan.say(result);
      else if (result.outcome === 'refused') notices.show('warning', `ModelOps: ${result.message}`, showLog);
      else notices.show('info', `ModelOps: ${result.message}`);
      // what the worker's disk is now (a refusal too: it said something the inspection did not know)
      await session.reinspect();
      return { status: result.outcome, message: result.message, prompt, result };
    } finally {
      inFlight.delete(worker);
    }
  }

  const handshakePlan = (item: VenvItem): Plan<WorkerHandshakeResult> => {
    const { worker, venv } = item;
    return {
      action: 'handshake',
      title: 'Handshake on Worker',
      worker,
      where: venv.path,
      prompt: {
        message: `Start a runner on worker ${worker} with venv ${venv.path}?`,
        detail:
          `With bundle ${venv.bundle} from the worker's bundles cache and production's argv ` +
          "(--bundle-path --venv-path --bundle-digest); modelops-debugger's runner is sent there for it, " +
          'and stopped once the handshake is over.',
        choices: [START],
      },
      run: () =>
        handshakeOnWorker({
          ...session.actionTarget(worker, venv.dir),
          venv: venv.path,
          bundle: venv.bundle ?? undefined,
          handshakeTimeoutMs: seconds('handshakeTimeoutSeconds', RUN_DEFAULTS.handshakeTimeoutMs),
        }),
      say: (shake) => {
        const shown = `${workerHandshakeHeading(shake)}${renderHandshake(shake.report!, undefined)}`;
        const transcript = shake.transcript;
        // the report is what was asked for: its channel comes forward (the editor keeps focus)
        actionLog.show();
        sayHandshake(shake.report!, shown, {
          bundleDir: shake.bundle,
          log: { appendLine: (text) => actionLog.append(`${text}\n`) },
          diagnostics,
          notices,
          more: transcript
            ? {
                'Show Transcript': () =>
                  showText(
                    `${workerHandshakeHeading(shake)}\n${renderTranscript(transcript)}`,
                    `handshake on ${worker} ${path.basename(shake.venv)}.transcript`,
                  ),
                [SAVE_TRANSCRIPT]: () => {
                  // where a local handshake's goes: the workspace's results folder (without one, the
                  // home folder's: the bundle's folder is the worker's)
                  const name = `${worker}-${path.basename(shake.venv)}`.replace(/[^\w.-]+/g, '-');
                  const file = saveTranscript(os.homedir(), name, transcript);
                  actionLog.append(`transcript of the handshake on ${worker} saved to ${file}\n`);
                  notices.show(
                    'info',
                    `ModelOps: transcript of the handshake on ${worker} saved to ${file} ` +
                      '("Replay Handshake…" replays it against a copy of the bundle here).',
                    { Open: () => vscode.window.showTextDocument(vscode.Uri.file(file)) },
                  );
                },
              }
            : {},
        });
      },
    };
  };

  const removeVenvPlan = (item: VenvItem) => {
    const { worker, venv } = item;
    const inUse = venv.runners.length > 0;
    return {
      action: 'rm-venv',
      title: 'Remove Venv',
      worker,
      where: venv.path,
      prompt: {
        message: `Remove venv ${venv.path} on worker ${worker}?`,
        detail: inUse
          ? `Runner process ${venv.runners.join(', ')} uses it (at the last inspection): the worker refuses to ` +
            `remove it while a runner does; "${FORCE}" pulls it from under them.`
          : 'Its {key}.lock goes with it if nobody holds it. The worker refuses if a runner process uses it by then.',
        choices: inUse ? [REMOVE, FORCE] : [REMOVE],
      },
      run: (choice: string) => removeVenv(session.actionTarget(worker, venv.dir), venv.path, choice === FORCE),
    };
  };

  const clearLockPlan = (item: LockItem) => {
    const worker = workerOf(item);
    const lock = item.lock.path;
    return {
      action: 'clear-lock',
      title: 'Clear Stale Lock',
      worker,
      where: lock,
      prompt: {
        message: `Clear lock ${lock} on worker ${worker}?`,
        detail:
          'Only if its holder is dead: the worker tries the lock (flock, released at once) and checks the pid ' +
          'it records, and refuses if anyone holds it.',
        choices: [REMOVE],
      },
      run: () => clearLock(session.actionTarget(worker, path.dirname(lock)), lock),
    };
  };

  const removeOrphansPlan = (item: WorkerItem | VenvsGroupItem) => {
    const worker = item.kind === 'worker' ? item.worker : item.parent.worker;
    const dir = item.kind === 'venvs' ? item.dir.path : undefined;
    const orphans = worker.judged!.venvs.filter(
      (v) => (dir === undefined || v.dir === dir) && v.problems.some((p) => p.kind === 'orphan-fresh-venv'),
    );
    const where =
      dir ??
      (worker
        .facts!.venvs_dirs.filter((d) => d.exists)
        .map((d) => d.path)
        .join(', ') ||
        'its venvs directories');
    return {
      action: 'rm-orphans',
      title: 'Remove Orphan Fresh Venvs',
      worker: worker.address,
      where,
      prompt: {
        message: `Remove the orphan fresh venvs in ${where} on worker ${worker.address}?`,
        detail:
          `At the last inspection: ${orphans.map((v) => v.path).join(', ') || 'none'}. ` +
          'The worker looks again and removes each fresh (-{uuid8}) venv no runner process uses at that moment.',
        choices: [REMOVE],
      },
      run: () => removeOrphans(session.actionTarget(worker.address, dir)),
    };
  };

  const command = <T extends ClusterNode, R extends ActionBase>(
    id: string,
    title: string,
    fits: (node: ClusterNode) => node is T,
    plan: (item: T) => Plan<R>,
  ) =>
    vscode.commands.registerCommand(id, async (given?: unknown, second?: unknown) => {
      const answers = [given, second].find(isAnswers);
      const item = isNode(given) && fits(given) ? given : await pickRow(tree, fits, title, answers);
      return item && perform(plan(item), answers);
    });

  return [
    command(
      'modelopsDebugger.handshakeOnWorker',
      'Handshake on Worker',
      fitsToken<VenvItem>('venv', 'handshake'),
      handshakePlan,
    ),
    command(
      'modelopsDebugger.removeWorkerVenv',
      'Remove Venv on Worker',
      fitsToken<VenvItem>('venv', 'venv'),
      removeVenvPlan,
    ),
    command(
      'modelopsDebugger.clearWorkerLock',
      'Clear Stale Lock',
      fitsToken<LockItem>('lock', 'stale'),
      clearLockPlan,
    ),
    command(
      'modelopsDebugger.removeWorkerOrphans',
      'Remove Orphan Fresh Venvs',
      (node): node is WorkerItem | VenvsGroupItem =>
        (node.kind === 'worker' || node.kind === 'venvs') && hasToken(node, 'orphans'),
      removeOrphansPlan,
    ),
  ];
}

function workerOf(item: LockItem): string {
  return item.parent.kind === 'venv' ? item.parent.worker : item.parent.parent.worker.address;
}

function hasToken(node: ClusterNode, token: string): boolean {
  return (node.contextValue ?? '').split(';').includes(token);
}

function fitsToken<T extends ClusterNode>(kind: T['kind'], token: string) {
  return (node: ClusterNode): node is T => node.kind === kind && hasToken(node, token);
}

function isNode(value: unknown): value is ClusterNode {
  return value instanceof vscode.TreeItem && 'kind' in value;
}

function isAnswers(value: unknown): value is ClusterActionAnswers {
  return typeof value === 'object' && value !== null && typeof (value as ClusterActionAnswers).confirm === 'function';
}

/** From the palette: the rows of the view the command fits, in a quick pick (or the test's `pick`). */
async function pickRow<T extends ClusterNode>(
  tree: ClusterTreeProvider,
  fits: (node: ClusterNode) => node is T,
  title: string,
  answers: ClusterActionAnswers | undefined,
): Promise<T | undefined> {
  const rows: T[] = [];
  const walk = (nodes: ClusterNode[]) => {
    for (const node of nodes) {
      if (fits(node)) rows.push(node);
      if (node.kind !== 'detail' && node.kind !== 'health' && node.kind !== 'bundles' && node.kind !== 'runners')
        walk(tree.getChildren(node));
    }
  };
  walk(tree.getChildren());
  if (rows.length === 0) {
    void vscode.window.showInformationMessage(
      `ModelOps: no row of the Cluster view fits "${title}" (inspect a cluster first: "Connect/Inspect Cluster…").`,
    );
    return undefined;
  }
  if (answers?.pick) return answers.pick(rows) as T | undefined;
  const picked = await vscode.window.showQuickPick(
    rows.map((row) => ({
      label: String(row.label),
      description: String(row.description ?? ''),
      detail: rowWhere(row),
      row,
    })),
    { title, placeHolder: 'On which row of the Cluster view?', matchOnDescription: true, matchOnDetail: true },
  );
  return picked?.row;
}

function rowWhere(row: ClusterNode): string {
  switch (row.kind) {
    case 'venv':
      return `${row.venv.path} on ${row.worker}`;
    case 'lock':
      return `${row.lock.path} on ${workerOf(row)}`;
    case 'venvs':
      return `${row.dir.path} on ${row.parent.worker.address}`;
    case 'worker':
      return row.worker.address;
    default:
      return '';
  }
}
