/**
 * Extension-host tests of crashes, a task's stderr, stray stdout and the Warm Processes view,
 * in a real VS Code, with real runners (the crash-kinds fixture).
 */
import * as assert from 'node:assert/strict';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { lineOf } from '../shared/marks';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { JobRunResult } from '../../src/extension/jobs/jobRunner';
import type { JobItem, ParamSetItem, TaskItem, JobsNode } from '../../src/extension/jobs/jobsTree';
import type { ProcessItem, ProcessJobItem } from '../../src/extension/processes/processTree';

export function registerCrashTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('crashes, stderr and warm processes', () => {
    let api: ModelOpsApi;
    let bundle: string;
    let wire: string;
    let scratch: string;
    let crashes: JobRunResult;

    before(async () => {
      ({ api } = context());
      scratch = mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-crash-'));
      bundle = path.join(scratch, 'crash-kinds');
      cpSync(path.join(context().root, 'test', 'fixtures', 'bundles', 'crash-kinds'), bundle, { recursive: true });
      wire = path.join(bundle, 'wire.py');
      await vscode.workspace
        .getConfiguration('modelopsDebugger')
        .update('retries', 0, vscode.ConfigurationTarget.Global);
      // one job for the tests below (each can run alone): every way the fixture misbehaves
      crashes = await runJob('editor-crashes', ['ok', 'segv', 'exit17', 'thread-print', 'child-echo']);
    });

    after(async () => {
      await vscode.workspace
        .getConfiguration('modelopsDebugger')
        .update('retries', undefined, vscode.ConfigurationTarget.Global);
    });

    const runJob = (jobId: string, modes: string[]) => {
      const jobFile = path.join(scratch, `${jobId}.json`);
      writeFileSync(
        jobFile,
        JSON.stringify({
          job_id: jobId,
          bundle: 'crash-kinds',
          entrypoint: 'a/b',
          parameter_sets: modes.map((mode) => ({ mode })),
          replicates: 1,
        }),
      );
      return vscode.commands.executeCommand<JobRunResult>('modelopsDebugger.runJobFile', vscode.Uri.file(jobFile));
    };
    const replicateOf = (jobId: string, mode: string): TaskItem => {
      const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === jobId)!;
      const set = (api.jobsTree.getChildren(job) as ParamSetItem[]).find(
        (item) => item.set.params.mode === JSON.stringify(mode),
      )!;
      return (api.jobsTree.getChildren(set) as TaskItem[])[1];
    };
    const stderrOf = async (task: TaskItem) => {
      await vscode.commands.executeCommand('modelopsDebugger.showStderr', task);
      return vscode.window.activeTextEditor!.document.getText();
    };

    it('a crashed replicate: its row and tooltip say the signal or exit code, the phase, the stack and the last stderr lines; a click and a diagnostic go to the line', async () => {
      assert.equal(crashes.status, 'failed');
      assert.deepEqual(crashes.counts.sims, { total: 5, ok: 3, failed: 2, pending: 0 });

      const segv = replicateOf('editor-crashes', 'segv');
      assert.match(String(segv.description), /^failed · process-crashed · SIGSEGV · /);
      const tooltip = (segv.tooltip as vscode.MarkdownString).value;
      assert.match(
        tooltip,
        /process-crashed: Runner was killed by SIGSEGV \(signal 11\).* during the simulation at crash_in_native\(\)/,
      );
      assert.match(tooltip, /\*\*killed by SIGSEGV\*\* · during the simulation \(execute request\)/);
      assert.match(tooltip, new RegExp(`- \`crash_in_native\\(\\)\` \\[\`wire\\.py:${lineOf(wire, 'segv')}\`\\]`));
      assert.match(tooltip, new RegExp(`- \`wire\\(\\)\` \\[\`wire\\.py:${lineOf(wire, 'segv-call')}\`\\]`));
      assert.match(
        tooltip,
        /last stderr lines \(of \d+ bytes this task wrote\):\n```text\ncomputing mode=segv seed=\d+\n```/,
      );
      assert.equal((segv.command?.arguments?.[0] as vscode.Uri).fsPath, wire);
      assert.equal(
        (segv.command?.arguments?.[1] as { selection: vscode.Range }).selection.start.line,
        lineOf(wire, 'segv') - 1,
      );

      const exit17 = replicateOf('editor-crashes', 'exit17');
      assert.match(String(exit17.description), /^failed · process-crashed · exit 17 · /);
      assert.match(
        (exit17.tooltip as vscode.MarkdownString).value,
        /the bundle called os\._exit\(17\) in wire\(\)[\s\S]*\*\*exit code 17\*\* · during the simulation/,
      );

      const problems = vscode.languages.getDiagnostics(vscode.Uri.file(wire));
      const at = (marker: string) => problems.find((d) => d.range.start.line === lineOf(wire, marker) - 1);
      assert.match(
        at('segv')?.message ?? '',
        /^process-crashed: Runner was killed by SIGSEGV/,
        problems.map((d) => d.message).join('\n'),
      );
      assert.match(
        at('exit17')?.message ?? '',
        /^process-crashed: Runner exited with code 17 during the simulation: the bundle called os\._exit\(17\)/,
      );
    });

    it("Show Stderr on a replicate opens the bytes of its runner's log that it wrote, never an empty file", async () => {
      const segv = replicateOf('editor-crashes', 'segv');
      const text = await stderrOf(segv);
      assert.match(
        text,
        /^stderr of sim-[0-9a-f]{64}-0\nfrom .*\/logs\/runner-\d+\.stderr\nbytes \d+–\d+ \(\d+ bytes\) of \d+\n/,
      );
      assert.equal(vscode.window.activeTextEditor!.document.uri.scheme, 'modelops-report');
      const computing = text.split('\n').filter((line) => line.startsWith('computing '));
      assert.equal(computing.length, 1, computing.join('; '));
      assert.match(computing[0], /^computing mode=segv seed=\d+$/);
      assert.match(text, /Fatal Python error: Segmentation fault/, 'the fault dump is part of what the task left');
      for (const mode of ['ok', 'child-echo']) {
        const own = (await stderrOf(replicateOf('editor-crashes', mode)))
          .split('\n')
          .filter((line) => line.startsWith('computing '));
        assert.equal(own.length, 1, `${mode}: ${own.join('; ')}`);
        assert.match(own[0], new RegExp(`^computing mode=${mode} `));
      }
    });

    it("a background thread's print and a child's echo after ready: stdout-pollution warnings on their replicate and in Problems, a warning line in the output channel", async () => {
      const thread = replicateOf('editor-crashes', 'thread-print');
      assert.match(String(thread.description), /^ok · ⚠ stdout · /);
      assert.match(
        (thread.tooltip as vscode.MarkdownString).value,
        /⚠ stdout-pollution: print from thread "chatty" during execute/,
      );
      const child = replicateOf('editor-crashes', 'child-echo');
      assert.match(
        (child.tooltip as vscode.MarkdownString).value,
        /⚠ stdout-pollution: write to fd 1 \(a child process or C code\) during execute/,
      );
      const problems = vscode.languages.getDiagnostics(vscode.Uri.file(wire));
      for (const marker of ['thread-print', 'child-echo']) {
        const warning = problems.find((d) => d.range.start.line === lineOf(wire, marker) - 1);
        assert.equal(
          warning?.severity,
          vscode.DiagnosticSeverity.Warning,
          `${marker}: ${problems.map((d) => d.message).join('\n')}`,
        );
        assert.equal(warning?.code, 'stdout-pollution');
      }
      assert.ok(
        api.stderr
          .recent(bundle)
          .some((line) => /^⚠ \[sim-[0-9a-f]{8}-0 · pid \d+\] print from thread "chatty"/.test(line)),
        api.stderr.recent(bundle).join('\n'),
      );
    });

    it('Warm Processes: runners grouped under their job, ended ones with their exit code or signal; Dump Stacks opens frames that link to their lines', async () => {
      const groups = api.processTree.getChildren() as ProcessJobItem[];
      const crashes = groups.find((g) => g.label === 'editor-crashes');
      // the suite is bundled apart from the extension: its classes are not the extension's, so kinds, not instanceof
      assert.equal(crashes?.kind, 'processJob', groups.map((g) => g.label).join(', '));
      const runners = api.processTree.getChildren(crashes) as ProcessItem[];
      assert.ok(runners.length >= 2 && runners.every((r) => r.kind === 'process' && r.info.jobId === 'editor-crashes'));
      assert.ok(
        runners.some((r) => /^ended · SIGSEGV \(exited\)/.test(String(r.description))),
        runners.map((r) => r.description).join('\n'),
      );
      assert.ok(
        runners.some((r) => /^ended · exit 17 \(exited\)/.test(String(r.description))),
        runners.map((r) => r.description).join('\n'),
      );

      const running = runJob('editor-hang', ['hang']);
      let hung: ProcessItem | undefined;
      for (const deadline = Date.now() + 60_000; !hung; await new Promise((resolve) => setTimeout(resolve, 50))) {
        assert.ok(Date.now() < deadline, 'the hanging job did not start a runner');
        const group = (api.processTree.getChildren() as ProcessJobItem[]).find((g) => g.label === 'editor-hang');
        const task = api.jobs.jobs.get('editor-hang')?.sets.values().next().value?.tasks[0];
        if (group && task?.state === 'running')
          hung = (api.processTree.getChildren(group) as ProcessItem[]).find((r) => r.info.endedAt === undefined);
      }
      try {
        assert.match(hung.contextValue!, /alive;/);
        const editor = await vscode.commands.executeCommand<vscode.TextEditor>('modelopsDebugger.dumpStacks', hung);
        const text = editor.document.getText();
        const hangLine = lineOf(wire, 'hang');
        assert.ok(text.includes(`File "${wire}", line ${hangLine} in wire`), text);
        const links = await vscode.commands.executeCommand<vscode.DocumentLink[]>(
          'vscode.executeLinkProvider',
          editor.document.uri,
        );
        const toHang = links.find((l) => l.target?.fsPath === wire && l.target.fragment === `L${hangLine}`);
        assert.ok(toHang, links.map((l) => l.target?.toString()).join('\n'));
        assert.equal(editor.document.getText(toHang.range), `"${wire}", line ${hangLine}`);
      } finally {
        const job = (api.jobsTree.getChildren() as JobsNode[]).find((item) => item.label === 'editor-hang') as JobItem;
        await vscode.commands.executeCommand('modelopsDebugger.cancelJob', job);
        assert.equal((await running).status, 'interrupted');
      }
    });
  });
}
