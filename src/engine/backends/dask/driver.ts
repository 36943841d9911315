/**
 * The Dask driver process (src/runner/modelops_dask_driver.py): found, started with an
 * argument array, spoken to over JSON-RPC (vscode-jsonrpc, the runners' framing), its stderr
 * kept. Every request has a timeout with a reason, and the driver's exit ends every wait.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import {
  createMessageConnection,
  type MessageConnection,
  type Disposable,
  type NotificationType,
  type RequestType,
} from 'vscode-jsonrpc';
import { describeExit, type ExitInfo } from '../../diagnose/classify';
import { Failure, type FailureKind } from '../../failure';
import { resolvePython } from '../../process/python';
import { ourRunnerScript } from '../../process/runnerScript';
import { StderrTail } from '../../process/stderrTail';
import type { DriverErrorData } from './protocol';
import { FrameWriter } from '../../process/frameWriter';
import { TapMessageReader } from '../../process/tapMessageReader';
import { DEFAULT_MAX_FRAME_BYTES, DRIVER_FRAME_SLACK_BYTES } from '../../process/frameCap';

export const DRIVER_FILE = 'modelops_dask_driver.py';
/** Where to look for a Python with `distributed`, when none is named: Debian's first. */
const DEFAULT_PYTHONS = ['/usr/bin/python3', 'python3'];
const PROBE_TIMEOUT_MS = 15_000;
const DRIVER_STDERR_TAIL = 64 * 1024;

/**
 * The interpreter to run the driver with: `requested` (which must have distributed), else the
 * first of /usr/bin/python3 and python3 on PATH that has it. Asks without importing it.
 */
export async function findDaskPython(requested?: string): Promise<string> {
  const tried: string[] = [];
  for (const candidate of requested ? [requested] : DEFAULT_PYTHONS) {
    let python: string;
    try {
      python = (await resolvePython(candidate)).path;
    } catch {
      tried.push(`${candidate}: not found`);
      continue;
    }
    const probe = await execa(
      python,
      ['-c', 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("distributed") else 1)'],
      { reject: false, timeout: PROBE_TIMEOUT_MS, stdin: 'ignore' },
    );
    if (probe.exitCode === 0) return python;
    tried.push(`${python}: ${probe.timedOut ? 'did not answer' : 'cannot import distributed'}`);
  }
  throw new Failure(
    'interpreter-not-found',
    `No Python that can import distributed for the Dask driver (${tried.join('; ')}); install Dask (Debian: apt-get install python3-distributed; else pip install distributed) or name one with --dask-python`,
    { tried },
  );
}

/** The driver script, beside the runner (dist/runner/ when built, src/runner/ in a checkout). */
export function driverScript(): string {
  const script = path.join(path.dirname(ourRunnerScript()), DRIVER_FILE);
  if (!existsSync(script)) throw new Error(`modelops-debugger is incomplete: ${script} is missing`);
  return script;
}

export class DaskDriver {
  readonly exited: Promise<ExitInfo>;
  readonly stderr = new StderrTail(DRIVER_STDERR_TAIL);
  exitInfo: ExitInfo | undefined;
  /** Set when a report could not be read: the driver is stopped, and every wait ends with this. */
  brokenBy: Failure | undefined;
  /** The largest frame read from it: the runners' cap, plus what a report carries beside outputs. */
  readonly maxFrameBytes: number;
  private readonly child: ResultPromise;
  private readonly connection: MessageConnection;

  constructor(
    python: string,
    onStderr: (chunk: Buffer) => void,
    env?: Record<string, string>,
    runnerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
  ) {
    this.maxFrameBytes = runnerMaxFrameBytes + DRIVER_FRAME_SLACK_BYTES;
    this.child = execa(python, [driverScript()], {
      env: { ...env, PYTHONUNBUFFERED: '1' },
      extendEnv: true,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk);
      onStderr(chunk);
    });
    const reader = new TapMessageReader(this.child.stdout!, this.maxFrameBytes);
    // a report that cannot be read must end the job, never be lost: the driver is stopped with the reason
    reader.onError((error) => this.breakWith(error));
    this.connection = createMessageConnection(reader, new FrameWriter(this.child.stdin!));
    // a broken pipe shows up as the driver's exit; unreadable reports as brokenBy
    this.connection.onError(() => undefined);
    this.connection.listen();
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.on('error', (error) => {
        if (this.exitInfo) return;
        this.stderr.push(Buffer.from(`could not start ${python}: ${error.message}\n`));
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The handler for `type` (one per type: a second replaces the first); dispose it to stop. */
  onNotification<P>(type: NotificationType<P>, handler: (params: P) => void): Disposable {
    return this.connection.onNotification(type, handler);
  }

  /**
   * A request that ends one way or another within `timeoutMs`: its result, the driver's typed
   * error, the driver's exit, or the timeout, each a Failure that says which.
   */
  async request<P, R>(
    type: RequestType<P, R, DriverErrorData>,
    params: P,
    timeoutMs: number,
    what: string,
  ): Promise<R> {
    if (this.exitInfo) throw this.exitFailure(what);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Failure('protocol-error', `The Dask driver did not ${what} within ${(timeoutMs / 1000).toFixed(0)} s`, {
              stderrTail: this.stderr.text(4000),
              pid: this.pid,
            }),
          ),
        timeoutMs,
      );
    });
    const exit = this.exited.then(() => Promise.reject(this.exitFailure(what)));
    try {
      return await Promise.race([
        this.connection.sendRequest(type, params).catch((error) => Promise.reject(this.errorFailure(error, what))),
        timeout,
        exit,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ask it to stop; kill it if it does not. */
  async close(timeoutMs: number, request: () => Promise<unknown>): Promise<void> {
    if (!this.exitInfo) await request().catch(() => undefined);
    this.connection.dispose();
    this.child.stdin?.end();
    if (!this.exitInfo) {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
  }

  exitFailure(what: string): Failure {
    if (this.brokenBy) return this.brokenBy;
    const how = this.exitInfo ? describeExit(this.exitInfo) : 'stopped';
    const tail = this.stderr.text(4000);
    const last = tail.trim().split('\n').at(-1) ?? '';
    return new Failure('protocol-error', `The Dask driver ${how} while asked to ${what}${last ? `: ${last}` : ''}`, {
      exitCode: this.exitInfo?.code,
      signal: this.exitInfo?.signal,
      stderrTail: tail,
      pid: this.pid,
    });
  }

  private breakWith(error: Error): void {
    if (this.brokenBy) return;
    this.brokenBy = new Failure('protocol-error', `A report of the Dask driver could not be read: ${error.message}`, {
      stderrTail: this.stderr.text(4000),
      pid: this.pid,
      notes: [
        `frame cap for the driver's reports: ${this.maxFrameBytes} bytes (--max-frame-mb plus ${DRIVER_FRAME_SLACK_BYTES} bytes)`,
      ],
    });
    if (!this.exitInfo) this.child.kill('SIGKILL');
  }

  private errorFailure(error: unknown, what: string): Failure {
    if (error instanceof Failure) return error;
    const response = error as { message?: string; data?: DriverErrorData };
    const kind: FailureKind = response.data?.kind ?? 'protocol-error';
    return new Failure(kind, response.message ?? `The Dask driver failed to ${what}: ${String(error)}`, {
      stderrTail: response.data?.traceback ?? this.stderr.text(4000),
      pid: this.pid,
    });
  }
}
