/** Options that choose and configure the venv cache, shared by `handshake` and `venv`. */
import { Command } from 'commander';
import { forceFreshFromEnv, venvsDir, type VenvCacheOptions, type VenvEvent } from '../engine/venv/cache';
import { describeVenvEvent } from '../engine/venv/describe';
import { collect, timeoutSeconds } from './parsers';

export interface VenvFlags {
  venvsDir?: string;
  basePython?: string;
  forceFreshVenv?: boolean;
  installArg?: string[];
  installTimeout?: number;
}

export function addVenvOptions(command: Command): Command {
  return command
    .option('--base-python <path>', "interpreter the bundle's venv is built from (default: python3 on PATH)")
    .option(
      '--venvs-dir <dir>',
      'venv cache directory (default: $MODELOPS_VENVS_DIR, else ~/.cache/modelops-debugger/venvs)',
    )
    .option(
      '--force-fresh-venv',
      'build a private venv for this run and remove it afterwards (also MODELOPS_FORCE_FRESH_VENV=true)',
    )
    .option(
      '--install-arg <arg>',
      'extra argument for every install command, e.g. --install-arg=--no-index (repeatable)',
      collect,
      [],
    )
    .option('--install-timeout <seconds>', 'how long dependency installation may take', timeoutSeconds);
}

export function venvCacheOptions(
  flags: VenvFlags,
  onEvent?: (event: VenvEvent) => void,
): Omit<VenvCacheOptions, 'dir'> & { dir: string; forceFresh: boolean } {
  return {
    // MODELOPS_VENVS_DIR wins over the flag, as it wins over the editor's setting
    dir: venvsDir(flags.venvsDir),
    forceFresh: Boolean(flags.forceFreshVenv) || forceFreshFromEnv(),
    extraInstallArgs: flags.installArg ?? [],
    installTimeoutMs: flags.installTimeout === undefined ? undefined : flags.installTimeout * 1000,
    onEvent,
  };
}

/** Human progress on stderr: why a venv is reused or built, and who holds a lock. */
export function printVenvEvent(event: VenvEvent): void {
  process.stderr.write(`${describeVenvEvent(event)}\n`);
}
