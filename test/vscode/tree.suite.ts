/**
 * Extension-host tests of the Jobs tree telling the truth of the disk (issue 11): rebuilt from the
 * results folder when a job starts, resumes, reruns, ends or is opened from disk; queued,
 * running and done apart; a job file's earlier runs kept under its newest.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { RunJobFileArgs } from '../../src/extension/jobs/jobCommands';
import type { JobRunResult, OpenedJob } from '../../src/extension/jobs/jobRunner';
// types only: the extension's classes live in its own bundle, so nodes are told apart by `kind`
import type { EarlierRunsItem, JobItem, ParamSetItem, TaskItem, JobsNode } from '../../src/extension/jobs/jobsTree';

type Context = () => { api: ModelOpsApi; root: string };

/** Every node under a job (its sets, their aggregation and replicates), as the tree makes them. */
function nodesOf(api: ModelOpsApi, job: JobsNode): JobsNode[] {
  const sets = api.jobsTree.getChildren(job).filter((node) => node.kind === 'set');
  return [job, ...sets, ...sets.flatMap((set) => api.jobsTree.getChildren(set))];
}

function iconOf(node: JobsNode): string {
  return (node.iconPath as vscode.ThemeIcon).id;
}

function topJob(api: ModelOpsApi, label: string): JobItem {
  const item = api.jobsTree.getChildren().find((node) => node.label === label);
  assert.ok(
    item?.kind === 'job',
    `no job ${label} at the top of the tree: ${api.jobsTree
      .getChildren()
      .map((n) => n.label)
      .join(', ')}`,
  );
  return item as JobItem;
}

/** A job file of `sets` parameter sets (x = 1.0, 2.0, …) × `replicates`, its bundle's wire given. */
function jobFile(name: string, wire: string, sets: number, replicates: number): string {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `modelops-vscode-${name}-`));
  mkdirSync(path.join(scratch, 'bundle'));
  writeFileSync(path.join(scratch, 'bundle', 'wire.py'), wire);
  const file = path.join(scratch, 'job.json');
  writeFileSync(
    file,
    JSON.stringify({
      job_id: name,
      bundle: 'bundle',
      entrypoint: 'm.m/x',
      parameter_sets: Array.from({ length: sets }, (_, i) => ({ x: i + 1.5 })),
      replicates,
    }),
  );
  return file;
}

export function registerTreeTests(context: Context): void {
  describe('the Jobs tree tells the truth of the disk', () => {
    it('tree: Cancel at ~40 % shows what was done as done and nothing spinning; Resume ends with every set "✓ · agg ok", none queued', async () => {
      const { api } = context();
      const file = jobFile(
        'tree-cancel',
        'import time\n\ndef wire(entrypoint, params, seed):\n    time.sleep(0.04)\n    return {"value": b"1"}\n',
        5,
        20,
      );
      const running = vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(file),
      );
      let sawRunning = false;
      const deadline = Date.now() + 90_000;
      for (;;) {
        const item = api.jobsTree.getChildren().find((node) => node.label === 'tree-cancel');
        if (item?.kind === 'job') {
          for (const node of nodesOf(api, item).filter((n) => n.kind === 'set')) {
            const description = String(node.description);
            if (/^\d+\/20 ✓ · ▶ \d+ · agg queued$/.test(description)) sawRunning = true;
            // no spinner before a set's first replicate starts
            if (/^0\/20 ✓ · agg queued$/.test(description)) assert.equal(iconOf(node), 'circle-outline', description);
          }
          const done = [...item.job.sets.values()].reduce((sum, set) => sum + set.ok, 0);
          if (done >= 40 && item.contextValue?.includes('cancellable;')) {
            await vscode.commands.executeCommand('modelopsDebugger.cancelJob', item);
            break;
          }
        }
        assert.ok(Date.now() < deadline, 'the job did not get to 40 %');
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
      const interrupted = await running;
      assert.equal(interrupted.status, 'interrupted');
      assert.ok(sawRunning, 'a set showed its running replicates apart (▶ n)');

      const stopped = topJob(api, 'tree-cancel');
      const nodes = nodesOf(api, stopped);
      assert.deepEqual(
        nodes.filter((n) => iconOf(n) === 'sync~spin').map((n) => `${n.label} ${n.description}`),
        [],
        'nothing spins once the job ended',
      );
      assert.deepEqual(
        nodes.filter((n) => /queued|running|▶/.test(String(n.description))).map((n) => `${n.label} ${n.description}`),
        [],
      );
      const sets = api.jobsTree.getChildren(stopped) as ParamSetItem[];
      // what the disk holds, the tree shows: a set aggregated before the cancel is "agg ok"
      for (const set of sets) {
        const aggregated = existsSync(path.join(interrupted.dir, 'aggs', `${set.set.paramId.slice(0, 16)}.json`));
        assert.equal(/ · agg ok$/.test(String(set.description)), aggregated, `${set.label}: ${set.description}`);
        if (aggregated) continue;
        // a cancel can land between a set's last replicate and its aggregation: 20/20 done, nothing "not run"
        const done = Number(/^(\d+)\/20 ✓/.exec(String(set.description))?.[1]);
        const notRun = done < 20 ? ` · ${20 - done} not run` : '';
        assert.equal(String(set.description), `${done}/20 ✓${notRun} · agg not run`);
      }
      assert.ok(
        sets.some((set) => /^20\/20 ✓ · agg ok$/.test(String(set.description))),
        sets.map((s) => s.description).join('; '),
      );
      assert.match(String(stopped.description), /^interrupted · \d+\/100 ✓ · \d+ not run/);

      const resumed = await vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.resumeJob', stopped);
      assert.equal(resumed.status, 'succeeded');
      const after = topJob(api, 'tree-cancel');
      assert.match(String(after.description), /^succeeded · 100\/100 ✓/);
      const resumedSets = api.jobsTree.getChildren(after) as ParamSetItem[];
      assert.deepEqual(
        resumedSets.map((set) => String(set.description)),
        Array(5).fill('20/20 ✓ · agg ok'),
      );
      assert.ok(resumedSets.every((set) => iconOf(set) === 'pass'));
      assert.deepEqual(
        nodesOf(api, after)
          .filter((n) => /queued|not run|running/.test(String(n.description)) || iconOf(n) === 'sync~spin')
          .map((n) => `${n.label} ${n.description}`),
        [],
      );
    });

    it('tree: Rerun Failed Tasks on a job with one failing set: the healthy sets stay "agg ok"', async () => {
      const { api } = context();
      const file = jobFile(
        'tree-rerun',
        'def wire(entrypoint, params, seed):\n    if params["x"] == 2.5:\n        raise ValueError("x must not be 2.5")\n    return {"value": b"1"}\n',
        3,
        3,
      );
      const first = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(file),
      );
      assert.equal(first.status, 'failed');
      const expected = ['3/3 ✓ · agg ok', '0/3 ✓ 3 ✗ · agg skipped', '3/3 ✓ · agg ok'];
      assert.deepEqual(
        (api.jobsTree.getChildren(topJob(api, 'tree-rerun')) as ParamSetItem[]).map((s) => String(s.description)),
        expected,
      );
      const again = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.rerunFailed',
        topJob(api, 'tree-rerun'),
      );
      assert.equal(again.status, 'failed');
      const job = topJob(api, 'tree-rerun');
      const sets = api.jobsTree.getChildren(job) as ParamSetItem[];
      assert.deepEqual(
        sets.map((s) => String(s.description)),
        expected,
      );
      assert.deepEqual(sets.map(iconOf), ['pass', 'error', 'pass']);
      const [aggregation] = api.jobsTree.getChildren(sets[0]) as TaskItem[];
      assert.equal(aggregation.task.state, 'ok');
      assert.ok(nodesOf(api, job).every((n) => iconOf(n) !== 'sync~spin'));
    });

    it('tree: running a job file whose results exist: New Run keeps the earlier run under the new one (newest first), Open Previous and Resume take the latest, Clear Earlier Runs forgets them', async () => {
      const { api } = context();
      const file = jobFile('tree-again', 'def wire(entrypoint, params, seed):\n    return {"value": b"1"}\n', 2, 2);
      const run = (args?: RunJobFileArgs) =>
        vscode.commands.executeCommand<JobRunResult & OpenedJob>(
          'modelopsDebugger.runJobFile',
          vscode.Uri.file(file),
          args,
        );
      assert.equal((await run()).jobId, 'tree-again');
      const second = await run({ ifResultsExist: 'new-run' });
      assert.equal(second.jobId, 'tree-again-2');
      assert.equal(second.status, 'succeeded');
      const third = await run({ ifResultsExist: 'new-run' });
      assert.equal(third.jobId, 'tree-again-3');
      assert.equal(
        api.jobsTree.getChildren().some((n) => n.label === 'tree-again' || n.label === 'tree-again-2'),
        false,
        'earlier runs are not at the top',
      );
      const newest = topJob(api, 'tree-again-3');
      assert.match(newest.contextValue!, /earlierRuns;/);
      const earlier = api.jobsTree.getChildren(newest).at(-1) as EarlierRunsItem;
      assert.equal(earlier.kind, 'earlier');
      assert.deepEqual(
        api.jobsTree.getChildren(earlier).map((n) => `${n.label} ${String(n.description).split(' · ')[0]}`),
        ['tree-again-2 succeeded', 'tree-again succeeded'],
      );

      const previous = await run({ ifResultsExist: 'open-previous' });
      assert.equal(previous.jobId, 'tree-again-3');
      assert.equal(previous.status, 'succeeded');
      const resumed = await run({ ifResultsExist: 'resume' });
      assert.equal(resumed.jobId, 'tree-again-3');
      assert.equal(resumed.status, 'succeeded');
      assert.equal(
        api.jobsTree.getChildren(topJob(api, 'tree-again-3')).at(-1)?.kind,
        'earlier',
        'a resume keeps the earlier runs',
      );

      assert.equal(await vscode.commands.executeCommand<number>('modelopsDebugger.clearEarlierRuns', earlier), 2);
      assert.equal(
        api.jobsTree.getChildren(topJob(api, 'tree-again-3')).some((n) => n.kind === 'earlier'),
        false,
      );
      assert.ok(existsSync(path.join(second.dir, 'job.json')), 'clearing leaves the results on disk');
    });

    it('tree: "Open Job Results…" shows a job run elsewhere (the CLI) as its folder holds it', async () => {
      const { api, root } = context();
      const file = jobFile(
        'tree-cli',
        'def wire(entrypoint, params, seed):\n    if params["x"] == 2.5:\n        raise ValueError("x must not be 2.5")  # MARK:raise\n    return {"value": b"1"}\n',
        2,
        2,
      );
      const out = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-cli-out-'));
      // not spawnSync: the extension host must keep answering while the CLI runs
      const cli = spawn(
        process.execPath,
        [path.join(root, 'dist', 'cli.js'), 'run', file, '--out', out, '--workers', '1'],
        { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 },
      );
      let stderr = '';
      cli.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const code = await new Promise<number | null>((resolve, reject) => cli.on('error', reject).on('close', resolve));
      assert.equal(code, 1, stderr);
      const opened = await vscode.commands.executeCommand<OpenedJob>(
        'modelopsDebugger.openJobResults',
        vscode.Uri.file(path.join(out, 'tree-cli')),
      );
      assert.equal(opened.status, 'failed');
      const job = topJob(api, 'tree-cli');
      assert.match(String(job.description), /^failed · 2\/4 ✓ 2 ✗/);
      const sets = api.jobsTree.getChildren(job) as ParamSetItem[];
      assert.deepEqual(
        sets.map((s) => String(s.description)),
        ['2/2 ✓ · agg ok', '0/2 ✓ 2 ✗ · agg skipped'],
      );
      const [, replicate] = api.jobsTree.getChildren(sets[1]) as TaskItem[];
      assert.match(String(replicate.description), /^failed · task-exception/);
      assert.equal(replicate.command?.command, 'vscode.open', 'a failure read from disk opens its line');
      assert.match(job.contextValue!, /rerunnable;/);
    });
  });
}
