/**
 * Extension-host tests of issue 11's "results one click away" and the Venv Caches view: a job
 * with a target run for real, its aggregation's and replicates' results opened the way a click
 * opens them, and the venvs view following the disk on its own. Registered by suite.ts.
 */
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { venvsDir } from '../../src/engine/venv/cache';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobsNode, ParamSetItem, TaskItem } from '../../src/extension/jobs/jobsTree';
import type { PruneVenvsResult } from '../../src/extension/venvs/venvCommands';
import type { VenvItem } from '../../src/extension/venvs/venvTree';

const WIRE = `import json

def wire(entrypoint, params, seed):
    if params["x"] == 3.0 and seed % 3 == 0:
        raise ValueError("x=3 fails on seeds divisible by 3")
    return {"value": json.dumps(params["x"] * 2.0).encode(), "stats": json.dumps({"a": 1.5, "b": seed % 7}).encode()}
`;

const TARGET = `import base64, json


def mean_value(sim_returns, target_data):
    values = [json.loads(base64.b64decode(r["outputs"]["value"]["inline"])) for r in sim_returns]
    return {"loss": sum(values) / len(values) - 1.0, "diagnostics": {"n": len(values), "kind": "mean"}, "n_replicates": len(values)}
`;

const TREE_WAIT_MS = 15_000;

/** The text of the document a command opened, by the uri it returned. */
async function textOf(uri: vscode.Uri | undefined): Promise<string> {
  assert.ok(uri, 'the command returned no document');
  return (await vscode.workspace.openTextDocument(uri)).getText();
}

/** Runs a tree item's own click command, as a click does. */
function click(item: vscode.TreeItem): Thenable<vscode.Uri | undefined> {
  assert.ok(item.command, `${String(item.label)} has no click command`);
  return vscode.commands.executeCommand<vscode.Uri>(item.command.command, ...(item.command.arguments ?? []));
}

/**
 * Resolves once the venvs view, after one of its own change events, shows what `ready` wants;
 * fails after a timeout.
 */
function venvsViewShows(api: ModelOpsApi, what: string, ready: (items: VenvItem[]) => boolean): Promise<VenvItem[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      listener.dispose();
      reject(
        new Error(`the Venv Caches view did not show ${what} within ${TREE_WAIT_MS / 1000} s (no Refresh was run)`),
      );
    }, TREE_WAIT_MS);
    const listener = api.venvTree.onDidChangeTreeData(async () => {
      const items = await api.venvTree.getChildren();
      if (!ready(items)) return;
      clearTimeout(timer);
      listener.dispose();
      resolve(items);
    });
  });
}

export function registerResultsTests(ctx: () => { api: ModelOpsApi; root: string }): void {
  describe('results one click away, and the Venv Caches view', () => {
    let scratch: string;
    let result: JobRunResult;
    let sets: ParamSetItem[];

    before(async () => {
      scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-results-view-'));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(path.join(scratch, 'bundle', 'wire.py'), WIRE);
      writeFileSync(path.join(scratch, 'bundle', 'targets.py'), TARGET);
      writeFileSync(
        path.join(scratch, 'bundle', 'pyproject.toml'),
        '[project]\nname = "results-demo"\nversion = "1"\ndependencies = []\n',
      );
      writeFileSync(
        path.join(scratch, 'job.json'),
        '{"job_id": "results-view-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 3.0}], "replicates": 6, "targets": ["targets:mean_value"]}',
      );
      result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(scratch, 'job.json')),
      );
      assert.equal(result.status, 'failed', 'the x=3.0 set has failing replicates');
      const job = (ctx().api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'results-view-job')!;
      sets = ctx().api.jobsTree.getChildren(job) as ParamSetItem[];
    });

    it("a click on an aggregation opens its results: the loss and diagnostics per target, every output's statistics, the replicates it used", async () => {
      const { api } = ctx();
      const [aggregation, ...replicates] = api.jobsTree.getChildren(sets[0]) as TaskItem[];
      assert.equal(aggregation.label, 'aggregation');
      assert.equal(aggregation.command?.command, 'modelopsDebugger.showResult');
      assert.match(aggregation.contextValue!, /(^|;)result;/, 'Show Result is on its context menu');
      const text = await textOf(await click(aggregation));
      assert.match(text, /^# Aggregation · x=1\.0$/m);
      assert.match(text, /^\*\*ok\*\* · 6 of 6 replicates used/m);
      assert.match(
        text,
        /^\| `targets:mean_value` \| ok \| 1\.0 \| 6 \|$/m,
        'the loss of its target, the float Python returned',
      );
      assert.match(text, /"kind": "mean"/, "the target's diagnostics");
      assert.match(text, /^\| `value` \| {2}\| 6 \| 2 \| 0 \| 2 \| 2 \|$/m);
      assert.match(text, /^\| `stats` \| a \| 6 \| 1\.5 \| 0 \| 1\.5 \| 1\.5 \|$/m);
      for (const item of replicates) {
        const seed = sets[0].set.tasks[item.task.replicate].seed!;
        assert.match(
          String(item.description),
          new RegExp(`^ok · seed ${seed} · \\d+ ms`),
          'replicate rows show their seed',
        );
        assert.match(
          text,
          new RegExp(
            `^\\| \\[${item.task.replicate}\\]\\(\\./sim-[0-9a-f]{16}-${item.task.replicate}\\.md\\) \\| ${seed} \\| ok ✓ used \\|`,
            'm',
          ),
        );
      }
      // opened as a preview for people: its tab is there
      const deadline = Date.now() + TREE_WAIT_MS;
      while (
        !vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => /agg-[0-9a-f]{16}\.md/.test(tab.label)))
      ) {
        assert.ok(
          Date.now() < deadline,
          `no preview tab: ${vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((t) => t.label)).join(', ')}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });

    it('a click on a replicate opens its seed, params and outputs; a failed one still opens its line, and Show Result its result', async () => {
      const { api } = ctx();
      const [aggregation, replicate] = api.jobsTree.getChildren(sets[0]) as TaskItem[];
      assert.match(replicate.contextValue!, /(^|;)result;/);
      const text = await textOf(await click(replicate));
      // the aggregation's relative link to replicate 0 leads to the same document
      const aggUri = (await click(aggregation))!;
      const link = /^\| \[0\]\(([^)]+)\)/m.exec(await textOf(aggUri))![1];
      assert.equal(await textOf(vscode.Uri.joinPath(aggUri, '..', link)), text);
      assert.match(text, /^# Replicate 0 · x=1\.0$/m);
      assert.match(text, new RegExp(`^\\| seed \\| ${sets[0].set.tasks[0].seed} \\|$`, 'm'));
      assert.match(text, /^\| attempts \| 1 \|$/m);
      assert.match(text, /^\| pid \| \d+ \|$/m);
      assert.match(text, /^\| duration \| \d+ ms \|$/m);
      assert.match(text, /^```json\n\{"x": 1\.0\}\n```$/m, 'its params');
      assert.match(text, /^### value\n\n3 bytes, JSON:\n\n```json\n2\.0\n```$/m, 'its outputs, decoded');

      const failed = (api.jobsTree.getChildren(sets[1]) as TaskItem[]).find((item) => item.task.state === 'failed')!;
      assert.equal(failed.command?.command, 'vscode.open', 'a failed replicate opens its line');
      const shown = await textOf(
        await vscode.commands.executeCommand<vscode.Uri>('modelopsDebugger.showResult', failed, { preview: false }),
      );
      assert.match(shown, /^task-exception: ValueError: x=3 fails on seeds divisible by 3$/m);
      assert.equal(
        vscode.window.activeTextEditor?.document.uri.scheme,
        'modelops-result',
        '{ preview: false } opens the Markdown itself',
      );
      const skipped = await textOf(await click((api.jobsTree.getChildren(sets[1]) as TaskItem[])[0]));
      assert.match(skipped, /^\*\*skipped\*\* · \d of 6 replicates succeeded, none aggregated/m);
    });

    it('a result that is not on disk says so', async () => {
      const aggregation = (ctx().api.jobsTree.getChildren(sets[0]) as TaskItem[])[0];
      const aggFile = path.join(result.dir, 'aggs', `${sets[0].set.paramId.slice(0, 16)}.json`);
      assert.ok(existsSync(aggFile));
      rmSync(aggFile);
      const text = await textOf(
        await vscode.commands.executeCommand<vscode.Uri>(
          'modelopsDebugger.showResult',
          { dir: aggregation.job.dir, key: aggregation.task.key },
          { preview: false },
        ),
      );
      assert.match(text, /^\*\*No aggregation result\*\*: `.*\.json` does not exist/m);
    });

    it('Venv Caches: rows named after their bundle, the hash in the tooltip', async () => {
      const items = await ctx().api.venvTree.getChildren();
      const item = items.find((i) => i.entry.bundle === path.join(scratch, 'bundle'));
      assert.ok(item, items.map((i) => i.label).join(', '));
      assert.match(String(item.label), /^results-demo · py3\.\d+ · 0 deps$/);
      assert.match((item.tooltip as vscode.MarkdownString).value, new RegExp(`^\\*\\*${item.entry.key}\\*\\*`));
    });

    it('Venv Caches follows the disk without a Refresh; Prune lists what it would remove, asks, and removes it', async () => {
      const { api } = ctx();
      const dir = venvsDir(vscode.workspace.getConfiguration('modelopsDebugger').get<string>('venvsDir') || undefined);
      const key = '0123456789ab-py3.11-deadbeef';
      const appeared = venvsViewShows(api, `${key} appear`, (items) => items.some((i) => i.entry.key === key));
      mkdirSync(path.join(dir, key, 'bin'), { recursive: true }); // a venv with no marker: broken
      const items = await appeared;
      assert.match(String(items.find((i) => i.entry.key === key)!.description), /^broken: /);

      const declined = await vscode.commands.executeCommand<PruneVenvsResult>('modelopsDebugger.pruneVenvs', {
        confirm: false,
      });
      assert.ok(
        declined.listed.some((l) => l.key === key && /^broken: /.test(l.reason)),
        JSON.stringify(declined.listed),
      );
      assert.deepEqual(declined.removed, []);
      assert.ok(existsSync(path.join(dir, key)), 'declined: nothing removed');
      const pruned = await vscode.commands.executeCommand<PruneVenvsResult>('modelopsDebugger.pruneVenvs', {
        confirm: true,
      });
      assert.ok(pruned.removed.some((r) => r.key === key));
      assert.equal(existsSync(path.join(dir, key)), false);
      assert.ok(
        (await api.venvTree.getChildren()).every((i) => i.entry.valid),
        'the broken venvs are gone',
      );

      // one made and removed behind the view's back
      const other = 'ba9876543210-py3.11-0badf00d';
      const shown = venvsViewShows(api, `${other} appear`, (list) => list.some((i) => i.entry.key === other));
      mkdirSync(path.join(dir, other));
      await shown;
      const gone = venvsViewShows(api, `${other} go`, (list) => !list.some((i) => i.entry.key === other));
      rmSync(path.join(dir, other), { recursive: true });
      await gone;
    });
  });
}
