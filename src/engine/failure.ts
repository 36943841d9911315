/**
 * Failures are typed values: a kind, a one-line cause, the evidence, and where known the
 * source line. Every layer passes these on; none of them invents a bare `Error("failed")`.
 */
import type { PyFrame } from './protocol';

/**
 * DESIGN.md's failure kinds, plus two that DESIGN.md leaves implicit:
 * `bad-input` (the user's input is wrong: exit 2) and `interpreter-not-found`
 * (no Python to run: exit 3), and the Dask backend's: `scheduler-unreachable` and
 * `scheduler-lost` and `dask-stalled` (the cluster stopped answering) (exit 3), `dask-task-erred` (Dask itself failed a task, e.g. KilledWorker
 * after its workers died too often: exit 1).
 */
export type FailureKind =
  | 'bad-input'
  | 'interpreter-not-found'
  | 'venv-create-failed'
  | 'deps-install-failed'
  | 'python-mismatch'
  | 'runner-exited-before-ready'
  | 'handshake-timeout'
  | 'stdout-pollution'
  | 'protocol-error'
  | 'task-exception'
  /** A result (or error report) over the frame cap (`--max-frame-mb`): named, never allocated. */
  | 'result-too-large'
  | 'process-crashed'
  | 'task-timeout'
  | 'cancelled'
  | 'aggregation-failed'
  | 'aggregation-skipped'
  // the Dask backend
  | 'scheduler-unreachable'
  | 'scheduler-lost'
  | 'dask-stalled'
  | 'dask-task-erred';

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
  /** Anything else worth showing, as short labelled facts. */
  notes?: string[];
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
    default:
      return ExitCode.environment;
  }
}
