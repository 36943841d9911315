/**
 * The Cluster view (issue 16) against a real scheduler and two workers on 127.0.0.1 with
 * production-shaped directories laid out per worker (test/shared/clusterLayout.ts): the Health
 * node's counts and the worker that disagrees, a worker's venv rows word for word with their
 * capability tokens, a bundle's pyproject.toml opened read only from the worker, a runner's
 * stderr log followed in an output channel (and whole on demand), and workers that do not answer
 * within a tiny timeout shown as such. The actions on its rows are clusterActions.suite.ts's.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ClusterReport } from '../../src/engine/cluster/inspect';
import type { ModelOpsApi } from '../../src/extension/extension';
import type {
  BundleItem,
  ClusterNode,
  HealthItem,
  LockItem,
  RunnerItem,
  SchedulerItem,
  VenvItem,
  WorkerItem,
} from '../../src/extension/cluster/clusterTree';
import { DEAD_PID, DIGEST, PY, PYPROJECT, startLaidOutCluster, type LaidOutCluster } from '../shared/clusterLayout';
import { registerClusterActionTests } from './clusterActions.suite';
import { until } from './cmds.suite';

const rows = (nodes: ClusterNode[]) => nodes.map((n) => `${String(n.label)} | ${String(n.description)}`);

export function registerClusterTests(context: () => { api: ModelOpsApi; root: string }): void {
  describe('the Cluster view', function () {
    this.timeout(120_000);
    let laid: LaidOutCluster;
    let report: ClusterReport;

    before(async function () {
      laid = await startLaidOutCluster(mkdtempSync(path.join(os.tmpdir(), 'modelops-vscode-cluster-')));
    });
    after(async () => {
      await vscode.workspace
        .getConfiguration('modelopsDebugger')
        .update('clusterTimeoutSeconds', undefined, vscode.ConfigurationTarget.Global);
      await laid?.stop();
    });

    const tree = () => context().api.cluster.tree;
    const top = () => tree().getChildren() as [HealthItem, SchedulerItem];
    /** Worker A or B, found by the venvs directory it answered about. */
    const worker = (dirs: { venvs: string }) => {
      const found = (tree().getChildren(top()[1]) as WorkerItem[]).find(
        (w) => w.worker.facts?.venvs_dirs[0].path === dirs.venvs,
      );
      assert.ok(found, `a worker answered about ${dirs.venvs}`);
      return found;
    };
    const childrenOf = (node: ClusterNode) => tree().getChildren(node);
    const group = (w: WorkerItem, kind: string) => childrenOf(w).find((g) => g.kind === kind)!;

    it('cluster: "Connect/Inspect Cluster…" inspects both workers: Cluster Health counts every verdict and names the worker that disagrees; a worker\'s venvs with their verdicts word for word', async () => {
      const { api } = context();
      // the first inspection fills the view as each worker answers, then shows the whole report
      const shown: string[] = [];
      const watching = api.cluster.session.onDidChange(() => {
        const now = api.cluster.session.report;
        if (now) shown.push(`${now.soFar ? 'so far' : 'whole'} ${now.workers.length}`);
      });
      const inspected = await Promise.resolve(
        vscode.commands.executeCommand<ClusterReport>('modelopsDebugger.inspectCluster', laid.cluster.address),
      ).finally(() => watching.dispose());
      assert.ok(inspected, 'the inspection gave a report');
      assert.deepEqual(shown, ['so far 1', 'so far 2', 'whole 2']);
      report = inspected;
      assert.equal(api.cluster.session.scheduler, laid.cluster.address);
      const [health, scheduler] = top();
      assert.equal(health.label, 'Cluster Health');
      assert.equal(health.description, 'NOT healthy · 2 of 2 worker(s) answered');
      assert.equal(scheduler.label, `Scheduler ${laid.cluster.address}`);
      const workers = childrenOf(scheduler) as WorkerItem[];
      assert.equal(workers.length, 2);
      const a = worker(laid.a);
      const b = worker(laid.b);
      assert.equal(a.contextValue, 'worker;answered;orphans;');
      assert.match(
        String(a.description),
        new RegExp(
          `^host \\S+ · pid ${a.worker.facts!.pid} · Python ${PY}\\.\\d+ · memory .+ · 1 thread\\(s\\) · 0 processing · up [\\d.]+ (s|min)$`,
        ),
      );

      // runners are every process on the machine whose command line is a runner's (other test runs'
      // too), listed by both workers of this one machine and counted once: their count comes from
      // the report; every venv and bundle verdict is this layout's
      const runners = [
        ...new Map(
          report.workers.flatMap((w) => w.judged!.runners.map((r) => [`${w.facts!.host} ${r.pid}`, r] as const)),
        ).values(),
      ];
      const runnerOk = runners.filter((r) => r.verdict.kind === 'ok').length;
      const expected: [string, number][] = [
        ['half-built', 2],
        ['python-mismatch', 2],
        ['locked-by-dead-pid', 2],
        ['deps-marker-stale', 3],
        ['orphan-fresh-venv', 2],
        ['bundle-incomplete', 2],
        ...(['zombie-runner', 'stopped-runner'] as const)
          .map((kind): [string, number] => [kind, runners.filter((r) => r.verdict.kind === kind).length])
          .filter(([, n]) => n > 0),
        ['ok', 1 + 2 + runnerOk], // the healthy venv on A (B's is stale); the complete bundle on each; the runners
      ];
      const healthRows = rows(childrenOf(health));
      assert.deepEqual(
        healthRows.filter((r) => !r.startsWith('≠')),
        expected.map(([kind, n]) => `${kind} | ${n}`),
        JSON.stringify({ counts: report.health.counts, runners: runners.map((r) => [r.pid, r.argv, r.verdict]) }),
      );
      const stale = `deps marker stale: .deps_installed says ${'0'.repeat(32)}, the bundle's pyproject.toml hash to ${laid.fingerprint}`;
      assert.deepEqual(
        healthRows.filter((r) => r.startsWith('≠')),
        [`≠ ${DIGEST}-py${PY}-11111111 | most workers say ok, ${b.worker.address} says ${stale}`],
      );

      // worker A's venvs, word for word, with what each row can be asked to do
      const [venvs] = childrenOf(a) as VenvItem[];
      assert.equal(venvs.label, 'Venv caches');
      assert.equal(venvs.description, `${laid.a.venvs} (MODELOPS_VENVS_DIR) · 6`);
      const venvRows = childrenOf(venvs) as VenvItem[];
      assert.deepEqual(rows(venvRows), [
        `${DIGEST}-py${PY}-11111111 | ok, used by runner pid ${laid.runner.pid}`,
        `${DIGEST}-py${PY}-11111111-0a1b2c3d | orphan fresh venv (-0a1b2c3d: no runner uses it; production never deletes these)`,
        `${DIGEST}-py${PY}-33333333 | half-built (no bin/python)`,
        `${DIGEST}-py${PY}-44444444 | ${stale}`,
        `${DIGEST}-py${PY}-55555555 | locked by dead pid ${DEAD_PID} (${DIGEST}-py${PY}-55555555.lock)`,
        `${DIGEST}-py3.12-22222222 | python-mismatch: key says 3.12, interpreter is ${PY}`,
      ]);
      assert.deepEqual(
        venvRows.map((v) => v.contextValue),
        [
          'venv;inUse;ok;handshake;',
          'venv;removable;problem;orphan;handshake;',
          'venv;removable;problem;',
          'venv;removable;problem;handshake;',
          'venv;removable;problem;handshake;',
          'venv;removable;problem;handshake;',
        ],
      );
      // a venv's facts: its key parsed, its interpreter, its marker, its lock (stale: its pid is dead)
      const dead = venvRows[4];
      assert.deepEqual(rows(childrenOf(dead)), [
        `key | digest ${DIGEST} · Python ${PY} · deps 55555555`,
        ...rows(childrenOf(dead)).filter((r) => r.startsWith('size | ')),
        `interpreter | ${PY} (pyvenv.cfg ${PY}.2, bin/python → /usr/bin/python${PY})`,
        'deps marker | .deps_installed matches',
        `lock | ${DIGEST}-py${PY}-55555555.lock: free, records pid ${DEAD_PID} (dead)`,
      ]);
      const lock = childrenOf(dead).find((n) => n.kind === 'lock') as LockItem;
      assert.equal(lock.contextValue, 'lock;stale;');
      const fresh = childrenOf(venvRows[1]);
      assert.equal(rows(fresh)[0], `key | digest ${DIGEST} · Python ${PY} · deps 11111111 · fresh -0a1b2c3d`);

      // the bundles, and which venvs are theirs
      const bundles = childrenOf(group(a, 'bundles')) as BundleItem[];
      assert.deepEqual(rows(bundles), [
        'sha256:99999 | bundle-incomplete: no .complete marker (production removes it and fetches it again) · 0 venv(s)',
        `${DIGEST} | .complete · 6 venv(s)`,
      ]);
    });

    it("cluster: a bundle's pyproject.toml opens read only from its worker; a runner's stderr log streams into an output channel, and opens whole", async () => {
      const { api } = context();
      if (!report) await vscode.commands.executeCommand('modelopsDebugger.inspectCluster', laid.cluster.address);
      const a = worker(laid.a);
      const bundle = (childrenOf(group(a, 'bundles')) as BundleItem[]).find((x) => x.label === DIGEST)!;
      assert.equal(bundle.command?.command, 'modelopsDebugger.openClusterPyproject');
      await vscode.commands.executeCommand(bundle.command.command, ...(bundle.command.arguments ?? []));
      const editor = vscode.window.activeTextEditor!;
      assert.equal(editor.document.uri.scheme, 'modelops-worker');
      assert.equal(editor.document.uri.path, path.join(laid.a.bundles, 'bundles', DIGEST, 'pyproject.toml'));
      assert.equal(editor.document.getText(), PYPROJECT);
      // read only: no file system is behind its scheme, nothing can be written back
      assert.equal(vscode.workspace.fs.isWritableFileSystem('modelops-worker'), undefined);
      assert.equal(editor.document.isDirty, false);

      const runner = (childrenOf(group(a, 'runners')) as RunnerItem[]).find((r) => r.runner.pid === laid.runner.pid);
      assert.ok(runner, `runner pid ${laid.runner.pid} is listed on worker A`);
      assert.match(
        String(runner.description),
        new RegExp(`^state [SR] · up [\\d.]+ (s|min) · RSS .+ · ${DIGEST}-py${PY}-11111111$`),
      );
      assert.equal(runner.contextValue, 'runner;stderr;');
      assert.equal(runner.runner.stderr_log?.path, laid.runner.log);
      await vscode.commands.executeCommand('modelopsDebugger.showClusterLog', runner);
      const text = () => api.cluster.logs.text(a.worker.address, laid.runner.log) ?? '';
      assert.equal(text(), `[modelops] ${laid.runner.log} on ${a.worker.address}\nrunner up: waiting for requests\n`);
      // what the runner writes next comes in by itself
      laid.runner.process.stdin!.write('sim-1\n');
      await until("the runner's next line in its channel", () => text().endsWith('request: sim-1\n'), 20_000);
      await vscode.commands.executeCommand('modelopsDebugger.openClusterLog', runner);
      const whole = 'runner up: waiting for requests\nrequest: sim-1\n';
      assert.equal(
        vscode.window.activeTextEditor!.document.getText(),
        `${laid.runner.log} on ${a.worker.address}, ${Buffer.byteLength(whole)} bytes\n\n${whole}`,
      );
    });

    registerClusterActionTests({ api: () => context().api, laid: () => laid, worker, childrenOf });

    it('cluster: workers that do not answer within the timeout are shown as such, and the view does not wait for them', async () => {
      await vscode.workspace
        .getConfiguration('modelopsDebugger')
        .update('clusterTimeoutSeconds', 0.001, vscode.ConfigurationTarget.Global);
      const silent = await vscode.commands.executeCommand<ClusterReport>('modelopsDebugger.refreshCluster');
      assert.equal(silent.health.silent.length, 2, JSON.stringify(silent.health));
      const [health, scheduler] = top();
      assert.equal(health.description, 'NOT healthy · 0 of 2 worker(s) answered');
      assert.deepEqual(
        rows(childrenOf(health)),
        [...silent.health.silent].map((address) => `${address} | no answer within 0.001 s`),
      );
      for (const w of childrenOf(scheduler) as WorkerItem[]) {
        assert.match(String(w.description), /^no answer within 0\.001 s · host 127\.0\.0\.1 · memory /);
        assert.equal(w.contextValue, 'worker;silent;');
        assert.equal(w.collapsibleState, vscode.TreeItemCollapsibleState.None);
      }
    });
  });
}
