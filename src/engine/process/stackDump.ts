/**
 * Every thread's stack of a live runner that the engine does not hold (the editor's Warm
 * Processes view): SIGUSR1 makes our runner's faulthandler write them to its stderr, which is
 * the runner's log file; the dump is read back from the log, from where it was before.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Failure } from '../failure';
import { isCompleteDump, parseFaultDump, type FaultDump } from '../diagnose/pythonTrace';

export interface LogStackDump {
  dump: FaultDump;
  /** Where the dump is in the log: [start, end) bytes. */
  start: number;
  end: number;
}

const POLL_MS = 25;

export async function dumpStacksViaLog(pid: number, logFile: string, waitMs = 1500): Promise<LogStackDump> {
  const before = sizeOf(logFile);
  try {
    process.kill(pid, 'SIGUSR1');
  } catch (error) {
    throw new Failure(
      'process-crashed',
      `Runner pid ${pid} cannot be signalled: ${(error as NodeJS.ErrnoException).code === 'ESRCH' ? 'it has ended' : String(error)}`,
      { pid },
    );
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    const text = readFrom(logFile, before);
    if (isCompleteDump(text)) {
      const dump = parseFaultDump(text);
      if (dump) return { dump, start: before, end: before + Buffer.byteLength(text) };
    }
    if (Date.now() >= deadline) {
      throw new Failure(
        'task-timeout',
        `Runner pid ${pid} wrote no stack dump to ${logFile} within ${waitMs} ms (a runner that does not register faulthandler on SIGUSR1, or one stuck in C code that holds the GIL)`,
        { pid, timeoutMs: waitMs, stderrTail: text.slice(-2000) },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function sizeOf(file: string): number {
  const fd = openSync(file, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const length = Math.max(0, fstatSync(fd).size - offset);
    const bytes = Buffer.alloc(length);
    const got = length ? readSync(fd, bytes, 0, length, offset) : 0;
    return bytes.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
