/**
 * Extension-host tests of "Debug Replicate": a real debugpy session (Debian's python3-debugpy,
 * reached from the bundle's venv) started from a replicate of the Jobs view, stopping at a
 * breakpoint set in the bundle.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { lineOf } from '../shared/marks';
import type { ReplicatePickItem } from '../../src/extension/debug/replicateDebug';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobsNode, ParamSetItem, TaskItem } from '../../src/extension/jobs/jobsTree';

const WAIT_MS = 60_000;

export function within<T>(what: string, promise: Thenable<T>, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    Promise.resolve(promise),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A job of a scratch bundle whose wire.py is `wireText`, run from its job file: the results and wire.py. */
export async function runScratchJob(
  tag: string,
  wireText: string,
  job: string,
): Promise<{ result: JobRunResult; wire: string }> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `modelops-vscode-${tag}-`));
  mkdirSync(path.join(scratch, 'bundle'));
  const wire = path.join(scratch, 'bundle', 'wire.py');
  writeFileSync(wire, wireText);
  const jobFile = path.join(scratch, 'job.json');
  writeFileSync(jobFile, job);
  const result = await vscode.commands.executeCommand<JobRunResult>(
    'modelopsDebugger.runJobFile',
    vscode.Uri.file(jobFile),
  );
  return { result, wire };
}

/** The next modelops-replicate session's first stop (as the adapter says it) and its end. */
export function watchNextSession(): {
  stopped: Promise<{ session: vscode.DebugSession; threadId: number; reason: string }>;
  ended: Promise<void>;
} {
  const stopped = new Promise<{ session: vscode.DebugSession; threadId: number; reason: string }>((resolve) => {
    const tracking = vscode.debug.registerDebugAdapterTrackerFactory('modelops-replicate', {
      createDebugAdapterTracker: (session) => ({
        onDidSendMessage: (message) => {
          if (message.type === 'event' && message.event === 'stopped') {
            tracking.dispose();
            resolve({ session, threadId: message.body.threadId, reason: message.body.reason });
          }
        },
      }),
    });
  });
  const ended = new Promise<void>((resolve) => {
    const listening = vscode.debug.onDidTerminateDebugSession((session) => {
      if (session.type !== 'modelops-replicate') return;
      listening.dispose();
      resolve();
    });
  });
  return { stopped, ended };
}

/**
 * The session's first stop is an exception at the line marked `raise` in `wire`; continuing runs
 * it to its end. The session, for what else a test says of it.
 */
export async function expectStopAtRaise(
  watched: ReturnType<typeof watchNextSession>,
  wire: string,
): Promise<vscode.DebugSession> {
  const { session, threadId, reason } = await within('the stop at the exception', watched.stopped);
  assert.equal(reason, 'exception');
  const { stackFrames } = await session.customRequest('stackTrace', { threadId });
  assert.equal(stackFrames[0].line, lineOf(wire, 'raise'));
  await session.customRequest('continue', { threadId });
  await within('the end of the session', watched.ended);
  return session;
}

export function registerDebugTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('debugging one replicate', () => {
    it('debug: "Debug Replicate" on a replicate stops at a breakpoint in the bundle with its seed; the console evaluates params and seed; continue ends the session', async () => {
      const { api } = context();
      const { result, wire } = await runScratchJob(
        'debug',
        'import json\n\n\ndef wire(entrypoint, params, seed):\n    value = params["beta"] * seed  # MARK:break\n    return {"value": json.dumps(value).encode()}\n',
        '{"job_id": "debug-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"beta": 0.5}], "replicates": 3}',
      );
      assert.equal(result.status, 'succeeded');
      const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'debug-job')!;
      const [set] = api.jobsTree.getChildren(job) as ParamSetItem[];
      const replicate = (api.jobsTree.getChildren(set) as TaskItem[]).find((task) => task.task.replicate === 2)!;
      assert.match(replicate.contextValue!, /^task;reproducible;/, 'the menu offers Debug Replicate on it');
      const seed = replicate.task.seed!;

      // what the adapter says, as VS Code's debug view would see it
      const { stopped, ended } = watchNextSession();
      const breakpoint = new vscode.SourceBreakpoint(
        new vscode.Location(vscode.Uri.file(wire), new vscode.Position(lineOf(wire, 'break') - 1, 0)),
      );
      vscode.debug.addBreakpoints([breakpoint]);
      try {
        const started = await vscode.commands.executeCommand<boolean>('modelopsDebugger.debugReplicate', replicate);
        assert.equal(started, true);
        const { session, threadId, reason } = await within('the stop at the breakpoint', stopped);
        assert.equal(reason, 'breakpoint');
        assert.equal(session.name, 'Replicate 2 of debug-job');
        const { stackFrames } = await session.customRequest('stackTrace', { threadId });
        // in a remote window (code-server) VS Code gives the adapter's paths back as vscode-remote URIs
        const file: string = stackFrames[0].source.path;
        assert.equal(file.includes('://') ? vscode.Uri.parse(file).path : file, wire);
        assert.equal(stackFrames[0].line, lineOf(wire, 'break'));
        const evaluated = await session.customRequest('evaluate', {
          expression: 'params["beta"], seed',
          frameId: stackFrames[0].id,
          context: 'repl',
        });
        assert.equal(evaluated.result, `(0.5, ${seed})`);
        await session.customRequest('continue', { threadId });
        await within('the end of the session', ended);
      } finally {
        vscode.debug.removeBreakpoints([breakpoint]);
      }
    });

    it('debug: a failed replicate\'s diagnostic offers "Debug this replicate (seed N)", which stops at the line that raised', async () => {
      const { api } = context();
      const { result, wire } = await runScratchJob(
        'debug-fix',
        'def wire(entrypoint, params, seed):\n    if params["x"] > 1:\n        raise ValueError("x too big")  # MARK:raise\n    return {"value": b"1"}\n',
        '{"job_id": "debug-fix", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 2}], "replicates": 2}',
      );
      assert.equal(result.status, 'failed');
      const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'debug-fix')!;
      const failedSet = (api.jobsTree.getChildren(job) as ParamSetItem[])[1];
      const seeds = (api.jobsTree.getChildren(failedSet) as TaskItem[])
        .filter((task) => task.task.replicate !== undefined)
        .map((task) => task.task.seed);

      const line = lineOf(wire, 'raise') - 1;
      await vscode.window.showTextDocument(vscode.Uri.file(wire)); // code actions are asked of an open document
      const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
        'vscode.executeCodeActionProvider',
        vscode.Uri.file(wire),
        new vscode.Range(line, 0, line, 0),
      );
      const debugIt = actions.find((action) => action.title.startsWith('Debug this replicate'));
      assert.ok(debugIt, actions.map((action) => action.title).join(' | '));
      assert.ok(
        seeds.some((seed) => debugIt.title === `Debug this replicate (seed ${seed})`),
        `${debugIt.title}: the seed of one of ${seeds.join(', ')}`,
      );
      assert.equal(debugIt.command?.command, 'modelopsDebugger.debugReplicate');

      const watched = watchNextSession();
      assert.equal(
        await vscode.commands.executeCommand(debugIt.command!.command, ...(debugIt.command!.arguments ?? [])),
        true,
      );
      await expectStopAtRaise(watched, wire);
    });

    it('debug: "Debug Replicate" from the palette offers the failed replicates of the jobs in the view, and debugs the one picked', async () => {
      const { result, wire } = await runScratchJob(
        'debug-palette',
        'def wire(entrypoint, params, seed):\n    if params["x"] == 3:\n        raise RuntimeError("three")  # MARK:raise\n    return {"value": b"1"}\n',
        '{"job_id": "debug-palette", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 3}, {"x": 4}], "replicates": 2}',
      );
      assert.equal(result.status, 'failed');
      let offered: readonly ReplicatePickItem[] = [];
      const watched = watchNextSession();
      const started = await vscode.commands.executeCommand<boolean>('modelopsDebugger.debugReplicate', {
        pick(items: readonly ReplicatePickItem[]) {
          offered = items;
          return items.find(
            (item) => item.description === 'debug-palette · x=3' && item.label.startsWith('replicate 1 '),
          );
        },
      });
      const ours = offered.filter((item) => item.description?.startsWith('debug-palette'));
      assert.deepEqual(
        ours.map((item) => [item.label.replace(/seed \d+/, 'seed S'), item.detail]),
        [
          ['replicate 0 · seed S', 'task-exception: RuntimeError: three'],
          ['replicate 1 · seed S', 'task-exception: RuntimeError: three'],
        ],
        'the failed replicates only, with their seed and how they failed',
      );
      assert.equal(started, true);
      const session = await expectStopAtRaise(watched, wire);
      assert.equal(session.name, `Replicate 1 of debug-palette`);
    });
  });
}
