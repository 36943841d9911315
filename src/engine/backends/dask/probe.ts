/**
 * "Is there a Dask scheduler there, and what does it have?": a driver started, connected,
 * asked, and closed — what the editor's "Connect to Dask Scheduler…" checks before it sends
 * jobs there.
 */
import { DaskDriver, findDaskPython } from './driver';
import { CloseRequest, ConnectRequest, type ConnectResult } from './protocol';

const CLOSE_TIMEOUT_MS = 10_000;

export async function probeScheduler(
  scheduler: string,
  options: { python?: string; connectTimeoutMs: number; env?: Record<string, string> },
): Promise<ConnectResult & { driverPython: string }> {
  const python = await findDaskPython(options.python);
  const driver = new DaskDriver(python, () => undefined, options.env);
  try {
    const connected = await driver.request(
      ConnectRequest.type,
      { scheduler, timeout_s: options.connectTimeoutMs / 1000 },
      options.connectTimeoutMs + 30_000,
      `connect to ${scheduler}`,
    );
    return { ...connected, driverPython: python };
  } finally {
    await driver.close(CLOSE_TIMEOUT_MS, () =>
      driver.request(CloseRequest.type, { timeout_s: 5 }, CLOSE_TIMEOUT_MS, 'close the client'),
    );
  }
}
