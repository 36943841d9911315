/** The `modelopsDebugger.*` settings, read in one place, in the engine's terms. */
import * as vscode from 'vscode';
import { RUN_DEFAULTS, type BackendChoice } from '../engine/backends/contract';
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
export function runtimeSettings(
  onVenvEvent?: NonNullable<RuntimeOptions['venv']>['onEvent'],
): Pick<RuntimeOptions, 'basePython' | 'venv' | 'maxFrameBytes'> {
  const config = settings();
  const freshOnce = freshForNextRun;
  freshForNextRun = false;
  return {
    basePython: config.get<string>('pythonPath') || undefined,
    venv: {
      dir: venvsDir(config.get<string>('venvsDir') || undefined),
      forceFresh: freshOnce || config.get<boolean>('forceFreshVenv') || forceFreshFromEnv(),
      extraInstallArgs: config.get<string[]>('extraInstallArgs') ?? [],
      installTimeoutMs: seconds('installTimeoutSeconds', RUN_DEFAULTS.installTimeoutMs),
      onEvent: onVenvEvent,
    },
    maxFrameBytes: frameCapBytes(config.get<number>('maxFrameMb') || undefined),
  };
}

/** A setting in seconds, in ms; `fallbackMs` (RUN_DEFAULTS') when it has no value. */
export function seconds(name: string, fallbackMs: number): number {
  const value = settings().get<number>(name);
  return value === undefined ? fallbackMs : value * 1000;
}

/**
 * How long a job's runners may take to answer `ready`: modelopsDebugger.handshakeTimeoutSeconds
 * when the user set it, else the run default (as `run --ready-timeout`); that setting's own
 * default is the Handshake command's shorter wait (as `handshake --timeout`).
 */
export function readyTimeoutMs(): number {
  const set = settings().inspect<number>('handshakeTimeoutSeconds');
  const chosen = set?.workspaceFolderValue ?? set?.workspaceValue ?? set?.globalValue;
  return chosen === undefined ? RUN_DEFAULTS.readyTimeoutMs : chosen * 1000;
}

/** Where jobs run: this machine, or the Dask scheduler "Connect to Dask Scheduler…" checked. */
export function backendSettings(): BackendChoice {
  const config = settings();
  if (config.get<string>('backend') !== 'dask') return { backend: 'local' };
  const scheduler = config.get<string>('daskScheduler');
  if (!scheduler)
    throw new Failure(
      'bad-input',
      'modelopsDebugger.backend is "dask" but modelopsDebugger.daskScheduler is empty: run "ModelOps: Connect to Dask Scheduler…".',
    );
  return {
    backend: 'dask',
    dask: {
      scheduler,
      python: config.get<string>('daskPython') || undefined,
      connectTimeoutMs: RUN_DEFAULTS.connectTimeoutMs,
    },
  };
}
