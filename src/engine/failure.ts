/**
 * Failures are typed values: a kind, a one-line cause, the evidence, and where known the
 * source line. Every layer passes these on; none of them invents a bare `Error("failed")`.
 */
import { constants as osConstants } from 'node:os';
import { explainErrno, systemError } from './errno';
import type { PyFrame } from './protocol';

/**
 * DESIGN.md's failure kinds, plus two that DESIGN.md leaves implicit:
 * `bad-input` (the user's input is wrong: exit 2) and `interpreter-not-found`
 * (no Python to run: exit 3), `debugger-not-found` (no debugpy to debug a replicate with: exit 3),
 * and the Dask backend's: `scheduler-unreachable` and
 * `scheduler-lost` and `dask-stalled` (the cluster stopped answering) (exit 3), `dask-task-erred`
 * (Dask itself failed a task, e.g. KilledWorker after its workers died too often: exit 1),
 * `dask-report-unavailable` (`--dask-performance-report` asked of a scheduler that cannot make
 * Dask's report, e.g. without bokeh: exit 3, before anything runs),
 * `results-unwritable` (the results folder cannot be written: a full or read-only disk, no
 * permission: exit 3), and `engine-error` (an exception the engine did not expect: a bug of
 * ours, with its stack, exit 3).
 */
export type FailureKind =
  | 'bad-input'
  | 'interpreter-not-found'
  | 'debugger-not-found'
  | 'venv-create-failed'
  | 'deps-install-failed'
  | 'python-mismatch'
  | 'runner-exited-before-ready'
  | 'handshake-timeout'
  | 'stdout-pollution'
  // a warning: processes the bundle started outlived their task (named, located, ended or left running)
  | 'lingering-descendants'
  | 'protocol-error'
  | 'task-exception'
  /** A result (or error report) over the frame cap (`--max-frame-mb`): named, never allocated. */
  | 'result-too-large'
  | 'process-crashed'
  | 'task-timeout'
  | 'cancelled'
  | 'aggregation-failed'
  | 'aggregation-skipped'
  | 'results-unwritable'
  // the Dask backend
  | 'scheduler-unreachable'
  | 'scheduler-lost'
  | 'dask-stalled'
  | 'dask-task-erred'
  | 'dask-report-unavailable'
  // a bug of ours: see unexpectedFailure
  | 'engine-error';

export interface SourceLocation {
  file: string;
  line: number;
  function?: string;
}

export interface Evidence {
  exitCode?: number | null;
  signal?: string | null;
  /** The runner phase (or in-flight request) when it happened. */
  phase?: string;
  stderrTail?: string;
  stderrBytes?: number;
  /** What the runner wrote to stderr while it worked on the failed request (its end, bounded). */
  taskStderr?: string;
  /** Bytes on the protocol stream that were not frames, verbatim (escaped for display). */
  stdoutNoise?: string;
  stdoutNoiseB64?: string;
  /** Exception type and message raised by Python code. */
  exception?: { type: string; message: string; traceback?: string };
  frames?: PyFrame[];
  /** Thread stacks dumped by faulthandler. */
  stacks?: string;
  elapsedMs?: number;
  timeoutMs?: number;
  pid?: number;
  /** What was tried, e.g. the interpreter paths searched. */
  tried?: string[];
  /** The engine's own stack, for an `engine-error`. */
  engineStack?: string;
  /** Anything else worth showing, as short labelled facts. */
  notes?: string[];
  /** A runner SIGKILLed under a task, most likely by the kernel's OOM killer (diagnose/oom.ts). */
  oom?: OomEvidence;
}

/**
 * Why a SIGKILL the engine did not send is blamed on memory: the runner's resident size at the
 * last sample before it died, against the limit that applied (and where it came from), and the
 * kernel's OOM-kill counter before and after, where there is one to read.
 */
export interface OomEvidence {
  /** The runner's resident size at the last sample (absent when it died before its first). */
  rss_kb?: number;
  limit_kb: number;
  limit_source: 'cgroup v2' | 'cgroup v1' | 'physical memory' | 'setting';
  /** How long before its death that sample was taken. */
  sampled_ms_before_death?: number;
  /** The kernel's count of OOM kills, read at the last sample and after the death, and what it counts. */
  oom_kill_counter?: { before: number; after: number; scope: string };
}

export class Failure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly evidence: Evidence = {},
    readonly location?: SourceLocation,
  ) {
    super(message);
    this.name = 'Failure';
  }

  toJSON(): { kind: FailureKind; message: string; location?: SourceLocation; evidence: Evidence } {
    return { kind: this.kind, message: this.message, location: this.location, evidence: this.evidence };
  }
}

export function isFailure(value: unknown): value is Failure {
  return value instanceof Failure;
}

/** The line that asks for a bug report; part of every `engine-error` message. */
export const REPORT_REQUEST = 'this is a bug in modelops-debugger: please report it, with the stack from the evidence';

/**
 * Anything thrown that is not a Failure, as one: an `engine-error` with the stack in the evidence
 * and a request to report it, never a `protocol-error` (which means a runner broke the protocol).
 * `doing` says what the engine was at ("running the job").
 */
export function unexpectedFailure(error: unknown, doing?: string): Failure {
  if (isFailure(error)) return error;
  const thrown = error instanceof Error ? `${error.name}: ${error.message}` : `a non-Error value: ${String(error)}`;
  const system = systemError(error);
  const notes: string[] = [];
  if (system)
    notes.push(
      explainErrno(system.code) +
        (system.syscall ? ` (in ${system.syscall}${system.path ? ` on ${system.path}` : ''})` : ''),
    );
  if (system?.syscall === 'uv_cwd')
    notes.push('the current directory of this process was deleted: cd to an existing directory and try again');
  const oneLine = thrown.replace(/\s*\n\s*/g, ' ');
  return new Failure(
    'engine-error',
    `Unexpected engine error${doing ? ` while ${doing}` : ''}: ${oneLine} (${REPORT_REQUEST})`,
    {
      engineStack: error instanceof Error ? error.stack : undefined,
      notes: notes.length ? notes : undefined,
    },
  );
}

/** Exit codes of the command line, by what went wrong (DESIGN.md "Command line"). */
export const ExitCode = {
  ok: 0,
  failedWork: 1,
  badInput: 2,
  environment: 3,
  interrupted: 130,
} as const;

export function exitCodeFor(kind: FailureKind): number {
  switch (kind) {
    case 'bad-input':
      return ExitCode.badInput;
    case 'cancelled':
      return ExitCode.interrupted;
    case 'task-exception':
    case 'result-too-large':
    case 'process-crashed':
    case 'task-timeout':
    case 'aggregation-failed':
    case 'aggregation-skipped':
    case 'dask-task-erred':
      return ExitCode.failedWork;
    case 'engine-error': // the job could not be run here, like an environment failure (resumable)
      return ExitCode.environment;
    default:
      return ExitCode.environment;
  }
}

/**
 * The exit code of a job stopped by a signal: 128 + the signal's number, as a shell reports a
 * process that signal killed (SIGHUP 129, SIGINT 130, SIGTERM 143; the same numbers on Linux
 * and macOS), so a script or supervisor can tell a hang-up from a Ctrl-C. A job stopped any
 * other way (the editor's Stop, an AbortSignal without a signal name) is 130, `interrupted`.
 */
export function exitCodeForStop(reason: unknown): number {
  const number = typeof reason === 'string' ? osConstants.signals[reason as NodeJS.Signals] : undefined;
  return number ? 128 + number : ExitCode.interrupted;
}
