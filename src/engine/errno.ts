/**
 * A system error (Node's `ErrnoException`: `code`, `syscall`, `path`) said in words, so a failure
 * names what happened ("EROFS: the file system is read-only") instead of libuv's terse text.
 * Shared by every part of the engine that touches the disk (venvs, results, locks).
 */

/** What each errno means for someone who asked to read, write or create a file. */
const MEANINGS: Record<string, string> = {
  EACCES: 'permission is denied',
  EPERM: 'the operation is not permitted (by file flags, a security policy or the mount)',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
  EDQUOT: "the user's disk quota is used up",
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is a file, not a directory',
  EISDIR: 'the path is a directory, where a file was expected',
  EEXIST: 'something is already there',
  ENOTEMPTY: 'the directory is not empty',
  ELOOP: 'too many symbolic links (a link loop?)',
  ENAMETOOLONG: 'the path is too long for the file system',
  EMFILE: 'this process has too many open files',
  ENFILE: 'the system has too many open files',
  EBUSY: 'the file or device is busy',
  ETXTBSY: 'the file is a program that is running',
  EXDEV: 'the paths are on different file systems',
  EIO: 'an input/output error from the disk',
  EFBIG: 'the file is larger than the file system allows',
  ENOMEM: 'out of memory',
  EAGAIN: 'the resource is temporarily unavailable',
  EPIPE: 'the other end of the pipe is closed',
  ESTALE: 'a stale network file handle',
};

export interface SystemError {
  code: string;
  syscall?: string;
  path?: string;
  message: string;
}

/** The error as a Node system error, if it is one (it has an `E…` code). */
export function systemError(error: unknown): SystemError | undefined {
  const candidate = error as Partial<SystemError> | undefined;
  if (
    !candidate ||
    typeof candidate !== 'object' ||
    typeof candidate.code !== 'string' ||
    !/^E[A-Z0-9]+$/.test(candidate.code)
  )
    return undefined;
  return {
    code: candidate.code,
    syscall: candidate.syscall,
    path: candidate.path,
    message: String(candidate.message ?? ''),
  };
}

/** "the file system is read-only", or undefined for an errno not known here. */
export function errnoMeaning(code: string): string | undefined {
  return MEANINGS[code];
}

/** "EROFS: the file system is read-only" (the bare code when it is not one of the known). */
export function explainErrno(code: string): string {
  const meaning = MEANINGS[code];
  return meaning ? `${code}: ${meaning}` : code;
}

/**
 * One sentence for a system error: what was being done, where, and the errno in words.
 * `doing`: e.g. "create the venvs directory".
 */
export function describeSystemError(error: SystemError, doing: string): string {
  const where = error.path ? ` ${error.path}` : '';
  return `Could not ${doing}${where}: ${explainErrno(error.code)}.`;
}
