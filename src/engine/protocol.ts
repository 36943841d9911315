/**
 * Every JSON-RPC method and notification between the engine and a runner, typed once.
 *
 * Mirrors `src/runner/modelops_runner.py` (ours) and, for the four requests, production's
 * `modelops/worker/subprocess_runner.py`. The `runner/*` notifications are sent only by our
 * runner; the engine must work without them because the production runner sends none.
 */
import { NotificationType, RequestType } from 'vscode-jsonrpc';

/** A Python stack frame as the runner reports it. */
export interface PyFrame {
  file: string;
  line: number;
  function: string;
  code?: string;
}

// ---- requests ---------------------------------------------------------------------------

export interface ReadyResult {
  ready: boolean;
  bundle_digest: string;
  python: string;
  version: string;
  pid: number;
  venv: string;
  /** Our runner only. */
  runner?: string;
  runner_version?: string;
}

/** Parameter values: JSON scalars; numbers may arrive as lossless numbers to keep `1.0` a float. */
export type ParamValue = string | number | boolean | bigint | { isLosslessNumber: true; value: string };

export interface ExecuteParams {
  entrypoint: string;
  params: Record<string, ParamValue>;
  /** Seeds go up to 2^64-1, so they may be bigints. */
  seed: number | bigint;
}

/** Output name → standard padded base64 of the output's bytes. */
export type ExecuteResult = Record<string, string>;

export interface SerializedSimReturn {
  task_id: string;
  outputs: Record<string, { size: number; checksum: string; inline: string }>;
}

export interface AggregateParams {
  target_entrypoint: string;
  sim_returns: SerializedSimReturn[];
  target_data: unknown;
}

export interface AggregateResult {
  loss: number;
  diagnostics: Record<string, unknown>;
  n_replicates: number;
  outputs: Record<string, unknown>;
}

export interface ShutdownResult {
  ok: boolean;
}

export namespace ReadyRequest {
  export const method = 'ready';
  export const type = new RequestType<Record<string, never>, ReadyResult, void>(method);
}

export namespace ExecuteRequest {
  export const method = 'execute';
  export const type = new RequestType<ExecuteParams, ExecuteResult, UserErrorData>(method);
}

export namespace AggregateRequest {
  export const method = 'aggregate';
  export const type = new RequestType<AggregateParams, AggregateResult, UserErrorData>(method);
}

export namespace ShutdownRequest {
  export const method = 'shutdown';
  export const type = new RequestType<Record<string, never>, ShutdownResult, void>(method);
}

/**
 * Our runner adds this member to a response. `stderr`, when its stderr is a file (a job's log):
 * where the request's stderr starts and ends in it, [start, end) bytes, measured by the runner
 * itself, so a task's part of the log is exact however late the engine reads the answer.
 * `resources`, to `execute` and `aggregate`: what the request cost the runner.
 */
export interface ResponseExtras {
  modelops?: { stderr?: [number, number]; resources?: RunnerResources };
}

/**
 * A request's cost in the runner's process, measured there: wall and CPU time (all threads, in
 * ms) and peak resident memory. `peak_rss` "task": the kernel's high-water mark reset before the
 * request (Linux); "process": the process's peak so far (ru_maxrss; macOS, or no /proc).
 */
export interface RunnerResources {
  wall_ms: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
  peak_rss_kb: number;
  peak_rss: 'task' | 'process';
}

// ---- errors -----------------------------------------------------------------------------

export const ErrorCodes = {
  executionFailed: -32000,
  aggregationFailed: -32001,
  /** Our runner: the answer would exceed the frame cap (data: ResultTooLargeData). */
  resultTooLarge: -32002,
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
} as const;

/** `error.data` of -32000 / -32001. `frames` is ours; production sends the text traceback only. */
export interface UserErrorData {
  exc_type: string;
  exc: string;
  traceback: string;
  frames?: PyFrame[];
  entrypoint?: string;
  target_entrypoint?: string;
  /** Our runner: the type does not derive from Exception (SystemExit, KeyboardInterrupt, …). */
  base_exception?: boolean;
  /** Our runner, for SystemExit: its code (sys.exit's argument). */
  exit_code?: number | string | null;
  /** Our runner, for KeyboardInterrupt: "SIGINT" when a signal caused it, null when code raised it. */
  signal?: string | null;
}

/**
 * `error.data` of -32002: our runner measured its answer against the frame cap it was given
 * (MODELOPS_MAX_FRAME_BYTES) and refused to send it. It stays warm.
 */
export interface ResultTooLargeData {
  kind: 'result-too-large';
  method: string;
  frame_bytes: number;
  max_frame_bytes: number;
  /** Each output (or result member) with its size before (`bytes`, when known) and after encoding. */
  outputs: { name: string; bytes?: number; encoded_bytes: number }[];
  /** Where the bundle's function returned the result (its `return` line), when known. */
  frames?: PyFrame[];
}

// ---- notifications (our runner only) ----------------------------------------------------

/** Start-up phases, in order. `serving` means the request loop runs. */
export type RunnerPhase = 'starting' | 'discovering' | 'importing' | 'serving';
/** Where the runner is while serving; reported with stdout captures. */
export type RunnerActivity = RunnerPhase | 'execute' | 'aggregate-import' | 'aggregate';

export interface PhaseParams {
  phase: RunnerPhase;
  runner?: string;
  runner_version?: string;
  pid?: number;
  module?: string;
  origin?: string;
}

export namespace PhaseNotification {
  export const method = 'runner/phase';
  export const type = new NotificationType<PhaseParams>(method);
}

/**
 * Bytes the bundle wrote to stdout, which our runner absorbed. `sys.stdout` and `os.write`
 * carry the writer's exact stack; `fd` (C code, child processes) carries the main thread's
 * stack when the bytes arrived, marked `approximate`.
 */
export interface StdoutCaptureParams {
  source: 'sys.stdout' | 'os.write' | 'fd' | 'suppressed';
  phase: RunnerActivity;
  text: string;
  bytes_b64: string;
  size: number;
  stack: PyFrame[];
  approximate: boolean;
  /**
   * The writing thread's name when it is not the main thread (null or absent: the main thread,
   * or unknown for `fd`). Production redirects sys.stdout only around the call, so a thread's
   * print corrupts its frames whenever it lands between tasks.
   */
  thread?: string | null;
}

export namespace StdoutNotification {
  export const method = 'runner/stdout';
  export const type = new NotificationType<StdoutCaptureParams>(method);
}

/** Start-up failed; sent just before the runner exits with `exit_code`. */
export interface FatalParams extends UserErrorData {
  phase: RunnerActivity;
  exit_code: number;
  no_wire: boolean;
}

export namespace FatalNotification {
  export const method = 'runner/fatal';
  export const type = new NotificationType<FatalParams>(method);
}

/**
 * The bundle started a process (os.fork, multiprocessing, subprocess, posix_spawn): its pid, how,
 * the command when one was given, and the Python stack that started it (innermost last). The
 * engine uses it to name and locate processes that outlive their task.
 */
export interface SpawnedParams {
  pid: number;
  via: 'os.fork' | 'subprocess' | 'posix_spawn';
  command: string[] | null;
  stack: PyFrame[];
}

export namespace SpawnedNotification {
  export const method = 'runner/spawned';
  export const type = new NotificationType<SpawnedParams>(method);
}

/**
 * The bundle called `os._exit` (which skips every handler): where, sent just before the runner
 * exits, so an exit code in the middle of a task has its line.
 */
export interface ExitingParams {
  via: 'os._exit';
  code: number;
  phase: RunnerActivity;
  stack: PyFrame[];
  thread?: string | null;
}

export namespace ExitingNotification {
  export const method = 'runner/exiting';
  export const type = new NotificationType<ExitingParams>(method);
}
