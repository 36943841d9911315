/**
 * One runner subprocess: spawned with an argument array, spoken to over JSON-RPC on its
 * stdin/stdout, its stderr always drained. Every way it can go wrong ends a request with a
 * typed Failure (see diagnose/classify.ts); nothing waits without a timeout.
 */
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import * as os from 'node:os';
import { execa, type ResultPromise } from 'execa';
import type { Message, RequestMessage, ResponseMessage, NotificationMessage, RequestType } from 'vscode-jsonrpc';
import {
  classifyErrorResponse,
  classifyExit,
  classifyPollution,
  classifyProtocol,
  classifyResultTooLarge,
  classifyTimeout,
  type ExitInfo,
  type RunnerFacts,
} from '../diagnose/classify';
import { Failure, type OomEvidence } from '../failure';
import { oomVerdict } from '../diagnose/oom';
import { MemoryWatch, readOomKills, settingLimitKb } from './memory';
import { MEASURE_TASKS } from './measures';
import { isCompleteDump } from '../diagnose/pythonTrace';
import {
  ExitingNotification,
  FatalNotification,
  PhaseNotification,
  ReadyRequest,
  ShutdownRequest,
  SpawnedNotification,
  StdoutNotification,
  type ExitingParams,
  type ResponseExtras,
  type RunnerResources,
  type FatalParams,
  type PhaseParams,
  type ReadyResult,
  type SpawnedParams,
  type StdoutCaptureParams,
} from '../protocol';
import {
  endProcessGroup,
  findDescendants,
  RUNNER_TOKEN_ENV,
  signalGroup,
  startTicksOf,
  type LingeringDescendant,
  type Spawn,
  type TaskSpan,
} from './descendants';
import { StderrFile, StderrTail, type StderrSource } from './stderrTail';
import { StderrMarks, STDERR_MARKS_ENV } from './stderrMarks';
import { StdoutTap, type TapEvent } from './stdoutTap';
import { DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_ENV, showSize } from './frameCap';
import { parseWireJson } from '../pyjson/pyjson';
import { encodeFrame, FrameWriter } from './frameWriter';

export interface WarmProcessOptions {
  /** The interpreter to run, resolved (not a pyenv shim). */
  python: string;
  /** Runner script: ours, or a production `subprocess_runner.py`. */
  runnerScript: string;
  bundleDir: string;
  venvPath: string;
  bundleDigest: string;
  /** Where it runs; the bundle directory when absent (a runner played back from a recording runs elsewhere). */
  cwd?: string;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  /**
   * Frames above this many bytes are never allocated: an answer to execute or aggregate is
   * `result-too-large` (the runner stays usable), anything else a protocol error. Our runner is
   * told the cap and refuses before sending.
   */
  maxFrameBytes?: number;
  stderrTailBytes?: number;
  /**
   * Every stderr chunk, as it arrives (for log files and output channels), with the tag of the
   * request the runner was working on (its task key, when the caller gave one).
   */
  onStderr?: (chunk: Buffer, tag: string | undefined) => void;
  /**
   * Send stderr straight to this file (`fd`: open for appending; the child gets it as its fd 2)
   * instead of through the engine: the child writes at file speed, and the tail is read from
   * the file when needed.
   */
  stderrFile?: { path: string; fd: number };
  onPhase?: (phase: PhaseParams, atMs: number) => void;
  /** `task`: the tag of the request the runner was working on when the bytes came (undefined: none). */
  onCapture?: (capture: StdoutCaptureParams, task: string | undefined) => void;
  /** Keep every frame both ways, and stray stdout bytes, with timestamps. */
  recordTranscript?: boolean;
  /**
   * Scheduling priority of the runner (0–19, higher yields more): an editor running a job on
   * every core stays responsive when its runners give way to it.
   */
  nice?: number;
  /** Every frame both ways and every stray stdout write, as it happens (a protocol trace). */
  onTrace?: (entry: TranscriptEntry) => void;
  /**
   * The memory the runner may use, in kB, against which a SIGKILL under a task is judged an OOM
   * kill (diagnose/oom.ts); default: `MODELOPS_MEMORY_LIMIT_MB`, else its cgroup's, else physical memory.
   */
  memoryLimitKb?: number;
  /** How often its resident size is sampled while it works on a request (process/memory.ts SAMPLE_MS). */
  memorySampleMs?: number;
}

export type TranscriptEntry =
  { t: number; dir: 'out' | 'in'; message: unknown } | { t: number; dir: 'in'; noise: string; bytes_b64: string };

export interface RequestOptions {
  timeoutMs: number;
  /** Names the request in stderr callbacks while the runner works on it (a task key). */
  tag?: string;
  /** Filled in as the request runs: where its stderr starts and ends in the runner's stderr. */
  span?: StderrSpan;
  /** Filled in when it is answered. */
  usage?: RequestUsage;
  /**
   * Called when the runner begins it: at once for a request sent to an idle runner, else when
   * the one before it is answered (requests queued behind others wait in the pipe meanwhile);
   * `atMs` on performance.now()'s clock.
   */
  onBegin?: (atMs: number) => void;
}

/**
 * A request's time in its runner: `inRunnerMs` from when the runner began it (sent to an idle
 * runner, or its predecessor answered) to its answer; `resources`, what it cost the runner, as
 * our runner measures it (production's does not).
 */
export interface RequestUsage {
  inRunnerMs?: number;
  /** When the runner began it, on performance.now()'s clock (as `inRunnerMs` counts from). */
  beganAtMs?: number;
  resources?: RunnerResources;
}

/**
 * A request's part of the runner's stderr, as byte offsets in the whole stream (which is the
 * runner's log file, byte for byte): from when the runner began it to when it was answered (or
 * the runner ended). Unset while it waits behind another request.
 */
export interface StderrSpan {
  start?: number;
  end?: number;
}

interface Pending {
  method: string;
  /** When the runner began it: sending time for the head of the queue, else when the one before it was answered. */
  startedAt: number;
  stderrOffset: number;
  timeoutMs: number;
  tag?: string;
  span?: StderrSpan;
  usage?: RequestOptions['usage'];
  onBegin?: (atMs: number) => void;
  /** Armed only while this request is the one the runner is working on. */
  timer: NodeJS.Timeout | undefined;
  /** Its timeout is being handled (the stacks asked for): it is not timed out twice. */
  timingOut?: boolean;
  resolve: (value: unknown) => void;
  reject: (failure: Failure) => void;
}

const DEFAULT_STDERR_TAIL = 256 * 1024;
/** How long stray stdout bytes may keep coming before the verdict is given. */
const NOISE_SETTLE_MS = 100;
/** How long an answer waits for its stderr mark at most (it is written just before the answer). */
const MARK_WAIT_MS = 200;
/** How long a runner that answered `shutdown` gets to exit by itself (it takes a few ms). */
const SELF_EXIT_MS = 250;
/** How long a runner gets to write its stack dump after SIGUSR1. */
const STACK_DUMP_WAIT_MS = 1500;
/**
 * How long to wait for the last stdout/stderr bytes after the process exited. A descendant
 * that escaped the runner's process group may hold the pipes open for ever: after this, our
 * ends are closed, so neither the job nor the CLI waits for it.
 */
const STREAM_DRAIN_MS = 500;
/** Tasks remembered per runner to say which one started a lingering process (the latest ones). */
const TASK_SPANS_KEPT = 4096;
/** Processes the bundle started, remembered per runner; past this, those that ended are forgotten. */
const SPAWNS_KEPT = 1024;

/** The longest delay a Node timer keeps (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Marks a request that was queued in the pipe and never began. */
export const NOT_STARTED = 'not-started';

export class WarmProcess {
  readonly pid: number | undefined;
  readonly stderr: StderrSource;
  /** Start-up marks, ms since spawn: `spawn`, our runner's phases, `ready`. */
  readonly marks: { name: string; atMs: number }[] = [{ name: 'spawn', atMs: 0 }];
  readonly captures: StdoutCaptureParams[] = [];
  readonly transcript: TranscriptEntry[] = [];
  /** Set when our runner announced itself; the production runner never does. */
  runnerName: string | undefined;
  phase: string | undefined;
  fatal: FatalParams | undefined;
  /** The bundle called os._exit (our runner says where, just before it exits). */
  exiting: ExitingParams | undefined;
  exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Set once the process can no longer be used; later requests fail with it at once. */
  brokenBy: Failure | undefined;
  /** Tasks (execute and aggregate requests) answered since spawn. */
  uses = 0;
  /**
   * Processes the runner's descendants left running when it ended (set once it has): those in
   * its process group were ended with it, those that escaped the group were left running.
   */
  lingering: LingeringDescendant[] = [];
  /** Processes the bundle started, as our runner reported them. */
  readonly spawns: Spawn[] = [];

  private readonly child: ResultPromise;
  private readonly started = performance.now();
  /** When the last bytes came from the runner's stdout (this.now()): an answer's arrival. */
  private answeredAt = 0;
  private readonly writer: FrameWriter;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Messages read but not yet handled (only while stderr is followed: see onFrame). */
  private readonly inbox: Message[] = [];
  private noise: Buffer[] = [];
  private noiseTimer: NodeJS.Timeout | undefined;
  private frameAfterNoise = false;
  private readonly stdoutEnded: Promise<void>;
  private readonly stderrEnded: Promise<void>;
  /** Marks the runner's descendants: each inherits it in its environment. */
  private readonly token = `${process.pid}-${randomBytes(8).toString('hex')}`;
  private readonly startTicks: Promise<number | undefined>;
  private readonly taskSpans: TaskSpan[] = [];
  /** Where the runner's last answered request's stderr ended, as it said (see ResponseExtras). */
  private stderrCursor: number | undefined;
  /** Request id → where its stderr ended in the pipe (stderrMarks.ts), until its answer is handled. */
  private readonly stderrMarks = new Map<number, number>();
  /** The runner marks its stderr (a pipe, and our runner). */
  private readonly marking: boolean;
  private stderrEndedSeen = false;
  /** Messages waiting for an answer's mark (see handle). */
  private readonly parked: Message[] = [];
  private parkTimer: NodeJS.Timeout | undefined;
  /** Its resident size, sampled while it works (undefined when it never started). */
  private readonly memory: MemoryWatch | undefined;
  /** The engine sent it a SIGKILL (a timeout, a broken stream, a kill): its death is never an OOM kill. */
  private killSent = false;
  /** When it exited (ms since spawn). */
  private diedAtMs = 0;

  private constructor(private readonly options: WarmProcessOptions) {
    const tailBytes = options.stderrTailBytes ?? DEFAULT_STDERR_TAIL;
    this.stderr = options.stderrFile ? new StderrFile(options.stderrFile.path, tailBytes) : new StderrTail(tailBytes);
    // a file descriptor is handed to the child as it is (no stream in between); typed loosely
    // because execa's overloads do not take a union of a descriptor and 'pipe'
    const stderr = (options.stderrFile ? options.stderrFile.fd : 'pipe') as 'pipe';
    this.child = execa(
      options.python,
      [
        options.runnerScript,
        '--bundle-path',
        options.bundleDir,
        '--venv-path',
        options.venvPath,
        '--bundle-digest',
        options.bundleDigest,
      ],
      {
        cwd: options.cwd ?? options.bundleDir,
        env: {
          ...options.env,
          PYTHONUNBUFFERED: '1',
          [RUNNER_TOKEN_ENV]: this.token,
          [MAX_FRAME_ENV]: String(this.maxFrameBytes),
          ...(options.stderrFile ? {} : { [STDERR_MARKS_ENV]: '1' }),
        },
        extendEnv: true,
        stdin: 'pipe',
        stdout: 'pipe',
        stderr,
        buffer: false,
        reject: false,
        // its own session and process group, which ends with it (descendants included); execa's
        // `cleanup` does not apply to detached processes, so liveGroups (below) does that
        detached: true,
      },
    );
    this.pid = this.child.pid;
    if (this.pid !== undefined) liveGroups.add(this.pid);
    this.startTicks = this.pid === undefined ? Promise.resolve(undefined) : startTicksOf(this.pid);
    if (options.nice && this.pid !== undefined) lowerPriority(this.pid, options.nice);
    this.memory =
      this.pid === undefined || !MEASURE_TASKS
        ? undefined
        : new MemoryWatch(this.pid, {
            settingKb: options.memoryLimitKb ?? settingLimitKb(),
            sampleMs: options.memorySampleMs,
            busy: () => this.pending.size > 0,
            now: () => this.now(),
          });

    this.stderrEnded = streamEnd(this.child.stderr);
    const tail = this.stderr;
    this.marking = !options.stderrFile;
    if (tail instanceof StderrTail) {
      const marks = new StderrMarks();
      const take = (data: Buffer, tag: string | undefined) => {
        tail.push(data);
        options.onStderr?.(data, tag);
      };
      this.child.stderr!.on('data', (chunk: Buffer) => {
        // what comes after an answer's mark is the next request's (the runner answers in order);
        // an answer whose mark was read but whose stdout was not is over, so it is skipped
        let tag = this.requestUnmarked()?.tag;
        let marked = false;
        for (const piece of marks.split(chunk)) {
          if ('data' in piece) take(piece.data, tag);
          else if (this.pending.has(piece.mark)) {
            this.stderrMarks.set(piece.mark, tail.total);
            tag = this.requestAfter(piece.mark)?.tag;
            marked = true;
          }
        }
        if (marked && this.parked.length) this.releaseParked();
      });
      this.child.stderr!.on('end', () => {
        const rest = marks.flush();
        if (rest) take(rest, undefined);
        this.stderrEndedSeen = true;
        this.releaseParked(true);
      });
    }

    const tap = new StdoutTap(
      this.maxFrameBytes,
      (event) => this.onTap(event),
      () => this.mayBeResult(),
    );
    this.stdoutEnded = new Promise((resolve) => {
      this.child.stdout!.on('end', () => {
        tap.end();
        resolve();
      });
    });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.answeredAt = this.now();
      tap.push(chunk);
    });

    this.writer = new FrameWriter(this.child.stdin!);
    this.writer.onError(() => undefined); // a closed stdin shows up as the process exit

    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        this.diedAtMs = this.now();
        this.memory?.stop();
        if (this.pid !== undefined && killedOnPurpose.delete(this.pid)) this.killSent = true;
        void this.onExit().then(() => resolve(this.exitInfo!));
      });
      this.child.on('error', (error: NodeJS.ErrnoException) => {
        // spawn failures (ENOENT, EACCES): no 'exit' follows
        if (this.exitInfo) return;
        this.exitInfo = { code: null, signal: null };
        this.breakWith(classifyProtocol(this.facts(), `could not start ${options.python}: ${error.message}`));
        resolve(this.exitInfo);
      });
    });
  }

  get maxFrameBytes(): number {
    return this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  static start(options: WarmProcessOptions): WarmProcess {
    return new WarmProcess(options);
  }

  /** Done with the process: release the stderr file it was read from, if any. */
  closeStderr(): void {
    if (this.stderr instanceof StderrFile) this.stderr.close();
  }

  get bundleDir(): string {
    return this.options.bundleDir;
  }

  get python(): string {
    return this.options.python;
  }

  get runnerScript(): string {
    return this.options.runnerScript;
  }

  get alive(): boolean {
    return this.exitInfo === undefined && this.brokenBy === undefined;
  }

  /** ms since spawn */
  now(): number {
    return performance.now() - this.started;
  }

  ready(timeoutMs: number): Promise<ReadyResult> {
    return this.request(ReadyRequest.type, {}, { timeoutMs }).then((result) => {
      this.marks.push({ name: 'ready', atMs: this.now() });
      return result;
    });
  }

  request<P, R, E>(type: RequestType<P, R, E>, params: P, options: RequestOptions): Promise<R> {
    if (this.brokenBy) return Promise.reject(this.brokenBy);
    if (this.exitInfo) return Promise.reject(classifyExit({ ...this.facts(), method: type.method }));
    const id = this.nextId++;
    const message: RequestMessage = { jsonrpc: '2.0', id, method: type.method, params: params as object };
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (error) {
      return Promise.reject(
        classifyProtocol(this.facts(type.method), `the ${type.method} request could not be encoded: ${String(error)}`),
      );
    }
    return new Promise<R>((resolve, reject) => {
      const pending: Pending = {
        method: type.method,
        startedAt: this.now(),
        stderrOffset: this.stderr.mark(),
        timeoutMs: options.timeoutMs,
        tag: options.tag,
        span: options.span,
        usage: options.usage,
        onBegin: options.onBegin,
        timer: undefined,
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      this.pending.set(id, pending);
      if (this.pending.size === 1) this.armHead();
      this.record('out', message);
      this.writer.sendFrame(frame);
    });
  }

  /** Requests queued behind the one in progress (the runner answers strictly in order). */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * A runner works on one request at a time, in order; requests behind it wait in the pipe.
   * Only the one in progress is timed, from when it began: `since`, when the answer before it
   * came (the runner read it as it wrote that answer), else now (sent to an idle runner).
   */
  private armHead(since = this.now()): void {
    const next = this.pending.entries().next();
    if (next.done) return;
    const [id, head] = next.value;
    if (head.timer) return;
    head.startedAt = since;
    head.stderrOffset = this.stderr.mark();
    // our runner said where its last answer's stderr ended; else a span costs a stat of the log
    if (head.span) head.stderrOffset = head.span.start = this.stderrCursor ?? this.stderr.total;
    // beyond 2^31-1 ms Node fires a timer at once (TimeoutOverflowWarning): cap, never expire early
    head.timer = setTimeout(() => void this.onTimeout(id), Math.min(head.timeoutMs, MAX_TIMER_MS));
    this.memory?.busy();
    head.onBegin?.(this.started + since);
  }

  /**
   * Ask the runner to stop, then make sure it did. One that answered gets a moment to exit by
   * itself, so its end says "exit 0", not a SIGTERM it never needed; not more, because Python
   * waits at exit for the bundle's non-daemon processes (multiprocessing), which may never end.
   */
  async shutdown(graceMs = 2000): Promise<ExitInfo> {
    if (this.alive && this.pending.size === 0) {
      const answered = await this.request(ShutdownRequest.type, {}, { timeoutMs: graceMs }).then(
        () => true,
        () => false,
      );
      this.child.stdin?.end();
      if (answered) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.exited,
          new Promise((resolve) => (timer = setTimeout(resolve, Math.min(graceMs, SELF_EXIT_MS)))),
        ]);
        clearTimeout(timer);
      }
    }
    return this.terminate(graceMs);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async terminate(graceMs = 2000): Promise<ExitInfo> {
    if (!this.exitInfo) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.sigkill(), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  kill(): Promise<ExitInfo> {
    if (!this.exitInfo) this.sigkill();
    return this.exited;
  }

  /** Every SIGKILL the engine sends goes through here, so that it is never taken for the OOM killer's. */
  private sigkill(): void {
    this.killSent = true;
    this.child.kill('SIGKILL');
  }

  /**
   * Every thread's stack, from faulthandler on SIGUSR1 (our runner only: the signal would kill
   * a runner that does not register it). Undefined when it cannot be had.
   */
  async dumpStacks(waitMs = STACK_DUMP_WAIT_MS): Promise<string | undefined> {
    if (!this.runnerName || this.exitInfo || this.pid === undefined) return undefined;
    const before = this.stderr.total;
    try {
      process.kill(this.pid, 'SIGUSR1');
    } catch {
      return undefined; // ESRCH: it exited after the check above; its exit tells the rest
    }
    // faulthandler writes the dump in one go; wait for its last thread's frames to land
    const dumped = () => this.stderr.since(before);
    await this.stderr.waitFor(() => isCompleteDump(dumped()), waitMs);
    return dumped().trim() || undefined;
  }

  /** What the diagnosis needs, as of now. */
  facts(method?: string, pending?: Pending): RunnerFacts {
    return {
      bundleDir: this.options.bundleDir,
      pid: this.pid,
      phase: this.phase,
      method,
      exit: this.exitInfo,
      fatal: this.fatal,
      exiting: this.exiting,
      stderrSince: this.stderr.since(pending?.stderrOffset ?? 0),
      stderrTail: this.stderr.text(),
      stderrBytes: this.stderr.total,
      noise: this.noise.length ? this.stdoutNoise : undefined,
      elapsedMs: pending ? this.now() - pending.startedAt : undefined,
      timeoutMs: pending?.timeoutMs,
    };
  }

  /**
   * The facts of a request the runner answered: how it ended is the answer's. An exit or a fatal
   * signal already seen came after the answer was written (the engine may read both in one turn),
   * from a request queued behind it (a raise answered, then the next task's `os._exit(17)`).
   */
  private answerFacts(pending: Pending): RunnerFacts {
    return { ...this.facts(pending.method, pending), exit: undefined, fatal: undefined, exiting: undefined };
  }

  /** Stray stdout bytes seen so far (empty for our runner, which keeps fd 1 clean). */
  get stdoutNoise(): Buffer {
    return Buffer.concat(this.noise);
  }

  // ---- incoming -------------------------------------------------------------------------

  private onTap(event: TapEvent): void {
    switch (event.type) {
      case 'frame':
        if (this.noise.length) {
          this.frameAfterNoise = true;
          this.recordIncomingAfterNoise(event.text);
          this.settleNoise();
        } else this.onFrame(event.text);
        return;
      case 'noise':
        this.onNoise(event.bytes);
        return;
      case 'oversized':
        this.onOversized(event);
        return;
      case 'violation':
        this.breakWith(classifyProtocol(this.facts(), event.reason, `frame header: ${JSON.stringify(event.header)}`));
    }
  }

  /** One whole frame's JSON text, decoded in one linear pass (pyjson.ts). */
  private onFrame(text: string): void {
    let message: Message;
    try {
      message = parseWireJson(text) as Message;
    } catch (error) {
      this.breakWith(classifyProtocol(this.facts(), `unreadable frame: ${(error as Error).message}`));
      return;
    }
    if (!this.followsStderr) {
      this.handle(message);
      return;
    }
    // stderr and stdout are two pipes, read in whatever order the poll returns them: a runner
    // writes a task's stderr before its answer, so the answer waits for the stderr already read
    // in this turn, which then still goes to the task, not to "the runner between tasks"
    this.inbox.push(message);
    if (this.inbox.length === 1) setImmediate(() => this.inbox.splice(0).forEach((queued) => this.handle(queued)));
  }

  private handle(message: Message): void {
    // an answer of ours whose stderr mark is still in the other pipe waits for it (and what came
    // after it waits too, in order), so its span and its stderr's task are exact
    if (this.parked.length || this.awaitsMark(message)) {
      this.parked.push(message);
      this.parkTimer ??= setTimeout(() => this.releaseParked(true), MARK_WAIT_MS);
      return;
    }
    this.deliver(message);
  }

  /** Delivers parked messages in order, up to one whose mark has not come (all, when `force`). */
  private releaseParked(force = false): void {
    while (this.parked.length && (force || !this.awaitsMark(this.parked[0]))) this.deliver(this.parked.shift()!);
    if (this.parked.length === 0 && this.parkTimer) {
      clearTimeout(this.parkTimer);
      this.parkTimer = undefined;
    }
  }

  /** Our runner marks stderr before every answer when it is a pipe (stderrMarks.ts); production's never does. */
  private awaitsMark(message: Message): boolean {
    if (!this.marking || !this.runnerName || this.stderrEndedSeen) return false;
    if (!('id' in message) || typeof message.id !== 'number' || !('result' in message || 'error' in message))
      return false;
    return this.pending.has(message.id) && !this.stderrMarks.has(message.id);
  }

  private deliver(message: Message): void {
    try {
      this.onMessage(message);
    } catch (error) {
      // a callback that threw must not escape the stdout 'data' handler (it would end the engine)
      this.breakWith(classifyProtocol(this.facts(), `handling a runner message failed: ${String(error)}`));
    }
  }

  /** The engine reads the runner's stderr itself and tags it with the task at hand (the editor). */
  private get followsStderr(): boolean {
    return this.stderr instanceof StderrTail && this.options.onStderr !== undefined;
  }

  /** An over-cap frame may be let pass unkept only when it can be the answer to a task. */
  private mayBeResult(): boolean {
    const method = this.pending.values().next().value?.method;
    return method === 'execute' || method === 'aggregate';
  }

  /** A frame over the cap went by unkept: an answer is `result-too-large`; the runner stays in step. */
  private onOversized(event: Extract<TapEvent, { type: 'oversized' }>): void {
    const { outline } = event;
    const id = typeof outline.id === 'number' ? outline.id : this.pending.keys().next().value;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || (outline.part !== 'result' && outline.part !== 'error')) {
      const what = outline.part === 'method' ? 'notification' : 'message';
      this.breakWith(
        classifyProtocol(
          this.facts(),
          `a ${showSize(event.length)} ${what} exceeds the ${this.maxFrameBytes}-byte frame cap`,
          `frame header: ${JSON.stringify(event.header)}`,
        ),
      );
      return;
    }
    this.pending.delete(id!);
    clearTimeout(pending.timer);
    this.endSpan(pending);
    this.armHead(this.answeredAt);
    if (pending.method === 'execute' || pending.method === 'aggregate') this.uses++;
    pending.reject(
      classifyResultTooLarge(this.answerFacts(pending), {
        kind: 'result-too-large',
        method: pending.method,
        frame_bytes: event.length,
        max_frame_bytes: this.maxFrameBytes,
        outputs:
          outline.part === 'result'
            ? outline.members.map((m) => ({ name: m.name, encoded_bytes: m.encodedBytes }))
            : [{ name: '(error report)', encoded_bytes: event.length }],
      }),
    );
  }

  private onMessage(message: Message): void {
    this.record('in', message);
    if ('id' in message && message.id !== null && ('result' in message || 'error' in message)) {
      this.onResponse(message as ResponseMessage);
    } else if ('method' in message) {
      this.onNotification(message as NotificationMessage);
    }
  }

  private onResponse(response: ResponseMessage): void {
    const pending = this.pending.get(response.id as number);
    if (!pending) return; // a late answer to a request that already timed out
    this.pending.delete(response.id as number);
    clearTimeout(pending.timer);
    const extras = (response as ResponseExtras).modelops;
    // a request queued behind another began when the runner wrote the answer before it, which
    // the engine reads a little later: our runner's own wall time says how long it took at least
    const now = this.now();
    const wall = extras?.resources?.wall_ms;
    if (typeof wall === 'number' && now - pending.startedAt < wall) pending.startedAt = Math.max(0, now - wall);
    if (pending.usage) {
      pending.usage.inRunnerMs = now - pending.startedAt;
      pending.usage.beganAtMs = this.started + pending.startedAt;
      if (extras?.resources) pending.usage.resources = extras.resources;
    }
    const told = extras?.stderr ?? this.markedSpan(response.id as number, pending);
    if (told && pending.span) [pending.span.start, pending.span.end] = told;
    else this.endSpan(pending);
    if (told) this.stderrCursor = told[1];
    this.armHead(this.answeredAt);
    if (pending.method === 'execute' || pending.method === 'aggregate') this.uses++;
    if (pending.tag !== undefined)
      this.rememberSpan({ task: pending.tag, startMs: pending.startedAt, endMs: this.now() });
    if (response.error) {
      pending.reject(classifyErrorResponse(this.answerFacts(pending), response.error));
    } else {
      pending.resolve(response.result);
    }
  }

  private onNotification(message: NotificationMessage): void {
    switch (message.method) {
      case PhaseNotification.method: {
        const phase = message.params as PhaseParams;
        this.phase = phase.phase;
        if (phase.runner) this.runnerName = phase.runner;
        const atMs = this.now();
        this.marks.push({ name: phase.phase, atMs });
        this.options.onPhase?.(phase, atMs);
        break;
      }
      case StdoutNotification.method: {
        const capture = message.params as StdoutCaptureParams;
        this.captures.push(capture);
        this.options.onCapture?.(capture, this.pending.values().next().value?.tag);
        break;
      }
      case ExitingNotification.method:
        this.exiting = message.params as ExitingParams;
        break;
      case FatalNotification.method:
        this.fatal = message.params as FatalParams;
        break;
      case SpawnedNotification.method:
        // it comes before the answer to the request that started it: that request is the head
        this.spawns.push({ ...(message.params as SpawnedParams), task: this.pending.values().next().value?.tag });
        if (this.spawns.length > SPAWNS_KEPT) this.forgetEndedSpawns();
        break;
    }
  }

  // ---- what goes wrong ------------------------------------------------------------------

  private onNoise(bytes: Buffer): void {
    this.noise.push(bytes);
    if (this.tracing)
      this.trace({
        t: round(this.now()),
        dir: 'in',
        noise: bytes.toString('utf8'),
        bytes_b64: bytes.toString('base64'),
      });
    if (this.noiseTimer) clearTimeout(this.noiseTimer);
    this.noiseTimer = setTimeout(() => this.settleNoise(), NOISE_SETTLE_MS);
  }

  /** Frames after stray bytes are kept as evidence, but production would never have read them. */
  private recordIncomingAfterNoise(body: string): void {
    if (!this.tracing) return;
    try {
      this.trace({ t: round(this.now()), dir: 'in', message: parseWireJson(body) });
    } catch {
      this.trace({ t: round(this.now()), dir: 'in', noise: body, bytes_b64: Buffer.from(body).toString('base64') });
    }
  }

  private settleNoise(): void {
    if (this.noiseTimer) clearTimeout(this.noiseTimer);
    this.noiseTimer = undefined;
    if (this.brokenBy || this.noise.length === 0) return;
    const method = this.pending.values().next().value?.method;
    this.breakWith(classifyPollution(this.facts(method), this.frameAfterNoise));
  }

  /** The stream cannot be trusted any more: fail everything in flight and stop the process. */
  private breakWith(failure: Failure): void {
    if (this.brokenBy) return;
    this.brokenBy = failure;
    this.rejectAll(() => failure);
    if (!this.exitInfo) this.sigkill();
  }

  /**
   * The request in progress, if it is a `method`, times out now, as if it had waited its whole
   * timeout (its elapsed time says so): for a recording played back that is known to have timed
   * out where it ends, so that its timeout is not waited out a second time.
   */
  timeOutNow(method: string): void {
    const next = this.pending.entries().next();
    if (next.done || next.value[1].method !== method) return;
    const [id, head] = next.value;
    clearTimeout(head.timer);
    head.startedAt = Math.min(head.startedAt, this.now() - head.timeoutMs);
    void this.onTimeout(id);
  }

  private async onTimeout(id: number): Promise<void> {
    const pending = this.pending.get(id);
    if (!pending || pending.timingOut) return;
    pending.timingOut = true;
    // a timeout that races the runner's exit ends in one of the two verdicts, never in an error
    const stacks = await this.dumpStacks().catch(() => undefined);
    if (!this.pending.has(id)) return; // it answered, or exited, while the stacks were being dumped
    // it is the head of the queue: breakWith gives it the timeout, and those behind it "not started"
    this.breakWith(classifyTimeout({ ...this.facts(pending.method, pending), stacks }));
  }

  private async onExit(): Promise<void> {
    // its descendants go with it: those in its group hold the pipes too, and nothing may outlive a job
    await this.endFamily();
    // the last frames (a fatal report) and stderr lines may still be in the pipes
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise((resolve) => (timer = setTimeout(resolve, STREAM_DRAIN_MS)));
    await Promise.race([Promise.all([this.stdoutEnded, this.stderrEnded]), drained]);
    clearTimeout(timer); // a pending timer would keep a finished CLI alive
    // a process that escaped the group may still hold the pipes: close our ends, never wait on it
    for (const stream of [this.child.stdout, this.child.stderr, this.child.stdin]) stream?.destroy();
    await new Promise((resolve) => setImmediate(resolve)); // let decoded messages be delivered
    this.releaseParked(true);
    // an exit explains more than the stray bytes before it; those stay in the evidence
    if (this.noiseTimer) clearTimeout(this.noiseTimer);
    const oom = await this.oomEvidence();
    this.rejectAll((pending) => classifyExit({ ...this.facts(pending.method, pending), oom }));
  }

  /**
   * It died under a simulation or an aggregation by a SIGKILL the engine did not send: the
   * evidence that the OOM killer sent it (the kernel's counter, read now, against the last
   * sample's; its last sampled size against the limit), or undefined (diagnose/oom.ts).
   */
  private async oomEvidence(): Promise<OomEvidence | undefined> {
    const head = this.pending.values().next().value;
    const exit = this.exitInfo;
    if (!this.memory || exit?.signal !== 'SIGKILL' || this.killSent) return undefined;
    if (head?.method !== 'execute' && head?.method !== 'aggregate') return undefined;
    const limit = this.memory.limit;
    return oomVerdict({
      exit,
      killedByEngine: this.killSent,
      limit,
      last: this.memory.last,
      diedAtMs: this.diedAtMs,
      killsBefore: this.memory.oomKills,
      killsAfter: readOomKills(limit.counter),
    });
  }

  /**
   * The request the runner was working on gets the diagnosis; those queued behind it never
   * started, so they are `cancelled` ("not started") and can be sent elsewhere without counting
   * an attempt.
   */
  private rejectAll(failureFor: (pending: Pending) => Failure): void {
    let head = true;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      clearTimeout(pending.timer);
      if (head) this.endSpan(pending);
      if (head) pending.reject(failureFor(pending));
      else
        pending.reject(
          new Failure(
            'cancelled',
            `not started: the runner (pid ${this.pid}) failed while working on an earlier request`,
            { notes: [NOT_STARTED] },
          ),
        );
      head = false;
    }
  }

  /**
   * The runner has exited: note which of its descendants are still running, then end its
   * process group. Never throws and never waits longer than the group's grace (plus one scan).
   */
  private async endFamily(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      this.lingering = await findDescendants({
        pid,
        token: this.token,
        startTicks: await this.startTicks,
        spawns: this.spawns,
        tasks: this.taskSpans,
        bundleDir: this.options.bundleDir,
      });
    } catch (error) {
      // the report is lost, not the clean-up: say so where the runner's stderr goes
      const note = Buffer.from(`modelops-debugger: could not list the runner's descendants: ${String(error)}\n`);
      try {
        if (this.options.stderrFile) writeSync(this.options.stderrFile.fd, note);
        else this.options.onStderr?.(note, undefined);
      } catch {
        // the log is closed already: the runner's end must not wait on its report
      }
    }
    await endProcessGroup(pid);
    liveGroups.delete(pid);
  }

  /** A bundle that starts a process per task (subprocess.run) must not grow this without end. */
  private forgetEndedSpawns(): void {
    const running = this.spawns.filter((spawn) => isRunning(spawn.pid));
    this.spawns.splice(0, this.spawns.length, ...running.slice(-SPAWNS_KEPT / 2));
  }

  /** [start, end) of an answered request's stderr, from the mark our runner wrote before the answer. */
  private markedSpan(id: number, pending: Pending): [number, number] | undefined {
    const end = this.stderrMarks.get(id);
    if (end === undefined) return undefined;
    this.stderrMarks.delete(id);
    return [pending.span?.start ?? end, end];
  }

  /** The request queued behind `id`, which the runner begins once it has answered `id`. */
  /** The first request whose stderr mark has not come: the one the runner works on now. */
  private requestUnmarked(): Pending | undefined {
    for (const [key, pending] of this.pending) if (!this.stderrMarks.has(key)) return pending;
    return undefined;
  }

  private requestAfter(id: number): Pending | undefined {
    let found = false;
    for (const [key, pending] of this.pending) {
      if (found) return pending;
      found = key === id;
    }
    return undefined;
  }

  /** The request is answered (or its runner ended): its stderr ends here. */
  private endSpan(pending: Pending): void {
    if (pending.span && pending.span.start !== undefined) pending.span.end = this.stderr.total;
  }

  private rememberSpan(span: TaskSpan): void {
    if (this.taskSpans.length >= TASK_SPANS_KEPT) this.taskSpans.splice(0, this.taskSpans.length - TASK_SPANS_KEPT + 1);
    this.taskSpans.push(span);
  }

  private record(dir: 'in' | 'out', message: unknown): void {
    if (this.tracing) this.trace({ t: round(this.now()), dir, message });
  }

  private get tracing(): boolean {
    return Boolean(this.options.recordTranscript || this.options.onTrace);
  }

  private trace(entry: TranscriptEntry): void {
    if (this.options.recordTranscript) this.transcript.push(entry);
    this.options.onTrace?.(entry);
  }
}

function streamEnd(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
  });
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Process groups of runners not yet ended. A detached runner would outlive an engine that
 * exits without closing its pool (an uncaught error, process.exit): on exit, every group left
 * is killed (synchronously: nothing else runs in an 'exit' handler).
 */
const liveGroups = new Set<number>();

/** Runners killed on purpose from outside their WarmProcess (killRunner): their death is no OOM kill. */
const killedOnPurpose = new Set<number>();

/**
 * SIGKILL a runner of this engine by its pid (the editor's "Kill" on a warm process), saying it
 * was done on purpose, so that the task it was working on is never blamed on memory. False when
 * there is no such process.
 */
export function killRunner(pid: number): boolean {
  killedOnPurpose.add(pid);
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    killedOnPurpose.delete(pid);
    return false;
  }
}
process.once('exit', () => {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Best effort: a runner that exits at once, or a system that refuses, keeps its priority. */
function lowerPriority(pid: number, nice: number): void {
  try {
    os.setPriority(pid, nice);
  } catch {
    // ESRCH (already gone) or EACCES: the job runs the same, only less politely
  }
}
