/**
 * `modelops-debugger run <job.json|bundle-dir>`: run a job to its end on the embedded engine.
 */
import { Command, Option } from 'commander';
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { bundleDigest, checkBundleDir } from '../engine/bundle/bundleDir';
import { readBundleDeps } from '../engine/bundle/deps';
import { exitCodeFor, exitCodeForStop, Failure, unexpectedFailure } from '../engine/failure';
import type { JobEvent } from '../engine/job/events';
import { ResultsExist, ResultsStore } from '../engine/job/results';
import { openEarlierRun, type BundleChange } from '../engine/job/resume';
import { defaultWorkers, RUN_DEFAULTS } from '../engine/backends/contract';
import { runJob } from '../engine/job/run';
import { jobFromParamsFile, loadJobFile, type JobSpec } from '../engine/job/spec';
import { stringifyWireJson } from '../engine/pyjson/pyjson';
import { Progress } from './progress';
import { renderLocation } from '../engine/diagnose/evidenceText';
import { currentDir, renderFailureLine } from './render';
import { addVenvOptions, venvCacheOptions, type VenvFlags } from './venvOptions';
import { checkSchedulerAddress, collect, positiveNumber, queueDepth, timeoutSeconds, wholeNumber } from './parsers';
import { stdoutOpen, writeStderr, writeStdout } from './stdio';
import { DEFAULT_FRAME_MB, frameCapBytes } from '../engine/process/frameCap';

interface RunFlags extends VenvFlags {
  out: string;
  params?: string;
  replicates?: number;
  entrypoint: string;
  target: string[];
  jobId?: string;
  bundle?: string;
  resume?: string;
  rerunFailed?: string;
  allowBundleChange?: boolean;
  workers: number;
  queueDepth: number | 'auto';
  executor: 'warm' | 'cold';
  maxReuse: number;
  retries: number;
  taskTimeout: number;
  readyTimeout: number;
  allowPartial?: boolean;
  python?: string;
  runner?: string;
  trace?: boolean;
  /** `--trace-file`: true, `--no-trace-file`: false, neither: when cheap */
  traceFile?: boolean;
  json?: boolean;
  backend: 'local' | 'dask';
  scheduler?: string;
  daskPython?: string;
  workerPython?: string;
  connectTimeout: number;
  daskPerformanceReport?: string;
  maxFrameMb?: number;
}

export function runCommand(): Command {
  const command = new Command('run')
    .description('Run a job (parameter sets × replicates, then one aggregation per parameter set) to its end.')
    .argument(
      '[job]',
      'a job file (ours or a production SimJob JSON), or a bundle directory with --params and --replicates',
    )
    .option('--out <dir>', 'where results go: <out>/<job_id>/', 'results')
    .option('--params <file>', 'with a bundle directory: a JSON list of parameter sets')
    .option('--replicates <n>', 'with a bundle directory: replicates per parameter set', wholeNumber)
    .option('--entrypoint <entrypoint>', 'with a bundle directory: the entrypoint passed to the wire function', 'main')
    .option('--target <entrypoint>', 'with a bundle directory: a target to aggregate with (repeatable)', collect, [])
    .option('--job-id <id>', 'with a bundle directory: the job id (default: generated)')
    .option('--bundle <dir>', 'the local bundle directory of a SimJob (its bundle_ref is a registry digest)')
    .option('--resume <dir>', 'finish an earlier run in <out>/<job_id>, running only what has no result')
    .option(
      '--rerun-failed <dir>',
      'run the failed tasks of an earlier run in <out>/<job_id> again, and the aggregations they feed',
    )
    .option(
      '--allow-bundle-change',
      'with --resume or --rerun-failed: run even though the bundle changed since the job was created (the manifest records it)',
    )
    .option('--workers <n>', 'warm processes', wholeNumber, defaultWorkers())
    .option(
      '--queue-depth <n>',
      'requests queued per warm process (2 hides the round trip; auto: 2, and up to 16 for tasks under 2 ms)',
      queueDepth,
      RUN_DEFAULTS.depth,
    )
    .addOption(
      new Option('--executor <kind>', 'warm: reuse processes; cold: a fresh process per task')
        .choices(['warm', 'cold'])
        .default(RUN_DEFAULTS.executor),
    )
    .option(
      '--max-reuse <n>',
      'retire a warm process after this many tasks (0: never)',
      wholeNumber,
      RUN_DEFAULTS.maxReuse,
    )
    .option('--retries <n>', 'extra attempts for a task whose runner crashed', wholeNumber, RUN_DEFAULTS.retries)
    .option(
      '--task-timeout <seconds>',
      'per simulation or aggregation',
      timeoutSeconds,
      RUN_DEFAULTS.taskTimeoutMs / 1000,
    )
    .option(
      '--ready-timeout <seconds>',
      'for a runner to answer ready',
      timeoutSeconds,
      RUN_DEFAULTS.readyTimeoutMs / 1000,
    )
    .option(
      '--max-frame-mb <n>',
      `the largest answer read from a runner, in MB (MiB): a bigger result is result-too-large (default: ${DEFAULT_FRAME_MB})`,
      positiveNumber,
    )
    .option('--allow-partial', 'aggregate the replicates that succeeded even when others failed')
    .option('--python <path>', "run with this interpreter as it is, without the bundle's venv")
    .option('--runner <path>', "another runner script, e.g. production's subprocess_runner.py")
    .option(
      '--trace',
      "keep every runner's JSON-RPC frames in <out>/<job_id>/transcripts/ (replayable with handshake --replay)",
    )
    .option(
      '--trace-file',
      'always write trace.json (the run as a Chrome trace) in the results folder at the end (default: when it costs under 2 % of the run)',
    )
    .option('--no-trace-file', 'never write trace.json at the end')
    .option('--json', 'write every event as one JSON line on stdout')
    .addOption(
      new Option('--backend <backend>', 'where the tasks run: warm runners here, or an existing Dask cluster')
        .choices(['local', 'dask'])
        .default('local'),
    )
    .option(
      '--scheduler <address>',
      'with --backend dask: the Dask scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS)',
    )
    .option(
      '--dask-python <path>',
      'with --backend dask: the Python that runs the Dask driver (must import distributed; default: /usr/bin/python3, then python3)',
    )
    .option(
      '--worker-python <path>',
      "with --backend dask: the interpreter each worker builds the bundle's venv from (default: the worker's own)",
    )
    .option(
      '--connect-timeout <seconds>',
      'with --backend dask: how long to try to reach the scheduler',
      timeoutSeconds,
      RUN_DEFAULTS.connectTimeoutMs / 1000,
    )
    .option(
      '--dask-performance-report <file>',
      'with --backend dask: wrap the job in Dask\'s own performance_report(filename=FILE, mode="inline"), as production\'s ENABLE_PERF_REPORT does (the scheduler needs bokeh)',
    );
  return addVenvOptions(command).action(async (input: string | undefined, flags: RunFlags) => {
    process.exitCode = await run(input, flags);
  });
}

/**
 * The signals that stop a job cleanly (runners stopped, manifest `interrupted`, resumable):
 * Ctrl-C, a supervisor's SIGTERM, and SIGHUP when the terminal or SSH session goes away.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

async function run(input: string | undefined, flags: RunFlags): Promise<number> {
  let job: JobSpec;
  let store: ResultsStore;
  let bundleChange: BundleChange | undefined;
  try {
    if (flags.workers < 1) throw new Failure('bad-input', '--workers must be at least 1.');
    checkBackendFlags(flags);
    ({ job, store, bundleChange } = await openJob(input, flags));
  } catch (error) {
    return report(error, flags);
  }

  const progress = flags.json ? undefined : new Progress(Boolean(process.stderr.isTTY));
  const controller = new AbortController();
  const onStopSignal = (signal: StopSignal) => {
    if (controller.signal.aborted) process.exit(exitCodeForStop(signal)); // a second signal: now
    const again = signal === 'SIGINT' ? 'Ctrl-C' : signal;
    writeStderr(
      `\ninterrupted by ${signal}: stopping the runners and writing the manifest (${again} again to quit at once)\n`,
    );
    controller.abort(signal); // the reason becomes the exit code: see exitCodeForStop
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onStopSignal(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  const onEvent = (event: JobEvent) => {
    if (flags.json) {
      if (stdoutOpen()) writeStdout(`${stringifyWireJson(event)}\n`);
    } else progress!.onEvent(event);
  };
  try {
    const outcome = await runJob(job, store, {
      python: flags.python,
      basePython: flags.basePython,
      runnerScript: flags.runner,
      venv: venvCacheOptions(flags),
      workers: flags.workers,
      depth: flags.executor === 'cold' ? 1 : flags.queueDepth,
      executor: flags.executor,
      maxReuse: flags.maxReuse,
      retries: flags.retries,
      taskTimeoutMs: flags.taskTimeout * 1000,
      readyTimeoutMs: flags.readyTimeout * 1000,
      allowPartial: Boolean(flags.allowPartial),
      maxFrameBytes: frameCapBytes(flags.maxFrameMb),
      trace: flags.trace,
      traceFile: flags.traceFile,
      resumed: Boolean(flags.resume ?? flags.rerunFailed),
      bundleChange,
      ...(flags.backend === 'dask'
        ? {
            backend: 'dask',
            dask: {
              scheduler: flags.scheduler!,
              python: flags.daskPython,
              workerPython: flags.workerPython,
              connectTimeoutMs: flags.connectTimeout * 1000,
              performanceReport: flags.daskPerformanceReport,
            },
          }
        : { backend: 'local' }),
      onEvent,
      signal: controller.signal,
    });
    progress?.stop();
    if (!flags.json) writeStderr(summaryLines(job, outcome));
    const traced = outcome.traceFile;
    if (traced && 'error' in traced && !flags.json) writeStderr(`  note: trace.json not written: ${traced.error}\n`);
    return outcome.exitCode;
  } finally {
    for (const [signal, listener] of listeners) process.off(signal, listener);
  }
}

/**
 * The Dask backend takes a scheduler address, and refuses the options that only mean something
 * for warm runners on this machine rather than ignoring them.
 */
function checkBackendFlags(flags: RunFlags): void {
  if (flags.backend !== 'dask') {
    for (const [set, name] of [
      [flags.scheduler, '--scheduler'],
      [flags.daskPython, '--dask-python'],
      [flags.workerPython, '--worker-python'],
      [flags.daskPerformanceReport, '--dask-performance-report'],
    ] as const) {
      if (set) throw new Failure('bad-input', `${name} goes with --backend dask.`);
    }
    return;
  }
  flags.scheduler ??= process.env.DASK_SCHEDULER_ADDRESS;
  if (!flags.scheduler)
    throw new Failure('bad-input', '--backend dask needs --scheduler tcp://HOST:PORT (or DASK_SCHEDULER_ADDRESS).');
  checkSchedulerAddress(flags.scheduler);
  if (flags.daskPerformanceReport) flags.daskPerformanceReport = reportFile(flags.daskPerformanceReport);
  const local = [
    [flags.executor === 'cold', '--executor cold'],
    [flags.trace, '--trace'],
    [flags.python, '--python'],
    [flags.maxReuse > 0, '--max-reuse'],
  ] as const;
  for (const [set, name] of local)
    if (set)
      throw new Failure(
        'bad-input',
        `${name} is not supported with --backend dask (it is about runners on this machine).`,
      );
}

/** Where Dask's performance report goes, absolute: a file in a folder that exists, not a folder. */
function reportFile(file: string): string {
  const resolved = path.resolve(file);
  if (statSafe(resolved)?.isDirectory())
    throw new Failure('bad-input', `--dask-performance-report ${resolved} is a folder: give the HTML file to write.`);
  if (!statSafe(path.dirname(resolved))?.isDirectory())
    throw new Failure(
      'bad-input',
      `--dask-performance-report ${resolved}: the folder ${path.dirname(resolved)} does not exist.`,
    );
  return resolved;
}

/** The job and where its results go; everything is validated before anything is written. */
async function openJob(
  input: string | undefined,
  flags: RunFlags,
): Promise<{ job: JobSpec; store: ResultsStore; bundleChange?: BundleChange }> {
  const earlier = flags.resume ?? flags.rerunFailed;
  if (earlier) {
    if (input)
      throw new Failure(
        'bad-input',
        `${flags.resume ? '--resume' : '--rerun-failed'} takes the results directory; give no job as well.`,
      );
    if (flags.resume && flags.rerunFailed)
      throw new Failure('bad-input', '--resume and --rerun-failed do not go together.');
    return openEarlierRun(earlier, {
      rerunFailed: Boolean(flags.rerunFailed),
      allowBundleChange: flags.allowBundleChange,
    });
  }
  if (flags.allowBundleChange)
    throw new Failure('bad-input', '--allow-bundle-change goes with --resume or --rerun-failed.');
  if (!input) throw new Failure('bad-input', 'Give a job file, or a bundle directory with --params and --replicates.');
  const stat = statSafe(input);
  if (!stat) throw new Failure('bad-input', `${path.resolve(input)} does not exist.`);
  let job: JobSpec;
  if (stat.isDirectory()) {
    if (!flags.params || flags.replicates === undefined)
      throw new Failure(
        'bad-input',
        `${input} is a bundle directory: give --params FILE and --replicates N too (or a job file).`,
      );
    job = await jobFromParamsFile({
      bundleDir: input,
      paramsFile: flags.params,
      replicates: flags.replicates,
      entrypoint: flags.entrypoint,
      targets: flags.target,
      jobId: flags.jobId,
    });
  } else {
    if (flags.params || flags.replicates !== undefined)
      throw new Failure('bad-input', '--params and --replicates go with a bundle directory, not a job file.');
    job = await loadJobFile(input, flags.bundle);
  }
  await checkBundleDir(job.bundleDir);
  await readBundleDeps(job.bundleDir); // an unreadable pyproject.toml is bad input: say so before writing anything
  try {
    return { job, store: await ResultsStore.create(flags.out, job, await bundleDigest(job.bundleDir)) };
  } catch (error) {
    if (error instanceof ResultsExist)
      throw new Failure(
        'bad-input',
        `${error.message.replace(/\.$/, '')}; resume them with --resume ${error.dir}, or choose another job_id or --out.`,
      );
    throw error;
  }
}

function statSafe(file: string) {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

function summaryLines(job: JobSpec, outcome: Awaited<ReturnType<typeof runJob>>): string {
  const { sims, aggregations } = outcome.counts;
  const seconds = (outcome.ms / 1000).toFixed(1);
  const counts = `${sims.ok}/${sims.total} simulations ok${sims.failed ? `, ${sims.failed} failed` : ''}; ${aggregations.ok}/${aggregations.total} aggregations ok${aggregations.failed ? `, ${aggregations.failed} failed` : ''}${aggregations.skipped ? `, ${aggregations.skipped} skipped` : ''}`;
  const lines: string[] = [];
  switch (outcome.status) {
    case 'succeeded':
      lines.push(`✔ job ${job.jobId} succeeded in ${seconds} s: ${counts}`);
      break;
    case 'failed':
      lines.push(`✘ job ${job.jobId} finished in ${seconds} s with failures: ${counts}`);
      break;
    case 'interrupted':
      lines.push(
        `■ job ${job.jobId} interrupted after ${seconds} s: ${counts}; finish it with --resume ${outcome.dir}`,
      );
      break;
    case 'aborted':
      lines.push(
        `✘ job ${job.jobId} aborted after ${seconds} s: ${outcome.failure?.kind}: ${outcome.failure?.message}`,
      );
      if (outcome.failure?.location) lines.push(`  at ${renderLocation(outcome.failure.location, currentDir())}`);
      for (const note of outcome.failure?.evidence.notes ?? []) lines.push(`  note: ${note}`);
      if (outcome.failure?.evidence.engineStack) lines.push(outcome.failure.evidence.engineStack.replace(/^/gm, '  '));
      if (sims.pending)
        lines.push(
          `  ${sims.pending} simulations did not run; after fixing the cause, --resume ${outcome.dir} runs them`,
        );
      break;
  }
  lines.push(`  results: ${outcome.dir}`);
  return `${lines.join('\n')}\n`;
}

function report(error: unknown, flags: RunFlags): number {
  const failure = unexpectedFailure(error);
  if (flags.json)
    writeStdout(
      `${stringifyWireJson({ type: 'error', kind: failure.kind, message: failure.message, location: failure.location })}\n`,
    );
  else writeStderr(renderFailureLine(failure, currentDir()));
  return exitCodeFor(failure.kind);
}
