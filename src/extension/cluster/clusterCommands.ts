/**
 * The Cluster view's commands, all read only: "Connect/Inspect Cluster…", Refresh, Cancel, a
 * bundle's pyproject.toml opened from the worker (a read-only document of its own scheme, read
 * through the scheduler when opened), a runner's stderr log followed in an output channel, and
 * the whole log on demand.
 */
import * as vscode from 'vscode';
import type { ClusterReport } from '../../engine/cluster/inspect';
import { READ_MAX_BYTES } from '../../engine/cluster/workerFile';
import { sayingFailures } from '../util/commands';
import type { ClusterLogs } from './clusterLogs';
import { CLUSTER_VIEW, type ClusterSession } from './clusterSession';
import type { BundleItem, LogItem, RunnerItem } from './clusterTree';

const ADDRESS = /^[a-z][a-z0-9+]*:\/\/[^\s/]+$/i;
/** A file on a worker: `modelops-worker:/path/on/the/worker?worker=tcp://…&kind=pyproject`. */
export const WORKER_FILE_SCHEME = 'modelops-worker';

export function registerClusterCommands(
  session: ClusterSession,
  logs: ClusterLogs,
  log: vscode.LogOutputChannel,
): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(
      'modelopsDebugger.inspectCluster',
      async (given?: string): Promise<ClusterReport | undefined> => {
        const address =
          given ??
          (await vscode.window.showInputBox({
            title: 'Connect/Inspect Cluster',
            prompt: "The Dask scheduler whose workers' venvs, locks, bundles and runners to inspect (read only)",
            value: session.scheduler ?? (process.env.DASK_SCHEDULER_ADDRESS || 'tcp://127.0.0.1:8786'),
            validateInput: (value) => (ADDRESS.test(value.trim()) ? undefined : 'an address like tcp://HOST:PORT'),
          }));
        if (!address) return undefined;
        session.choose(address.trim());
        void vscode.commands.executeCommand(`${CLUSTER_VIEW}.focus`);
        return session.inspect();
      },
    ),
    vscode.commands.registerCommand('modelopsDebugger.refreshCluster', () => session.inspect()),
    vscode.commands.registerCommand('modelopsDebugger.cancelClusterInspection', () => session.cancel()),
    vscode.commands.registerCommand('modelopsDebugger.openClusterPyproject', (item?: BundleItem) =>
      sayingFailures(async () => {
        if (!item?.bundle.pyproject) return undefined;
        const uri = vscode.Uri.from({
          scheme: WORKER_FILE_SCHEME,
          path: item.bundle.pyproject,
          query: new URLSearchParams({ worker: item.worker, kind: 'pyproject' }).toString(),
        });
        const document = await vscode.workspace.openTextDocument(uri);
        return vscode.window.showTextDocument(document, { preview: true });
      }, log),
    ),
    vscode.commands.registerCommand('modelopsDebugger.showClusterLog', (item?: RunnerItem | LogItem) =>
      sayingFailures(async () => {
        const target = logOf(item);
        return target && (await logs.show(target.worker, target.path, target.who));
      }, log),
    ),
    vscode.commands.registerCommand('modelopsDebugger.openClusterLog', (item?: RunnerItem | LogItem) =>
      sayingFailures(async () => {
        const target = logOf(item);
        return target && (await logs.openWhole(target.worker, target.path));
      }, log),
    ),
    vscode.workspace.registerTextDocumentContentProvider(WORKER_FILE_SCHEME, {
      provideTextDocumentContent: async (uri) => {
        const query = new URLSearchParams(uri.query);
        const worker = query.get('worker') ?? '';
        const got = await session.readFile({
          worker,
          path: uri.path,
          kind: 'pyproject',
          offset: 0,
          max_bytes: READ_MAX_BYTES,
        });
        const cut = got.end < got.size ? `\n# … cut at ${got.end} of ${got.size} bytes\n` : '';
        return got.text + cut;
      },
    }),
  ];
}

function logOf(item: RunnerItem | LogItem | undefined): { worker: string; path: string; who: string } | undefined {
  if (!item) return undefined;
  if (item.kind === 'log') return { worker: item.worker, path: item.logPath, who: item.label as string };
  const log = item.runner.stderr_log;
  return log ? { worker: item.worker, path: log.path, who: `pid ${item.runner.pid}` } : undefined;
}
