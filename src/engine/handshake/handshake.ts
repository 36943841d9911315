/**
 * A handshake: start a runner for a bundle, get `ready`, optionally run one replicate, and
 * explain the outcome — a verdict with per-phase timings, or the failure kind, its cause,
 * evidence and source line, plus warnings for anything that would break production.
 */
import * as path from 'node:path';
import { locate } from '../diagnose/pythonTrace';
import { breaksProduction, pollutionMessage } from '../diagnose/stdoutBlame';
import { Evidence, Failure, FailureKind, SourceLocation, unexpectedFailure } from '../failure';
import {
  ExecuteRequest,
  ReadyRequest,
  type ExecuteParams,
  type ReadyResult,
  type StdoutCaptureParams,
} from '../protocol';
import { ourRunnerScript } from '../process/runnerScript';
import { WarmProcess, type TranscriptEntry, type WarmProcessOptions } from '../process/warmProcess';
import { leasedVenv, prepareRunner, runnerLaunch, type PreparedRunner, type RuntimeOptions } from '../runtime/prepare';
import { describeOutput, type OutputView } from './outputs';

export interface HandshakeOptions extends RuntimeOptions {
  timeoutMs: number;
  /** Run one replicate after `ready`. */
  execute?: ExecuteParams & { timeoutMs?: number };
  recordTranscript?: boolean;
  /** Every frame both ways as it passes (see WarmProcessOptions.onTrace). */
  onTrace?: (pid: number | undefined, entry: TranscriptEntry) => void;
  env?: Record<string, string>;
  onStderr?: (chunk: Buffer) => void;
}

export interface Phase {
  name: string;
  ms: number;
}

export interface Warning {
  kind: FailureKind;
  message: string;
  location?: SourceLocation;
}

export interface HandshakeEvidence extends Evidence {
  bundle?: string;
  python?: string;
  runner?: string;
  venv?: { key: string; path: string; built: boolean; reason: string; fresh: boolean };
  ready?: ReadyResult;
  execute?: { ms: number; outputs: Record<string, OutputView> };
  /** Stdout writes our runner absorbed that production tolerates too (inside execute/aggregate). */
  harmlessStdout?: { text: string; location?: SourceLocation }[];
}

export interface HandshakeReport {
  ok: boolean;
  kind?: FailureKind;
  message: string;
  location?: SourceLocation;
  phases: Phase[];
  evidence: HandshakeEvidence;
  warnings: Warning[];
}

export interface TranscriptFile {
  version: 1;
  bundle: string;
  python: string;
  runner: string;
  recordedAt: string;
  entries: TranscriptEntry[];
}

export interface HandshakeOutcome {
  report: HandshakeReport;
  transcript?: TranscriptFile;
  /** What our runner recorded of writes to stdout (none from production's). */
  captures?: readonly StdoutCaptureParams[];
}

const DEFAULT_EXECUTE_TIMEOUT_MS = 60_000;

export async function handshake(options: HandshakeOptions): Promise<HandshakeOutcome> {
  let prepared: PreparedRunner;
  try {
    prepared = await prepareRunner(options);
  } catch (error) {
    return { report: failedReport(asFailure(error), [], { bundle: path.resolve(options.bundleDir) }, []) };
  }
  try {
    return await handshakePrepared(options, prepared);
  } finally {
    await prepared.lease?.release();
  }
}

async function handshakePrepared(options: HandshakeOptions, prepared: PreparedRunner): Promise<HandshakeOutcome> {
  const { bundleDir, python, runnerScript, digest, venv, lease } = prepared;
  const evidence: HandshakeEvidence = { bundle: bundleDir, python, runner: runnerScript };
  if (lease) evidence.venv = leasedVenv(prepared);
  const ours = runnerScript === ourRunnerScript();
  return shakeHands(
    {
      launch: runnerLaunch(prepared),
      evidence,
      phases:
        prepared.venvMs === undefined
          ? []
          : [{ name: lease?.built ? 'venv-build' : 'venv-check', ms: roundMs(prepared.venvMs) }],
      probe: ours
        ? undefined
        : () => ourRunnersCaptures({ python, bundleDir, digest, venv, env: options.env, timeoutMs: options.timeoutMs }),
    },
    options,
  );
}

/**
 * A runner to shake hands with: how to start it, what the report says it is, what was done
 * before it started (the venv), and, for a runner that does not record who writes to its stdout
 * (production's), how to have our runner's records of the same start-up to locate such a write.
 */
export interface HandshakeSubject {
  launch: Pick<WarmProcessOptions, 'python' | 'runnerScript' | 'bundleDir' | 'venvPath' | 'bundleDigest' | 'cwd'> & {
    env?: Record<string, string>;
  };
  evidence: HandshakeEvidence;
  phases: Phase[];
  probe?: () => Promise<readonly StdoutCaptureParams[]>;
  /**
   * For a recording played back that timed out where it ends: settles once the playback has got
   * there, and `ready` times out then, as if it had waited its whole timeout, rather than wait it
   * out a second time.
   */
  reachedTimeout?: Promise<unknown>;
}

export type ShakeOptions = Pick<
  HandshakeOptions,
  'timeoutMs' | 'execute' | 'recordTranscript' | 'onTrace' | 'env' | 'onStderr' | 'maxFrameBytes'
>;

/**
 * The handshake itself and its diagnosis: `ready`, optionally one replicate, shutdown, and the
 * report (phases, failure kind and evidence, stdout warnings, transcript). The engine's one set
 * of rules for a runner's start-up: a local handshake and a worker's recorded one both end here.
 */
export async function shakeHands(subject: HandshakeSubject, options: ShakeOptions): Promise<HandshakeOutcome> {
  const evidence: HandshakeEvidence = { ...subject.evidence };
  const bundleDir = subject.launch.bundleDir;
  const runner = WarmProcess.start({
    ...subject.launch,
    env: { ...options.env, ...subject.launch.env },
    maxFrameBytes: options.maxFrameBytes,
    onStderr: options.onStderr,
    recordTranscript: options.recordTranscript,
    onTrace: options.onTrace && ((entry) => options.onTrace?.(runner.pid, entry)),
  });
  void subject.reachedTimeout?.then(
    () => runner.timeOutNow(ReadyRequest.type.method),
    () => undefined, // then the timeout's own timer ends it
  );
  const phases: Phase[] = [...subject.phases];
  let failure: Failure | undefined;
  try {
    evidence.ready = await runner.ready(options.timeoutMs);
    phases.push(...startupPhases(runner.marks));
    if (options.execute) {
      const { timeoutMs, ...params } = options.execute;
      const started = runner.now();
      const outputs = await runner.request(ExecuteRequest.type, params, {
        timeoutMs: timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS,
      });
      const ms = runner.now() - started;
      phases.push({ name: 'execute', ms: roundMs(ms) });
      evidence.execute = {
        ms: roundMs(ms),
        outputs: Object.fromEntries(Object.entries(outputs).map(([name, b64]) => [name, describeOutput(b64)])),
      };
    }
  } catch (error) {
    failure = asFailure(error);
    if (!evidence.ready) phases.push(...startupPhases(runner.marks));
  } finally {
    await runner.shutdown();
  }
  evidence.stderrBytes = runner.stderr.total;
  const { warnings, harmless } = stdoutFindings(runner.captures, bundleDir);
  if (harmless.length) evidence.harmlessStdout = harmless;
  const transcript: TranscriptFile | undefined = options.recordTranscript
    ? {
        version: 1,
        bundle: evidence.bundle ?? bundleDir,
        python: evidence.python ?? subject.launch.python,
        runner: evidence.runner ?? subject.launch.runnerScript,
        recordedAt: new Date().toISOString(),
        entries: runner.transcript,
      }
    : undefined;
  if (failure?.kind === 'stdout-pollution' && subject.probe) {
    failure = await blameWithOurRunner(failure, subject.probe, bundleDir);
  }
  if (failure) {
    return { report: failedReport(failure, phases, evidence, warnings), transcript, captures: runner.captures };
  }
  const total = phases.reduce((sum, phase) => sum + phase.ms, 0);
  // the warnings are part of the verdict: "ok" alone would hide what production would break on
  const message = `Handshake ok${warnings.length ? ` with ${countWarnings(warnings.length)}` : ''} in ${total.toFixed(1)} ms: ${describeRunner(evidence.ready!)}${options.execute ? `; ${options.execute.entrypoint} ran in ${evidence.execute!.ms} ms` : ''}`;
  return { report: { ok: true, message, phases, evidence, warnings }, transcript, captures: runner.captures };
}

/** "1 warning", "2 warnings". */
function countWarnings(count: number): string {
  return `${count} warning${count === 1 ? '' : 's'}`;
}

function describeRunner(ready: ReadyResult): string {
  return `${ready.runner ?? 'runner'} pid ${ready.pid}, Python ${ready.version}`;
}

function failedReport(
  failure: Failure,
  phases: Phase[],
  evidence: HandshakeEvidence,
  warnings: Warning[],
): HandshakeReport {
  return {
    ok: false,
    kind: failure.kind,
    message: failure.message,
    location: failure.location,
    phases,
    evidence: { ...evidence, ...failure.evidence },
    warnings,
  };
}

function asFailure(error: unknown): Failure {
  return unexpectedFailure(error, 'shaking hands');
}

/** Our runner started once on the same bundle and interpreter: what it recorded of the writes to stdout. */
async function ourRunnersCaptures(run: {
  python: string;
  bundleDir: string;
  digest: string;
  venv: string;
  env?: Record<string, string>;
  timeoutMs: number;
}): Promise<readonly StdoutCaptureParams[]> {
  const probe = WarmProcess.start({
    python: run.python,
    runnerScript: ourRunnerScript(),
    bundleDir: run.bundleDir,
    venvPath: run.venv,
    bundleDigest: run.digest,
    env: run.env,
  });
  try {
    await probe.ready(run.timeoutMs);
  } catch {
    // the probe is only a helper: its own failure changes nothing about the verdict
  } finally {
    await probe.shutdown();
  }
  return probe.captures;
}

/**
 * A runner that does not report stray writes (production's) leaves only the bytes. Our runner
 * records who wrote them, so have its records of the same start-up (`probe`), and put the
 * failure on the line whose bytes match.
 */
async function blameWithOurRunner(
  failure: Failure,
  probe: () => Promise<readonly StdoutCaptureParams[]>,
  bundleDir: string,
): Promise<Failure> {
  const noise = Buffer.from(failure.evidence.stdoutNoiseB64 ?? '', 'base64');
  if (noise.length === 0) return failure;
  // the probe is only a helper: its own failure changes nothing about the verdict
  const captures = await probe().catch(() => [] as StdoutCaptureParams[]);
  const match = captures.find((capture) => {
    const bytes = Buffer.from(capture.bytes_b64, 'base64');
    return bytes.length > 0 && noise.includes(bytes);
  });
  const location = match && locate(match.stack, bundleDir);
  if (!location) return failure;
  const how = match.approximate ? 'approximately (a write below Python), ' : '';
  const evidence = {
    ...failure.evidence,
    notes: [
      ...(failure.evidence.notes ?? []),
      `located ${how}by re-running the bundle under the debugger's runner, which records who writes to stdout`,
    ],
  };
  return new Failure(failure.kind, failure.message, evidence, location);
}

// ---- timings ------------------------------------------------------------------------------

/** What the time up to each mark was spent on. */
const PHASE_ENDING_AT: Record<string, string> = {
  starting: 'interpreter-start',
  discovering: 'runner-setup',
  importing: 'discover-wire',
  serving: 'import-bundle',
  ready: 'ready-reply',
};

export function startupPhases(marks: readonly { name: string; atMs: number }[]): Phase[] {
  const phases: Phase[] = [];
  for (let i = 1; i < marks.length; i++) {
    const name =
      marks[i].name === 'ready' && marks[i - 1].name === 'spawn'
        ? 'start-to-ready'
        : (PHASE_ENDING_AT[marks[i].name] ?? marks[i].name);
    phases.push({ name, ms: roundMs(marks[i].atMs - marks[i - 1].atMs) });
  }
  return phases;
}

function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

// ---- stray stdout ---------------------------------------------------------------------------

function stdoutFindings(
  captures: readonly StdoutCaptureParams[],
  bundleDir: string,
): { warnings: Warning[]; harmless: { text: string; location?: SourceLocation }[] } {
  const warnings: Warning[] = [];
  const harmless: { text: string; location?: SourceLocation }[] = [];
  for (const capture of captures) {
    const location = locate(capture.stack, bundleDir);
    if (!breaksProduction(capture)) {
      harmless.push({ text: capture.text, location });
      continue;
    }
    warnings.push({
      kind: 'stdout-pollution',
      message: pollutionMessage(capture, location),
      location,
    });
  }
  return { warnings, harmless };
}
