/**
 * "Is there a Dask scheduler there, and what does it have?": a driver started, connected,
 * asked, and closed — what the editor's "Connect to Dask Scheduler…" checks before it sends
 * jobs there, and what `cluster inspect` asks its questions through.
 */
import { DaskDriver, findDaskPython } from './driver';
import { CloseRequest, ConnectRequest, type ConnectResult } from './protocol';

const CLOSE_TIMEOUT_MS = 10_000;

export interface DriverOptions {
  python?: string;
  connectTimeoutMs: number;
  env?: Record<string, string>;
}

export type Connected = ConnectResult & { driverPython: string };

/** A driver connected to `scheduler`, until `close` (the editor's Cluster view keeps one open). */
export interface ConnectedDriver {
  driver: DaskDriver;
  connected: Connected;
  /** Asks it to close the client and stop; kills it if it does not. */
  close(): Promise<void>;
}

export async function connectDriver(scheduler: string, options: DriverOptions): Promise<ConnectedDriver> {
  const python = await findDaskPython(options.python);
  const driver = new DaskDriver(python, () => undefined, options.env);
  const close = () =>
    driver.close(CLOSE_TIMEOUT_MS, () =>
      driver.request(CloseRequest.type, { timeout_s: 5 }, CLOSE_TIMEOUT_MS, 'close the client'),
    );
  try {
    const connected = await driver.request(
      ConnectRequest.type,
      { scheduler, timeout_s: options.connectTimeoutMs / 1000 },
      options.connectTimeoutMs + 30_000,
      `connect to ${scheduler}`,
    );
    return { driver, connected: { ...connected, driverPython: python }, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A driver connected to `scheduler` for the time of `body`, closed after it however it ends. */
export async function withConnectedDriver<T>(
  scheduler: string,
  options: DriverOptions,
  body: (driver: DaskDriver, connected: Connected) => Promise<T>,
): Promise<T> {
  const { driver, connected, close } = await connectDriver(scheduler, options);
  try {
    return await body(driver, connected);
  } finally {
    await close();
  }
}

export function probeScheduler(scheduler: string, options: DriverOptions): Promise<Connected> {
  return withConnectedDriver(scheduler, options, async (_driver, connected) => connected);
}
