/**
 * Every JSON-RPC method and notification between the engine and the Dask driver
 * (src/runner/modelops_dask_driver.py), typed once, and the facts a worker reports about how a
 * runner answered (src/runner/modelops_dask_worker.py), which the engine diagnoses itself.
 */
import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { FatalParams, PyFrame, RunnerResources, StdoutCaptureParams } from '../../protocol';

// ---- what a task is given ----------------------------------------------------------------------

/** Job-wide settings (`spec` in the Python helper), shipped to the workers once in the job's payload module. */
export interface TaskSpec {
  digest: string;
  /** The bundle's requires-python ('' when it has none): each worker checks its own interpreter. */
  requires_python: string;
  deps_hash: string;
  deps_source: 'pyproject.toml' | 'requirements.txt' | 'none';
  requirements: string[];
  requirement_options: string[];
  extra_install_args: string[];
  install_timeout_s: number;
  /** The interpreter the worker builds the venv from; '' is the worker's own. */
  base_python: string;
  entrypoint: string;
  retries: number;
  task_timeout_s: number;
  ready_timeout_s: number;
  env: Record<string, string>;
  /** The runner script's file name among `runner_files`. */
  runner_file: string;
  /** The frame cap (--max-frame-mb): told to the runners; the worker refuses bigger frames from them. */
  max_frame_bytes: number;
}

export interface AggSpec {
  key: string;
  param_id: string;
  targets: string[];
  /** The target data, as JSON text, passed to each target as it is. */
  target_data_json: string;
  allow_partial: boolean;
}

export interface SetSubmission {
  param_id: string;
  replicates: number;
  /** The parameters as canonical JSON text (floats stay floats). */
  params_json: string;
  /** `key`: the task's key (taskKeys.ts), so the driver never builds one. */
  sims: { key: string; replicate: number; seed: number | bigint }[];
  /** Replicates an earlier run finished (resume): passed to the aggregation as values. */
  done: { replicate: number; result: SimResult }[];
  /** Absent when an earlier run aggregated this set already. */
  agg?: AggSpec;
}

// ---- what a worker reports ---------------------------------------------------------------------

/** How one request to a runner on a worker went wrong: classify.ts's RunnerFacts, as data. */
export type WorkerFacts =
  | {
      outcome: 'error' | 'exited' | 'timeout' | 'protocol';
      method: string;
      pid: number;
      phase: string | null;
      runner: string | null;
      fatal: FatalParams | null;
      exit: { code: number | null; signal: string | null } | null;
      error?: { code: number; message: string; data?: unknown };
      stacks?: string | null;
      reason?: string;
      noise_b64?: string;
      stderr_since: string;
      stderr_tail: string;
      stderr_bytes: number;
      elapsed_ms: number;
      timeout_ms: number;
      /** Where the worker unpacked the bundle: frames there are shown at the local bundle's paths. */
      bundle_path: string;
      /** This runner's stderr since its last report, for the job's logs/. */
      stderr?: string;
      start_failed?: boolean;
      descendants?: WorkerDescendant[];
    }
  | {
      outcome: 'environment';
      kind:
        'venv-create-failed' | 'deps-install-failed' | 'interpreter-not-found' | 'python-mismatch' | 'protocol-error';
      message: string;
      stderr_tail?: string;
      notes?: string[];
      start_failed?: boolean;
    };

/**
 * A process a task left running on a worker, found after the task (when the runner reported
 * starting processes, or broke): the worker retired the runner and ended its process group;
 * escaped ones were left running. `stack`: the Python stack that started it, at worker paths.
 */
export interface WorkerDescendant {
  pid: number;
  command: string;
  escaped: boolean;
  stack: PyFrame[];
  task: string;
  runner_pid: number;
}

export type SimResult =
  | {
      key: string;
      status: 'ok';
      outputs: Record<string, string>;
      seed: number | bigint;
      pid: number;
      worker: string;
      attempts: WorkerFacts[];
      ms: number;
      stderr: string;
      captures: StdoutCaptureParams[];
      bundle_path?: string;
      descendants?: WorkerDescendant[];
      /** What the last attempt cost its runner, as our runner measures it (absent from production's). */
      resources?: RunnerResources | null;
    }
  | { key: string; status: 'failed'; seed: number | bigint; worker: string; attempts: WorkerFacts[]; ms: number };

export interface AggResult {
  /** `skipped`: replicates failed; the engine records which. */
  status: 'ok' | 'skipped';
  targets: Record<
    string,
    | { status: 'ok'; result: { loss: number; diagnostics: Record<string, unknown>; n_replicates: number } }
    | { status: 'failed'; facts: WorkerFacts }
  >;
  worker: string;
  pid?: number | null;
  ms: number;
  stderr?: string;
  descendants?: WorkerDescendant[];
  bundle_path?: string;
  /** What each target's request cost its runner, as our runner measures it (absent from production's). */
  resources?: RunnerResources[];
  /**
   * Its simulations' results, in replicate order (the client gathers these with it). The driver
   * sends each as its own `dask/sim-done` before the `dask/agg-done`, which then carries none:
   * one frame per simulation, whatever the size of a set.
   */
  sims: SimResult[];
}

// ---- requests ----------------------------------------------------------------------------------

export interface ConnectParams {
  scheduler: string;
  timeout_s: number;
  /** Open Dask's performance_report (mode "inline") to this file, after checking the scheduler can make one. */
  performance_report?: string;
}

export interface ConnectResult {
  scheduler: string;
  dask_version: string;
  python: string;
  workers: string[];
}

export namespace ConnectRequest {
  export const type = new RequestType<ConnectParams, ConnectResult, DriverErrorData>('dask/connect');
}

export interface SubmitParams {
  spec: TaskSpec;
  /** File name → path on this machine: the runner script and the module it imports. */
  runner_files: Record<string, string>;
  bundle_dir: string;
  /** The bundle's files (bundle/bundleDir.ts listFiles), shipped to the workers. */
  bundle_files: string[];
  sets: SetSubmission[];
  /**
   * The largest report frame the engine reads from the driver: a bigger simulation report is
   * sent as result-too-large.
   */
  report_max_bytes: number;
}

export namespace SubmitRequest {
  export const type = new RequestType<SubmitParams, { tasks: number }, DriverErrorData>('dask/submit');
}

export namespace CancelRequest {
  export const type = new RequestType<Record<string, never>, { cancelled: number }, DriverErrorData>('dask/cancel');
}

/** Dask's performance report, closed with the client: the file written, or why not. */
export type PerformanceReportOutcome = { file: string; bytes: number } | { file: string; error: string };

export namespace CloseRequest {
  export const type = new RequestType<
    { timeout_s: number },
    { closed: boolean; performance_report?: PerformanceReportOutcome },
    DriverErrorData
  >('dask/close');
}

/**
 * `error.data` of the driver's own failures (connect: -32010, submit: -32011, shipping: -32012,
 * a performance report the scheduler cannot make: -32013; reading a worker's file
 * (src/engine/cluster/workerFile.ts): a worker that did not answer -32015, a refused or failed
 * read -32016; no such worker -32014).
 */
export interface DriverErrorData {
  kind:
    | 'scheduler-unreachable'
    | 'protocol-error'
    | 'dask-report-unavailable'
    | 'bad-input'
    | 'dask-stalled'
    | 'dask-task-erred';
  traceback?: string;
}

// ---- notifications -----------------------------------------------------------------------------

/** Sent by the helper on a worker (`worker.log_event`), passed on by the driver. */
export type WorkerEvent = { worker: string } & (
  | { type: 'task-start'; key: string; attempt: number; pid: number }
  /** The attempt before it crashed: how its runner ended. */
  | { type: 'task-retry'; key: string; attempt: number; exit: { code: number | null; signal: string | null } | null }
  | { type: 'process-start'; pid: number; venv: string }
  | { type: 'process-end'; pid: number; why: string; uses: number; exit_code: number | null; signal: string | null }
  | { type: 'venv-built'; key: string; reason: string }
);

export namespace WorkerEventNotification {
  export const type = new NotificationType<WorkerEvent>('dask/event');
}

export interface WorkerChange {
  action: 'added' | 'removed';
  worker: string;
  /** The tasks it was running or holding when it left; Dask reschedules them. */
  processing: string[];
}

export namespace WorkerChangeNotification {
  export const type = new NotificationType<WorkerChange>('dask/worker');
}

/** Simulations finished on the cluster; their results come later, with their sets' aggregations. */
export namespace SimsFinishedNotification {
  export const type = new NotificationType<{ keys: string[] }>('dask/sims-finished');
}

export namespace SimDoneNotification {
  export const type = new NotificationType<{ key: string; result: SimResult }>('dask/sim-done');
}

export namespace AggDoneNotification {
  export const type = new NotificationType<{ key: string; result: AggResult }>('dask/agg-done');
}

export interface TaskErred {
  key: string;
  exc_type: string;
  message: string;
  traceback: string;
}

export namespace TaskErredNotification {
  export const type = new NotificationType<TaskErred>('dask/task-erred');
}

export namespace SchedulerLostNotification {
  export const type = new NotificationType<{ scheduler: string; message: string }>('dask/scheduler-lost');
}

export namespace AllDoneNotification {
  export const type = new NotificationType<{ cancelled: boolean }>('dask/all-done');
}
