/**
 * Production-shaped worker directories for the cluster tests (clusterInspect, clusterActions):
 * a venv as production's cache leaves one, and a process holding a `{key}.lock` as production's
 * venv builder does while it works.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DASK_PYTHON } from './cluster';

export const PY = '3.11'; // Debian 12's /usr/bin/python3, the venvs' interpreter

/** `{root}/{key}`: pyvenv.cfg, bin/python (the Dask Python), .deps_installed if given, and an empty `{key}.lock`. */
export function venv(
  root: string,
  key: string,
  options: { python?: string; marker?: string; noPython?: boolean } = {},
): string {
  const dir = path.join(root, key);
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  writeFileSync(path.join(dir, 'pyvenv.cfg'), `home = /usr/bin\nversion = ${options.python ?? `${PY}.2`}\n`);
  if (!options.noPython) symlinkSync(DASK_PYTHON, path.join(dir, 'bin', 'python'));
  if (options.marker !== undefined) writeFileSync(path.join(dir, '.deps_installed'), options.marker);
  writeFileSync(`${dir}.lock`, '');
  return dir;
}

/** A live process holding `file`'s flock, its pid written in it, as production's lock holder. */
export function holdLock(file: string): Promise<ChildProcess> {
  const child = spawn(
    DASK_PYTHON,
    [
      '-c',
      'import fcntl,os,sys,time\nfd=os.open(sys.argv[1],os.O_RDWR)\nfcntl.flock(fd,fcntl.LOCK_EX)\nos.write(fd,str(os.getpid()).encode())\nprint("held",flush=True)\ntime.sleep(600)',
      file,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve) => child.stdout!.once('data', () => resolve(child)));
}
