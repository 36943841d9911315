/**
 * Issue 11, "every failure on every surface": handshakes publish diagnostics as jobs do and say
 * "ok with N warnings"; a job refused before it starts (broken pyproject.toml, bad job file,
 * python-mismatch, no interpreter) is a job row with its cause, a diagnostic at its line and a
 * notification whose "Open" goes there. Registered inside suite.ts's main describe.
 */
import * as assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { lineOf } from '../shared/marks';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { RecordedHandshake } from '../../src/extension/handshake/handshakeCommands';
import type { HandshakeReport } from '../../src/engine/handshake/handshake';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobsNode } from '../../src/extension/jobs/jobsTree';
import type { Notice } from '../../src/extension/util/notices';

export function registerFailTests(ctx: () => { api: ModelOpsApi; root: string }): void {
  const scratch = () => mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-fail-'));
  const lastNotice = (): Notice => {
    const notice = ctx().api.notices.recent.at(-1);
    assert.ok(notice, 'a notification was shown');
    return notice;
  };
  const jobRow = (label: string): JobsNode | undefined =>
    (ctx().api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === label);
  /** What the editor shows after "Open": the file and the 0-based line of the cursor. */
  const opened = () => ({
    file: vscode.window.activeTextEditor?.document.uri.fsPath,
    line: vscode.window.activeTextEditor?.selection.active.line,
  });
  const writeJob = (dir: string, jobId: string, bundle = 'bundle') => {
    const file = path.join(dir, 'job.json');
    writeFileSync(
      file,
      `{"job_id": "${jobId}", "bundle": "${bundle}", "entrypoint": "m.m/x", "parameter_sets": [{"x": 1.0}], "replicates": 2}\n`,
    );
    return file;
  };

  describe('failures on every surface', () => {
    it('"Handshake Bundle…" with a stray print: the stdout-pollution warning in Problems as a job puts it, "ok with 1 warning" with Show; a clean handshake clears it', async () => {
      const { api, root } = ctx();
      const dir = scratch();
      const bundle = path.join(dir, 'bundle');
      cpSync(path.join(root, 'test', 'fixtures', 'bundles', 'print-at-import'), bundle, { recursive: true });
      const wire = vscode.Uri.file(path.join(bundle, 'wire.py'));
      const printLine = lineOf(wire.fsPath, 'print-at-import') - 1;

      // a job on the bundle first: the shape its warning takes in Problems
      const job = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(writeJob(dir, 'polluting-job')),
      );
      assert.equal(job.status, 'succeeded');
      const [fromJob] = api.diagnostics.get(wire);
      assert.ok(fromJob, 'the job put its warning in Problems');

      const report = await vscode.commands.executeCommand<HandshakeReport>(
        'modelopsDebugger.handshake',
        vscode.Uri.file(bundle),
      );
      assert.equal(report.ok, true, report.message);
      const diagnostics = api.diagnostics.get(wire);
      assert.equal(diagnostics.length, 1, diagnostics.map((d) => d.message).join('\n'));
      const [warning] = diagnostics;
      assert.equal(warning.range.start.line, printLine);
      assert.equal(warning.severity, vscode.DiagnosticSeverity.Warning);
      assert.match(
        warning.message,
        /^print\(\)\/sys\.stdout at import wrote "Loading model weights\.\.\.\\n" to stdout; this runner absorbed it/,
      );
      // as the job's: same collection, line, severity, code and source
      assert.deepEqual(
        [warning.range.start.line, warning.severity, warning.code, warning.source],
        [fromJob.range.start.line, fromJob.severity, fromJob.code, fromJob.source],
      );
      assert.deepEqual(
        vscode.languages.getDiagnostics(wire).map((d) => d.message),
        [warning.message],
      );

      const notice = lastNotice();
      assert.equal(notice.severity, 'warning');
      assert.match(notice.text, /^ModelOps: Handshake ok with 1 warning in [\d.]+ ms: /);
      assert.deepEqual(notice.actions, ['Show']);
      await notice.choose('Show');
      const shown = vscode.window.activeTextEditor!.document.getText();
      assert.match(shown, /^✔ Handshake ok with 1 warning/);
      assert.match(shown, /\n⚠ stdout-pollution at .*wire\.py:\d+ in <module>\(\)\n/);

      // the print removed: a clean handshake, nothing left in Problems
      writeFileSync(
        wire.fsPath,
        readFileSync(wire.fsPath, 'utf8').replace('print("Loading model weights...")', 'pass'),
      );
      const clean = await vscode.commands.executeCommand<HandshakeReport>(
        'modelopsDebugger.handshake',
        vscode.Uri.file(bundle),
      );
      assert.match(clean.message, /^Handshake ok in /);
      assert.deepEqual(api.diagnostics.get(wire), []);
      assert.equal(lastNotice().severity, 'info');
      assert.deepEqual(lastNotice().actions, []);
    });

    it('"Replay Handshake…" with our runner publishes the same way; a failed handshake is an error at its line with Open', async () => {
      const { api, root } = ctx();
      const polluting = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'print-at-import'));
      const recorded = await vscode.commands.executeCommand<RecordedHandshake>(
        'modelopsDebugger.replayHandshake',
        polluting,
        { runner: 'ours' },
      );
      assert.equal(recorded.report.warnings.length, 1);
      const wire = path.join(polluting.fsPath, 'wire.py');
      assert.deepEqual(
        api.diagnostics.get(vscode.Uri.file(wire)).map((d) => [d.range.start.line, d.code]),
        [[lineOf(wire, 'print-at-import') - 1, 'stdout-pollution']],
      );
      assert.match(
        api.notices.recent.filter((n) => n.severity === 'warning').at(-1)!.text,
        /^ModelOps: Handshake ok with 1 warning/,
      );

      const broken = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'import-error'));
      const report = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', broken);
      assert.equal(report.ok, false);
      const helpers = path.join(broken.fsPath, 'model_helpers.py');
      const [error] = api.diagnostics.get(vscode.Uri.file(helpers));
      assert.equal(error.severity, vscode.DiagnosticSeverity.Error);
      assert.equal(error.range.start.line, lineOf(helpers, 'import-error') - 1);
      assert.match(error.message, /^runner-exited-before-ready: .*ModuleNotFoundError/);
      const notice = lastNotice();
      assert.equal(notice.severity, 'error');
      assert.match(notice.text, /^ModelOps: runner-exited-before-ready: /);
      assert.deepEqual(notice.actions, ['Open', 'Show']);
      await notice.choose('Open');
      assert.deepEqual(opened(), { file: helpers, line: lineOf(helpers, 'import-error') - 1 });
    });

    it('a pyproject.toml that is not TOML: a job row "aborted: bad-input" with the cause, a diagnostic at the TOML line, a notification whose Open goes there; fixed, the job runs and all of it goes', async () => {
      const { api } = ctx();
      const dir = scratch();
      mkdirSync(path.join(dir, 'bundle'));
      const pyproject = path.join(dir, 'bundle', 'pyproject.toml');
      writeFileSync(pyproject, '[project]\nname = "broken"\nversion = 1.0.0\n');
      writeFileSync(
        path.join(dir, 'bundle', 'wire.py'),
        'def wire(entrypoint, params, seed):\n    return {"x": b"1"}\n',
      );
      const jobFile = writeJob(dir, 'broken-toml-job');

      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
      assert.equal(result.status, 'aborted');
      assert.equal(result.failure?.kind, 'bad-input');
      const row = jobRow('broken-toml-job');
      assert.ok(row, 'the refused job is in the Jobs tree');
      assert.equal(row.description, 'aborted: bad-input · not started');
      assert.match(
        String(row.tooltip),
        /bad-input: .*pyproject\.toml is not valid TOML: .*\(line 3, column \d+\)\.\nat .*pyproject\.toml:3$/,
      );
      assert.equal(row.collapsibleState, vscode.TreeItemCollapsibleState.None);
      assert.equal(row.contextValue, 'job;');
      assert.equal(row.command?.command, 'vscode.open');
      assert.equal((row.command?.arguments?.[0] as vscode.Uri).fsPath, pyproject);
      assert.equal((row.command?.arguments?.[1] as { selection: vscode.Range }).selection.start.line, 2);

      const [diagnostic] = api.diagnostics.get(vscode.Uri.file(pyproject));
      assert.equal(diagnostic.range.start.line, 2);
      assert.equal(diagnostic.code, 'bad-input');
      assert.match(diagnostic.message, /^bad-input: .*is not valid TOML/);

      const notice = lastNotice();
      assert.equal(notice.severity, 'error');
      assert.match(notice.text, /^ModelOps: job broken-toml-job did not start: bad-input: .*not valid TOML/);
      assert.deepEqual(notice.actions, ['Open', 'Show Output']);
      await notice.choose('Open');
      assert.deepEqual(opened(), { file: pyproject, line: 2 });

      // fixed: the refusal's row and diagnostic go, the job runs
      writeFileSync(pyproject, '[project]\nname = "broken"\nversion = "1.0.0"\n');
      const again = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
      assert.equal(again.status, 'succeeded');
      assert.deepEqual(api.diagnostics.get(vscode.Uri.file(pyproject)), []);
      const rows = (api.jobsTree.getChildren() as JobsNode[]).filter((item) => item.label === 'broken-toml-job');
      assert.equal(rows.length, 1);
      assert.match(String(rows[0].description), /^succeeded · 2\/2 ✓/);
    });

    it("a job file that is refused: a row named after the file, the diagnostic on the field's line", async () => {
      const { api } = ctx();
      const dir = scratch();
      mkdirSync(path.join(dir, 'bundle'));
      const jobFile = path.join(dir, 'bad-job.json');
      writeFileSync(
        jobFile,
        '{\n  "bundle": "bundle",\n  "entrypoint": "m.m/x",\n  "replicates": 0,\n  "parameter_sets": [{"x": 1}]\n}\n',
      );
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(jobFile),
      );
      assert.equal(result.status, 'aborted');
      const row = jobRow('bad-job.json');
      assert.ok(row);
      assert.equal(row.description, 'aborted: bad-input · not started');
      assert.match(String(row.tooltip), /replicates must be a whole number/);
      const [diagnostic] = api.diagnostics.get(vscode.Uri.file(jobFile));
      assert.equal(diagnostic.range.start.line, 3);
      assert.match(
        lastNotice().text,
        /^ModelOps: job bad-job\.json did not start: bad-input: .*replicates must be a whole number/,
      );
      assert.deepEqual(lastNotice().actions, ['Open', 'Show Output']);
    });

    it("python-mismatch: the aborted job's notification opens the requires-python line", async () => {
      const dir = scratch();
      mkdirSync(path.join(dir, 'bundle'));
      const pyproject = path.join(dir, 'bundle', 'pyproject.toml');
      writeFileSync(pyproject, '[project]\nname = "future"\nversion = "1"\nrequires-python = ">=3.99"\n');
      writeFileSync(path.join(dir, 'bundle', 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
      const result = await vscode.commands.executeCommand<JobRunResult>(
        'modelopsDebugger.runJobFile',
        vscode.Uri.file(writeJob(dir, 'mismatch-job')),
      );
      assert.equal(result.status, 'aborted');
      assert.equal(result.failure?.kind, 'python-mismatch');
      assert.match(String(jobRow('mismatch-job')?.description), /^aborted: python-mismatch/);
      const notice = lastNotice();
      assert.match(
        notice.text,
        /^ModelOps: job mismatch-job aborted: python-mismatch: The bundle requires Python >=3\.99/,
      );
      assert.deepEqual(notice.actions, ['Open', 'Show Output']);
      await notice.choose('Open');
      assert.deepEqual(opened(), { file: pyproject, line: 3 });
    });

    it('deps-install-failed with the package index out of reach: the row, the diagnostic at the requirement, and the cause (the index could not be reached)', async () => {
      const { api } = ctx();
      const dir = scratch();
      mkdirSync(path.join(dir, 'bundle'));
      const pyproject = path.join(dir, 'bundle', 'pyproject.toml');
      writeFileSync(
        pyproject,
        '[project]\nname = "needs-dep"\nversion = "1"\ndependencies = [\n    "mo-unreachable-dep==1.0",\n]\n',
      );
      writeFileSync(path.join(dir, 'bundle', 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
      // a port nothing listens on: taken, then let go
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as net.AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      await config.update(
        'extraInstallArgs',
        ['--index-url', `http://127.0.0.1:${port}/simple`, '--retries', '0', '--timeout', '2'],
        vscode.ConfigurationTarget.Global,
      );
      try {
        const result = await vscode.commands.executeCommand<JobRunResult>(
          'modelopsDebugger.runJobFile',
          vscode.Uri.file(writeJob(dir, 'offline-job')),
        );
        assert.equal(result.status, 'aborted');
        assert.equal(result.failure?.kind, 'deps-install-failed');
        assert.match(String(jobRow('offline-job')?.description), /^aborted: deps-install-failed/);
        const cause = new RegExp(
          `^deps-install-failed: Installing mo-unreachable-dep==1\\.0 failed: the package index http://127\\.0\\.0\\.1:${port}/simple could not be reached \\(connection refused\\)`,
        );
        const [diagnostic] = api.diagnostics.get(vscode.Uri.file(pyproject));
        assert.equal(diagnostic?.range.start.line, 4);
        assert.match(diagnostic.message, cause);
        assert.match(
          lastNotice().text,
          /^ModelOps: job offline-job aborted: deps-install-failed: .*could not be reached/,
        );
        assert.deepEqual(lastNotice().actions, ['Open', 'Show Output']);
      } finally {
        await config.update('extraInstallArgs', undefined, vscode.ConfigurationTarget.Global);
      }
    });

    it('an interpreter that does not exist: the job row says interpreter-not-found, and the notification offers the setting', async () => {
      const dir = scratch();
      mkdirSync(path.join(dir, 'bundle'));
      writeFileSync(path.join(dir, 'bundle', 'wire.py'), 'def wire(entrypoint, params, seed):\n    return {}\n');
      const config = vscode.workspace.getConfiguration('modelopsDebugger');
      await config.update('pythonPath', path.join(dir, 'no-such-python3'), vscode.ConfigurationTarget.Global);
      try {
        const result = await vscode.commands.executeCommand<JobRunResult>(
          'modelopsDebugger.runJobFile',
          vscode.Uri.file(writeJob(dir, 'no-python-job')),
        );
        assert.equal(result.status, 'aborted');
        assert.equal(result.failure?.kind, 'interpreter-not-found');
        const row = jobRow('no-python-job');
        assert.match(String(row?.description), /^aborted: interpreter-not-found/);
        assert.match(String(row?.tooltip), /interpreter-not-found: .*no-such-python3/);
        assert.match(lastNotice().text, /^ModelOps: job no-python-job aborted: interpreter-not-found: /);
        assert.deepEqual(lastNotice().actions, ['Open Settings', 'Show Output']);
      } finally {
        await config.update('pythonPath', undefined, vscode.ConfigurationTarget.Global);
      }
    });
  });
}
