/**
 * Running a job to a definite end: every simulation gets a result or a failure kind, every
 * parameter set gets an aggregation (or a skip that names the failed replicates), and the
 * manifest says how it went — whatever the runners do. The tasks run in a backend
 * (backends/local or backends/dask, through backends/contract.ts); both keep their books
 * through job/book.ts.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunOptions } from '../backends/contract';
import { writeRunTrace, type TraceFile } from '../trace/chromeTrace';
import { runOnDask } from '../backends/dask/run';
import { runLocally } from '../backends/local/run';
import { exitCodeFor, exitCodeForStop, ExitCode, Failure, REPORT_REQUEST } from '../failure';
import { JobBook } from './book';
import type { JobCounts, JobStatus } from './events';
import { RESULTS_LAYOUT, type ResultsStore } from './results';
import { unwritable } from './resultsFolder';
import type { JobSpec } from './spec';
import { DEFAULT_MAX_FRAME_BYTES } from '../process/frameCap';

export interface JobOutcome {
  status: JobStatus;
  counts: JobCounts;
  exitCode: number;
  dir: string;
  ms: number;
  failure?: Failure;
  /** The run's trace.json, written at its end, or why there is none (undefined: not asked for). */
  traceFile?: TraceFile;
}

export async function runJob(job: JobSpec, store: ResultsStore, options: RunOptions): Promise<JobOutcome> {
  const started = performance.now();
  const book = new JobBook(job, store, options.allowPartial, options.onEvent);
  const { counts } = book;
  const backend = options.backend ?? 'local';
  const finished = () =>
    counts.sims.ok +
    counts.sims.failed +
    counts.aggregations.ok +
    counts.aggregations.failed +
    counts.aggregations.skipped;
  const finishedBefore = finished();
  book.emit({
    type: 'job-start',
    job_id: job.jobId,
    out: store.dir,
    sims: counts.sims.total,
    aggregations: counts.aggregations.total,
    resumed: options.resumed,
    skipped_sims: counts.sims.ok + counts.sims.failed,
    skipped_aggregations: counts.aggregations.ok + counts.aggregations.failed + counts.aggregations.skipped,
    workers: options.workers,
    executor: options.executor,
    backend,
  });
  for (const note of job.notes) book.emit({ type: 'warning', kind: 'bad-input', message: note });
  for (const notice of store.notices) book.emit({ type: 'results-folder', message: notice });
  const notResults = [...store.notResults];
  if (notResults.length) {
    const one = notResults.length === 1;
    const named = `${notResults.slice(0, 3).join('; ')}${notResults.length > 3 ? '; …' : ''}`;
    book.emit({
      type: 'results-folder',
      message: `${notResults.length} record${one ? ' is' : 's are'} not a valid result of this job, so ${one ? 'its task runs' : 'their tasks run'} again: ${named}`,
    });
  }

  const ran = options.backend === 'dask' ? await runOnDask(book, options) : await runLocally(book, options);
  let fatal = ran.fatal;
  const { interrupted } = ran;
  if (!fatal && !interrupted && counts.sims.pending + counts.aggregations.pending > 0) {
    // a backend that ends with work undone and no reason is a bug: never a silent success
    fatal = new Failure(
      'engine-error',
      `The ${backend} backend ended with ${counts.sims.pending} simulations and ${counts.aggregations.pending} aggregations without an outcome (${REPORT_REQUEST})`,
      { engineStack: new Error('backend ended early').stack },
    );
  }

  store.flushSims(); // the manifest is written once every result is on disk
  // a disk that stopped taking results ends the job, whatever else happened
  if (store.failure) {
    if (fatal?.kind !== 'results-unwritable') fatal = store.failure;
    book.recountFromDisk();
  }
  const ms = Math.round(performance.now() - started);
  const anyFailed = counts.sims.failed + counts.aggregations.failed + counts.aggregations.skipped > 0;
  const stopped = interrupted && fatal?.kind !== 'results-unwritable'; // an interrupt, unless the disk failed too
  let status: JobStatus = stopped ? 'interrupted' : fatal ? 'aborted' : anyFailed ? 'failed' : 'succeeded';
  // stopped by a signal: 128 + its number (SIGHUP 129, SIGINT 130, SIGTERM 143)
  let exitCode: number = stopped
    ? exitCodeForStop(options.signal?.reason)
    : fatal
      ? exitCodeFor(fatal.kind)
      : anyFailed
        ? ExitCode.failedWork
        : ExitCode.ok;
  const manifest = {
    job_id: job.jobId,
    layout: RESULTS_LAYOUT,
    status,
    exit_code: exitCode,
    counts,
    failure: fatal?.toJSON(),
    started_at: new Date(Date.now() - ms).toISOString(),
    finished_at: new Date().toISOString(),
    ms,
    resumed: options.resumed,
    // the job.json this run checked or wrote: a resume that finds these bytes does not hash its seeds again
    ...(store.jobJsonSha256 ? { job_json_sha256: store.jobJsonSha256 } : {}),
    ...(stopped && typeof options.signal?.reason === 'string' ? { interrupted_by: options.signal.reason } : {}),
    options: {
      backend,
      workers: options.workers,
      depth: options.depth,
      executor: options.executor,
      max_reuse: options.maxReuse,
      retries: options.retries,
      task_timeout_ms: options.taskTimeoutMs,
      allow_partial: options.allowPartial,
      max_frame_bytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      ...(options.dask ? { scheduler: options.dask.scheduler } : {}),
    },
    environment: {
      engine: 'modelops-debugger 0.1.0',
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      host: os.hostname(),
      ...ran.environment,
    },
    notes: job.notes,
    ...(options.bundleChange
      ? {
          bundle_change: {
            recorded: options.bundleChange.recorded,
            now: options.bundleChange.now,
            allowed_by: '--allow-bundle-change',
          },
        }
      : {}),
  };
  try {
    store.writeJson('manifest.json', manifest);
  } catch (error) {
    // no room even for the manifest: the outcome is still said, on the event stream and the exit code
    fatal = unwritable(store.dir, error, path.join(store.dir, 'manifest.json'));
    status = 'aborted';
    exitCode = exitCodeFor(fatal.kind);
  }
  book.emit({
    type: 'job-done',
    job_id: job.jobId,
    status,
    counts,
    ms,
    exit_code: exitCode,
    ...(fatal ? { failure: fatal.toJSON() } : {}),
  });
  await store.close();
  // after the last event is on disk: the trace is made from events.jsonl, as `trace` makes it
  const ranTasks = finished() - finishedBefore;
  const traceFile =
    options.traceFile === false || !ranTasks
      ? undefined
      : writeRunTrace(store.dir, job, { tasks: ranTasks, ms, always: options.traceFile });
  return { status, counts, exitCode, dir: store.dir, ms, failure: fatal, traceFile };
}
