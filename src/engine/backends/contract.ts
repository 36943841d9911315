/**
 * The backend contract: what the orchestrator (job/run.ts) gives a backend and what a backend
 * gives back. Both backends and the orchestrator import it; it imports neither of them.
 */
import type { Failure } from '../failure';
import type { JobEvent } from '../job/events';
import type { BundleChange } from '../job/resume';
import type { TranscriptEntry } from '../process/warmProcess';
import type { RuntimeOptions } from '../runtime/prepare';

export interface RunOptions extends Omit<RuntimeOptions, 'bundleDir'> {
  /** Where the tasks run: warm runners on this machine (the default), or an existing Dask cluster. */
  backend?: 'local' | 'dask';
  /** With the dask backend. */
  dask?: DaskOptions;
  workers: number;
  /** Requests kept queued per warm process (1: one at a time; 2: the next waits in the pipe). */
  depth: number;
  executor: 'warm' | 'cold';
  maxReuse: number;
  /** Extra attempts after a runner crash. */
  retries: number;
  taskTimeoutMs: number;
  readyTimeoutMs: number;
  /** Aggregate the replicates that succeeded even when others failed. */
  allowPartial: boolean;
  /** Keep every runner's JSON-RPC frames in transcripts/. */
  trace?: boolean;
  /** Runners' scheduling priority (see WarmProcessOptions.nice). */
  runnerNice?: number;
  /** Every JSON-RPC frame of every runner, as it passes (the editor's protocol trace). */
  onRunnerTrace?: (pid: number | undefined, entry: TranscriptEntry) => void;
  /**
   * Follow runners' stderr live, each chunk with the task it came from. Without it stderr goes
   * straight to the log files, which is cheaper; with it the engine reads it and writes them.
   */
  onRunnerStderr?: (pid: number | undefined, chunk: Buffer, task: string | undefined) => void;
  resumed: boolean;
  /** A resume that runs a bundle changed since the job was created (--allow-bundle-change). */
  bundleChange?: BundleChange;
  onEvent?: (event: JobEvent) => void;
  signal?: AbortSignal;
}

export interface DaskOptions {
  /** `tcp://HOST:PORT` */
  scheduler: string;
  /** The interpreter for the driver (must import distributed); default: /usr/bin/python3, then python3. */
  python?: string;
  connectTimeoutMs: number;
  /** The interpreter workers build the bundle's venv from; default: each worker's own. */
  workerPython?: string;
  /** No word from the cluster for this long while tasks are pending ends the job (default: the longest a task may legitimately take). */
  stallTimeoutMs?: number;
}

/** How a backend's run ended, and what the manifest says about where it ran. */
export interface BackendRun {
  fatal?: Failure;
  interrupted: boolean;
  environment: Record<string, unknown>;
}
