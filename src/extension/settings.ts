/** The `modelopsDebugger.*` settings, read in one place, in the engine's terms. */
import * as vscode from 'vscode';
import type { RuntimeOptions } from '../engine/runtime/prepare';
import { forceFreshFromEnv, venvsDir } from '../engine/venv/cache';

function settings(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('modelopsDebugger');
}

/** The interpreter venvs are built from, and the venv cache's configuration. */
export function runtimeSettings(onVenvEvent?: NonNullable<RuntimeOptions['venv']>['onEvent']): Pick<RuntimeOptions, 'basePython' | 'venv'> {
  const config = settings();
  return {
    basePython: config.get<string>('pythonPath') || undefined,
    venv: {
      dir: venvsDir(config.get<string>('venvsDir') || undefined),
      forceFresh: config.get<boolean>('forceFreshVenv') || forceFreshFromEnv(),
      extraInstallArgs: config.get<string[]>('extraInstallArgs') ?? [],
      installTimeoutMs: (config.get<number>('installTimeoutSeconds') ?? 900) * 1000,
      onEvent: onVenvEvent,
    },
  };
}

export function seconds(name: string, fallback: number): number {
  return (settings().get<number>(name) ?? fallback) * 1000;
}
