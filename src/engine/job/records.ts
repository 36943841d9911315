/**
 * A job's records as its results folder holds them: one per finished attempt of a replicate in
 * `sims/<param>.jsonl`, one per parameter set in `aggs/<param>.json`. The types alone, so that
 * the writer (results.ts), its schema (resultSchema.ts) and the events can all name them.
 */
import type { FailureKind, OomEvidence, SourceLocation } from '../failure';
import type { Params } from './ids';
import type { RunnerResources } from '../protocol';

/**
 * A task's part of its runner's stderr: `log` relative to the job's folder (`logs/runner-<pid>.stderr`),
 * `start` and `end` byte offsets in it (end exclusive; equal when the task wrote nothing).
 */
export interface StderrRange {
  log: string;
  start: number;
  end: number;
}

export interface OutputRecord {
  size: number;
  /** Standard padded base64 of the bytes. */
  inline: string;
}

/**
 * What a task cost: as its runner measured it (RunnerResources: our runner only, so absent for
 * production's; `peak_rss` only when the peak is not the task's own), the engine's part
 * (`queue_ms`, waiting for a free runner; `transfer_ms`, framing, pipes and JSON around the
 * runner's own wall time) and, on its event, each output's bytes (its record's outputs have
 * their sizes).
 */
export interface TaskResources extends Partial<Omit<RunnerResources, 'peak_rss'>> {
  peak_rss?: 'process';
  queue_ms?: number;
  transfer_ms?: number;
  output_bytes?: Record<string, number>;
}

export interface SimRecord {
  key: string;
  status: 'ok' | 'failed';
  param_id: string;
  replicate: number;
  seed: number | bigint;
  attempts: number;
  pid?: number;
  /** The Dask worker it ran on (dask backend). */
  worker?: string;
  ms: number;
  outputs?: Record<string, OutputRecord>;
  kind?: FailureKind;
  message?: string;
  location?: SourceLocation;
  evidence?: Record<string, unknown>;
  stderr?: StderrRange;
  resources?: TaskResources;
}

export interface AggRecord {
  key: string;
  status: 'ok' | 'failed' | 'skipped';
  param_id: string;
  params: Params;
  n_replicates: number;
  ms: number;
  /** Target entrypoint → its result or failure. */
  targets: Record<
    string,
    | { status: 'ok'; loss: number; diagnostics: unknown; n_replicates: number }
    | {
        status: 'failed';
        kind: FailureKind;
        message: string;
        location?: SourceLocation;
        /** Its runner was SIGKILLed under it, most likely by the OOM killer (as a simulation's evidence.oom). */
        oom?: OomEvidence;
      }
  >;
  summary?: unknown;
  kind?: FailureKind;
  message?: string;
  /** For a skipped aggregation: the replicates that failed. */
  failed_replicates?: { replicate: number; key: string; kind?: FailureKind; message?: string }[];
  /** Its targets' requests together (peak: the highest), when it ran any. */
  resources?: TaskResources;
}
