/**
 * A worker's facts about a runner, diagnosed by the engine's own rules (diagnose/classify.ts),
 * so a task that fails on a Dask worker gets the kind, message and source line it would get
 * locally. The worker ran the bundle from its own copy: paths under that copy are shown at the
 * local bundle's paths, where the user can open them.
 */
import {
  classifyErrorResponse,
  classifyExit,
  classifyPollution,
  classifyProtocol,
  classifyTimeout,
  type RunnerFacts,
} from '../../diagnose/classify';
import type { BundleDeps } from '../../bundle/deps';
import { Failure, type Evidence, type SourceLocation } from '../../failure';
import type { WorkerFacts } from './protocol';

export function diagnose(facts: WorkerFacts, localBundleDir: string, worker: string, deps?: BundleDeps): Failure {
  if (facts.outcome === 'environment') {
    // a worker's Python that the bundle refuses: at the requires-python line, as locally
    const location = facts.kind === 'python-mismatch' ? deps?.requiresPython?.location : undefined;
    return new Failure(
      facts.kind,
      facts.message,
      { stderrTail: facts.stderr_tail, notes: [...(facts.notes ?? []), `on Dask worker ${worker}`] },
      location,
    );
  }
  const runner: RunnerFacts = {
    bundleDir: facts.bundle_path,
    pid: facts.pid,
    phase: facts.phase ?? undefined,
    method: facts.method,
    exit: facts.exit ?? undefined,
    fatal: facts.fatal ?? undefined,
    stderrSince: facts.stderr_since,
    stderrTail: facts.stderr_tail,
    stderrBytes: facts.stderr_bytes,
    noise: facts.noise_b64 ? Buffer.from(facts.noise_b64, 'base64') : undefined,
    elapsedMs: facts.elapsed_ms,
    timeoutMs: facts.timeout_ms,
  };
  let failure: Failure;
  switch (facts.outcome) {
    case 'error':
      failure = classifyErrorResponse(
        runner,
        facts.error ?? { code: 0, message: 'an error response without an error' },
      );
      break;
    case 'exited':
      failure = classifyExit(runner);
      break;
    case 'timeout':
      failure = classifyTimeout({ ...runner, stacks: facts.stacks ?? undefined });
      break;
    case 'protocol':
      failure = runner.noise?.length
        ? classifyPollution(runner, false)
        : classifyProtocol(runner, facts.reason ?? 'unreadable frame');
      break;
  }
  const evidence: Evidence = relocate(failure.evidence, facts.bundle_path, localBundleDir);
  evidence.notes = [...(evidence.notes ?? []), `on Dask worker ${worker}`];
  const location = failure.location
    ? relocate<SourceLocation>(failure.location, facts.bundle_path, localBundleDir)
    : undefined;
  return new Failure(failure.kind, relocate(failure.message, facts.bundle_path, localBundleDir), evidence, location);
}

/** Every string in `value` with the worker's bundle directory replaced by the local one. */
export function relocate<T>(value: T, from: string, to: string): T {
  if (typeof value === 'string') return value.split(from).join(to) as T;
  if (Array.isArray(value)) return value.map((item) => relocate(item, from, to)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([name, item]) => [name, relocate(item, from, to)])) as T;
  }
  return value;
}
