/**
 * Extension-host tests: mocha inside a real VS Code (code-server), with the real `vscode`
 * API. Started by test/vscode/run.mjs; bundled with `vscode` and `mocha` left external.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import Mocha from 'mocha';
import * as vscode from 'vscode';
import { DaskCluster } from '../dask/cluster';
import { registerCmdsTests } from './cmds.suite';
import { lineOf } from '../shared/marks';
import { registerFailTests } from './fail.suite';
import type { HandshakeReport } from '../../src/engine/handshake/handshake';
import type { ReplayReport } from '../../src/engine/handshake/replay';
import type { RecordedHandshake } from '../../src/extension/handshake/handshakeCommands';
import type { RunBundleArgs } from '../../src/extension/jobs/jobCommands';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import { ParamSetItem, TaskItem, type JobsNode } from '../../src/extension/jobs/jobsTree';
import { registerTreeTests } from './tree.suite';
import { registerLiveTests } from './live.suite';
import { registerResultsTests } from './results.suite';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { simRecord } from '../shared/simRecords';
import { registerCrashTests } from './crash.suite';
import { registerDebugTests } from './debug.suite';
import { registerCompareTests, registerTestingTests } from './testing.suite';
import { registerTimelineTests } from './timeline.suite';
import { registerClusterTests } from './cluster.suite';

const EXTENSION_ID = 'modelops-debugger.modelops-debugger';

/**
 * A one-task job of a scratch bundle named `bundle`, whose content (and so its venv) is its own:
 * a test that needs a job's venv builds it, whatever ran before it.
 */
async function jobOfOwnBundle(tag: string): Promise<{ bundle: string; result: JobRunResult }> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `modelops-vscode-${tag}-`));
  const bundle = path.join(scratch, 'bundle');
  mkdirSync(bundle);
  writeFileSync(
    path.join(bundle, 'wire.py'),
    `# ${tag}\ndef wire(entrypoint, params, seed):\n    return {"value": b"1"}\n`,
  );
  const job = { job_id: tag, bundle: 'bundle', entrypoint: 'm.m/x', parameter_sets: [{ x: 1 }], replicates: 1 };
  writeFileSync(path.join(scratch, 'job.json'), JSON.stringify(job));
  const file = vscode.Uri.file(path.join(scratch, 'job.json'));
  const result = await vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.runJobFile', file);
  return { bundle, result };
}

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 120_000, color: false, reporter: 'spec' });
  // MODELOPS_VSCODE_GREP=<regexp> (given to test/vscode/run.mjs) runs only the tests whose title matches
  if (process.env.MODELOPS_VSCODE_GREP) mocha.grep(new RegExp(process.env.MODELOPS_VSCODE_GREP));
  mocha.suite.emit('pre-require', globalThis, 'suite', mocha);

  describe('the extension in VS Code', () => {
    let root: string;
    let api: ModelOpsApi;

    before(async () => {
      const extension = vscode.extensions.getExtension<ModelOpsApi>(EXTENSION_ID);
      assert.ok(extension, `${EXTENSION_ID} is not loaded`);
      api = await extension.activate();
      root = extension.extensionPath;
      const results = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-results-'));
      await vscode.workspace
        .getConfiguration('modelopsDebugger')
        .update('resultsDir', results, vscode.ConfigurationTarget.Global);
    });

    registerCmdsTests(() => ({ api, root }));
    registerFailTests(() => ({ api, root }));
    registerTreeTests(() => ({ api, root }));
    registerResultsTests(() => ({ api, root }));
    registerCrashTests(() => ({ api, root }));
    registerDebugTests(() => ({ api, root }));
    registerTestingTests(() => ({ api, root }));
    registerCompareTests(() => ({ api, root }));
    registerTimelineTests(() => ({ api, root }));
    registerClusterTests(() => ({ api, root }));

    it('runs in VS Code 1.100', () => {
      assert.match(vscode.version, /^1\.100\./);
    });

    it('"ModelOps: Handshake Bundle…" handshakes a bundle in its venv and reports the stray print', async () => {
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'print-at-import'));
      const report = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
      assert.equal(report.ok, true, report.message);
      assert.equal(report.evidence.venv?.built !== undefined, true);
      assert.equal(report.warnings[0]?.kind, 'stdout-pollution');
      assert.equal(path.basename(report.warnings[0].location!.file), 'wire.py');
    });

    it('"Run Job File…": the Jobs tree shows the failed replicate, the diagnostic is on its line, and "Rerun Failed Tasks" after a fix clears it', async () => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-job-'));
      const bundle = path.join(scratch, 'bundle');
      mkdirSync(bundle);
      const raising =
        'import sys\n\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("computing x=%s\\n" % params["x"])\n    if params["x"] == 2.0:\n        raise ValueError("x must not be 2")\n    return {"value": str(params["x"]).encode()}\n';
      writeFileSync(path.join(bundle, 'wire.py'), raising);
      const jobFile = path.join(scratch, 'job.json');
      // written by hand: 1.0 stays a float, as the tree must show it
      writeFileSync(
        jobFile,
        '{"job_id": "editor-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 2.0}], "replicates": 3}',
      );

      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
      assert.equal(result.status, 'failed');
      assert.deepEqual(result.counts.sims, { total: 6, ok: 3, failed: 3, pending: 0 });

      const [jobItem] = api.jobsTree.getChildren() as JobsNode[];
      assert.equal(jobItem.label, 'editor-job');
      assert.match(String(jobItem.description), /^failed · 3\/6 ✓ 3 ✗/);
      const sets = api.jobsTree.getChildren(jobItem) as ParamSetItem[];
      assert.deepEqual(
        sets.map((s) => s.label),
        ['x=1.0', 'x=2.0'],
      );
      assert.match(String(sets[1].description), /^0\/3 ✓ 3 ✗ · agg skipped/);
      const tasks = api.jobsTree.getChildren(sets[1]) as TaskItem[];
      assert.equal(tasks[0].label, 'aggregation');
      assert.match(String(tasks[1].description), /^failed · task-exception/);
      assert.match(tasks[1].contextValue!, /failed;located;stderr;/);
      await vscode.commands.executeCommand('modelopsDebugger.showStderr', tasks[1]);
      // the replicate's own bytes of its runner's log, under a header naming the log
      assert.match(
        vscode.window.activeTextEditor!.document.getText(),
        /^stderr of sim-[0-9a-f]{64}-0\nfrom .*\/logs\/runner-\d+\.stderr\n[^]*computing x=2\.0/,
      );
      assert.ok(tasks[1].command, 'a failed task opens its line');

      const wire = vscode.Uri.file(path.join(bundle, 'wire.py'));
      const [diagnostic] = api.diagnostics.get(wire);
      assert.equal(diagnostic.range.start.line, 5, 'the raise is on line 6');
      assert.equal(diagnostic.message, 'task-exception: ValueError: x must not be 2 (3 times)');
      assert.deepEqual(
        vscode.languages.getDiagnostics(wire).map((d) => d.message),
        [diagnostic.message],
      );

      // the runners' stderr, live in the bundle's output channel, each line with its task and pid
      const lines = api.stderr.recent(bundle);
      const computing = lines.filter((l) => / computing x=2\.0$/.test(l));
      assert.equal(computing.length, 3, lines.join('\n'));
      assert.ok(
        computing.every((l) => /^\[sim-[0-9a-f]{8}-[0-2] · pid \d+\] computing x=2\.0$/.test(l)),
        computing.join('\n'),
      );

      const processes = api.processTree.processItems();
      const ofJob = processes.filter((p) => p.info.jobId === 'editor-job');
      assert.ok(ofJob.length >= 1);
      // six replicates; no aggregation request (the job has no targets: the summary is the engine's)
      assert.equal(
        ofJob.reduce((sum, p) => sum + p.info.uses, 0),
        6,
        "the job's six replicates ran on its warm processes",
      );
      assert.ok(ofJob.every((p) => p.info.endedAt !== undefined && /process;stderr;$/.test(p.contextValue!)));

      // fix the bundle, then "Rerun Failed Tasks" on the job: only the failed replicates run, and the diagnostic goes
      writeFileSync(path.join(bundle, 'wire.py'), raising.replace('raise ValueError', 'pass  # fixed: ValueError'));
      assert.match(jobItem.contextValue!, /rerunnable;/);
      const again = await vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.rerunFailed', jobItem);
      assert.equal(again.status, 'succeeded');
      assert.deepEqual(again.counts.sims, { total: 6, ok: 6, failed: 0, pending: 0 });
      assert.deepEqual(api.diagnostics.get(wire), []);
      const [rerunItem] = api.jobsTree.getChildren() as JobsNode[];
      assert.match(String(rerunItem.description), /^succeeded · 6\/6 ✓/);
    });

    it('the example job (20 × 200 with a target) through "Run Job File…": every parameter set aggregated in the tree', async () => {
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(root, 'examples', 'sir', 'job.json')),
      );
      assert.equal(result.status, 'succeeded');
      assert.deepEqual(result.counts.sims, { total: 4000, ok: 4000, failed: 0, pending: 0 });
      const jobItem = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.id === `job:${result.jobId}`)!;
      assert.match(String(jobItem.description), /^succeeded · 4000\/4000 ✓/);
      const sets = api.jobsTree.getChildren(jobItem) as ParamSetItem[];
      assert.equal(sets.length, 20);
      assert.ok(
        sets.every((set) => /^200\/200 ✓ · agg ok$/.test(String(set.description))),
        sets.map((s) => s.description).join('; '),
      );
      assert.equal(sets[0].label, 'beta=0.2, gamma=0.08');
    });

    it('Cancel Job stops a running job as interrupted; Resume Job finishes it without rerunning what was done', async () => {
      const running = vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(root, 'examples', 'sir', 'job.json')),
      );
      let jobItem: JobsNode | undefined;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const item = (api.jobsTree.getChildren() as JobsNode[])[0];
        const done =
          item &&
          [...(item as unknown as { job: { sets: Map<string, { ok: number }> } }).job.sets.values()].reduce(
            (sum, set) => sum + set.ok,
            0,
          );
        if (item && item.contextValue?.includes('cancellable;') && done > 300) {
          jobItem = item;
          break;
        }
        assert.ok(Date.now() < deadline, 'the job did not get going');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await vscode.commands.executeCommand('modelopsDebugger.cancelJob', jobItem);
      const interrupted = await running;
      assert.equal(interrupted.status, 'interrupted');
      assert.ok(interrupted.counts.sims.pending > 0);
      const stopped = (api.jobsTree.getChildren() as JobsNode[])[0];
      assert.match(stopped.contextValue!, /resumable;/);
      const resumed = await vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.resumeJob', stopped);
      assert.equal(resumed.status, 'succeeded');
      assert.deepEqual(resumed.counts.sims, { total: 4000, ok: 4000, failed: 0, pending: 0 });
      const [after] = api.jobsTree.getChildren() as JobsNode[];
      assert.match(String(after.description), /^succeeded · 4000\/4000 ✓/);
      const events = readFileSync(path.join(resumed.dir, 'events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { type: string });
      const resumedFrom = events.map((e) => e.type).lastIndexOf('job-start');
      assert.equal(
        events.slice(resumedFrom).filter((e) => e.type === 'task-done').length,
        interrupted.counts.sims.pending,
        'only what had no result ran',
      );
    });

    it('a bundle that needs another Python: python-mismatch on its requires-python line', async () => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-py-'));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(
        path.join(scratch, 'bundle', 'pyproject.toml'),
        '[project]\nname = "future"\nversion = "1"\nrequires-python = ">=3.99"\n',
      );
      writeFileSync(path.join(scratch, 'bundle', 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
      writeFileSync(
        path.join(scratch, 'job.json'),
        '{"job_id": "future-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1}], "replicates": 1}',
      );
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(scratch, 'job.json')),
      );
      assert.equal(result.status, 'aborted');
      const [diagnostic] = api.diagnostics.get(vscode.Uri.file(path.join(scratch, 'bundle', 'pyproject.toml')));
      assert.equal(diagnostic.range.start.line, 3);
      assert.match(diagnostic.message, /^python-mismatch: The bundle requires Python >=3\.99/);
      // the job row says why, from the job's own job-done event; a click opens the cause
      const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'future-job')!;
      assert.match(String(job.description), /^aborted: python-mismatch · 0\/1 ✓/);
      assert.match(
        String(job.tooltip),
        /python-mismatch: The bundle requires Python >=3\.99[^\n]*\nat .*pyproject\.toml:4$/,
      );
      assert.equal(job.command?.command, 'vscode.open');
      assert.equal((job.command?.arguments?.[0] as vscode.Uri).fsPath, path.join(scratch, 'bundle', 'pyproject.toml'));
      assert.equal((job.command?.arguments?.[1] as { selection: vscode.Range }).selection.start.line, 3);
      // no spinner anywhere: what never ran says so
      assert.notEqual((job.iconPath as vscode.ThemeIcon).id, 'sync~spin');
      const [set] = api.jobsTree.getChildren(job) as ParamSetItem[];
      assert.equal(set.description, '0/1 ✓ · 1 not run · agg not run');
      assert.equal((set.iconPath as vscode.ThemeIcon).id, 'circle-slash');
      const rows = (api.jobsTree.getChildren(set) as TaskItem[]).map(
        (t) => `${t.label}: ${t.description} (${(t.iconPath as vscode.ThemeIcon).id})`,
      );
      assert.equal(rows.length, 2, rows.join('; '));
      assert.equal(rows[0], 'aggregation: not run (circle-slash)');
      assert.match(rows[1], /^replicate 0: not run · seed \d+ \(circle-slash\)$/);
    });

    it('Venv Caches: the venvs the jobs built, a broken one shown with why, and deleted', async () => {
      const own = await jobOfOwnBundle('venv-caches');
      assert.equal(own.result.status, 'succeeded');
      const items = await api.venvTree.getChildren();
      assert.ok(items.length >= 1, 'the job built its venv');
      const item = items.find((i) => i.entry.bundle === own.bundle)!;
      assert.ok(item, items.map((i) => i.entry.bundle).join(', '));
      assert.match(item.contextValue!, /venv;valid;deletable;/);
      assert.match((item.tooltip as vscode.MarkdownString).value, /✔ interpreter identity:/);
      assert.match(item.contextValue!, /rebuildable;/);
      const rebuilt = await vscode.commands.executeCommand<string>('modelopsDebugger.rebuildVenv', item);
      assert.equal(rebuilt, item.entry.key);
      const again = (await api.venvTree.getChildren()).find((i) => i.entry.key === item.entry.key)!;
      assert.equal(again.entry.valid, true);
      assert.notEqual(again.entry.createdAt, item.entry.createdAt, 'built again');
      rmSync(path.join(item.entry.path, 'bin', 'python'));
      const broken = (await api.venvTree.getChildren()).find((i) => i.entry.key === item.entry.key)!;
      assert.equal(broken.description, 'broken: interpreter: bin/python is missing');
      assert.match(broken.contextValue!, /venv;broken;/);
      await vscode.commands.executeCommand('modelopsDebugger.deleteVenv', broken);
      assert.equal(
        (await api.venvTree.getChildren()).some((i) => i.entry.key === item.entry.key),
        false,
      );
    });

    it('"Run Bundle…" with a parameters file: the job runs and its sets are in the tree', async () => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-bundle-'));
      mkdirSync(path.join(scratch, 'bundle'));
      writeFileSync(
        path.join(scratch, 'bundle', 'wire.py'),
        'def wire(entrypoint, params, seed):\n    return {"y": str(params["a"] * 2).encode()}\n',
      );
      writeFileSync(path.join(scratch, 'params.json'), '[{"a": 1}, {"a": 2.5}, {"a": -3}]');
      const args: RunBundleArgs = {
        paramsFile: path.join(scratch, 'params.json'),
        replicates: 4,
        entrypoint: 'm.m/x',
        jobId: 'bundle-run',
      };
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runBundle',
        vscode.Uri.file(path.join(scratch, 'bundle')),
        args,
      );
      assert.equal(result.status, 'succeeded');
      assert.deepEqual(result.counts.sims, { total: 12, ok: 12, failed: 0, pending: 0 });
      const jobItem = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'bundle-run')!;
      const sets = api.jobsTree.getChildren(jobItem) as ParamSetItem[];
      assert.deepEqual(
        sets.map((set) => `${set.label} ${set.description}`),
        ['a=1 4/4 ✓ · agg ok', 'a=2.5 4/4 ✓ · agg ok', 'a=-3 4/4 ✓ · agg ok'],
      );
      const record = simRecord(result.dir, sets[1].set.paramId, 0) as { outputs: { y: { inline: string } } };
      assert.equal(Buffer.from(record.outputs.y.inline, 'base64').toString(), '5.0');
    });

    it('"Replay Handshake…" with a production runner script: the verdict, and the conversation shown and saved; replaying a saved one', async () => {
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'print-at-import'));
      const script = path.join(root, 'test', 'fixtures', 'runners', 'prod_style_runner.py');
      const recorded = await vscode.commands.executeCommand<RecordedHandshake>(
        'modelopsDebugger.replayHandshake',
        bundle,
        { runner: 'script', script },
      );
      assert.equal(recorded.report.ok, false);
      assert.equal(recorded.report.kind, 'stdout-pollution');
      // the stray bytes, shown where they came (they may arrive in more than one read)
      assert.match(recorded.text!, /← stdout that is not a frame: "Loading model weights\.\.\./);
      assert.match(recorded.text!, /→ #1 ready/);
      assert.equal(vscode.window.activeTextEditor!.document.getText(), recorded.text);
      assert.ok(readFileSync(recorded.transcriptFile!, 'utf8').includes('"entries"'));

      const healthy = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'healthy-wire-py'));
      const ours = await vscode.commands.executeCommand<RecordedHandshake>(
        'modelopsDebugger.replayHandshake',
        healthy,
        { runner: 'ours' },
      );
      assert.equal(ours.report.ok, true, ours.report.message);
      assert.match(ours.text!, /← #1 result \{/);
      const replayed = await vscode.commands.executeCommand<ReplayReport>('modelopsDebugger.replayHandshake', healthy, {
        transcript: ours.transcriptFile!,
      });
      assert.equal(replayed.same, true, replayed.message);
      assert.match(vscode.window.activeTextEditor!.document.getText(), /^✔ /);
    });

    it('the "ModelOps Protocol" trace follows modelopsDebugger.trace; "Force Fresh Venv for Next Run" applies to one run', async () => {
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'healthy-wire-py'));
      const before = api.trace.recent.length;
      await vscode.commands.executeCommand('modelopsDebugger.forceFreshVenv');
      await config.update('trace', 'messages', vscode.ConfigurationTarget.Global);
      try {
        const fresh = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
        assert.equal(fresh.evidence.venv?.fresh, true);
        const lines = api.trace.recent.slice(before);
        assert.ok(
          lines.some((line) =>
            new RegExp(`^\\[pid ${fresh.evidence.ready!.pid}\\] \\+[\\d.]+ ms → #1 ready`).test(line),
          ),
          lines.join('\n'),
        );
        assert.ok(
          lines.some((line) => /← #1 result/.test(line)),
          lines.join('\n'),
        );
      } finally {
        await config.update('trace', undefined, vscode.ConfigurationTarget.Global);
      }
      const after = api.trace.recent.length;
      const cached = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
      assert.equal(cached.evidence.venv?.fresh, false, 'only the next run is fresh');
      assert.equal(api.trace.recent.length, after, 'tracing is off again');
    });

    it('an exception three frames deep: the diagnostic on the raise, the calls that led there as related information', async () => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-deep-'));
      const bundle = path.join(root, 'test', 'fixtures', 'bundles', 'deep-exception');
      writeFileSync(
        path.join(scratch, 'job.json'),
        JSON.stringify({
          job_id: 'deep-job',
          bundle,
          entrypoint: 'm.m/x',
          parameter_sets: [{ beta: -1.0 }],
          replicates: 2,
        }),
      );
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(scratch, 'job.json')),
      );
      assert.equal(result.status, 'failed');
      const [diagnostic] = api.diagnostics.get(vscode.Uri.file(path.join(bundle, 'model', 'util.py')));
      assert.equal(diagnostic.range.start.line + 1, lineOf(path.join(bundle, 'model', 'util.py'), 'deep-raise'));
      assert.equal(diagnostic.message, 'task-exception: ValueError: beta must be positive, got -1.0 (2 times)');
      const related = (diagnostic.relatedInformation ?? []).map(
        (r) => `${path.relative(bundle, r.location.uri.fsPath)}:${r.location.range.start.line + 1} ${r.message}`,
      );
      assert.deepEqual(related, [
        `wire.py:${lineOf(path.join(bundle, 'wire.py'), 'deep-call-1')} called from wire()`,
        `model/core.py:${lineOf(path.join(bundle, 'model', 'core.py'), 'deep-call-2')} called from run_model()`,
      ]);
    });

    it('a simulation that leaves a process running: its replicates say so in the Jobs tree, and a warning diagnostic is on the line that started it', async () => {
      const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-lingering-'));
      const bundle = path.join(scratch, 'bundle');
      mkdirSync(bundle);
      const wireFile = path.join(bundle, 'wire.py');
      writeFileSync(
        wireFile,
        'import subprocess\n\n\ndef wire(entrypoint, params, seed):\n    subprocess.Popen(["sleep", "3620"])  # MARK:popen\n    return {"value": b"1"}\n',
      );
      writeFileSync(
        path.join(scratch, 'job.json'),
        JSON.stringify({
          job_id: 'lingering-job',
          bundle: 'bundle',
          entrypoint: 'm.m/x',
          parameter_sets: [{ x: 1.0 }],
          replicates: 2,
        }),
      );
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(path.join(scratch, 'job.json')),
      );
      assert.equal(result.status, 'succeeded');
      const jobItem = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'lingering-job')!;
      const [set] = api.jobsTree.getChildren(jobItem) as ParamSetItem[];
      const replicates = (api.jobsTree.getChildren(set) as TaskItem[]).slice(1);
      assert.equal(replicates.length, 2);
      for (const item of replicates) {
        assert.match(String(item.description), /^ok · ⚠ left 1 process running · seed \d+ · \d+ ms · pid \d+$/);
        const tooltip = (item.tooltip as vscode.MarkdownString).value;
        assert.match(
          tooltip,
          /⚠ lingering-descendants: sim-[0-9a-f]{64}-[01] left 1 process running after it finished: pid \d+ `sleep 3620`/,
        );
        assert.ok(tooltip.includes(`${wireFile}:${lineOf(wireFile, 'popen')}`), tooltip);
        // a click opens the line that started the process
        assert.equal(item.command?.command, 'vscode.open');
        assert.equal((item.command?.arguments?.[0] as vscode.Uri).fsPath, wireFile);
        assert.equal(
          (item.command?.arguments?.[1] as { selection: vscode.Range }).selection.start.line + 1,
          lineOf(wireFile, 'popen'),
        );
      }
      const [diagnostic] = api.diagnostics.get(vscode.Uri.file(wireFile));
      assert.equal(diagnostic.range.start.line + 1, lineOf(wireFile, 'popen'));
      assert.equal(diagnostic.severity, vscode.DiagnosticSeverity.Warning);
      assert.equal(diagnostic.code, 'lingering-descendants');
      assert.equal(
        diagnostic.message,
        "lingering-descendants: a process started here (`sleep 3620`) was still running after its task; it was ended with its runner's process group (2 times)",
      );
    });

    it('"Connect to Dask Scheduler…" checks a real scheduler, then jobs run on its workers with the same tree and diagnostics; "Run Jobs Locally" switches back', async function () {
      this.timeout(240_000);
      const cluster = await DaskCluster.start({
        workers: 2,
        env: {
          MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR ?? path.join(os.tmpdir(), 'modelops-vscode-dask-venvs'),
        },
      });
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      try {
        const refused = await vscode.commands.executeCommand<unknown>(
          'modelopsDebugger.connectDask',
          'tcp://127.0.0.1:9',
        );
        assert.equal(refused, undefined, 'nobody listens on port 9');
        assert.notEqual(config.get('backend'), 'dask', 'a scheduler that did not answer is not used');

        const connected = await vscode.commands.executeCommand<{ scheduler: string; workers: string[] }>(
          'modelopsDebugger.connectDask',
          cluster.address,
        );
        assert.equal(connected.scheduler, cluster.address);
        assert.equal(connected.workers.length, 2);
        assert.equal(vscode.workspace.getConfiguration('modelopsDebugger').get('backend'), 'dask');

        const scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-dask-'));
        mkdirSync(path.join(scratch, 'bundle'));
        writeFileSync(
          path.join(scratch, 'bundle', 'wire.py'),
          'import sys\n\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("on dask x=%s\\n" % params["x"])\n    if params["x"] == 2.0:\n        raise ValueError("x must not be 2")  # MARK:raise\n    return {"value": str(params["x"]).encode()}\n',
        );
        writeFileSync(
          path.join(scratch, 'job.json'),
          '{"job_id": "dask-job", "bundle": "bundle", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}, {"x": 2.0}], "replicates": 3}',
        );
        const result = await vscode.commands.executeCommand<JobRunResult>(
          'modelopsDebugger.runJobFile',
          vscode.Uri.file(path.join(scratch, 'job.json')),
        );
        assert.equal(result.status, 'failed');
        assert.deepEqual(result.counts.sims, { total: 6, ok: 3, failed: 3, pending: 0 });
        const manifest = JSON.parse(readFileSync(path.join(result.dir, 'manifest.json'), 'utf8')) as {
          options: { backend: string };
        };
        assert.equal(manifest.options.backend, 'dask');

        const jobItem = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'dask-job')!;
        const [, failedSet] = api.jobsTree.getChildren(jobItem) as ParamSetItem[];
        const tasks = api.jobsTree.getChildren(failedSet) as TaskItem[];
        const workers = new Set(connected.workers);
        assert.ok(
          tasks.slice(1).every((task) => task.task.worker !== undefined && workers.has(task.task.worker)),
          tasks.map((t) => t.description).join('; '),
        );
        assert.match(
          String(tasks[1].description),
          /^failed · task-exception · .* · pid \d+ on tcp:\/\/127\.0\.0\.1:\d+$/,
        );
        const wire = path.join(scratch, 'bundle', 'wire.py');
        const [diagnostic] = api.diagnostics.get(vscode.Uri.file(wire));
        assert.equal(diagnostic.range.start.line + 1, lineOf(wire, 'raise'));
        assert.equal(diagnostic.message, 'task-exception: ValueError: x must not be 2 (3 times)');
        // the runner's stderr, kept per task, opens from the failed replicate
        await vscode.commands.executeCommand('modelopsDebugger.showStderr', tasks[1]);
        assert.match(
          vscode.window.activeTextEditor!.document.fileName,
          /logs\/dask-127\.0\.0\.1_\d+-runner-\d+\.stderr$/,
        );
        assert.match(vscode.window.activeTextEditor!.document.getText(), /on dask x=2\.0/);
        // and streamed into the bundle's channel, with the task
        assert.ok(
          api.stderr
            .recent(path.join(scratch, 'bundle'))
            .some((line) => /^\[sim-[0-9a-f]{8}-[0-2] · pid \d+\] on dask x=2\.0$/.test(line)),
        );
        // runners on workers cannot be signalled from here: no stacks or kill for them
        assert.ok(
          api.processTree
            .processItems()
            .filter((p) => p.info.worker)
            .every((p) => !/alive;/.test(p.contextValue!)),
        );
      } finally {
        await vscode.commands.executeCommand('modelopsDebugger.useLocal');
        await cluster.stop();
      }
      assert.equal(vscode.workspace.getConfiguration('modelopsDebugger').get('backend'), 'local');
    });

    it('a bundle whose import fails: the kind and the line', async () => {
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'import-error'));
      const report = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
      assert.equal(report.kind, 'runner-exited-before-ready');
      assert.equal(path.basename(report.location!.file), 'model_helpers.py');
    });

    registerLiveTests(() => ({ api, root }));
  });

  // MODELOPS_VSCODE_LIST=1 prints every test's full title (for test/vscode/each-alone.mjs) and runs none
  if (process.env.MODELOPS_VSCODE_LIST) {
    const list = (suite: Mocha.Suite): string[] => [
      ...suite.tests.map((t) => t.fullTitle()),
      ...suite.suites.flatMap(list),
    ];
    for (const title of list(mocha.suite)) console.log(`TEST\t${title}`);
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} failed`)) : resolve()));
  });
}
