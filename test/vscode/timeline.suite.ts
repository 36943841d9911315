/**
 * "ModelOps Timeline" (issue 15): the webview panel opened on a running job draws it live, at
 * most ten updates a second, and ends showing what the results folder holds; a click on a
 * failed replicate's bar reveals it in the Jobs view and opens the line that raised. The page's
 * own frame statistics come back by message, so these assert what the page drew, not what the
 * extension meant to send.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobItem, JobsNode } from '../../src/extension/jobs/jobsTree';
import { AGGREGATION, TASK_FIELDS, Timeline } from '../../src/engine/trace/timeline';
import { until } from './cmds.suite';

const SETS = 8;
const REPLICATES = 40;
/**
 * After its first 20 tasks, each runner holds while the file `gate` next to the bundle exists (60 s at
 * most): the job is still running when the panel's page first draws, however slowly the webview
 * starts; the test removes the gate then.
 */
const WIRE = `import os
import time

GATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gate")
CALLS = [0]


def wire(entrypoint, params, seed):
    CALLS[0] += 1
    if CALLS[0] > 20:
        until = time.monotonic() + 60
        while os.path.exists(GATE) and time.monotonic() < until:
            time.sleep(0.01)
    time.sleep(0.01)
    if params["x"] == 3:
        raise ValueError("x=3 is out of range")  # the raising line
    return {"value": b"1"}
`;

export function registerTimelineTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('the timeline', () => {
    it('timeline: "Show Timeline" on a running job draws it live (at most ten updates a second) and ends showing what its folder holds; a click on a failed bar reveals the replicate and opens the raising line', async () => {
      const { api } = context();
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-timeline-'));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(path.join(scratch, 'bundle', 'wire.py'), WIRE);
      const gate = path.join(scratch, 'gate');
      writeFileSync(gate, '');
      const jobId = 'editor-timeline';
      const sets = Array.from({ length: SETS }, (_, x) => ({ x }));
      const file = path.join(scratch, 'job.json');
      writeFileSync(
        file,
        JSON.stringify({
          job_id: jobId,
          bundle: 'bundle',
          entrypoint: 'm.m/x',
          parameter_sets: sets,
          replicates: REPLICATES,
        }),
      );
      await vscode.commands.executeCommand('workbench.view.extension.modelops');
      const running = vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(file),
      );
      // opened mid-job, from the job's row, as a user would
      const item = await until('the job to be running with tasks done', () => {
        const job = api.jobs.jobs.get(jobId);
        const done = job ? [...job.sets.values()].reduce((sum, set) => sum + set.ok + set.failed, 0) : 0;
        return (
          job?.status === 'running' &&
          done > 10 &&
          (api.jobsTree.getChildren() as JobsNode[]).find(
            (node): node is JobItem => node.kind === 'job' && node.job.jobId === jobId,
          )
        );
      });
      const postedBefore = api.timeline.posted.length;
      await vscode.commands.executeCommand('modelopsDebugger.showTimeline', item);
      assert.equal(api.timeline.shownJob, jobId);
      const drawnMidJob = await until('the page to draw while the job runs', () => api.timeline.stats);
      rmSync(gate);
      const result = await running;
      const ended = Date.now();
      assert.equal(result.status, 'failed');
      assert.ok(drawnMidJob.tasks > 0 && !drawnMidJob.ended, JSON.stringify(drawnMidJob));

      // at the end, the page shows what the results folder says, bar for bar and lane for lane
      const disk = Timeline.fromFolder(result.dir, jobId, []).snapshot();
      const total = SETS * REPLICATES + SETS;
      assert.equal(disk.tasks.length / TASK_FIELDS, total);
      const final = await until('the page to draw the ended job', () => {
        const stats = api.timeline.stats;
        return stats?.ended && stats.tasks === total ? stats : undefined;
      });
      assert.equal(final.lanes, disk.lanes.length);
      assert.equal(final.running, 0);

      // live: several updates while tasks still ran, never more than ten a second
      const updates = api.timeline.posted.slice(postedBefore).filter((post) => !post.reset);
      const during = updates.filter((post) => post.at < ended && post.tasks > 0);
      assert.ok(during.length >= 3, `${during.length} updates with tasks during the job`);
      const gaps = updates.slice(1, -1).map((post, i) => post.at - updates[i].at);
      assert.ok(
        gaps.every((gap) => gap >= 95),
        `updates at least 100 ms apart (but for the one at the end): ${gaps.join(', ')}`,
      );
      assert.ok(final.updates >= during.length, 'the page drew each update it was sent');

      // a click on replicate 2 of the failing set: revealed in the Jobs view, its raising line opened
      const failing = [...api.jobs.jobs.get(jobId)!.sets.keys()].findIndex(
        (paramId) => api.jobs.jobs.get(jobId)!.sets.get(paramId)!.params.x === '3',
      );
      assert.ok(failing >= 0);
      await api.timeline.click(failing, 2);
      const key = api.timeline.opened.at(-1)!;
      assert.match(key, /^sim-[0-9a-f]{64}-2$/);
      await until('the replicate to be selected in the Jobs view', () =>
        api.jobsView.selection.some((node) => node.id === `task:${jobId}:${key}`),
      );
      const editor = await until('the raising line to open', () => {
        const active = vscode.window.activeTextEditor;
        return active?.document.uri.fsPath.endsWith(path.join('bundle', 'wire.py')) ? active : undefined;
      });
      assert.match(editor.document.lineAt(editor.selection.active.line).text, /raise ValueError/);
      // a click on an aggregation's bar names the aggregation
      await api.timeline.click(0, AGGREGATION);
      assert.match(api.timeline.opened.at(-1)!, /^agg-[0-9a-f]{64}$/);
    });
  });
}
