/**
 * Extension-host tests of the Testing view: jobs run from the Jobs view as test runs, with
 * replicates made lazily and states that say what the results folder says; the profiles Run,
 * Debug Replicate and Run Twice and Compare; the actions on a replicate's failure.
 */
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { lineOf } from '../shared/marks';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobItem, JobsNode, ParamSetItem } from '../../src/extension/jobs/jobsTree';
import type { Reported } from '../../src/extension/testing/testResults';
import { expectStopAtRaise, runScratchJob, watchNextSession, within } from './debug.suite';

/** A bundle whose sets pass (x=1), raise from a helper (x=2), crash (x=3) or draw unseeded numbers (x=4). */
const WIRE = `import json
import os
import random


def check(x):
    if x == 2:
        raise ValueError("x must not be 2")  # MARK:raise


def wire(entrypoint, params, seed):
    check(params["x"])  # MARK:call
    if params["x"] == 3:
        os._exit(17)
    value = random.random() if params["x"] == 4 else random.Random(seed).random()
    return {"value": json.dumps(value).encode()}
`;

/** What runs named `run` reported since `from`, as `state item` lines (started ones left out). */
function states(api: ModelOpsApi, run: string | RegExp, from = 0): Reported[] {
  return api.testing.reported.entries
    .slice(from)
    .filter(
      (entry) => (typeof run === 'string' ? entry.run === run : run.test(entry.run)) && entry.state !== 'started',
    );
}

function stateOf(entries: Reported[], item: string): Reported | undefined {
  return entries.filter((entry) => entry.item === item).at(-1);
}

export function registerTestingTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('the Testing view', () => {
    it('testing: a job run from the Jobs view is a test run: a raise fails its replicate at the raising line with the bundle frames, a crash is an error, a set fails with its replicates, the aggregation is skipped, healthy sets pass; replicates have items only when they failed or their set is expanded', async () => {
      const { api } = context();
      const from = api.testing.reported.entries.length;
      const { result, wire } = await runScratchJob(
        'testing-map',
        WIRE,
        '{"job_id": "testing-map", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 2}, {"x": 3}], "replicates": 3}',
      );
      assert.equal(result.status, 'failed');
      const controller = api.testing.controller()!;
      const jobItem = controller.items.get('testing-map')!;
      assert.ok(jobItem, 'the job is in the Testing view');
      const sets: vscode.TestItem[] = [];
      jobItem.children.forEach((set) => void sets.push(set));
      sets.sort((a, b) => a.sortText!.localeCompare(b.sortText!));
      assert.deepEqual(
        sets.map((set) => [set.label, set.children.size]),
        [
          ['x=1', 1],
          ['x=2', 4],
          ['x=3', 4],
        ],
        'a passing set has only its aggregation until expanded; a failing one has its failed replicates',
      );
      const [ok, raising, crashing] = sets.map((set) => `testing-map/${set.id}`);
      const reported = states(api, 'testing-map', from);
      const raised = stateOf(reported, `${raising}/r1`)!;
      assert.equal(raised.state, 'failed');
      assert.equal(raised.message, 'task-exception: ValueError: x must not be 2');
      assert.equal(raised.location, `${wire}:${lineOf(wire, 'raise')}`);
      assert.deepEqual(raised.stack, [`${wire}:${lineOf(wire, 'raise')}`, `${wire}:${lineOf(wire, 'call')}`]);
      assert.equal(raised.actions, 'replicate;stderr;');
      const crashed = stateOf(reported, `${crashing}/r0`)!;
      assert.equal(crashed.state, 'errored');
      assert.match(crashed.message!, /^process-crashed: .*\(exit 17\)$/);
      assert.equal(stateOf(reported, `${raising}/aggregation`)?.state, 'skipped');
      assert.equal(stateOf(reported, raising)?.state, 'failed');
      assert.match(
        stateOf(reported, raising)!.message!,
        /^3\/3 replicates failed \(first: replicate 0, task-exception/,
      );
      assert.equal(stateOf(reported, crashing)?.state, 'errored');
      assert.equal(stateOf(reported, `${ok}/aggregation`)?.state, 'passed');
      assert.equal(stateOf(reported, ok)?.state, 'passed');
      assert.equal(stateOf(reported, 'testing-map')?.state, 'failed');
      assert.equal(stateOf(reported, `${ok}/r0`), undefined, 'a passing replicate has no item, so no state, yet');

      // expanding the passing set: its replicates, with their states from disk
      const before = api.testing.reported.entries.length;
      await controller.resolveHandler!(sets[0]);
      assert.equal(sets[0].children.size, 4);
      const expanded = states(api, /^testing-map: replicates of x=1$/, before);
      assert.deepEqual(
        expanded.map((entry) => `${entry.item} ${entry.state}`),
        [`${ok}/r0 passed`, `${ok}/r1 passed`, `${ok}/r2 passed`],
      );
    });

    it('testing: the Run profile reproduces a replicate and compares it with its record (same: passed; a raise again: failed like before), and runs a set again as a new run of that set alone', async () => {
      const { api } = context();
      const { result } = await runScratchJob(
        'testing-run',
        WIRE,
        '{"job_id": "testing-run", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 2}], "replicates": 2}',
      );
      assert.equal(result.status, 'failed');
      const controller = api.testing.controller()!;
      const { run: profile } = api.testing.profiles()!;
      const jobItem = controller.items.get('testing-run')!;
      const [okSet, raisingSet] = sortedChildren(jobItem);
      await controller.resolveHandler!(okSet);
      const from = api.testing.reported.entries.length;
      const token = new vscode.CancellationTokenSource().token;
      await profile.runHandler(
        new vscode.TestRunRequest([okSet.children.get('r1')!, raisingSet.children.get('r0')!], undefined, profile),
        token,
      );
      const reproduced = states(api, 'ModelOps: run again', from);
      assert.deepEqual(
        reproduced.map((entry) => [entry.item.split('/').pop(), entry.state, entry.message?.replace(/ \(.*/, '')]),
        [
          ['r1', 'passed', undefined],
          ['r0', 'failed', 'failed like before: task-exception: ValueError: x must not be 2'],
        ],
      );

      // a set: a new run of the job with that set alone
      const runs = api.jobs.latestRuns().length;
      await profile.runHandler(new vscode.TestRunRequest([okSet], undefined, profile), token);
      const again = api.jobs.latestRuns()[0];
      assert.equal(api.jobs.latestRuns().length, runs, 'the new run takes the place of the earlier one');
      assert.match(again.jobId, /^testing-run-\d+$/);
      assert.equal(again.status, 'succeeded');
      assert.deepEqual(
        [...again.sets.values()].map((set) => set.params),
        [{ x: '1' }],
      );
      assert.equal(stateOf(states(api, 'ModelOps: run again', from), again.jobId)?.state, 'passed');
      const newest = (api.jobsTree.getChildren() as JobsNode[])[0] as JobItem;
      assert.equal(newest.job.jobId, again.jobId, 'the Jobs view shows the new run first');
      assert.equal(api.jobs.earlierRuns(again)[0]?.jobId, 'testing-run', 'the earlier run stays under it');
    });

    it('testing: "Run Twice and Compare" says a seeded set is deterministic and an unseeded one is not, in the Testing view and on the set in the Jobs view', async () => {
      const { api } = context();
      const { result } = await runScratchJob(
        'testing-twice',
        WIRE,
        '{"job_id": "testing-twice", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 4}], "replicates": 2}',
      );
      assert.equal(result.status, 'succeeded');
      const controller = api.testing.controller()!;
      const { compare } = api.testing.profiles()!;
      const jobItem = controller.items.get('testing-twice')!;
      const from = api.testing.reported.entries.length;
      await compare.runHandler(
        new vscode.TestRunRequest([jobItem], undefined, compare),
        new vscode.CancellationTokenSource().token,
      );
      const [seeded, unseeded] = sortedChildren(jobItem).map((set) => `testing-twice/${set.id}`);
      const reported = states(api, 'ModelOps: run twice and compare', from);
      assert.equal(stateOf(reported, seeded)?.state, 'passed');
      assert.equal(stateOf(reported, unseeded)?.state, 'failed');
      assert.match(stateOf(reported, unseeded)!.message!, /^nondeterministic: /);
      assert.equal(stateOf(reported, `${unseeded}/r0`)?.state, 'failed');
      const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'testing-twice')!;
      const rows = api.jobsTree.getChildren(job) as ParamSetItem[];
      assert.match(String(rows[0].description), / · ≡ deterministic$/);
      assert.match(String(rows[1].description), / · ⚠ nondeterministic$/);
    });

    it('testing: the Debug profile on a failed replicate starts its session linked to the test run, stops at the raise, and the replicate is failed like before', async () => {
      const { api } = context();
      const { result, wire } = await runScratchJob(
        'testing-debug',
        WIRE,
        '{"job_id": "testing-debug", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 2}], "replicates": 1}',
      );
      assert.equal(result.status, 'failed');
      const controller = api.testing.controller()!;
      const { debug } = api.testing.profiles()!;
      const [set] = sortedChildren(controller.items.get('testing-debug')!);
      const from = api.testing.reported.entries.length;
      const watched = watchNextSession();
      const running = debug.runHandler(
        new vscode.TestRunRequest([set.children.get('r0')!], undefined, debug),
        new vscode.CancellationTokenSource().token,
      );
      await expectStopAtRaise(watched, wire);
      await within('the end of the test run', Promise.resolve(running));
      const reported = states(api, 'ModelOps: debug replicate', from);
      assert.deepEqual(
        reported.map((entry) => [entry.item, entry.state, entry.message]),
        [
          [
            `testing-debug/${set.id}/r0`,
            'failed',
            'debugging session: failed like before: task-exception: ValueError: x must not be 2',
          ],
        ],
      );
    });

    it("testing: a failure's actions: Copy Reproduce Command names the replicate; Rerun Cold reproduces it in a fresh venv", async () => {
      const { api } = context();
      const { result } = await runScratchJob(
        'testing-actions',
        WIRE,
        '{"job_id": "testing-actions", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 2}], "replicates": 2}',
      );
      const controller = api.testing.controller()!;
      const [set] = sortedChildren(controller.items.get('testing-actions')!);
      const test = set.children.get('r1')!;
      const message = new vscode.TestMessage('task-exception');
      const copied = await vscode.commands.executeCommand<{ line: string }>(
        'modelopsDebugger.testing.copyReproduceCommand',
        { test, message },
      );
      assert.equal(
        copied.line,
        `modelops-debugger replicate ${result.dir} --param ${set.id.slice(0, 12)} --replicate 1`,
      );
      assert.equal(await vscode.env.clipboard.readText(), copied.line);
      const from = api.testing.reported.entries.length;
      await vscode.commands.executeCommand('modelopsDebugger.testing.rerunCold', { test, message });
      const cold = states(api, 'ModelOps: rerun cold', from);
      assert.deepEqual(
        cold.map((entry) => [entry.item, entry.state, entry.message]),
        [[`testing-actions/${set.id}/r1`, 'failed', 'failed like before: task-exception: ValueError: x must not be 2']],
      );
    });

    it('testing: a job opened from its results folder is reported as the disk says; the setting off removes the view', async () => {
      const { api } = context();
      const { result } = await runScratchJob(
        'testing-open',
        WIRE,
        '{"job_id": "testing-open", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 2}], "replicates": 1}',
      );
      const from = api.testing.reported.entries.length;
      await vscode.commands.executeCommand('modelopsDebugger.openJobResults', vscode.Uri.file(result.dir));
      const reported = states(api, 'testing-open (results on disk)', from);
      const [ok, raising] = sortedChildren(api.testing.controller()!.items.get('testing-open')!).map(
        (set) => `testing-open/${set.id}`,
      );
      assert.deepEqual(
        [ok, `${raising}/r0`, raising, 'testing-open'].map((item) => stateOf(reported, item)?.state),
        ['passed', 'failed', 'failed', 'failed'],
      );
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      await config.update('testing.enabled', false, vscode.ConfigurationTarget.Global);
      try {
        assert.equal(api.testing.controller(), undefined);
      } finally {
        await config.update('testing.enabled', undefined, vscode.ConfigurationTarget.Global);
      }
      assert.ok(api.testing.controller()?.items.get('testing-open'), 'on again: the jobs are back');
    });
  });
}

/** "Compare With…" on a job of the Jobs view: two runs as `diff` says it, in a document. */
export function registerCompareTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('comparing two runs', () => {
    it('compare: "Compare With…" on a job offers its earlier run first, and shows what differs between them; "Export Run Report…" writes its report', async () => {
      const { api } = context();
      const job =
        '{"job_id": "compare-me", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 4}], "replicates": 2}';
      const first = await runScratchJob('compare', WIRE, job);
      // the same job file again, as a new run: x=4 draws unseeded numbers, so its outputs differ
      const again = await vscode.commands.executeCommand<{ dir: string; jobId: string }>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(path.dirname(path.dirname(first.wire)), 'job.json')),
        { ifResultsExist: 'new-run' },
      );
      const item = (api.jobsTree.getChildren() as JobsNode[]).find(
        (node) => node.kind === 'job' && (node as JobItem).job.jobId === again.jobId,
      )!;
      let offered: readonly vscode.QuickPickItem[] = [];
      const diff = await vscode.commands.executeCommand<{ agree: boolean; sets: { status: string }[] }>(
        'modelopsDebugger.compareWith',
        item,
        {
          pick(items: readonly (vscode.QuickPickItem & { dir: string })[]) {
            offered = items;
            return items[0];
          },
        },
      );
      assert.equal(offered[0].label, 'compare-me', 'its earlier run first');
      assert.match(offered[0].description!, /an earlier run of the same job file/);
      assert.equal(diff.agree, false);
      assert.deepEqual(
        diff.sets.map((set) => set.status),
        ['same', 'different'],
      );
      const shown = vscode.window.activeTextEditor!.document.getText();
      assert.match(shown, /^✘ the runs differ: 1 of 2 parameter sets \(2 replicates\)/);
      assert.match(shown, /replicate 0: outputs differ: value/);
      assert.equal(first.result.status, 'succeeded');

      // "Export Run Report…" on the same job: the report written where asked, the job's failures in it
      const file = path.join(path.dirname(again.dir), 'exported.html');
      const written = await vscode.commands.executeCommand<string>(
        'modelopsDebugger.exportRunReport',
        item,
        vscode.Uri.file(file),
      );
      assert.equal(written, file);
      const html = readFileSync(file, 'utf8');
      assert.match(html, /^<!DOCTYPE html>/);
      assert.ok(html.includes(`Run report: ${again.jobId}`));
    });
  });
}

function sortedChildren(item: vscode.TestItem): vscode.TestItem[] {
  const children: vscode.TestItem[] = [];
  item.children.forEach((child) => void children.push(child));
  return children.sort((a, b) => a.sortText!.localeCompare(b.sortText!));
}
