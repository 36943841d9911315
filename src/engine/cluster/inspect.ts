/**
 * `cluster inspect`: through the scheduler only, every worker asked what it has (the Dask
 * driver's `dask/inspect`, each worker with a hard deadline), its venvs judged here, and the
 * cluster's health summed up. Read only: nothing is changed on a worker.
 */
import type { DaskDriver } from '../backends/dask/driver';
import { withConnectedDriver, type Connected, type DriverOptions } from '../backends/dask/probe';
import { InspectRequest, type RunnerScan } from './facts';
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

/** The inspection through a driver already connected (the editor's Cluster view keeps one). */
export async function askWorkers(
  driver: DaskDriver,
  connected: Connected,
  options: Pick<InspectOptions, 'timeoutS' | 'venvsDir' | 'bundlesDir' | 'runnerScan'>,
): Promise<ClusterReport> {
  const result = await driver.request(
    InspectRequest.type,
    {
      timeout_s: options.timeoutS,
      venvs_dir: options.venvsDir,
      bundles_dir: options.bundlesDir,
      runner_scan: options.runnerScan,
    },
    options.timeoutS * 1000 + DRIVER_SLACK_MS,
    'inspect the workers',
  );
  const workers: WorkerReport[] = result.workers.map((w) => ({
    ...w,
    judged: w.facts ? judgeWorker(w.facts) : null,
  }));
  return {
    scheduler: result.scheduler,
    dask_version: connected.dask_version,
    driver_python: connected.driverPython,
    timeout_s: result.timeout_s,
    ms: result.ms,
    health: clusterHealth(workers),
    workers,
  };
}
