/**
 * The backend contract: what the orchestrator (job/run.ts) gives a backend and what a backend
 * gives back, and the defaults of a run. Both backends and the orchestrator import it; it
 * imports neither of them. The command line's flags and the editor's settings take their
 * defaults from RUN_DEFAULTS, so that the two cannot drift apart.
 */
import * as os from 'node:os';
import type { Failure } from '../failure';
import type { JobEvent } from '../job/events';
import type { BundleChange } from '../job/resume';
import type { TranscriptEntry } from '../process/warmProcess';
import { DEFAULT_MAX_FRAME_BYTES } from '../process/frameCap';
import type { RuntimeOptions } from '../runtime/prepare';
import { DEFAULT_INSTALL_TIMEOUT_MS } from '../venv/cache';

/**
 * What a run does unless told otherwise, on every surface: `run`'s and `replicate`'s flags, the
 * editor's settings (package.json's defaults are checked against these by a test), the engine.
 */
export const RUN_DEFAULTS = {
  /**
   * Requests queued per warm process: the next one waits in the pipe, hiding the round trip;
   * 'auto': two, and more for short tasks (backends/local/pool.ts AUTO_QUEUE_MS).
   */
  depth: 'auto' as number | 'auto',
  executor: 'warm',
  /** Never retire a warm process, however many tasks it ran. */
  maxReuse: 0,
  retries: 1,
  /** As production's MODELOPS_RPC_TIMEOUT_SECONDS. */
  taskTimeoutMs: 1_800_000,
  /** A job's (and a reproduced replicate's) runner answering `ready`. */
  readyTimeoutMs: 60_000,
  allowPartial: false,
  installTimeoutMs: DEFAULT_INSTALL_TIMEOUT_MS,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  /** Reaching a Dask scheduler. */
  connectTimeoutMs: 10_000,
  /** The `handshake` command's own wait for `ready`: a check asked for by hand, so shorter than a job's. */
  handshakeTimeoutMs: 30_000,
  /** The editor's runners (the command line runs them at its own priority). */
  runnerNice: 10,
} as const;

/** Warm processes of a run: one per core. */
export function defaultWorkers(): number {
  return os.availableParallelism();
}

/** Where the tasks run: warm runners on this machine (the default), or an existing Dask cluster. */
export type BackendChoice = { backend?: 'local'; dask?: undefined } | { backend: 'dask'; dask: DaskOptions };

/** A run's options: what every backend takes, and the backend with what only it takes. */
export type RunOptions = CommonRunOptions & BackendChoice;

export interface CommonRunOptions extends Omit<RuntimeOptions, 'bundleDir'> {
  workers: number;
  /** Requests kept queued per warm process (1: one at a time; 2: the next waits in the pipe; 'auto'). */
  depth: number | 'auto';
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
  /**
   * Write trace.json (the run as a Chrome trace) when the job ends: true always, false never,
   * by default when it is cheap against the run (chromeTrace.ts's writeRunTrace).
   */
  traceFile?: boolean;
  /** Runners' scheduling priority (see WarmProcessOptions.nice). */
  runnerNice?: number;
  /**
   * The memory a runner may use, in MiB, against which a runner SIGKILLed under a task is judged
   * OOM-killed (default: MODELOPS_MEMORY_LIMIT_MB, else its cgroup's limit, else physical memory;
   * on Dask, each worker's MODELOPS_MEMORY_LIMIT_MB and its runner's cgroup there).
   */
  memoryLimitMb?: number;
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
  /**
   * No word from the cluster for this long while tasks are pending ends the job (default: the
   * longest a task may legitimately take).
   */
  stallTimeoutMs?: number;
  /**
   * Dask's own `performance_report(filename, mode="inline")` around the job (production's
   * ENABLE_PERF_REPORT), written to this absolute path by the driver when the job ends.
   */
  performanceReport?: string;
}

/** How a backend's run ended, and what the manifest says about where it ran. */
export interface BackendRun {
  fatal?: Failure;
  interrupted: boolean;
  environment: Record<string, unknown>;
}
