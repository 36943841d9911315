/** The `modelopsDebugger.*` settings, read in one place, in the engine's terms. */
import * as vscode from 'vscode';
import type { RunOptions } from '../engine/backends/contract';
import { Failure } from '../engine/failure';
import type { RuntimeOptions } from '../engine/runtime/prepare';
import { forceFreshFromEnv, venvsDir } from '../engine/venv/cache';
import { frameCapBytes } from '../engine/process/frameCap';

function settings(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('modelopsDebugger');
}

/** Set by "Force Fresh Venv for Next Run"; the next job or handshake takes it. */
let freshForNextRun = false;

export function forceFreshVenvForNextRun(): void {
  freshForNextRun = true;
}

/**
 * The interpreter venvs are built from, and the venv cache's configuration. Each call is a run
 * about to start: it takes a pending "fresh venv for the next run".
 */
export function runtimeSettings(onVenvEvent?: NonNullable<RuntimeOptions['venv']>['onEvent']): Pick<RuntimeOptions, 'basePython' | 'venv' | 'maxFrameBytes'> {
  const config = settings();
  const freshOnce = freshForNextRun;
  freshForNextRun = false;
  return {
    basePython: config.get<string>('pythonPath') || undefined,
    venv: {
      dir: venvsDir(config.get<string>('venvsDir') || undefined),
      forceFresh: freshOnce || config.get<boolean>('forceFreshVenv') || forceFreshFromEnv(),
      extraInstallArgs: config.get<string[]>('extraInstallArgs') ?? [],
      installTimeoutMs: (config.get<number>('installTimeoutSeconds') ?? 900) * 1000,
      onEvent: onVenvEvent,
    },
    maxFrameBytes: frameCapBytes(config.get<number>('maxFrameMb') || undefined),
  };
}

export function seconds(name: string, fallback: number): number {
  return (settings().get<number>(name) ?? fallback) * 1000;
}

/** Where jobs run: this machine, or the Dask scheduler "Connect to Dask Scheduler…" checked. */
export function backendSettings(): Pick<RunOptions, 'backend' | 'dask'> {
  const config = settings();
  if (config.get<string>('backend') !== 'dask') return { backend: 'local' };
  const scheduler = config.get<string>('daskScheduler');
  if (!scheduler) throw new Failure('bad-input', 'modelopsDebugger.backend is "dask" but modelopsDebugger.daskScheduler is empty: run "ModelOps: Connect to Dask Scheduler…".');
  return { backend: 'dask', dask: { scheduler, python: config.get<string>('daskPython') || undefined, connectTimeoutMs: 10_000 } };
}
