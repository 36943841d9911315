/**
 * Ctrl-C, SIGTERM and SIGHUP for a command that runs replicates: the first stops the work through
 * an AbortSignal (its runners are ended, the command exits 128 + the signal's number), a second
 * one quits at once.
 */
import { exitCodeForStop } from '../engine/failure';
import { writeStderr } from './stdio';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** `stopping`: what the first signal does, said on stderr ("stopping the runner"). */
export function onStopSignals(stopping: string): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(exitCodeForStop(signal)); // a second signal: now
    writeStderr(
      `\ninterrupted by ${signal}: ${stopping} (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to quit at once)\n`,
    );
    controller.abort(signal);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const signal of SIGNALS) process.off(signal, onSignal);
    },
  };
}
