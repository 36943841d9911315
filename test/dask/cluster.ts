/**
 * A real Dask cluster on 127.0.0.1 for the tests and the benchmark: `dask scheduler` and
 * `dask worker` processes (Debian's python3-distributed), 1 thread each, no nanny, no
 * dashboard. Started with argument arrays; every wait for them is bounded and says why it
 * failed; `stop` ends every process it started, by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const DASK_PYTHON = '/usr/bin/python3';
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

export interface DaskProcess {
  process: ChildProcess;
  pid: number;
  /** tcp://127.0.0.1:PORT */
  address: string;
  log: () => string;
}

export interface ClusterOptions {
  workers: number;
  /** Added to the environment of every process (the workers' venvs directory, …). */
  env?: Record<string, string>;
  /** Added to the scheduler's environment only (e.g. DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES). */
  schedulerEnv?: Record<string, string>;
}

export class DaskCluster {
  readonly workers: DaskProcess[] = [];

  private constructor(
    readonly scheduler: DaskProcess,
    private readonly options: ClusterOptions,
  ) {}

  static async start(options: ClusterOptions): Promise<DaskCluster> {
    const scheduler = await launch(
      ['-m', 'distributed.cli.dask_scheduler', '--host', '127.0.0.1', '--port', '0', '--no-dashboard'],
      { ...options.env, ...options.schedulerEnv },
      /Scheduler at:\s+(tcp:\/\/\S+)/,
      'the Dask scheduler',
    );
    const cluster = new DaskCluster(scheduler, options);
    try {
      await Promise.all(Array.from({ length: options.workers }, () => cluster.addWorker()));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get address(): string {
    return this.scheduler.address;
  }

  /** A new worker, resolved once the scheduler has registered it; `env` is added to the cluster's for it alone. */
  async addWorker(env: Record<string, string> = {}): Promise<DaskProcess> {
    const worker = await launch(
      [
        '-m',
        'distributed.cli.dask_worker',
        this.address,
        '--nthreads',
        '1',
        '--no-nanny',
        '--no-dashboard',
        '--death-timeout',
        '60',
      ],
      { ...this.options.env, ...env },
      /Start worker at:\s+(tcp:\/\/\S+)[\s\S]*Registered to:/,
      'a Dask worker',
    );
    this.workers.push(worker);
    return worker;
  }

  /** SIGKILL one worker (as an out-of-memory kill would) and forget it. */
  async killWorker(worker: DaskProcess): Promise<void> {
    this.workers.splice(this.workers.indexOf(worker), 1);
    await end(worker, 'SIGKILL');
  }

  async killScheduler(): Promise<void> {
    await end(this.scheduler, 'SIGKILL');
  }

  /**
   * The workers first, while their scheduler still answers: a worker whose scheduler went at the
   * same moment can spend its whole grace trying to reach it, be killed, and never run its
   * teardown (the helper's atexit, which ends its warm runners' process groups).
   */
  async stop(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((p) => end(p, 'SIGTERM')));
    await end(this.scheduler, 'SIGTERM');
  }
}

/** Starts `python args…`, resolving when its stderr matches `ready` (group 1: its address). */
function launch(args: string[], env: Record<string, string>, ready: RegExp, what: string): Promise<DaskProcess> {
  const child = spawn(DASK_PYTHON, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within ${START_TIMEOUT_MS / 1000} s; its stderr:\n${text.slice(-3000)}`));
    }, START_TIMEOUT_MS);
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.length > 200_000) text = text.slice(-100_000);
      const match = ready.exec(text);
      if (match && timer) {
        clearTimeout(timer);
        resolve({ process: child, pid: child.pid!, address: match[1], log: () => text });
      }
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${what} with ${DASK_PYTHON}: ${error.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${signal ?? code}) before it was ready; its stderr:\n${text.slice(-3000)}`));
    });
  });
}

function end(dask: DaskProcess, signal: NodeJS.Signals): Promise<void> {
  const child = dask.process;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // said, because what the process would have done at its exit (atexit hooks) did not happen
      console.error(`dask process ${dask.pid} did not end within ${STOP_GRACE_MS} ms of ${signal}: killed`);
      child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

/**
 * The cluster of one mocha `describe` block: a scheduler and two workers started in its `before`
 * hook and stopped in its `after` hook, the workers building venvs in the tests' scratch cache
 * (test/unit/helpers.ts sets MODELOPS_VENVS_DIR). Call it at the top of the block; the returned
 * function gives the running cluster inside the tests.
 */
export function clusterForSuite({ startTimeoutMs = 120_000 } = {}): () => DaskCluster {
  let cluster: DaskCluster | undefined;
  before(async function () {
    this.timeout(startTimeoutMs);
    cluster = await DaskCluster.start({ workers: 2, env: { MODELOPS_VENVS_DIR: process.env.MODELOPS_VENVS_DIR! } });
  });
  after(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error('the Dask cluster of this suite did not start');
    return cluster;
  };
}
