/**
 * The `modelops-replicate` debug type: one replicate under debugpy, without the Python
 * extension. A launch configuration names a replicate (`job`, `param`, `replicate`, or `bundle`,
 * `entrypoint`, `params`, `seed`); resolving it prepares the job's venv and finds debugpy
 * (engine/replicate/debug.ts), and the adapter is debugpy's own, started from that venv's
 * interpreter. "Debug Replicate" on a replicate of the Jobs view starts such a session, and so
 * does "Debug this replicate (seed N)", a quick fix on a failed replicate's diagnostic.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Failure, type SourceLocation, unexpectedFailure } from '../../engine/failure';
import { parseSimKey } from '../../engine/job/taskKeys';
import { paramsFromText } from '../../engine/job/spec';
import {
  harnessResult,
  prepareDebug,
  pythonPath,
  readHarnessOutcome,
  replicateLaunchConfig,
  type DebugTarget,
  type HarnessOutcome,
} from '../../engine/replicate/debug';
import { compareWithRecord, type Verdict } from '../../engine/replicate/replicate';
import type { FailedReplicate, FailureDiagnostics } from '../diagnostics';
import type { JobModel } from '../jobs/jobModel';
import { isNode, type TaskItem } from '../jobs/jobsTree';
import { readyTimeoutMs, runtimeSettings } from '../settings';

export const DEBUG_TYPE = 'modelops-replicate';
/** The key under which a resolved configuration carries its session's id. */
const SESSION_KEY = '__modelopsReplicate';
/** The key under which a configuration started here carries who waits for its end. */
const WAITER_KEY = '__modelopsWaiter';

/** How a session of one replicate ended: what it gave, compared with the record when it is a job's. */
export interface SessionEnd {
  /** Outputs or the exception, as the harness wrote them; undefined when it never got there. */
  outcome?: HarnessOutcome;
  /** As `replicate` says it (same, different, failed-like-before…), for a replicate of a results folder. */
  verdict?: Verdict;
  /** One sentence: what it gave, and how that compares with the record. */
  message: string;
  /** Where it raised, when it did. */
  location?: SourceLocation;
}

/** Starts "Debug Replicate" on a replicate: whether the session started, and its end. */
export type DebugReplicate = (
  replicate: FailedReplicate,
  options?: { testRun?: vscode.TestRun },
) => Promise<{ started: boolean; ended: Promise<SessionEnd | undefined> }>;

interface Prepared {
  python: string;
  debugpyPath?: string;
  outputsDir: string;
  label: string;
  release: () => Promise<void>;
  /** The replicate of a results folder it is, to compare its outputs with. */
  replicate?: { job: string; param: string; replicate: number };
}

export function registerReplicateDebugging(
  log: vscode.LogOutputChannel,
  storage: vscode.Uri,
  diagnostics: FailureDiagnostics,
  jobs: JobModel,
): { disposables: vscode.Disposable[]; debugReplicate: DebugReplicate } {
  const sessions = new Map<string, Prepared>();
  const waiters = new Map<string, (end: SessionEnd | undefined) => void>();
  let counter = 0;

  const debugReplicate: DebugReplicate = async (replicate, options = {}) => {
    const waiter = `${process.pid}-w${++counter}`;
    const ended = new Promise<SessionEnd | undefined>((resolve) => waiters.set(waiter, resolve));
    const started = await vscode.debug.startDebugging(
      undefined,
      {
        type: DEBUG_TYPE,
        request: 'launch',
        name: `Replicate ${replicate.replicate} of ${path.basename(replicate.job)}`,
        job: replicate.job,
        param: replicate.param,
        replicate: replicate.replicate,
        [WAITER_KEY]: waiter,
      },
      { testRun: options.testRun },
    );
    if (!started) waiters.delete(waiter);
    return { started, ended: started ? ended : Promise.resolve(undefined) };
  };

  const provider: vscode.DebugConfigurationProvider = {
    async resolveDebugConfiguration(_folder, config) {
      if (!config.request) {
        // F5 with no launch.json: there is no replicate to name
        void vscode.window.showInformationMessage(
          'ModelOps: "Debug Replicate" on a replicate in the Jobs view starts a session; a launch configuration names one with "job", "param" and "replicate".',
        );
        return undefined;
      }
      try {
        const target = targetOf(config);
        const settings = vscode.workspace.getConfiguration('modelopsDebugger');
        const prepared = await prepareDebug(target, {
          ...runtimeSettings(),
          readyTimeoutMs: readyTimeoutMs(),
          debugpy: {
            configured: settings.get<string>('debugpyPath') || undefined,
            candidates: pythonDebuggerLibs(),
            cacheDir: storage.fsPath,
          },
        });
        for (const note of prepared.notes) log.info(`debug replicate: ${note}`);
        log.info(
          `debug replicate: ${prepared.label} with ${prepared.python}, debugpy ${prepared.debugpy.version} from ${prepared.debugpy.source}`,
        );
        const id = `${process.pid}-${++counter}`;
        const outputsDir = mkdtempSync(path.join(os.tmpdir(), 'modelops-debug-'));
        sessions.set(id, {
          python: prepared.python,
          debugpyPath: prepared.debugpy.path,
          outputsDir,
          label: prepared.label,
          release: prepared.release,
          replicate: 'job' in target ? target : undefined,
        });
        const launch = replicateLaunchConfig(prepared.spec, {
          python: prepared.python,
          debugpy: prepared.debugpy,
          outputsFile: path.join(outputsDir, 'outputs.json'),
          name: config.name || prepared.label,
        });
        return { ...config, ...launch, type: DEBUG_TYPE, [SESSION_KEY]: id };
      } catch (error) {
        const failure = unexpectedFailure(error, 'preparing to debug a replicate');
        log.error(`debug replicate: ${failure.kind}: ${failure.message}`);
        void vscode.window.showErrorMessage(
          `ModelOps: cannot debug the replicate: ${failure.kind}: ${failure.message}`,
        );
        return undefined; // the session does not start
      }
    },
  };

  const factory: vscode.DebugAdapterDescriptorFactory = {
    createDebugAdapterDescriptor(session) {
      const prepared = sessions.get(session.configuration[SESSION_KEY]);
      if (!prepared) throw new Error(`ModelOps: the session ${session.name} was not prepared by this window`);
      return new vscode.DebugAdapterExecutable(prepared.python, ['-m', 'debugpy.adapter'], {
        env: prepared.debugpyPath ? { PYTHONPATH: pythonPath(prepared.debugpyPath) } : undefined,
      });
    },
  };

  const disposables = [
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, provider),
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, factory),
    vscode.debug.onDidTerminateDebugSession(async (session) => {
      const id = session.configuration[SESSION_KEY];
      const prepared = id && sessions.get(id);
      if (!prepared) return;
      sessions.delete(id);
      await prepared.release();
      const outcome = readHarnessOutcome(path.join(prepared.outputsDir, 'outputs.json'));
      rmSync(prepared.outputsDir, { recursive: true, force: true });
      const end = await sessionEnd(prepared, outcome);
      log.info(`debug replicate: ${prepared.label} ended: ${end.message}`);
      const waiter = session.configuration[WAITER_KEY];
      waiters.get(waiter)?.(end);
      waiters.delete(waiter);
    }),
    vscode.commands.registerCommand('modelopsDebugger.debugReplicate', async (given?: unknown) => {
      // from the palette: one of the replicates that failed, which is what one debugs most
      const replicate = replicateGiven(given) ?? (await pickFailedReplicate(jobs, given as ReplicatePickArgs));
      if (!replicate) return false;
      return (await debugReplicate(replicate)).started;
    }),
    // a failed replicate's diagnostic: "Debug this replicate (seed N)"
    vscode.languages.registerCodeActionsProvider(
      { scheme: 'file' },
      {
        provideCodeActions(_document, _range, context) {
          return context.diagnostics.flatMap((diagnostic) => {
            const replicate = diagnostic.source === 'ModelOps' ? diagnostics.replicateOf(diagnostic) : undefined;
            if (!replicate) return [];
            const action = new vscode.CodeAction(
              `Debug this replicate (seed ${replicate.seed ?? '?'})`,
              vscode.CodeActionKind.QuickFix,
            );
            action.diagnostics = [diagnostic];
            action.command = {
              title: action.title,
              command: 'modelopsDebugger.debugReplicate',
              arguments: [replicate],
            };
            return [action];
          });
        },
      },
      { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] },
    ),
  ];
  return { disposables, debugReplicate };
}

/** What a session gave, said as a reproduction says it: compared with the record for a job's replicate. */
async function sessionEnd(prepared: Prepared, outcome: HarnessOutcome | undefined): Promise<SessionEnd> {
  const result = harnessResult(outcome);
  const location = 'failure' in result ? result.failure.location : undefined;
  if (outcome === undefined)
    return { message: 'it ended before the replicate returned or raised (stopped in the debugger, or crashed)' };
  if (!prepared.replicate) {
    const message =
      'outputs' in result
        ? `ok: outputs ${Object.keys(result.outputs).join(', ') || 'none'}`
        : `failed: ${result.failure.kind}: ${result.failure.message}`;
    return { outcome, message, location };
  }
  try {
    const compared = await compareWithRecord(prepared.replicate.job, prepared.replicate, result);
    return { outcome, verdict: compared.verdict, message: compared.message, location };
  } catch (error) {
    const failure = unexpectedFailure(error, 'comparing the session with the record');
    return { outcome, message: `it could not be compared with the record: ${failure.message}`, location };
  }
}

/** "Debug Replicate" from the palette: tests answer its prompt with `pick` instead of the user. */
export interface ReplicatePickArgs {
  pick(items: readonly ReplicatePickItem[]): ReplicatePickItem | undefined;
}

export interface ReplicatePickItem extends vscode.QuickPickItem {
  replicate: FailedReplicate;
}

/** The failed replicates of the jobs in the view, newest job first; undefined when none, or none picked. */
async function pickFailedReplicate(jobs: JobModel, args?: ReplicatePickArgs): Promise<FailedReplicate | undefined> {
  const items: ReplicatePickItem[] = [];
  for (const job of jobs.latestRuns()) {
    for (const set of job.sets.values()) {
      const params = Object.entries(set.params)
        .map(([key, value]) => `${key}=${value}`)
        .join(', ');
      for (const task of set.tasks) {
        if (task.state !== 'failed') continue;
        items.push({
          label: `replicate ${task.replicate} · seed ${task.seed}`,
          description: `${job.jobId} · ${params}`,
          detail: task.kind ? `${task.kind}: ${task.message ?? ''}` : undefined,
          replicate: { job: job.dir, param: set.paramId, replicate: task.replicate, seed: task.seed },
        });
      }
    }
  }
  if (!items.length) {
    void vscode.window.showInformationMessage(
      'ModelOps: no replicate failed in the jobs of the Jobs view; to debug any replicate, right-click it there ("Debug Replicate").',
    );
    return undefined;
  }
  const picked =
    typeof args?.pick === 'function'
      ? args.pick(items)
      : await vscode.window.showQuickPick(items, {
          title: 'Debug Replicate',
          placeHolder: 'Which failed replicate? (any other: right-click it in the Jobs view)',
          matchOnDescription: true,
          matchOnDetail: true,
        });
  return picked?.replicate;
}

/** A replicate of the Jobs view, or one named as a failed replicate's diagnostic names it. */
function replicateGiven(given: unknown): FailedReplicate | undefined {
  if (isNode(given) && given.kind === 'task') {
    const item = given as TaskItem;
    const sim = parseSimKey(item.task.key);
    return sim && { job: item.job.dir, param: sim.paramId, replicate: sim.replicate, seed: item.task.seed };
  }
  const named = given as Partial<FailedReplicate> | undefined;
  if (typeof named?.job === 'string' && typeof named.param === 'string' && Number.isInteger(named.replicate))
    return named as FailedReplicate;
  return undefined;
}

/** The replicate a launch configuration names. */
function targetOf(config: vscode.DebugConfiguration): DebugTarget {
  if (typeof config.job === 'string') {
    if (config.param === undefined || !Number.isInteger(config.replicate))
      throw new Failure(
        'bad-input',
        'A launch configuration with "job" needs "param" (index or param_id prefix) and "replicate" (a number).',
      );
    return { job: config.job, param: String(config.param), replicate: config.replicate };
  }
  if (typeof config.bundle === 'string' && typeof config.entrypoint === 'string' && config.seed !== undefined) {
    const params = paramsFromText(
      '"params"',
      typeof config.params === 'string' ? config.params : JSON.stringify(config.params ?? {}),
    );
    const seed = typeof config.seed === 'string' ? BigInt(config.seed) : config.seed;
    return { bundle: config.bundle, entrypoint: config.entrypoint, params, seed };
  }
  throw new Failure(
    'bad-input',
    'A modelops-replicate launch configuration names a replicate with "job", "param" and "replicate", or with "bundle", "entrypoint", "params" and "seed".',
  );
}

/** The Python Debugger extension's own debugpy, when it is installed. */
function pythonDebuggerLibs(): string[] {
  const extension = vscode.extensions.getExtension('ms-python.debugpy');
  return extension ? [path.join(extension.extensionPath, 'bundled', 'libs')] : [];
}
