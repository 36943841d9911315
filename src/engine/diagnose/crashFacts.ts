/**
 * What every surface shows of a runner that died under a task: how it ended, where it was, the
 * last lines it wrote, and the crashing thread's stack. Made once from a failure's evidence (or
 * from a result file's, for a job opened from disk), so the event stream, the CLI and the editor
 * say the same.
 */
import type { Evidence, OomEvidence } from '../failure';
import type { PyFrame } from '../protocol';
import { parseFaultDump } from './pythonTrace';

export interface CrashFacts {
  exit_code: number | null;
  signal: string | null;
  /** "during the simulation (execute; runner phase: serving)", "between tasks", … */
  phase?: string;
  /** The last lines the runner wrote to stderr for the task, without the fault dump (that is `stack`). */
  stderr_lines: string[];
  /** The crashing thread's frames, innermost first: faulthandler's dump, or where os._exit was called. */
  stack?: PyFrame[];
  /** A SIGKILL the engine did not send, near the memory limit: most likely the OOM killer (diagnose/oom.ts). */
  oom?: OomEvidence;
}

/** Lines of stderr shown with a crash: enough to see what it was doing, few enough for a tooltip. */
export const CRASH_STDERR_LINES = 8;
const STACK_FRAMES = 12;

/** The crash of a process that ended (an exit code or a signal), or undefined for any other failure. */
export function crashFacts(
  evidence: Pick<Evidence, 'exitCode' | 'signal' | 'phase' | 'taskStderr' | 'stderrTail' | 'stacks' | 'frames' | 'oom'>,
): CrashFacts | undefined {
  const exitCode = evidence.exitCode ?? null;
  const signal = evidence.signal ?? null;
  if (exitCode === null && signal === null) return undefined;
  return {
    exit_code: exitCode,
    signal,
    phase: evidence.phase,
    stderr_lines: lastLines(withoutDump(evidence.taskStderr ?? evidence.stderrTail ?? ''), CRASH_STDERR_LINES),
    stack: ownFrames(evidence.frames),
    ...(evidence.oom ? { oom: evidence.oom } : {}),
  };
}

/** The crashing thread's frames without our runner's own (it calls the bundle; it is not the cause). */
function ownFrames(frames: readonly PyFrame[] | undefined): PyFrame[] | undefined {
  const kept = (frames ?? []).filter((frame) => !RUNNER_FILE.test(frame.file));
  return kept.length ? kept.reverse().slice(0, STACK_FRAMES) : undefined;
}

const RUNNER_FILE = /(^|[\\/])modelops_(debugger_)?runner\.py$/;

/** stderr up to the fault dump that ends it (the dump is shown as a stack, not as text). */
function withoutDump(text: string): string {
  const dump = parseFaultDump(text);
  if (!dump) return text;
  const at = text.lastIndexOf(dump.text.split('\n')[0]);
  return at >= 0 ? text.slice(0, at) : text;
}

function lastLines(text: string, count: number): string[] {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .slice(-count)
    .map((line) => (line.length > 300 ? `${line.slice(0, 299)}…` : line));
}
