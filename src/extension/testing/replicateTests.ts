/**
 * Replicates in the Testing view (setting `modelopsDebugger.testing.enabled`, on by default):
 * a test controller that mirrors the Jobs view (testItems.ts) and reports every job run in this
 * editor, and every job opened from disk, as a test run (testResults.ts). Its profiles:
 * - Run: the selected jobs or parameter sets again, as a new run; selected replicates each
 *   reproduced in a fresh runner and compared with their record (as `replicate` does);
 * - Debug: the replicate under debugpy ("Debug Replicate"), its session linked to the test run;
 * - Run Twice and Compare: `check-determinism` on the selected sets, its verdicts as results
 *   and on the sets in the Jobs view.
 * A replicate's failure carries actions: Debug Replicate, Rerun Cold, Show Stderr, Copy
 * Reproduce Command.
 */
import * as vscode from 'vscode';
import { ExitCode, unexpectedFailure } from '../../engine/failure';
import { jobLabel } from '../../engine/job/spec';
import { checkDeterminism, type DeterminismReport } from '../../engine/replicate/determinism';
import { reproduceReplicate } from '../../engine/replicate/replicate';
import { renderDeterminismReport, renderReplicateReport } from '../../engine/replicate/text';
import type { DebugReplicate } from '../debug/replicateDebug';
import type { JobInfo, JobModel } from '../jobs/jobModel';
import type { JobRunner, JobWatch, JobWatcher } from '../jobs/jobRunner';
import { TaskItem, type JobsTreeProvider } from '../jobs/jobsTree';
import { readyTimeoutMs, runtimeSettings } from '../settings';
import { TestItems, type Found } from './testItems';
import { JobTestRun, messageAt, reportJob, Reporter, ReportLog } from './testResults';

const SETTING = 'modelopsDebugger.testing.enabled';
const NOTHING: JobWatch = { event: () => undefined, ended: () => undefined };

/** What the extension's tests reach: the controller, its profiles, and what was reported. */
export interface ReplicateTestsApi {
  controller(): vscode.TestController | undefined;
  profiles(): { run: vscode.TestRunProfile; debug: vscode.TestRunProfile; compare: vscode.TestRunProfile } | undefined;
  items(): TestItems | undefined;
  reported: ReportLog;
}

/** A test run a profile started, handed to the job it runs (JobRunner's `requested`). */
class ProfileRun {
  constructor(
    readonly reporter: Reporter,
    readonly token: vscode.CancellationToken,
  ) {}
}

/** The controller and its profiles, while the setting is on. */
interface Live {
  controller: vscode.TestController;
  items: TestItems;
  run: vscode.TestRunProfile;
  debug: vscode.TestRunProfile;
  compare: vscode.TestRunProfile;
  /** "Rerun Cold" on a replicate's failure: reproduced in a private venv built for it. */
  rerunCold(item: vscode.TestItem): Promise<void>;
}

export function registerReplicateTests(
  runner: JobRunner,
  model: JobModel,
  tree: JobsTreeProvider,
  debugReplicate: DebugReplicate,
  log: vscode.LogOutputChannel,
): { disposables: vscode.Disposable[]; api: ReplicateTestsApi } {
  const reported = new ReportLog();
  let live: Live | undefined;

  const enabled = () => vscode.workspace.getConfiguration().get<boolean>(SETTING, true);

  const start = (): Live => {
    const controller = vscode.tests.createTestController('modelopsDebugger.replicates', 'ModelOps Replicates');
    const items = new TestItems(controller, model);
    const reporter = (request: vscode.TestRunRequest, name: string, persist = true) =>
      new Reporter(controller.createTestRun(request, name, persist), name, reported);

    controller.resolveHandler = async (item) => {
      if (!item) return items.sync();
      items.resolve(item);
      // a set expanded after its job ended: its replicates' states from disk, in a quiet run of their own
      const found = items.find(item);
      if (found?.ref.kind !== 'set' || found.job.status === 'running' || !found.set) return;
      if (!found.set.tasks.some((task) => task.state !== 'queued')) return;
      const quiet = reporter(
        new vscode.TestRunRequest([item], undefined, undefined, false, true),
        `${jobLabel(found.job.jobId)}: replicates of ${item.label}`,
        false,
      );
      for (const task of found.set.tasks) {
        const child = items.replicateItemOf(found.job, found.set.paramId, task.replicate);
        if (child) quiet.task(child, task, { job: found.job, paramId: found.set.paramId });
      }
      quiet.run.end();
    };

    const run = controller.createRunProfile(
      'Run',
      vscode.TestRunProfileKind.Run,
      (request, token) => runAgain(request, token),
      true,
    );
    const debug = controller.createRunProfile(
      'Debug Replicate',
      vscode.TestRunProfileKind.Debug,
      (request, token) => debugSelected(request, token),
      true,
    );
    const compare = controller.createRunProfile(
      'Run Twice and Compare',
      vscode.TestRunProfileKind.Run,
      (request, token) => runTwiceAndCompare(request, token),
      false,
    );
    items.sync();
    return { controller, items, run, debug, compare, rerunCold };

    async function rerunCold(item: vscode.TestItem): Promise<void> {
      const found = items.find(item);
      if (found?.ref.kind !== 'replicate') return;
      const request = new vscode.TestRunRequest([item], undefined, undefined, false, true);
      const cold = reporter(request, 'ModelOps: rerun cold');
      const cancel = new vscode.CancellationTokenSource();
      try {
        await reproduce(cold, found, cancel.token, true);
      } finally {
        cancel.dispose();
        cold.run.end();
      }
    }

    /** Run: jobs and sets as a new run each, replicates each reproduced and compared with their record. */
    async function runAgain(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
      const run = reporter(request, 'ModelOps: run again');
      try {
        const { jobs, replicates } = selection(request);
        for (const [job, sets] of jobs) {
          if (token.isCancellationRequested) break;
          try {
            await runner.runAgain(job.dir, sets && [...sets], new ProfileRun(run, token));
          } catch (error) {
            const failure = unexpectedFailure(error, 'running the job again');
            run.errored(items.jobItem(job), messageAt(`${failure.kind}: ${failure.message}`, failure.location));
          }
        }
        for (const found of replicates) {
          if (token.isCancellationRequested) break;
          await reproduce(run, found, token, false);
        }
      } finally {
        run.run.end();
      }
    }

    /** Debug: each selected replicate (a set's or a job's first failed one, else its first) under debugpy. */
    async function debugSelected(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
      const run = reporter(request, 'ModelOps: debug replicate');
      try {
        for (const found of replicatesToDebug(request)) {
          if (token.isCancellationRequested) break;
          const item = items.replicateItemOf(found.job, found.set!.paramId, found.task!.replicate, true)!;
          run.started(item);
          const session = await debugReplicate(
            {
              job: found.job.dir,
              param: found.set!.paramId,
              replicate: found.task!.replicate,
              seed: found.task!.seed,
            },
            { testRun: run.run },
          );
          const end = await session.ended;
          if (!session.started || !end)
            run.errored(item, new vscode.TestMessage('The debugging session did not start: see the ModelOps log.'));
          else if (end.verdict === 'same' || (end.verdict === undefined && end.outcome && 'outputs' in end.outcome))
            run.passed(item);
          else if (end.outcome === undefined) run.skipped(item, `debugging session: ${end.message}`);
          else run.failed(item, messageAt(`debugging session: ${end.message}`, end.location));
        }
      } finally {
        run.run.end();
      }
    }

    /** Run Twice and Compare: check-determinism on the selected sets of each job. */
    async function runTwiceAndCompare(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
      const run = reporter(request, 'ModelOps: run twice and compare');
      const abort = new AbortController();
      const stop = token.onCancellationRequested(() => abort.abort());
      try {
        const { jobs, replicates } = selection(request);
        // a replicate selected: its set is checked
        for (const found of replicates) {
          const sets = jobs.get(found.job);
          if (sets === undefined && jobs.has(found.job)) continue;
          jobs.set(found.job, new Set([...(sets ?? []), found.set!.paramId]));
        }
        for (const [job, sets] of jobs) {
          if (token.isCancellationRequested) break;
          const jobItem = items.jobItem(job);
          const checked = sets ? [...sets] : [...job.sets.keys()];
          for (const paramId of checked) {
            const item = items.setItemOf(job, paramId);
            if (item) run.started(item);
          }
          try {
            const report = await checkDeterminism(job.dir, {
              ...runtimeSettings(),
              readyTimeoutMs: readyTimeoutMs(),
              params: checked,
              signal: abort.signal,
              onProgress: (text) => run.run.appendOutput(`${text}\r\n`, undefined, jobItem),
            });
            run.run.appendOutput(crlf(renderDeterminismReport(report)), undefined, jobItem);
            showVerdicts(run, job, report);
          } catch (error) {
            const failure = unexpectedFailure(error, 'running the replicates twice');
            for (const paramId of checked) {
              const item = items.setItemOf(job, paramId);
              if (item) run.errored(item, messageAt(`${failure.kind}: ${failure.message}`, failure.location));
            }
          }
        }
      } finally {
        stop.dispose();
        run.run.end();
        tree.scheduleRefresh();
      }
    }

    /** Each checked set's verdict on its item, its sampled replicates' on theirs, and on the Jobs view's set. */
    function showVerdicts(run: Reporter, job: JobInfo, report: DeterminismReport): void {
      for (const checked of report.sets) {
        const set = job.sets.get(checked.param_id);
        const item = items.setItemOf(job, checked.param_id);
        if (!set || !item) continue;
        const worst = checked.replicates.find((replicate) => replicate.verdict === checked.verdict)!;
        set.determinism = { verdict: checked.verdict, message: worst.message };
        for (const replicate of checked.replicates) {
          const child = items.replicateItemOf(job, set.paramId, replicate.replicate, true)!;
          if (replicate.verdict === 'deterministic') run.passed(child);
          else run.failed(child, new vscode.TestMessage(`${replicate.verdict}: ${replicate.message}`));
        }
        if (checked.verdict === 'deterministic') run.passed(item);
        else run.failed(item, new vscode.TestMessage(`${checked.verdict}: ${worst.message}`));
      }
    }

    /** A replicate reproduced in a fresh runner (cold: in a private venv built for it) and compared with its record. */
    async function reproduce(run: Reporter, found: Found, token: vscode.CancellationToken, cold: boolean) {
      const { job, set, task } = found;
      const item = items.replicateItemOf(job, set!.paramId, task!.replicate, true)!;
      run.started(item);
      const abort = new AbortController();
      const stop = token.onCancellationRequested(() => abort.abort());
      try {
        const settings = runtimeSettings();
        const report = await reproduceReplicate(
          job.dir,
          { param: set!.paramId, replicate: task!.replicate },
          {
            ...settings,
            venv: { ...settings.venv, forceFresh: cold || settings.venv?.forceFresh },
            readyTimeoutMs: readyTimeoutMs(),
            signal: abort.signal,
            onStderr: (chunk) => run.run.appendOutput(crlf(chunk.toString()), undefined, item),
          },
        );
        const show = {
          location: (at: { file: string; line: number }) => `${at.file}:${at.line}`,
          path: (p: string) => p,
        };
        run.run.appendOutput(crlf(renderReplicateReport(report, show)), undefined, item);
        if (report.exit_code === ExitCode.ok) run.passed(item, report.ran.ms);
        else {
          const message = messageAt(report.message, report.failure?.location);
          if (report.failure && report.failure.kind !== 'task-exception') run.errored(item, message, report.ran.ms);
          else run.failed(item, message, report.ran.ms);
        }
      } catch (error) {
        const failure = unexpectedFailure(error, 'reproducing the replicate');
        run.errored(item, messageAt(`${failure.kind}: ${failure.message}`, failure.location));
      } finally {
        stop.dispose();
      }
    }

    /** The request's items: whole jobs, some sets of a job, and replicates. */
    function selection(request: vscode.TestRunRequest): {
      jobs: Map<JobInfo, Set<string> | undefined>;
      replicates: Found[];
    } {
      const jobs = new Map<JobInfo, Set<string> | undefined>();
      const replicates: Found[] = [];
      const excluded = new Set(request.exclude ?? []);
      const picked: vscode.TestItem[] = [];
      if (request.include) picked.push(...request.include);
      else controller.items.forEach((item) => void picked.push(item));
      for (const item of picked) {
        if (excluded.has(item)) continue;
        const found = items.find(item);
        if (!found) continue;
        if (found.ref.kind === 'replicate') replicates.push(found);
        else if (found.ref.kind === 'job') {
          const sets: string[] = [];
          item.children.forEach((child) => void (excluded.has(child) || sets.push(child.id)));
          jobs.set(found.job, sets.length === found.job.sets.size ? undefined : new Set(sets));
        } else if (!jobs.has(found.job) || jobs.get(found.job)) {
          jobs.set(found.job, new Set([...(jobs.get(found.job) ?? []), found.set!.paramId]));
        }
      }
      return { jobs, replicates };
    }

    function replicatesToDebug(request: vscode.TestRunRequest): Found[] {
      const picked: vscode.TestItem[] = [...(request.include ?? [])];
      return picked.flatMap((item) => {
        const found = items.find(item);
        if (!found) return [];
        if (found.ref.kind === 'replicate') return [found];
        const sets = found.set ? [found.set] : [...found.job.sets.values()];
        const tasks = sets.flatMap((set) => set.tasks.map((task) => ({ set, task })));
        const first = tasks.find(({ task }) => task.state === 'failed') ?? tasks[0];
        return first ? [{ ref: found.ref, job: found.job, set: first.set, task: first.task }] : [];
      });
    }
  };

  const stop = () => {
    live?.controller.dispose(); // its profiles and items with it
    live = undefined;
  };
  if (enabled()) live = start();

  const watcher: JobWatcher = {
    started(job, requested) {
      if (!live) return NOTHING;
      live.items.sync();
      if (requested instanceof ProfileRun) {
        // the profile's run: it ends it; a cancel there stops the job
        const cancelling = requested.token.onCancellationRequested(() => runner.cancel(job.jobId));
        const watch = new JobTestRun(live.items, requested.reporter, job, false);
        return {
          event: (info, event) => watch.event(info, event),
          ended: (info) => {
            cancelling.dispose();
            watch.ended(info);
          },
        };
      }
      const name = jobLabel(job.jobId);
      const request = new vscode.TestRunRequest([live.items.jobItem(job)], undefined, undefined, false, true);
      const run = new Reporter(live.controller.createTestRun(request, name, true), name, reported);
      return new JobTestRun(live.items, run, job, true);
    },
    opened(job) {
      if (!live) return;
      live.items.sync();
      if (!model.latestRuns().includes(job)) return; // an earlier run: not in the view
      const name = `${jobLabel(job.jobId)} (results on disk)`;
      const request = new vscode.TestRunRequest([live.items.jobItem(job)], undefined, undefined, false, true);
      const run = new Reporter(live.controller.createTestRun(request, name, true), name, reported);
      reportJob(live.items, run, job);
      run.run.end();
    },
  };

  /** A replicate named by a failure message's action ({test, message}). */
  const replicateOf = (given: unknown): TaskItem | undefined => {
    const test = (given as { test?: vscode.TestItem } | undefined)?.test;
    const found = test && live?.items.find(test);
    if (found?.ref.kind !== 'replicate' || !found.task) return undefined;
    return new TaskItem(found.job, found.task, false);
  };

  const disposables: vscode.Disposable[] = [
    runner.watch(watcher),
    vscode.workspace.onDidChangeConfiguration((change) => {
      if (!change.affectsConfiguration(SETTING)) return;
      if (enabled() && !live) live = start();
      else if (!enabled()) stop();
    }),
    { dispose: stop },
    vscode.commands.registerCommand('modelopsDebugger.testing.debugReplicate', (given?: unknown) => {
      const task = replicateOf(given);
      return task && vscode.commands.executeCommand('modelopsDebugger.debugReplicate', task);
    }),
    vscode.commands.registerCommand('modelopsDebugger.testing.showStderr', (given?: unknown) => {
      const task = replicateOf(given);
      return task && vscode.commands.executeCommand('modelopsDebugger.showStderr', task);
    }),
    vscode.commands.registerCommand('modelopsDebugger.testing.copyReproduceCommand', (given?: unknown) => {
      const task = replicateOf(given);
      return task && vscode.commands.executeCommand('modelopsDebugger.copyReproduceCommand', task);
    }),
    vscode.commands.registerCommand('modelopsDebugger.testing.rerunCold', async (given?: unknown) => {
      const test = (given as { test?: vscode.TestItem } | undefined)?.test;
      if (!live || !test) return undefined;
      log.info(`rerun cold: ${test.parent?.parent?.id}/${test.parent?.id}/${test.id}`);
      await live.rerunCold(test);
      return undefined;
    }),
  ];
  return {
    disposables,
    api: {
      controller: () => live?.controller,
      profiles: () => live && { run: live.run, debug: live.debug, compare: live.compare },
      items: () => live?.items,
      reported,
    },
  };
}

function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}
