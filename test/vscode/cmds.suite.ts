/**
 * Extension-host tests of the job commands (from a tree item and from the palette), "Run Job
 * File…"'s quick pick, the job file schema and entrypoint completion, and readable job ids.
 * Prompts are answered through the commands' arguments (`pick`), never by stubbing VS Code.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobFilePickArgs, JobFilePickItem } from '../../src/extension/jobFiles/jobFiles';
import type { JobPickArgs, JobPickItem } from '../../src/extension/jobs/jobCommands';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobItem, JobsNode, ParamSetItem, TaskItem } from '../../src/extension/jobs/jobsTree';
import type { Reproduction } from '../../src/engine/job/reproduce';

interface Context {
  api: ModelOpsApi;
  root: string;
}

const WAIT_MS = 60_000;

/** `probe`'s first value that is neither undefined nor false, asked every 50 ms until `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`waited ${timeoutMs / 1000} s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function jobRow(api: ModelOpsApi, jobId: string): JobItem {
  const item = (api.jobsTree.getChildren() as JobsNode[]).find(
    (node): node is JobItem => node.kind === 'job' && node.job.jobId === jobId,
  );
  assert.ok(item, `job ${jobId} is in the Jobs view`);
  return item;
}

/** Answers a "which job?" prompt with the job of this id, checking that every job offered has the capability. */
function choose(jobId: string, token: string, offered: string[] = []): JobPickArgs {
  return {
    pick(items: readonly JobPickItem[]) {
      offered.push(...items.map((i) => i.item.job.jobId));
      assert.ok(
        items.every((i) => i.item.contextValue!.includes(token)),
        items.map((i) => i.item.contextValue).join(' | '),
      );
      return items.find((i) => i.item.job.jobId === jobId);
    },
  };
}

const hhmm = (date: Date) =>
  `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;

export function registerCmdsTests(context: () => Context): void {
  describe('job commands, job files and job ids', () => {
    it('cmds: "Run Job File…" lists the workspace\'s job files by content (bundle, sets × replicates, Browse…) and runs the one picked; its generated id reads "sir · HH:MM"', async () => {
      const { api, root } = context();
      // a results folder inside the workspace holds job.json files too: never offered
      const stale = path.join(root, 'test', 'fixtures', 'jobs', 'results', 'old-run');
      mkdirSync(stale, { recursive: true });
      writeFileSync(
        path.join(stale, 'job.json'),
        readFileSync(path.join(root, 'test', 'fixtures', 'jobs', 'sir.job.json')),
      );
      let offered: readonly JobFilePickItem[] = [];
      const before = new Date();
      let result: JobRunResult;
      try {
        const args: JobFilePickArgs = {
          pick(items) {
            offered = items;
            return items.find((item) => item.label === 'jobs/sir.job.json');
          },
        };
        await vscode.commands.executeCommand('workbench.action.closeAllEditors'); // no job file open: the quick pick it is
        result = await vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.runJobFile', args);
      } finally {
        rmSync(path.join(root, 'test', 'fixtures', 'jobs', 'results'), { recursive: true, force: true });
      }
      const after = new Date();
      const rows = new Map(offered.map((item) => [item.label, item]));
      assert.equal(rows.get('jobs/sir.job.json')?.description, 'sir · 2 sets × 3 replicates');
      assert.equal(rows.get('jobs/sir.job.json')?.detail, undefined, 'a valid job file has no warning');
      assert.equal(rows.get('jobs/production.simjob.json')?.description, 'SimJob · 2 sets, 3 tasks');
      assert.match(rows.get('jobs/production.simjob.json')?.detail ?? '', /--bundle DIR/);
      assert.match(rows.get('jobs/unknown-field.job.json')?.detail ?? '', /^⚠ .*unknown field "replicate"/);
      assert.ok(
        !rows.has('jobs/not-a-job.json'),
        'recognised by content: a JSON file without parameter_sets is not a job',
      );
      assert.ok(![...rows.keys()].some((label) => label.includes('results/')), [...rows.keys()].join(', '));
      assert.equal(offered[offered.length - 1].label, 'Browse…');

      assert.equal(result.status, 'succeeded');
      assert.match(result.jobId, /^sir-\d{8}-\d{6}-[0-9a-f]{4}$/);
      const row = jobRow(api, result.jobId);
      assert.ok([`sir · ${hhmm(before)}`, `sir · ${hhmm(after)}`].includes(String(row.label)), String(row.label));
      assert.match(String(row.tooltip), new RegExp(`^${result.jobId}\\n`), 'the id itself is in the tooltip');
      assert.equal(path.basename(result.dir), result.jobId, 'the results folder is named by the id');
    });

    it("cmds: a job's commands from its tree item: Open Results, Reveal Results Folder, Show Stderr, Copy Reproduce Command (job: the run line reruns it with the same param_ids and seeds; replicate: the replicate line)", async () => {
      const { api, root } = context();
      const scratch = mkdtempSync(path.join(os.tmpdir(), "modelops-cmds it's-"));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(
        path.join(scratch, 'bundle', 'wire.py'),
        'import sys\n\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("cmds x=%s\\n" % params["x"])\n    if params["x"] == 2.0:\n        raise ValueError("x must not be 2")\n    return {"value": str(params["x"]).encode()}\n',
      );
      const jobFile = path.join(scratch, 'job.json');
      writeFileSync(
        jobFile,
        '{"job_id": "cmds-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 2.0}], "replicates": 3}',
      );
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
      assert.equal(result.status, 'failed');
      const row = jobRow(api, 'cmds-job');
      assert.equal(row.label, 'cmds-job', 'an id the user chose is shown as it is');
      assert.match(row.contextValue!, /^job;open;reproducible;stderr;rerunnable;$/);

      const opened = await vscode.commands.executeCommand<string>('modelopsDebugger.openResults', row);
      assert.equal(opened, path.join(result.dir, 'manifest.json'));
      assert.equal(vscode.window.activeTextEditor?.document.fileName, opened);

      // the results folder is outside the workspace and this editor is a browser: its path is copied
      assert.equal(await vscode.commands.executeCommand('modelopsDebugger.revealResults', row), 'copied');

      const stderr = await vscode.commands.executeCommand<string>('modelopsDebugger.showStderr', row);
      assert.match(
        stderr,
        new RegExp(`^── ${result.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/logs/runner-\\d+\\.stderr ──$`, 'm'),
      );
      assert.equal((stderr.match(/^cmds x=2\.0$/gm) ?? []).length, 3, stderr);
      assert.equal(vscode.window.activeTextEditor?.document.getText(), stderr);

      // a replicate: `modelops-debugger replicate <out>/<job_id> --param <12 hex> --replicate N`
      const sets = api.jobsTree.getChildren(row) as ParamSetItem[];
      const replicate = (api.jobsTree.getChildren(sets[1]) as TaskItem[])[2];
      assert.equal(replicate.task.replicate, 1);
      assert.match(replicate.contextValue!, /^task;reproducible;/);
      assert.doesNotMatch(
        (api.jobsTree.getChildren(sets[1]) as TaskItem[])[0].contextValue!,
        /reproducible;/,
        'not on the aggregation',
      );
      const one = await vscode.commands.executeCommand<Reproduction>(
        'modelopsDebugger.copyReproduceCommand',
        replicate,
      );
      assert.equal(
        one.line,
        `modelops-debugger replicate ${result.dir} --param ${sets[1].set.paramId.slice(0, 12)} --replicate 1`,
      );
      assert.equal(await vscode.env.clipboard.readText(), one.line);

      // the job: the run line, quoted for sh (the folder has a quote and spaces in it)
      const whole = await vscode.commands.executeCommand<Reproduction>('modelopsDebugger.copyReproduceCommand', row);
      assert.equal(
        whole.line,
        `modelops-debugger run '${jobFile.replace(/'/g, `'\\''`)}' --out ${path.dirname(result.dir)}`,
      );
      assert.equal(whole.caveat, undefined);
      assert.equal(await vscode.env.clipboard.readText(), whole.line);
      // run it as a user would, in a shell, with the CLI on PATH; the job file names its job_id,
      // so the first run's folder moves aside
      const moved = `${result.dir}-first`;
      renameSync(result.dir, moved);
      const bin = path.join(scratch, 'bin');
      mkdirSync(bin);
      symlinkSync(path.join(root, 'dist', 'cli.js'), path.join(bin, 'modelops-debugger'));
      const again = spawnSync('sh', ['-c', whole.line], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
        timeout: 120_000,
      });
      assert.equal(again.status, 1, `the job fails again as it did (exit 1): ${again.stderr}`);
      const sets0 = (dir: string) =>
        (
          JSON.parse(readFileSync(path.join(dir, 'job.json'), 'utf8')) as {
            parameter_sets: { param_id: string; seeds: number[] }[];
          }
        ).parameter_sets.map((s) => [s.param_id, s.seeds]);
      assert.deepEqual(sets0(result.dir), sets0(moved));
      renameSync(result.dir, `${result.dir}-second`);
      renameSync(moved, result.dir);
    });

    it('cmds: from the palette each job command asks which job, offering only those it applies to, and says so when none applies', async () => {
      const { api } = context();
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-cmds-palette-'));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(
        path.join(scratch, 'bundle', 'wire.py'),
        'import time\n\ndef wire(entrypoint, params, seed):\n    time.sleep(0.05)\n    return {"value": b"1"}\n',
      );
      writeFileSync(
        path.join(scratch, 'job.json'),
        '{"job_id": "cmds-palette", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}, {"x": 2}], "replicates": 30}',
      );

      // nothing runs now: Cancel has no job to offer, and says so
      const told: string[] = [];
      const none = await vscode.commands.executeCommand('modelopsDebugger.cancelJob', {
        pick: () => assert.fail('no job is running: nothing to pick'),
        none: (message: string) => told.push(message),
      });
      assert.equal(none, undefined);
      assert.deepEqual(told, ['ModelOps: no job in the Jobs view is running.']);

      const running = vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(scratch, 'job.json')),
      );
      await until('the job to have run a few replicates', () => {
        const row = (api.jobsTree.getChildren() as JobsNode[]).find(
          (node): node is JobItem => node.kind === 'job' && node.job.jobId === 'cmds-palette',
        );
        return row && [...row.job.sets.values()].some((set) => set.ok >= 2);
      });
      const offered: string[] = [];
      assert.equal(
        await vscode.commands.executeCommand(
          'modelopsDebugger.cancelJob',
          choose('cmds-palette', 'cancellable;', offered),
        ),
        'cmds-palette',
      );
      assert.deepEqual(offered, ['cmds-palette'], 'only the running job can be cancelled');
      const interrupted = await running;
      assert.equal(interrupted.status, 'interrupted');

      const resumable: string[] = [];
      const resumed = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.resumeJob',
        choose('cmds-palette', 'resumable;', resumable),
      );
      assert.equal(resumed.status, 'succeeded');
      assert.ok(resumable.includes('cmds-palette') && !resumable.includes('cmds-job'), resumable.join(', '));

      const rerunnable: string[] = [];
      await vscode.commands.executeCommand('modelopsDebugger.rerunFailed', {
        pick: (items: readonly JobPickItem[]) => (rerunnable.push(...items.map((i) => i.item.job.jobId)), undefined),
      });
      assert.ok(!rerunnable.includes('cmds-palette'), 'a job without failures is not offered for Rerun Failed');

      assert.equal(
        await vscode.commands.executeCommand('modelopsDebugger.openResults', choose('cmds-palette', 'open;')),
        path.join(resumed.dir, 'manifest.json'),
      );
      assert.equal(
        await vscode.commands.executeCommand('modelopsDebugger.revealResults', choose('cmds-palette', 'open;')),
        'copied',
      );
      const reproduction = await vscode.commands.executeCommand<Reproduction>(
        'modelopsDebugger.copyReproduceCommand',
        choose('cmds-palette', 'reproducible;'),
      );
      assert.equal(
        reproduction.line,
        `modelops-debugger run ${path.join(scratch, 'job.json')} --out ${path.dirname(resumed.dir)}`,
      );
      // this bundle writes nothing to stderr: said, never an empty document
      assert.equal(
        await vscode.commands.executeCommand('modelopsDebugger.showStderr', choose('cmds-palette', 'stderr;')),
        undefined,
      );
    });

    it("cmds: a job file gets the schema's validation (an unknown field in Problems) and completion of its bundle's entrypoints and targets", async () => {
      const { root } = context();
      const bad = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'jobs', 'unknown-field.job.json'));
      await vscode.window.showTextDocument(bad);
      const diagnostics = await until('the JSON language service to validate the job file', () => {
        const found = vscode.languages.getDiagnostics(bad);
        return found.length ? found : undefined;
      });
      assert.deepEqual(
        diagnostics.map((d) => [d.message, d.range.start.line, d.severity]),
        [['Property replicate is not allowed.', 5, vscode.DiagnosticSeverity.Warning]],
      );

      const good = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'jobs', 'sir.job.json'));
      const document = await vscode.workspace.openTextDocument(good);
      await vscode.window.showTextDocument(document);
      const text = document.getText();
      const inEntrypoint = document.positionAt(text.indexOf('models.sir/baseline') + 'models.'.length);
      const models = await vscode.commands.executeCommand<vscode.CompletionList>(
        'vscode.executeCompletionItemProvider',
        good,
        inEntrypoint,
      );
      const model = models.items.find((item) => item.label === 'models.sir/baseline');
      assert.ok(model, models.items.map((i) => i.label).join(', '));
      assert.equal(model.detail, 'model entrypoint · wire.py:13');
      assert.ok(
        !models.items.some((item) => item.label === 'targets.prevalence:prevalence_target'),
        'targets are offered in targets only',
      );
      const inTargets = document.positionAt(text.indexOf('targets.prevalence') + 1);
      const targets = await vscode.commands.executeCommand<vscode.CompletionList>(
        'vscode.executeCompletionItemProvider',
        good,
        inTargets,
      );
      const target = targets.items.find((item) => item.label === 'targets.prevalence:prevalence_target');
      assert.ok(target, targets.items.map((i) => i.label).join(', '));
      assert.equal(target.detail, 'target entrypoint · targets/prevalence.py:13');
      // the valid job file: nothing from the schema
      assert.deepEqual(
        vscode.languages.getDiagnostics(good).filter((d) => d.source !== 'ModelOps'),
        [],
      );
    });
  });
}
