/**
 * Reading what Python leaves on stderr when something goes wrong: tracebacks, and the thread
 * dumps that faulthandler writes on a fatal signal or on request. Both become frames, and
 * frames become the one source line the user should look at.
 */
import * as path from 'node:path';
import type { SourceLocation } from '../failure';
import type { PyFrame } from '../protocol';

export interface ParsedTraceback {
  frames: PyFrame[];
  excType: string;
  message: string;
  text: string;
}

const TRACEBACK_START = 'Traceback (most recent call last):';
const TRACEBACK_FRAME = /^ {2}File "(.+)", line (\d+), in (.+)$/;
const EXCEPTION_LINE = /^([A-Za-z_][\w.]*)(?::\s?(.*))?$/;

/** The last traceback in `text` (the one that ended the process), if any. */
export function parseTraceback(text: string): ParsedTraceback | undefined {
  const start = text.lastIndexOf(TRACEBACK_START);
  if (start < 0) return undefined;
  const lines = text.slice(start).split('\n').slice(1);
  const frames: PyFrame[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const frame = TRACEBACK_FRAME.exec(lines[i]);
    if (frame) {
      frames.push({ file: frame[1], line: Number(frame[2]), function: frame[3] });
      const next = lines[i + 1];
      if (next?.startsWith('    ') && !TRACEBACK_FRAME.test(next)) {
        frames[frames.length - 1].code = next.trim();
        i++;
      }
      continue;
    }
    if (lines[i].startsWith(' ')) continue; // carets, locals and other decorations
    break;
  }
  const exceptionLine = lines.slice(i).find((line) => line.trim() !== '') ?? '';
  const exception = EXCEPTION_LINE.exec(exceptionLine.trim());
  return {
    frames,
    excType: exception ? exception[1] : exceptionLine.trim(),
    message: exception?.[2] ?? '',
    text: [TRACEBACK_START, ...lines.slice(0, i + 1)].join('\n'),
  };
}

export interface ThreadDump {
  thread: string;
  current: boolean;
  /** Innermost last, like a traceback. */
  frames: PyFrame[];
}

export interface FaultDump {
  /** "Segmentation fault", "Aborted", … when the dump was caused by a fatal signal. */
  fatalError?: string;
  threads: ThreadDump[];
  text: string;
}

const THREAD_HEADER = /^(Current thread|Thread) (0x[0-9a-f]+)(?: \[.*\])? \(most recent call first\):$/;
const DUMP_FRAME = /^ {2}File "(.+)", line (\d+) in (.+)$/;
const FATAL_ERROR = /^Fatal Python error: (.+)$/;
/** A thread in C code only (a thread the bundle's C extension started): still part of the dump. */
const NO_FRAME = /^ {2}<no Python frame>$/;

/** The last faulthandler dump in `text`, if any. */
export function parseFaultDump(text: string): FaultDump | undefined {
  const lines = text.split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (THREAD_HEADER.test(lines[i]) || FATAL_ERROR.test(lines[i])) {
      start = i;
      // keep walking back over the other threads of the same dump
      while (
        start > 0 &&
        (THREAD_HEADER.test(lines[start - 1]) ||
          DUMP_FRAME.test(lines[start - 1]) ||
          NO_FRAME.test(lines[start - 1]) ||
          lines[start - 1].trim() === '' ||
          FATAL_ERROR.test(lines[start - 1]))
      ) {
        start--;
      }
      break;
    }
  }
  if (start < 0) return undefined;
  const dump: FaultDump = { threads: [], text: '' };
  let current: ThreadDump | undefined;
  let end = start;
  for (let i = start; i < lines.length; i++) {
    const line = lines[i];
    const fatal = FATAL_ERROR.exec(line);
    const header = THREAD_HEADER.exec(line);
    const frame = DUMP_FRAME.exec(line);
    if (fatal) dump.fatalError = fatal[1];
    else if (header) {
      current = { thread: header[2], current: header[1] === 'Current thread', frames: [] };
      dump.threads.push(current);
    } else if (frame && current) {
      current.frames.unshift({ file: frame[1], line: Number(frame[2]), function: frame[3] });
    } else if (line.trim() !== '' && !line.startsWith('  ')) {
      if (dump.threads.length) break;
      continue;
    }
    end = i;
  }
  dump.text = lines
    .slice(start, end + 1)
    .join('\n')
    .trim();
  return dump.threads.length || dump.fatalError ? dump : undefined;
}

/** A faulthandler dump written whole: its last thread's frames have landed (it writes in one go). */
export function isCompleteDump(text: string): boolean {
  return /\(most recent call first\):\n(?: {2}File .*\n)+\s*$/.test(text);
}

/** The thread that matters in a dump: the crashing one, else the main thread (listed last). */
export function primaryThread(dump: FaultDump): ThreadDump | undefined {
  return dump.threads.find((t) => t.current) ?? dump.threads[dump.threads.length - 1];
}

export function isInside(file: string, dir: string): boolean {
  const relative = path.relative(path.resolve(dir), path.resolve(dir, file));
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/**
 * The line to show: the innermost frame inside the bundle, because that is code the user
 * owns and can change. Frames in the runner, the standard library or site-packages are
 * evidence, not a location.
 */
export function locate(frames: readonly PyFrame[] | undefined, bundleDir: string): SourceLocation | undefined {
  const frame = [...(frames ?? [])].reverse().find((f) => isInside(f.file, bundleDir));
  return frame && { file: path.resolve(bundleDir, frame.file), line: frame.line, function: frame.function };
}
