/**
 * The Cluster view's actions (issue 16, "Act, with consent") against the Cluster view suite's
 * real scheduler and workers and their production-shaped directories: each run from its row,
 * its modal confirmation answered by the test through the command's arguments (the prompt is
 * checked, never skipped; the action itself is the real one, on the worker), then the disk, the
 * re-inspected tree, the "ModelOps Cluster" channel and the notification looked at.
 */
import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ClearLockResult, RemoveOrphansResult, RemoveVenvResult } from '../../src/engine/cluster/actions';
import type { WorkerHandshakeResult } from '../../src/engine/cluster/workerHandshake';
import type { ReplayReport } from '../../src/engine/handshake/replay';
import type { ModelOpsApi } from '../../src/extension/extension';
import type { ClusterActionAnswers, ClusterActionRun, ConsentPrompt } from '../../src/extension/cluster/clusterActions';
import type { ClusterNode, LockItem, VenvItem, WorkerItem } from '../../src/extension/cluster/clusterTree';
import { DEAD_PID, DIGEST, PY, type LaidOutCluster, type WorkerDirs } from '../shared/clusterLayout';

export interface ClusterViewHelpers {
  api: () => ModelOpsApi;
  laid: () => LaidOutCluster;
  worker: (dirs: WorkerDirs) => WorkerItem;
  childrenOf: (node: ClusterNode) => ClusterNode[];
}

/** Answers the confirmation with `button` (undefined: Cancel), keeping the prompts it was shown. */
function answer(button: string | undefined, prompts: ConsentPrompt[] = []): ClusterActionAnswers {
  return {
    confirm(prompt) {
      prompts.push(prompt);
      return button;
    },
  };
}

export function registerClusterActionTests(h: ClusterViewHelpers): void {
  const venvRows = (dirs: WorkerDirs) => h.childrenOf(h.childrenOf(h.worker(dirs))[0]) as VenvItem[];
  const venvRow = (dirs: WorkerDirs, key: string) => venvRows(dirs).find((v) => v.label === key);
  const run = <R>(command: string, ...args: unknown[]) =>
    vscode.commands.executeCommand<ClusterActionRun & { result?: R }>(command, ...args);
  const channel = () => h.api().cluster.actions.text;
  const lastNotice = () => h.api().notices.recent.at(-1)!;

  it('cluster action: "Handshake on Worker" on a venv row: the report in "ModelOps Cluster" headed by the worker and the venv, "ok" notified with the transcript offered, shown and saved (replayable here); another action on that worker meanwhile is refused', async () => {
    const laid = h.laid();
    const a = h.worker(laid.a).worker.address;
    const key = `${DIGEST}-py${PY}-11111111`;
    const venv = path.join(laid.a.venvs, key);
    const row = venvRow(laid.a, key)!;
    assert.match(row.contextValue!, /^venv;.*handshake;/);
    let confirmed!: () => void;
    const asked = new Promise<void>((resolve) => (confirmed = resolve));
    const prompts: ConsentPrompt[] = [];
    const shaking = run<WorkerHandshakeResult>('modelopsDebugger.handshakeOnWorker', row, {
      confirm(prompt: ConsentPrompt) {
        prompts.push(prompt);
        confirmed();
        return 'Start Runner';
      },
    });
    await asked;
    // while it runs, a removal on the same worker is refused before anything is asked or done
    const other = venvRow(laid.a, `${DIGEST}-py${PY}-33333333`)!;
    const busy = await run('modelopsDebugger.removeWorkerVenv', other, answer('Remove'));
    assert.equal(busy.status, 'busy');
    assert.match(busy.message, new RegExp(`another cluster action on this worker is running`));
    assert.ok(existsSync(other.venv.path));
    const shake = await shaking;

    assert.deepEqual(prompts[0].message, `Start a runner on worker ${a} with venv ${venv}?`);
    assert.equal(shake.status, 'done', shake.message);
    assert.ok(shake.result!.report!.ok, shake.message);
    assert.match(channel(), new RegExp(`BUSY rm-venv · worker ${esc(a)} \\(host \\?\\) · ${esc(other.venv.path)} · `));
    assert.match(
      channel(),
      new RegExp(
        `Handshake on worker ${esc(a)} \\(host .+\\)\\n {2}venv: {3}${esc(venv)}\\n {2}bundle: {1}${esc(path.join(laid.a.bundles, 'bundles', DIGEST))}\\n` +
          `[^]*✔ Handshake ok in [\\d.]+ ms: modelops-debugger-runner pid \\d+, Python ${PY}`,
      ),
    );
    assert.match(
      channel(),
      new RegExp(`DONE handshake · worker ${esc(a)} \\(host .+\\) · ${esc(venv)} · Handshake ok`),
    );
    const notice = lastNotice();
    assert.equal(notice.severity, 'info');
    assert.match(notice.text, /^ModelOps: Handshake ok in /);
    assert.deepEqual(notice.actions, ['Show Transcript', 'Save Transcript']);
    await notice.choose('Show Transcript');
    const shown = vscode.window.activeTextEditor!.document.getText();
    assert.match(shown, new RegExp(`^Handshake on worker ${esc(a)}`));
    assert.match(shown, /\n\+[\d.]+ ms → #1 ready \{\}\n/);

    // saved as a local handshake's is, and "Replay Handshake…" replays it against that bundle here: the
    // same answer but for the digest (the worker's runner was given production's, the directory's name)
    await notice.choose('Save Transcript');
    const saved = lastNotice();
    const file = new RegExp(`^ModelOps: transcript of the handshake on ${esc(a)} saved to (\\S+\\.json) `).exec(
      saved.text,
    )?.[1];
    assert.ok(file, saved.text);
    assert.equal(path.basename(path.dirname(file)), 'handshakes');
    assert.match(path.basename(file), new RegExp(`^${esc(`${a}-${key}`.replace(/[^\w.-]+/g, '-'))}-[\\dT-]+Z\\.json$`));
    assert.ok(readFileSync(file, 'utf8').includes('"entries"'));
    assert.match(channel(), new RegExp(`transcript of the handshake on ${esc(a)} saved to ${esc(file)}`));
    const replayed = await vscode.commands.executeCommand<ReplayReport>(
      'modelopsDebugger.replayHandshake',
      vscode.Uri.file(path.join(laid.a.bundles, 'bundles', DIGEST)),
      { transcript: file },
    );
    assert.deepEqual(
      replayed.differences.map((d) => [d.request, d.path, d.recorded]),
      [['#1 ready', 'result.bundle_digest', DIGEST]],
      replayed.message,
    );
  });

  it('cluster action: "Remove Venv on Worker" is refused while a runner uses the venv, then forced: gone on disk and from the re-inspected tree; a cancelled confirmation changes nothing', async () => {
    const laid = h.laid();
    const a = h.worker(laid.a).worker.address;
    const key = `${DIGEST}-py${PY}-11111111`;
    const venv = path.join(laid.a.venvs, key);

    // cancelled: nothing done on either worker
    const b = h.worker(laid.b).worker.address;
    const bKey = `${DIGEST}-py${PY}-44444444`;
    const cancelled = await run('modelopsDebugger.removeWorkerVenv', venvRow(laid.b, bKey), answer(undefined));
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(existsSync(path.join(laid.b.venvs, bKey)));
    assert.ok(venvRow(laid.b, bKey));
    assert.match(
      channel(),
      new RegExp(`CANCELLED rm-venv · worker ${esc(b)} .* not done \\(cancelled at the confirmation\\)`),
    );

    const prompts: ConsentPrompt[] = [];
    const refused = await run<RemoveVenvResult>(
      'modelopsDebugger.removeWorkerVenv',
      venvRow(laid.a, key),
      answer('Remove', prompts),
    );
    assert.equal(prompts[0].message, `Remove venv ${venv} on worker ${a}?`);
    assert.deepEqual(prompts[0].choices, ['Remove', 'Remove Anyway (force)']);
    assert.match(prompts[0].detail, new RegExp(`^Runner process ${laid.runner.pid} uses it`));
    assert.equal(refused.status, 'refused');
    assert.match(refused.message, new RegExp(`runner process ${laid.runner.pid} uses it`));
    assert.ok(existsSync(venv));
    assert.equal(lastNotice().severity, 'warning');
    assert.match(channel(), new RegExp(`REFUSED rm-venv · worker ${esc(a)} \\(host .+\\) · ${esc(venv)} · Refused`));

    const forced = await run<RemoveVenvResult>(
      'modelopsDebugger.removeWorkerVenv',
      venvRow(laid.a, key),
      answer('Remove Anyway (force)'),
    );
    assert.equal(forced.status, 'done', forced.message);
    assert.equal(
      forced.message,
      `Removed venv ${venv} on ${a} (forced: runner ${laid.runner.pid} used it); its lock removed`,
    );
    assert.ok(!existsSync(venv));
    assert.equal(venvRow(laid.a, key), undefined, 'the re-inspected tree has no row for it');
    assert.equal(lastNotice().text, `ModelOps: ${forced.message}`);
    assert.match(channel(), new RegExp(`DONE rm-venv · worker ${esc(a)} \\(host .+\\) · ${esc(venv)} · Removed`));
  });

  it('cluster action: "Clear Stale Lock" on a lock recording a dead pid: the file gone, and its row', async () => {
    const laid = h.laid();
    const a = h.worker(laid.a).worker.address;
    const key = `${DIGEST}-py${PY}-55555555`;
    const lockRow = () => h.childrenOf(venvRow(laid.a, key)!).find((n): n is LockItem => n.kind === 'lock');
    const row = lockRow()!;
    assert.equal(row.contextValue, 'lock;stale;');
    const lock = path.join(laid.a.venvs, `${key}.lock`);
    const prompts: ConsentPrompt[] = [];
    const cleared = await run<ClearLockResult>('modelopsDebugger.clearWorkerLock', row, answer('Remove', prompts));
    assert.equal(prompts[0].message, `Clear lock ${lock} on worker ${a}?`);
    assert.equal(cleared.status, 'done', cleared.message);
    assert.match(cleared.message, new RegExp(`recorded pid ${DEAD_PID} is dead`));
    assert.ok(!existsSync(lock));
    assert.ok(existsSync(path.join(laid.a.venvs, key)), 'only the lock');
    assert.equal(lockRow(), undefined);
    assert.match(channel(), new RegExp(`DONE clear-lock · worker ${esc(a)} \\(host .+\\) · ${esc(lock)} · Cleared`));
  });

  it('cluster action: "Remove Orphan Fresh Venvs" on a worker row removes its unused fresh venvs and nothing else', async () => {
    const laid = h.laid();
    const row = h.worker(laid.a);
    const a = row.worker.address;
    assert.equal(row.contextValue, 'worker;answered;orphans;');
    const before = venvRows(laid.a).map((v) => String(v.label));
    const orphan = `${DIGEST}-py${PY}-11111111-0a1b2c3d`;
    assert.ok(before.includes(orphan));
    const prompts: ConsentPrompt[] = [];
    const done = await run<RemoveOrphansResult>('modelopsDebugger.removeWorkerOrphans', row, answer('Remove', prompts));
    assert.equal(prompts[0].message, `Remove the orphan fresh venvs in ${laid.a.venvs} on worker ${a}?`);
    assert.equal(done.status, 'done', done.message);
    assert.deepEqual(
      done.result!.removed.map((r) => r.path),
      [path.join(laid.a.venvs, orphan)],
    );
    assert.ok(!existsSync(path.join(laid.a.venvs, orphan)));
    assert.deepEqual(
      venvRows(laid.a).map((v) => String(v.label)),
      before.filter((name) => name !== orphan),
    );
    assert.equal(h.worker(laid.a).contextValue, 'worker;answered;');
    assert.ok(existsSync(path.join(laid.b.venvs, orphan)), "worker B's is B's");
    assert.match(
      channel(),
      new RegExp(`DONE rm-orphans · worker ${esc(a)} \\(host .+\\) · ${esc(laid.a.venvs)} · Removed 1`),
    );
    // a line per action: handshake, busy, cancelled, refused, forced, cleared, orphans
    assert.equal(channel().match(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] [A-Z]+ /gm)?.length, 7, channel());
  });
}

function esc(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
