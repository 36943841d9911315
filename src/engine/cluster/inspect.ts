/**
 * `cluster inspect`: through the scheduler only, every worker asked what it has (the Dask
 * driver's `dask/inspect`, each worker with a hard deadline), its venvs judged here, and the
 * cluster's health summed up. Read only: nothing is changed on a worker.
 */
import type { DaskDriver } from '../backends/dask/driver';
import { withConnectedDriver, type Connected, type DriverOptions } from '../backends/dask/probe';
import { InspectRequest, InspectWorkerNotification, type RunnerScan, type WorkerAnswer } from './facts';
import { clusterHealth, type ClusterHealth, type WorkerReport } from './health';
import { judgeWorker } from './verdict';

/** What the driver may take beyond the workers' deadline: the scheduler's own questions, the answer's framing. */
const DRIVER_SLACK_MS = 30_000;

export interface InspectOptions extends DriverOptions {
  /** Per worker: one that has not answered by then is reported as silent. */
  timeoutS: number;
  venvsDir?: string;
  bundlesDir?: string;
  runnerScan?: RunnerScan;
}

export interface ClusterReport {
  scheduler: string;
  dask_version: string;
  driver_python: string;
  timeout_s: number;
  /** The driver's own time for asking every worker. */
  ms: number;
  health: ClusterHealth;
  workers: WorkerReport[];
}

export function inspectCluster(scheduler: string, options: InspectOptions): Promise<ClusterReport> {
  return withConnectedDriver(scheduler, options, (driver, connected) => askWorkers(driver, connected, options));
}

/** Tells apart the answers of inspections made one after another through one driver. */
let calls = 0;

/**
 * The inspection through a driver already connected (the editor's Cluster view keeps one).
 * `onWorker`: each worker's report as soon as it answered, before the whole report (a view of
 * many workers fills in as they come; the silent ones are known only at the end).
 */
export async function askWorkers(
  driver: DaskDriver,
  connected: Connected,
  options: Pick<InspectOptions, 'timeoutS' | 'venvsDir' | 'bundlesDir' | 'runnerScan'> & {
    onWorker?: (worker: WorkerReport) => void;
  },
): Promise<ClusterReport> {
  const call = ++calls;
  const { onWorker } = options;
  const listening = onWorker
    ? driver.onNotification(InspectWorkerNotification.type, (said) => {
        if (said.call === call) onWorker(judged(said.worker));
      })
    : undefined;
  try {
    const result = await driver.request(
      InspectRequest.type,
      {
        timeout_s: options.timeoutS,
        venvs_dir: options.venvsDir,
        bundles_dir: options.bundlesDir,
        runner_scan: options.runnerScan,
        ...(onWorker ? { call } : {}),
      },
      options.timeoutS * 1000 + DRIVER_SLACK_MS,
      'inspect the workers',
    );
    const workers = result.workers.map(judged);
    return {
      scheduler: result.scheduler,
      dask_version: connected.dask_version,
      driver_python: connected.driverPython,
      timeout_s: result.timeout_s,
      ms: result.ms,
      health: clusterHealth(workers),
      workers,
    };
  } finally {
    listening?.dispose();
  }
}

function judged(worker: WorkerAnswer): WorkerReport {
  return { ...worker, judged: worker.facts ? judgeWorker(worker.facts) : null };
}
