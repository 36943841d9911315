/**
 * Live counts (issue 11): while a long job streams events, VS Code itself keeps refreshing the
 * Jobs view, so the job's row and its sets' rows advance during the job, not only at its end.
 * How far behind they are is measured by `npm run bench:editor`; this asserts the mechanism.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobsNode } from '../../src/extension/jobs/jobsTree';

const SETS = 30;
const REPLICATES = 100;

/** The done count a row shows (`… 183/200 ✓ …`). */
function shownCount(item: JobsNode): number {
  const match = /(\d+)\/(\d+)/.exec(String(item.description ?? ''));
  assert.ok(match, `no count in "${item.description}"`);
  return Number(match[1]);
}

/** Never back, and moved on at least three times. */
function advancing(values: number[]): boolean {
  return values.every((value, i) => i === 0 || value >= values[i - 1]) && new Set(values).size >= 3;
}

export function registerLiveTests(ctx: () => { api: ModelOpsApi; root: string }): void {
  it('live counts: during a long job every change the Jobs view announces makes VS Code ask for its rows again, and the job and set rows it gets advance while tasks still run', async () => {
    const { api } = ctx();
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-live-'));
    mkdirSync(path.join(scratch, 'bundle'));
    writeFileSync(
      path.join(scratch, 'bundle', 'wire.py'),
      // a couple of milliseconds each, so the job lasts seconds on any machine (a fast one ran the
      // 3000 bare tasks in about a second: four refreshes, too few to tell following from luck)
      'import time\n\ndef wire(entrypoint, params, seed):\n    time.sleep(0.002)\n    return {"value": b"1"}\n',
    );
    const jobId = 'editor-live-counts';
    const jobFile = path.join(scratch, 'job.json');
    const sets = Array.from({ length: SETS }, (_, x) => ({ x }));
    writeFileSync(
      jobFile,
      JSON.stringify({
        job_id: jobId,
        bundle: 'bundle',
        entrypoint: 'm.m/x',
        parameter_sets: sets,
        replicates: REPLICATES,
      }),
    );
    const total = SETS * REPLICATES;

    // the view on screen: VS Code asks a visible view's provider for its rows
    await vscode.commands.executeCommand('workbench.view.extension.modelops');
    const provider = api.jobsTree;
    const midJob = () => {
      const job = api.jobs.jobs.get(jobId);
      if (!job || job.status !== 'running') return false;
      const done = [...job.sets.values()].reduce((sum, set) => sum + set.ok + set.failed, 0);
      return done > 0 && done < total;
    };
    let announced = 0; // change events the provider fired while tasks were running
    const jobRows: number[] = []; // the job row's count each time VS Code asked for the root, mid-job
    const setRows: number[][] = []; // the set rows' counts each time VS Code asked for the job's children, mid-job
    const partDoneIcons: string[] = []; // the icon of each set row shown part-done, mid-job
    const listening = provider.onDidChangeTreeData(() => {
      if (midJob()) announced++;
    });
    const getChildren = provider.getChildren.bind(provider);
    provider.getChildren = (element?: JobsNode) => {
      const children = getChildren(element);
      if (midJob()) {
        if (!element) {
          const row = children.find((child) => child.kind === 'job' && child.job.jobId === jobId);
          if (row) jobRows.push(shownCount(row));
        } else if (element.kind === 'job' && element.job.jobId === jobId) {
          setRows.push(children.map(shownCount));
          for (const child of children) {
            const n = shownCount(child);
            if (n > 0 && n < REPLICATES) partDoneIcons.push(`${n}: ${(child.iconPath as vscode.ThemeIcon).id}`);
          }
        }
      }
      return children;
    };
    let result: JobRunResult;
    try {
      result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
    } finally {
      delete (provider as Partial<typeof provider>).getChildren; // the prototype's again
      listening.dispose();
    }
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(result.counts.sims, { total, ok: total, failed: 0, pending: 0 });

    const detail = `${announced} change events mid-job; VS Code asked for the root ${jobRows.length} times (job row ${jobRows.join(', ')})`;
    console.log(`      ${detail}`);
    // a job long enough to stream: the provider announced changes many times while it ran
    assert.ok(announced >= 5, detail);
    // and VS Code followed them (a debounced view asks again only when the announcements pause,
    // which a steady job never does): about one fetch of the rows per announcement
    assert.ok(jobRows.length * 2 >= announced, detail);
    // and what it got moved on, mid-job
    assert.ok(advancing(jobRows), detail);
    // the sets' rows too: their sum advanced with the job's, and some set was shown part-done
    const sums = setRows.map((counts) => counts.reduce((a, b) => a + b, 0));
    assert.ok(advancing(sums), `set rows' sums as VS Code got them: ${sums.join(', ')}`);
    assert.ok(
      setRows.some((counts) => counts.some((n) => n > 0 && n < REPLICATES)),
      `no set row shown part-done: ${setRows.map((counts) => counts.join('/')).join(' | ')}`,
    );
    // a set being worked through spins, though its 2 ms replicates mostly end before they are
    // announced as running (JobBook.taskStarted): none shows queued or done while it advances
    assert.deepEqual(
      partDoneIcons.filter((icon) => !icon.endsWith(': sync~spin')),
      [],
      `icons of part-done sets: ${partDoneIcons.join(', ')}`,
    );
  });
}
