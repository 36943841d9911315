/**
 * "Show Stderr" on a task: the bytes of its runner's log that the task wrote (the offsets the
 * engine recorded for it), under a header naming the log and the range, so a task's stderr is
 * never a whole log to search, nor an empty file. A task that wrote nothing says so, with the
 * lines the runner wrote just before it.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import type { StderrRange } from '../../engine/job/records';

/** At most this much of a task's stderr is shown (its end: where a failure shows). */
const SHOWN_BYTES = 4 * 1024 * 1024;
const CONTEXT_BYTES = 2048;

export function taskStderrText(jobDir: string, key: string, range: StderrRange): string {
  const log = path.join(jobDir, range.log);
  let fd: number;
  try {
    fd = openSync(log, 'r');
  } catch (error) {
    return `${key}: its runner's log ${log} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})\n`;
  }
  try {
    const size = fstatSync(fd).size;
    const end = Math.min(range.end, size);
    const start = Math.max(range.start, end - SHOWN_BYTES);
    const header = [
      `stderr of ${key}`,
      `from ${log}`,
      `bytes ${range.start}–${range.end} (${range.end - range.start} bytes) of ${size}${start > range.start ? `; the first ${start - range.start} bytes left out` : ''}`,
    ];
    if (end <= range.start) {
      const before = readBytes(fd, Math.max(0, range.start - CONTEXT_BYTES), Math.min(range.start, size));
      const lines = before
        .split('\n')
        .filter((line) => line !== '')
        .slice(-10);
      return `${header.join('\n')}\n\n(this task wrote nothing to stderr)\n${lines.length ? `\nthe runner's last lines before it:\n${lines.map((line) => `  ${line}`).join('\n')}\n` : ''}`;
    }
    return `${header.join('\n')}\n${'─'.repeat(60)}\n${readBytes(fd, start, end)}`;
  } finally {
    closeSync(fd);
  }
}

/** Bytes `start`–`end` of an open file as text (fewer at its end). */
export function readBytes(fd: number, start: number, end: number): string {
  const bytes = Buffer.alloc(Math.max(0, end - start));
  let got = 0;
  while (got < bytes.length) {
    const n = readSync(fd, bytes, got, bytes.length - got, start + got);
    if (n === 0) break;
    got += n;
  }
  return bytes.subarray(0, got).toString('utf8');
}
