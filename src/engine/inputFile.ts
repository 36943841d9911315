/**
 * Files the user names as input (a job file, a parameters file, a results folder's job.json):
 * only regular files are read. Opening a FIFO waits for a writer that may never come, reading
 * /dev/zero never ends, a directory or a socket holds no JSON: each is refused at once, in one
 * sentence saying what the path is (`bad-input`, exit 2).
 */
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import { Failure } from './failure';

/** What a path that is not a regular file is, in words ("a FIFO (named pipe)"); undefined for a regular file. */
export function describeSpecialFile(stat: Stats): string | undefined {
  if (stat.isFile()) return undefined;
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * The text of a regular file. `what` names it in the refusal ("a job file"). The path is looked
 * at before it is opened (so a device is never opened), then opened without blocking (a path
 * swapped for a FIFO in between still returns at once) and checked again on the open descriptor.
 */
export async function readInputFile(file: string, what: string): Promise<string> {
  let handle: fs.FileHandle;
  try {
    refuseSpecial(file, await fs.stat(file), what);
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (error) {
    throw unreadable(file, error);
  }
  try {
    const stat = await handle.stat();
    refuseSpecial(file, stat, what);
    // beyond this, Node cannot hold the text: say so rather than "Invalid string length"
    if (stat.size > bufferConstants.MAX_STRING_LENGTH) {
      throw new Failure(
        'bad-input',
        `${file} is ${(stat.size / 2 ** 20).toFixed(0)} MB, more than a JSON text can be here (${(bufferConstants.MAX_STRING_LENGTH / 2 ** 20).toFixed(0)} MB).`,
      );
    }
    return await handle.readFile('utf8');
  } catch (error) {
    throw unreadable(file, error);
  } finally {
    await handle.close();
  }
}

function refuseSpecial(file: string, stat: Stats, what: string): void {
  const kind = describeSpecialFile(stat);
  if (kind) throw new Failure('bad-input', `${file} is ${kind}, not ${what}.`);
}

function unreadable(file: string, error: unknown): Failure {
  if (error instanceof Failure) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new Failure('bad-input', `${file} does not exist.`);
  return new Failure('bad-input', `${file} cannot be read (${code ?? (error as Error).message}).`);
}
