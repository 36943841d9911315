/**
 * "Handshake on worker": a runner started on one Dask worker as production starts it (that
 * worker's cached venv's interpreter, production's argv `--bundle-path --venv-path
 * --bundle-digest`), its handshake recorded there byte for byte (modelops_cluster_actions.py),
 * and the recording diagnosed here by the engine's one set of rules: it is played back
 * (modelops_wire_replay.py: the same bytes on the same fds at the same times, the same exit) to
 * the same code a local `handshake --runner` uses (handshake.ts shakeHands), so phases, stdout
 * pollution, an exit before ready, the stderr tail and the transcript come out the same.
 *
 * A production runner's stray stdout is located as locally: our runner is started on the same
 * worker, venv and bundle, and its records of who wrote to stdout are matched to the bytes.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { withConnectedDriver } from '../backends/dask/probe';
import type { DaskDriver } from '../backends/dask/driver';
import { RUN_DEFAULTS } from '../backends/contract';
import { Failure } from '../failure';
import { shakeHands, type HandshakeReport, type HandshakeSubject, type TranscriptFile } from '../handshake/handshake';
import { ourRunnerScript, runnerDirFile } from '../process/runnerScript';
import { act, type ActionBase, type ActionTarget } from './actions';
import { parseVenvKey } from './verdict';

const REPLAY_FILE = 'modelops_wire_replay.py';
/** Beyond the handshake's own timeout, what the worker may spend: spawning, a stack dump, the shutdown. */
const WORKER_SLACK_S = 10;
/** A recording that did not time out is played back with this much more time, so that it never does here. */
const REPLAY_SLACK_MS = 1_000;
/** How often a playback of a recording that timed out is looked at, to see whether it has got to the timeout. */
const AT_TIMEOUT_POLL_MS = 20;
/**
 * Once it has, what the engine is given to read the bytes the playback wrote just before, so that
 * the stack dump it asks for next begins after them (as it does when its own timer fires).
 */
const AT_TIMEOUT_SETTLE_MS = 100;

/** What the worker recorded (modelops_cluster_actions.py `_record` and `handshake`). */
export interface WorkerRecording {
  venv: string;
  bundle: string;
  python: string;
  runner: string;
  runner_ours: boolean;
  argv: string[];
  digest: string;
  timeout_s: number;
  /** The runner's pid on the worker. */
  pid: number;
  events: { t: number; fd: 'in' | 'out' | 'err'; b64: string }[];
  usr1_at: number | null;
  timed_out: boolean;
  exit: { code: number | null; signal: string | null };
  exit_at: number;
  stdout_bytes: number;
  stderr_bytes: number;
  /** Streams recorded in part: stdout's first MiB, stderr's last. */
  truncated: ('out' | 'err')[];
}

export interface WorkerHandshakeOptions extends ActionTarget {
  /** A venv of the worker's venvs directory: its name (the key), or its path there. */
  venv: string;
  /** A bundle of the worker's bundles cache (`bundles/{name}`); default: the venv key's digest. */
  bundle?: string;
  bundlesDir?: string;
  /** `--bundle-digest` for the runner; default: the bundle directory's name. */
  bundleDigest?: string;
  /** A runner script on the worker (production's subprocess_runner.py); ours, shipped, when absent. */
  runnerPath?: string;
  /** The handshake's own timeout (ready), in ms. */
  handshakeTimeoutMs?: number;
}

export interface WorkerHandshakeResult extends ActionBase {
  action: 'handshake';
  venv: string;
  bundle: string;
  /** The worker's venv interpreter, the runner script on the worker, and the argv it was started with. */
  python?: string;
  runner?: string;
  runnerOurs?: boolean;
  argv?: string[];
  report?: HandshakeReport;
  transcript?: TranscriptFile;
  /** How the runner ended on the worker, and how much it wrote. */
  recording?: Pick<
    WorkerRecording,
    'pid' | 'exit' | 'exit_at' | 'timed_out' | 'stdout_bytes' | 'stderr_bytes' | 'truncated' | 'usr1_at'
  >;
}

export async function handshakeOnWorker(options: WorkerHandshakeOptions): Promise<WorkerHandshakeResult> {
  const timeoutMs = options.handshakeTimeoutMs ?? RUN_DEFAULTS.handshakeTimeoutMs;
  const bundle = options.bundle ?? bundleOfVenv(options.venv);
  return withConnectedDriver(options.scheduler, options, async (driver, connected) => {
    const record = (ours: boolean) => recordOnWorker(driver, options, bundle, timeoutMs, ours);
    const answer = await record(!options.runnerPath);
    const base = {
      scheduler: options.scheduler,
      worker: options.worker,
      host: (answer.host as string | undefined) ?? null,
      ms: answer.ms,
      action: 'handshake' as const,
    };
    if (answer.outcome === 'refused')
      return {
        ...base,
        outcome: 'refused',
        badInput: Boolean(answer.bad_input),
        venv: options.venv,
        bundle,
        message: `Refused to shake hands on ${options.worker}: ${answer.reason}`,
      };
    const recording = answer as unknown as WorkerRecording;
    const probe = recording.runner_ours
      ? undefined
      : async () => {
          const again = (await record(true)) as unknown as WorkerRecording & { outcome: string };
          if (again.outcome !== 'done') return [];
          const replayed = await diagnose(again, connected.driverPython, timeoutMs, undefined);
          return replayed.captures;
        };
    const { outcome } = await diagnose(recording, connected.driverPython, timeoutMs, probe);
    const { report, transcript } = outcome;
    // the evidence names the runner that ran, on the worker, not the local playback
    if (report.evidence.pid !== undefined) report.evidence.pid = recording.pid;
    // and the timeout it had there (the playback is given a little more, never to time out first)
    if (report.evidence.timeoutMs !== undefined) report.evidence.timeoutMs = timeoutMs;
    const where = `on ${options.worker}${base.host ? ` (${base.host})` : ''} with venv ${recording.venv}`;
    return {
      ...base,
      outcome: 'done',
      badInput: false,
      venv: recording.venv,
      bundle: recording.bundle,
      python: recording.python,
      runner: recording.runner,
      runnerOurs: recording.runner_ours,
      argv: recording.argv,
      report,
      transcript,
      recording: {
        pid: recording.pid,
        exit: recording.exit,
        exit_at: recording.exit_at,
        timed_out: recording.timed_out,
        usr1_at: recording.usr1_at,
        stdout_bytes: recording.stdout_bytes,
        stderr_bytes: recording.stderr_bytes,
        truncated: recording.truncated,
      },
      message: report.ok ? `${report.message} (${where})` : `${report.kind}: ${report.message} (${where})`,
    };
  });
}

/** The bundle a venv was made for: its key's digest part (`sha256:abcde-py3.12-…` → `sha256:abcde`). */
function bundleOfVenv(venv: string): string {
  const key = parseVenvKey(path.basename(venv.replace(/\/+$/, '')));
  if (!key)
    throw new Failure(
      'bad-input',
      `The venv ${venv} has no production key ({digest}-py{X.Y}-{deps8}) to tell its bundle by: name the bundle with --bundle.`,
    );
  return key.digest;
}

function recordOnWorker(
  driver: DaskDriver,
  options: WorkerHandshakeOptions,
  bundle: string,
  timeoutMs: number,
  ours: boolean,
) {
  const runner = ourRunnerScript();
  return act(driver, { worker: options.worker, timeoutS: timeoutMs / 1000 + WORKER_SLACK_S }, 'handshake', {
    venv: options.venv,
    bundle,
    venvs_dir: options.venvsDir,
    bundles_dir: options.bundlesDir,
    bundle_digest: options.bundleDigest,
    timeout_s: timeoutMs / 1000,
    ...(ours
      ? {
          runner_file: path.basename(runner),
          // the script and the module it imports
          runner_files: Object.fromEntries(
            [runner, path.join(path.dirname(runner), 'modelops_debugger_runner.py')].map((f) => [path.basename(f), f]),
          ),
        }
      : { runner_path: options.runnerPath }),
  });
}

/**
 * The recording played back to shakeHands: the report, the transcript, and what our runner
 * recorded of writes to stdout (for locating a production runner's).
 */
async function diagnose(
  recording: WorkerRecording,
  python: string,
  timeoutMs: number,
  probe: HandshakeSubject['probe'],
) {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'modelops-worker-handshake-'));
  const done = new AbortController();
  try {
    const file = path.join(scratch, 'recording.json');
    await writeFile(file, JSON.stringify(recording));
    // the playback says when it has written what came before the timeout on the worker: the
    // timeout was waited out there, and is not waited out again here
    const atTimeout = path.join(scratch, 'at-timeout');
    const reachedTimeout = recording.timed_out ? appears(atTimeout, done.signal) : undefined;
    reachedTimeout?.catch(() => undefined); // stopped: the playback is over, whoever was waiting
    const subject: HandshakeSubject = {
      launch: {
        python,
        runnerScript: runnerDirFile(REPLAY_FILE),
        bundleDir: recording.bundle,
        venvPath: recording.venv,
        bundleDigest: recording.digest,
        cwd: scratch,
        // the spawn's time, so that the bytes come as long after it as they came on the worker
        env: {
          MODELOPS_WIRE_REPLAY: file,
          MODELOPS_WIRE_REPLAY_T0: String(Date.now() / 1000),
          MODELOPS_WIRE_REPLAY_AT_TIMEOUT: atTimeout,
        },
      },
      evidence: {
        bundle: recording.bundle,
        python: recording.python,
        runner: recording.runner,
        venv: {
          key: path.basename(recording.venv),
          path: recording.venv,
          built: false,
          fresh: Boolean(parseVenvKey(path.basename(recording.venv))?.fresh),
          reason: 'cached on the worker',
        },
      },
      phases: [],
      probe,
      reachedTimeout,
    };
    const outcome = await shakeHands(subject, {
      timeoutMs: recording.timed_out ? timeoutMs : timeoutMs + REPLAY_SLACK_MS,
      recordTranscript: true,
    });
    return { outcome, captures: outcome.captures ?? [] };
  } finally {
    done.abort();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Resolves a moment after `file` exists; rejects once `stop` is aborted before then. */
async function appears(file: string, stop: AbortSignal): Promise<void> {
  while (!existsSync(file)) await sleep(AT_TIMEOUT_POLL_MS, undefined, { signal: stop });
  await sleep(AT_TIMEOUT_SETTLE_MS, undefined, { signal: stop });
}

/** What heads a handshake's report on a worker (the CLI's and the editor's): where it ran, with what. */
export function workerHandshakeHeading(shake: WorkerHandshakeResult): string {
  return [
    `Handshake on worker ${shake.worker}${shake.host ? ` (host ${shake.host})` : ''}`,
    `  venv:   ${shake.venv}`,
    `  bundle: ${shake.bundle}`,
    `  runner: ${shake.runner}${shake.runnerOurs ? " (modelops-debugger's, sent for this handshake)" : ''}`,
    `  argv:   ${shake.argv!.join(' ')}`,
    '',
  ].join('\n');
}
