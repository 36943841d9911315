/**
 * Turning how a runner ended into one failure kind, a one-line cause, and the evidence.
 *
 * The WarmProcess collects the facts (exit, phase, stderr, stray stdout bytes, the runner's
 * own fatal report); this module decides what they mean, so the rules live in one place.
 */
import * as os from 'node:os';
import { Evidence, Failure, FailureKind, SourceLocation, type OomEvidence } from '../failure';
import {
  ErrorCodes,
  type ExitingParams,
  type FatalParams,
  type PyFrame,
  type ResultTooLargeData,
  type UserErrorData,
} from '../protocol';
import { showSize } from '../process/frameCap';
import { oomCause } from './oom';
import { locate, parseFaultDump, parseTraceback, primaryThread, type FaultDump } from './pythonTrace';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** Everything known about a runner at the moment something went wrong. */
export interface RunnerFacts {
  bundleDir: string;
  pid?: number;
  /** Last start-up phase our runner reported, or undefined for a runner that reports none. */
  phase?: string;
  /** The request in flight, if any ("ready", "execute", …). */
  method?: string;
  exit?: ExitInfo;
  fatal?: FatalParams;
  /** Our runner: the bundle called os._exit, here. */
  exiting?: ExitingParams;
  /** stderr written since the request started (bounded). */
  stderrSince: string;
  stderrTail: string;
  stderrBytes: number;
  noise?: Buffer;
  elapsedMs?: number;
  timeoutMs?: number;
  /** faulthandler output obtained on request (timeouts). */
  stacks?: string;
  /** It died by a SIGKILL the engine did not send, most likely from the OOM killer (diagnose/oom.ts). */
  oom?: OomEvidence;
}

const STDERR_TAIL_SHOWN = 4000;
/** An exception message longer than this is clipped in the one-line message (the evidence keeps it whole). */
const MESSAGE_SHOWN = 2000;

/** `explained`: the cause is said after it (an OOM kill), so no guess is added. */
export function describeExit(exit: ExitInfo, explained = false): string {
  if (exit.signal) {
    const number = os.constants.signals[exit.signal as keyof typeof os.constants.signals];
    const hint = explained
      ? ''
      : exit.signal === 'SIGKILL'
        ? ' (killed: out of memory, or by another process)'
        : exit.signal === 'SIGSEGV'
          ? ' (segmentation fault in native code)'
          : '';
    return `was killed by ${exit.signal}${number ? ` (signal ${number})` : ''}${hint}`;
  }
  return `exited with code ${exit.code}`;
}

/** Bytes shown as text, with anything unprintable escaped, so the user sees exactly what came. */
export function showBytes(bytes: Buffer, max = 2000): string {
  const clipped = bytes.subarray(0, max);
  let out = '';
  for (const byte of clipped) {
    if (byte === 0x0a) out += '\\n\n';
    else if (byte === 0x0d) out += '\\r';
    else if (byte === 0x09) out += '\\t';
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  const trimmed = out.endsWith('\n') ? out.slice(0, -1) : out;
  return bytes.length > max ? `${trimmed}… (${bytes.length} bytes in all)` : trimmed;
}

function baseEvidence(facts: RunnerFacts): Evidence {
  const evidence: Evidence = {
    pid: facts.pid,
    phase:
      facts.method && facts.phase ? `${facts.method} (runner phase: ${facts.phase})` : (facts.method ?? facts.phase),
    stderrTail: facts.stderrTail.slice(-STDERR_TAIL_SHOWN),
    stderrBytes: facts.stderrBytes,
  };
  if (facts.exit) {
    evidence.exitCode = facts.exit.code;
    evidence.signal = facts.exit.signal;
  }
  if (facts.noise?.length) {
    evidence.stdoutNoise = showBytes(facts.noise);
    evidence.stdoutNoiseB64 = facts.noise.subarray(0, 64 * 1024).toString('base64');
  }
  if (facts.elapsedMs !== undefined) evidence.elapsedMs = Math.round(facts.elapsedMs);
  if (facts.timeoutMs !== undefined) evidence.timeoutMs = facts.timeoutMs;
  if (facts.stacks) evidence.stacks = facts.stacks;
  return evidence;
}

/** Location from a faulthandler dump: the crashing thread first, then the others. */
function dumpLocation(
  dump: FaultDump | undefined,
  bundleDir: string,
): { location?: SourceLocation; frames?: PyFrame[] } {
  if (!dump) return {};
  const primary = primaryThread(dump);
  const ordered = primary ? [primary, ...dump.threads.filter((t) => t !== primary)] : dump.threads;
  for (const thread of ordered) {
    const location = locate(thread.frames, bundleDir);
    if (location) return { location, frames: thread.frames };
  }
  return { frames: primary?.frames };
}

/** The runner process ended while a request was in flight, or before `ready` answered. */
export function classifyExit(facts: RunnerFacts): Failure {
  const evidence = baseEvidence(facts);
  const exit = facts.exit ?? { code: null, signal: null };
  const beforeReady = facts.method === undefined || facts.method === 'ready';
  const how = describeExit(exit);

  if (beforeReady) {
    const phase = facts.phase ?? 'start-up';
    if (facts.fatal) {
      const fatal = facts.fatal;
      evidence.exception = { type: fatal.exc_type, message: fatal.exc, traceback: fatal.traceback };
      evidence.frames = fatal.frames;
      const location = locate(fatal.frames, facts.bundleDir);
      const cause =
        fatal.exc_type === 'SystemExit'
          ? `the bundle called sys.exit(${fatal.exc || ''})`
          : `${fatal.exc_type}: ${fatal.exc}`;
      if (fatal.no_wire || isNoWire(fatal.exc)) return noWireFunction(facts.bundleDir, evidence);
      return new Failure(
        'runner-exited-before-ready',
        `Runner ${how} while ${phaseWords(fatal.phase)}: ${cause}`,
        evidence,
        location,
      );
    }
    const traceback = parseTraceback(facts.stderrTail);
    if (traceback) {
      evidence.exception = { type: traceback.excType, message: traceback.message, traceback: traceback.text };
      evidence.frames = traceback.frames;
      const cause = traceback.message ? `${traceback.excType}: ${traceback.message}` : traceback.excType;
      if (isNoWire(traceback.message)) return noWireFunction(facts.bundleDir, evidence);
      return new Failure(
        'runner-exited-before-ready',
        `Runner ${how} before ready: ${cause}`,
        evidence,
        locate(traceback.frames, facts.bundleDir),
      );
    }
    if (facts.exiting && facts.exiting.code === exit.code) {
      evidence.frames = facts.exiting.stack;
      return new Failure(
        'runner-exited-before-ready',
        `Runner ${how} while ${phaseWords(phase)}: the bundle called os._exit(${facts.exiting.code})`,
        evidence,
        locate(facts.exiting.stack, facts.bundleDir),
      );
    }
    const dump = dumpLocation(parseFaultDump(facts.stderrTail), facts.bundleDir);
    evidence.frames = dump.frames;
    return new Failure(
      'runner-exited-before-ready',
      `Runner ${how} while ${phaseWords(phase)}, before answering ready`,
      evidence,
      dump.location,
    );
  }

  const dump = parseFaultDump(facts.stderrSince);
  const located = dumpLocation(dump, facts.bundleDir);
  if (dump) {
    evidence.stacks = dump.text;
    evidence.frames = located.frames;
  }
  const during = crashPhase(facts.method, dump);
  if (facts.stderrSince) evidence.taskStderr = facts.stderrSince.slice(-STDERR_TAIL_SHOWN);
  evidence.phase = `${during} (${facts.method} request)`;
  const uncaught = dump ? undefined : endingTraceback(facts.stderrSince, exit);
  if (uncaught) {
    // a runner (production's) that lets SystemExit, KeyboardInterrupt or another BaseException
    // from the bundle end it: the exception and its line, and never "a signal" for a
    // KeyboardInterrupt (Python ends itself with SIGINT after printing one)
    evidence.exception = { type: uncaught.excType, message: uncaught.message, traceback: uncaught.text };
    evidence.frames = uncaught.frames;
    const location = locate(uncaught.frames, facts.bundleDir);
    const cause = uncaught.message ? `${uncaught.excType}: ${uncaught.message}` : uncaught.excType;
    const message =
      exit.signal === 'SIGINT'
        ? `Runner ended ${during} on an uncaught KeyboardInterrupt (Python then ends itself with SIGINT)`
        : `Runner ${how} ${during} on an uncaught ${cause}`;
    return new Failure('process-crashed', message, evidence, location);
  }
  const exiting = facts.exiting;
  if (!dump && exiting && exit.code === exiting.code) {
    // our runner saw the bundle call os._exit: its line, not a guess
    evidence.frames = exiting.stack;
    const location = locate(exiting.stack, facts.bundleDir);
    const thread = exiting.thread ? ` in thread ${exiting.thread}` : '';
    const where = location ? ` in ${location.function ?? '?'}()` : '';
    return new Failure(
      'process-crashed',
      `Runner ${how} ${during}: the bundle called os._exit(${exiting.code})${where}${thread}`,
      evidence,
      location,
    );
  }
  if (!dump && exit.code !== null) {
    evidence.notes = [
      ...(evidence.notes ?? []),
      'an exit code, not a signal, in the middle of a request: the bundle may have called sys.exit() or os._exit() (our runner reports the line of a sys.exit)',
    ];
  }
  const where = located.location ? ` at ${located.location.function ?? '?'}()` : '';
  if (facts.oom) {
    evidence.oom = facts.oom;
    const killed = `Runner ${describeExit(exit, true)} ${during}${where}`;
    return new Failure('process-crashed', `${killed}, ${oomCause(facts.oom)}`, evidence, located.location);
  }
  return new Failure('process-crashed', `Runner ${how} ${during}${where}`, evidence, located.location);
}

/**
 * Where the runner was when it died under a request, in the user's words: during the simulation
 * or the aggregation, or, when the fault dump says so, between tasks (its main thread waiting for
 * the next request) or in a thread of the bundle's.
 */
export function crashPhase(method: string | undefined, dump: FaultDump | undefined): string {
  const work =
    method === 'execute'
      ? 'the simulation'
      : method === 'aggregate'
        ? 'the aggregation'
        : method
          ? `the ${method} request`
          : 'start-up';
  if (!dump?.threads.length) return `during ${work}`;
  const main = dump.threads[dump.threads.length - 1]; // faulthandler lists the newest thread first
  const crashed = dump.threads.find((t) => t.current);
  const waiting =
    main.frames.some((f) => f.function === 'read_message') &&
    !main.frames.some((f) => f.function === 'execute' || f.function === 'aggregate');
  const background = crashed && crashed !== main ? ` in thread ${crashed.thread}` : '';
  if (waiting) return `between tasks${background}`;
  return `during ${work}${background}`;
}

/** A request got no answer in time; `stacks` holds the runner's dump when it could give one. */
/** Production's runner and ours both stop with "No wire specified …" when a bundle has no wire function. */
function isNoWire(message: string | undefined): boolean {
  return Boolean(message?.startsWith('No wire specified'));
}

/**
 * A bundle without a wire function is the user's input being wrong, not the environment: the same
 * `bad-input` (exit 2) from a handshake and from a job, whichever runner said it.
 */
function noWireFunction(bundleDir: string, evidence: Evidence): Failure {
  return new Failure(
    'bad-input',
    `Bundle ${bundleDir} has no wire function: add wire.py with a wire() function, a .modelops/manifest.json {"wire": "module:function"}, or a modelops.wire entry point.`,
    evidence,
  );
}

export function classifyTimeout(facts: RunnerFacts): Failure {
  const evidence = baseEvidence(facts);
  const kind: FailureKind = facts.method === 'ready' ? 'handshake-timeout' : 'task-timeout';
  const dump = facts.stacks ? parseFaultDump(facts.stacks) : undefined;
  const located = dumpLocation(dump, facts.bundleDir);
  if (located.frames) evidence.frames = located.frames;
  if (!facts.stacks) {
    evidence.notes = [...(evidence.notes ?? []), 'no stack dump: the runner does not register faulthandler on SIGUSR1'];
  }
  const timeoutMs = facts.timeoutMs ?? 0;
  // a sub-second timeout (--task-timeout 0.02) reads as 20 ms, not "0.0 s"
  const limit = timeoutMs < 1000 ? `${Number(timeoutMs.toPrecision(3))} ms` : `${(timeoutMs / 1000).toFixed(1)} s`;
  const doing =
    facts.method === 'ready'
      ? `answer ready (still ${phaseWords(facts.phase ?? 'starting up')})`
      : `finish ${facts.method}`;
  const where = located.location ? `; it is at ${located.location.function ?? '?'}()` : '';
  return new Failure(kind, `Runner did not ${doing} within ${limit}${where}`, evidence, located.location);
}

/** Bytes on stdout that are not frames: production's reader would choke on them. */
export function classifyPollution(facts: RunnerFacts, frameFollowed: boolean): Failure {
  const noise = facts.noise ?? Buffer.alloc(0);
  const evidence = baseEvidence(facts);
  if (frameFollowed) {
    evidence.notes = [
      'a well-formed frame followed the stray bytes: the runner itself works, the bytes broke the framing',
    ];
  }
  const firstLine = (
    showBytes(noise, 80)
      .split('\n')
      .find((l) => l.trim() !== '') ?? ''
  ).replace(/\\n$/, '');
  return new Failure(
    'stdout-pollution',
    `Runner wrote ${noise.length} byte${noise.length === 1 ? '' : 's'} that are not JSON-RPC frames to stdout${facts.method ? ` during ${facts.method}` : ''}: "${firstLine}"`,
    evidence,
  );
}

export function classifyProtocol(facts: RunnerFacts, reason: string, detail?: string): Failure {
  const evidence = baseEvidence(facts);
  if (detail) evidence.notes = [detail];
  return new Failure(
    'protocol-error',
    `Protocol error${facts.method ? ` during ${facts.method}` : ''}: ${reason}`,
    evidence,
  );
}

/** A JSON-RPC error response: user code raised (-32000/-32001), or the runner refused the call. */
export function classifyErrorResponse(
  facts: RunnerFacts,
  error: { code: number; message: string; data?: unknown },
): Failure {
  const evidence = baseEvidence(facts);
  if (error.code === ErrorCodes.resultTooLarge && isResultTooLarge(error.data))
    return classifyResultTooLarge(facts, error.data);
  const data = (error.data && typeof error.data === 'object' ? error.data : undefined) as UserErrorData | undefined;
  if ((error.code === -32000 || error.code === -32001) && data) {
    const frames = data.frames ?? parseTraceback(data.traceback ?? '')?.frames;
    evidence.exception = { type: data.exc_type, message: data.exc, traceback: data.traceback };
    evidence.frames = frames;
    const kind: FailureKind = error.code === -32000 ? 'task-exception' : 'aggregation-failed';
    const { message, notes } = userExceptionWords(
      { ...data, exc: clip(data.exc) },
      error.code === -32000 ? 'simulation' : 'target',
    );
    if (notes.length) evidence.notes = [...(evidence.notes ?? []), ...notes];
    return new Failure(kind, message, evidence, locate(frames, facts.bundleDir));
  }
  const detail = typeof error.data === 'string' ? `: ${error.data}` : '';
  return new Failure(
    'protocol-error',
    `Runner refused ${facts.method}: ${error.code} ${error.message}${detail}`,
    evidence,
  );
}

/**
 * The one line for an exception from bundle code. The ways out of Python that are not errors
 * (sys.exit, KeyboardInterrupt, other BaseExceptions) are named for what they are: never as a
 * signal from the user, unless the runner saw one.
 */
export function userExceptionWords(
  data: UserErrorData,
  who: 'simulation' | 'target',
): { message: string; notes: string[] } {
  const notes: string[] = [];
  const plain = data.exc ? `${data.exc_type}: ${data.exc}` : data.exc_type;
  if (data.base_exception)
    notes.push(`${data.exc_type} derives from BaseException, not Exception; the runner caught it and stays warm`);
  if (data.exc_type === 'SystemExit') {
    const code = data.exit_code === undefined ? data.exc : data.exit_code === null ? '' : String(data.exit_code);
    const zero = code === '0' || code === '' ? ' (an exit status of success, but the task returned nothing)' : '';
    return { message: `SystemExit: the ${who} called sys.exit(${code})${zero}`, notes };
  }
  if (data.exc_type === 'KeyboardInterrupt') {
    if (data.signal)
      return {
        message: `KeyboardInterrupt: the runner received ${data.signal} while the ${who} ran (a signal sent to its process, not a raise in the code)`,
        notes,
      };
    if (data.signal === null) {
      notes.push('no signal reached the runner: the code raised KeyboardInterrupt itself');
      return { message: `KeyboardInterrupt raised by the ${who}'s code${data.exc ? `: ${data.exc}` : ''}`, notes };
    }
  }
  return { message: plain, notes };
}

/**
 * The traceback Python printed as it ended, when it is the last thing on stderr and the process
 * ended as an uncaught exception ends it (an exit code, or SIGINT after a KeyboardInterrupt).
 */
function endingTraceback(stderr: string, exit: ExitInfo) {
  const parsed = parseTraceback(stderr);
  if (!parsed) return undefined;
  const lastLine = parsed.text.trimEnd().split('\n').at(-1) ?? '';
  if (!stderr.trimEnd().endsWith(lastLine)) return undefined;
  if (exit.signal === 'SIGINT') return parsed.excType === 'KeyboardInterrupt' ? parsed : undefined;
  return exit.code !== null && exit.code !== 0 ? parsed : undefined;
}

function isResultTooLarge(data: unknown): data is ResultTooLargeData {
  return typeof data === 'object' && data !== null && (data as { kind?: unknown }).kind === 'result-too-large';
}

/** A message as long as a line should be; the evidence keeps the whole of it. */
function clip(message: string): string {
  return message.length <= MESSAGE_SHOWN
    ? message
    : `${message.slice(0, MESSAGE_SHOWN)}… (a message of ${message.length} characters, whole in the evidence)`;
}

/**
 * An answer over the frame cap: refused by our runner before sending (with each output's size
 * and the line that returned it), or passed unread by the engine (a runner that does not know
 * the cap), whose outline names the outputs. Never allocated; the runner stays usable.
 */
export function classifyResultTooLarge(facts: RunnerFacts, data: ResultTooLargeData): Failure {
  const evidence = baseEvidence(facts);
  const outputs = [...data.outputs].sort((a, b) => b.encoded_bytes - a.encoded_bytes);
  const sizeOf = (o: ResultTooLargeData['outputs'][number]) =>
    o.bytes !== undefined
      ? `${showSize(o.bytes)} (${showSize(o.encoded_bytes)} encoded)`
      : `${showSize(o.encoded_bytes)} encoded`;
  evidence.notes = [
    `frame of ${data.frame_bytes} bytes; the cap is ${data.max_frame_bytes} bytes (--max-frame-mb)`,
    ...outputs.map(
      (o) =>
        `output ${JSON.stringify(o.name)}: ${o.bytes !== undefined ? `${o.bytes} bytes, ` : ''}${o.encoded_bytes} bytes encoded`,
    ),
  ];
  evidence.frames = data.frames;
  const what = data.method === 'aggregate' ? 'aggregation result' : 'result';
  const biggest = outputs[0];
  const named = biggest ? `Output ${JSON.stringify(biggest.name)} is ${sizeOf(biggest)}: the ` : 'The ';
  const message = `${named}${what} of ${showSize(data.frame_bytes)} exceeds the ${showSize(data.max_frame_bytes)} frame cap (raise it with --max-frame-mb)`;
  return new Failure('result-too-large', message, evidence, locate(data.frames, facts.bundleDir));
}

function phaseWords(phase: string): string {
  switch (phase) {
    case 'starting':
      return 'starting up';
    case 'discovering':
      return 'looking for the wire function';
    case 'importing':
      return 'importing the bundle';
    case 'serving':
      return 'serving requests';
    default:
      return phase;
  }
}
