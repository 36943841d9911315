/**
 * The results folder as the user's data: what is refused in it, what is cleaned up when it is
 * opened again, its lock, and how a disk that will not take a write is said in one sentence.
 * Nothing here ever writes outside the folder it is given.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
} from 'node:fs';
import * as path from 'node:path';
import { DirLock } from '../lock/dirLock';
import { errnoMeaning } from '../errno';
import { Failure, isFailure } from '../failure';

/** The lock of a results folder: a directory inside it, so even the lock never lives outside. */
export const RESULTS_LOCK = '.lock';
/** A temporary file of a whole-file write (`<file>.tmp-<pid>`), renamed over its file when complete. */
export const TEMP_FILE = /\.tmp-\d+$/;

/** `results-unwritable` (exit 3): the disk, not the job, is the problem; said in one sentence. */
export function unwritable(dir: string, error: unknown, file?: string, doing = 'writing'): Failure {
  if (isFailure(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const meaning = (code && errnoMeaning(code)) ?? (error instanceof Error ? error.message : String(error));
  const where = file ? ` ${doing} ${path.relative(dir, file) || file}` : '';
  return new Failure(
    'results-unwritable',
    `Cannot write the results in ${dir}: ${meaning} (${code ?? 'error'}${where}).`,
    {
      notes: [
        `${error instanceof Error ? error.message : String(error)}`,
        'once the disk takes writes again, --resume finishes the job',
      ],
    },
  );
}

/**
 * Every symbolic link, FIFO, socket or device inside the folder is refused (bad-input): results are files this tool
 * wrote, and a link would make a resume read or write somewhere else. Temporary files of writes
 * that never finished are returned, to be removed once the folder is locked.
 */
export function inspectFolder(dir: string): { temps: string[] } {
  const temps: string[] = [];
  const walk = (folder: string): void => {
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch (error) {
      throw unwritable(dir, error, folder, 'reading');
    }
    for (const entry of entries) {
      const full = path.join(folder, entry.name);
      if (entry.isSymbolicLink()) {
        throw new Failure(
          'bad-input',
          `${full} is a symbolic link; a results folder holds only the files this tool wrote, so it is not resumed (remove the link).`,
        );
      }
      if (entry.isDirectory()) walk(full);
      else if (!entry.isFile()) {
        // a FIFO would block the resume that reads it, a device never end
        throw new Failure(
          'bad-input',
          `${full} is not a regular file; a results folder holds only the files this tool wrote, so it is not resumed (remove it).`,
        );
      } else if (TEMP_FILE.test(entry.name)) temps.push(full);
    }
  };
  walk(dir);
  return { temps };
}

/**
 * `mkdir -p`, one folder at a time: Node's recursive mkdir reports a read-only or full disk
 * under a missing parent as ENOENT, which would hide the cause.
 */
export function makeFolders(dir: string): void {
  const missing: string[] = [];
  for (let at = dir; !existsSync(at); at = path.dirname(at)) {
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const folder of missing) {
    try {
      mkdirSync(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** The folder itself must be a real folder, not a link to one elsewhere. */
export function checkFolderItself(dir: string): void {
  let stat;
  try {
    stat = lstatSync(dir);
  } catch {
    throw new Failure('bad-input', `${dir} is not a results folder of a job (it does not exist).`);
  }
  if (stat.isSymbolicLink())
    throw new Failure('bad-input', `${dir} is a symbolic link; give the results folder itself.`);
  if (!stat.isDirectory()) throw new Failure('bad-input', `${dir} is a file, not a results folder.`);
}

/** Removes temporary files left by writes that never finished (a kill, a full disk). */
export function removeTemps(dir: string, temps: string[]): number {
  let removed = 0;
  for (const temp of temps) {
    try {
      rmSync(temp, { force: true });
      removed++;
    } catch (error) {
      throw unwritable(dir, error, temp);
    }
  }
  return removed;
}

/**
 * Cuts a torn last line off `events.jsonl` (a kill or a full disk in the middle of a write), so
 * the next record starts on a line of its own: the file stays valid JSON Lines. Returns the
 * bytes cut.
 */
export function cutTornLine(dir: string, file: string): number {
  let fd: number;
  try {
    fd = openSync(file, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw unwritable(dir, error, file);
  }
  try {
    const size = fstatSync(fd).size;
    let end = size;
    const chunk = Buffer.alloc(64 * 1024);
    // find the last newline from the end, a chunk at a time
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const read = readSync(fd, chunk, 0, end - start, start);
      const at = chunk.subarray(0, read).lastIndexOf(0x0a);
      if (at >= 0) {
        end = start + at + 1;
        break;
      }
      end = start;
    }
    if (end < size) ftruncateSync(fd, end);
    return size - end;
  } catch (error) {
    throw unwritable(dir, error, file);
  } finally {
    closeSync(fd);
  }
}

/**
 * One writer per results folder, held for the whole run: a second `run`, `--resume` or
 * `--rerun-failed` while a live process holds it is refused (bad-input) naming that process;
 * a lock whose holder is gone is taken over, and `onTakeover` says so.
 */
export async function lockResultsFolder(
  dir: string,
  purpose: string,
  onTakeover: (message: string) => void,
): Promise<DirLock> {
  try {
    return await DirLock.acquire(path.join(dir, RESULTS_LOCK), {
      timeoutMs: 0,
      purpose,
      failureKind: 'bad-input',
      busyMessage: (holder) =>
        `The results folder ${dir} is being written by ${holder}; wait for it to end or stop it first.`,
      onEvent: (event) => {
        if (event.type === 'lock-takeover')
          onTakeover(
            `Took over the lock of ${dir} left by pid ${event.holder.pid} (${event.holder.purpose}): ${event.why}.`,
          );
      },
    });
  } catch (error) {
    throw unwritable(dir, error, path.join(dir, RESULTS_LOCK));
  }
}
