/**
 * "Connect to Dask Scheduler…" and "Run Jobs Locally": where the editor's jobs run. Connecting
 * first proves a scheduler answers at the address (and says what it has), then sends the
 * workspace's jobs there; the same job files, views and results either way.
 */
import * as vscode from 'vscode';
import { RUN_DEFAULTS } from '../../engine/backends/contract';
import { probeScheduler } from '../../engine/backends/dask/probe';
import { sayingFailures } from '../util/commands';

const ADDRESS = /^[a-z][a-z0-9+]*:\/\/[^\s/]+$/i;

export function registerDaskCommands(log: vscode.LogOutputChannel): vscode.Disposable[] {
  const config = () => vscode.workspace.getConfiguration('modelopsDebugger');
  // a user setting: which cluster one works with follows the person, not the repository
  const target = () => vscode.ConfigurationTarget.Global;
  return [
    vscode.commands.registerCommand('modelopsDebugger.connectDask', async (given?: string) => {
      const address =
        given ??
        (await vscode.window.showInputBox({
          title: 'Connect to Dask Scheduler',
          prompt: 'The scheduler of an existing Dask cluster; jobs run there until "Run Jobs Locally"',
          value: config().get<string>('daskScheduler') || process.env.DASK_SCHEDULER_ADDRESS || 'tcp://127.0.0.1:8786',
          validateInput: (value) => (ADDRESS.test(value.trim()) ? undefined : 'an address like tcp://HOST:PORT'),
        }));
      if (!address) return undefined;
      return sayingFailures(async () => {
        const connected = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: `ModelOps: connecting to ${address.trim()}` },
          () =>
            probeScheduler(address.trim(), {
              python: config().get<string>('daskPython') || undefined,
              connectTimeoutMs: RUN_DEFAULTS.connectTimeoutMs,
            }),
        );
        await config().update('daskScheduler', address.trim(), target());
        await config().update('backend', 'dask', target());
        const message = `Connected to ${connected.scheduler} (Dask ${connected.dask_version}, ${connected.workers.length} worker${connected.workers.length === 1 ? '' : 's'}): jobs run there now.`;
        log.info(`${message} Workers: ${connected.workers.join(', ') || 'none yet'}`);
        void vscode.window.showInformationMessage(`ModelOps: ${message}`);
        return connected;
      }, log);
    }),
    vscode.commands.registerCommand('modelopsDebugger.useLocal', async () => {
      await config().update('backend', 'local', target());
      void vscode.window.showInformationMessage('ModelOps: jobs run on this machine now.');
    }),
  ];
}
