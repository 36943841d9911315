/**
 * One scheduler, asked again and again: a Dask driver kept connected between questions (the
 * editor's Cluster view inspects, then follows runners' logs, without starting a Python and
 * connecting each time). The driver answers one request at a time; each has its deadline.
 * `cancel` ends the driver at once (an inspection in flight fails with `cancelled`); the next
 * question connects again.
 */
import { Failure } from '../failure';
import { connectDriver, type ConnectedDriver, type DriverOptions } from '../backends/dask/probe';
import type { WorkerReport } from './health';
import { askWorkers, type ClusterReport, type InspectOptions } from './inspect';
import { ReadFileRequest, type ReadFileParams, type ReadFileResult } from './workerFile';

/** What the driver may take beyond the worker's deadline to answer a read. */
const READ_SLACK_MS = 15_000;

export class ClusterConnection {
  private current: Promise<ConnectedDriver> | undefined;
  /** How many times it was cancelled: a question asked before the latest cancel fails as `cancelled`. */
  private cancels = 0;

  constructor(
    readonly scheduler: string,
    private readonly options: DriverOptions,
  ) {}

  /** `onWorker`: each worker's report as it answers (askWorkers). */
  inspect(
    options: Pick<InspectOptions, 'timeoutS' | 'venvsDir' | 'bundlesDir'> & {
      onWorker?: (worker: WorkerReport) => void;
    },
  ): Promise<ClusterReport> {
    return this.asking('inspect the workers', (c) => askWorkers(c.driver, c.connected, options));
  }

  readFile(params: ReadFileParams): Promise<ReadFileResult> {
    return this.asking(`read ${params.path} on ${params.worker}`, (c) =>
      c.driver.request(
        ReadFileRequest.type,
        params,
        params.timeout_s * 1000 + READ_SLACK_MS,
        `read ${params.path} on ${params.worker}`,
      ),
    );
  }

  /** Ends the driver now, whatever it is doing; what was asked fails as `cancelled`. */
  cancel(): void {
    const current = this.current;
    this.current = undefined;
    this.cancels++;
    if (!current) return;
    void current.then(
      (c) => c.driver.close(0, () => Promise.resolve()),
      () => undefined,
    );
  }

  /** Closes the client politely (the extension's end, another scheduler chosen). */
  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.then(
      (c) => c.close(),
      () => undefined,
    );
  }

  private async asking<T>(what: string, body: (connected: ConnectedDriver) => Promise<T>): Promise<T> {
    const cancels = this.cancels;
    const current = this.connected();
    try {
      return await body(await current);
    } catch (error) {
      if (this.cancels !== cancels) throw new Failure('cancelled', `Cancelled: ${what} (${this.scheduler})`);
      // a driver that stopped (the scheduler went, it was killed) is not asked again: the next question reconnects
      const c = await current.catch(() => undefined);
      if ((!c || c.driver.exitInfo) && this.current === current) this.current = undefined;
      throw error;
    }
  }

  private connected(): Promise<ConnectedDriver> {
    this.current ??= connectDriver(this.scheduler, this.options);
    return this.current;
  }
}
