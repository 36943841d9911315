/**
 * A worker's facts about a runner, diagnosed by the engine's own rules (diagnose/classify.ts),
 * so a task that fails on a Dask worker gets the kind, message and source line it would get
 * locally. The worker ran the bundle from its own copy: paths under that copy are shown at the
 * local bundle's paths, where the user can open them. A runner SIGKILLed under a task is judged
 * OOM-killed or not by the rule a local runner is (diagnose/oom.ts), from the memory facts the
 * worker gathered.
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
import { oomVerdict } from '../../diagnose/oom';
import { Failure, type Evidence, type OomEvidence, type SourceLocation } from '../../failure';
import type { WorkerFacts, WorkerMemoryFacts } from './protocol';

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
      failure = classifyExit({ ...runner, oom: workerOom(facts.exit, facts.memory) });
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
  if (evidence.oom && facts.memory) evidence.notes.push(SAMPLED_FROM[facts.memory.rss_from]);
  const location = failure.location
    ? relocate<SourceLocation>(failure.location, facts.bundle_path, localBundleDir)
    : undefined;
  return new Failure(failure.kind, relocate(failure.message, facts.bundle_path, localBundleDir), evidence, location);
}

/** How the worker read the runner's resident size, said with an OOM verdict. */
const SAMPLED_FROM: Record<WorkerMemoryFacts['rss_from'], string> = {
  'proc-status': "the runner's resident size sampled by the worker from /proc/<pid>/status (VmRSS) every 250 ms",
  ps: "the runner's resident size sampled by the worker with ps every second",
};

/** Was the runner's SIGKILL on the worker the OOM killer's? The worker's facts, the engine's rule. */
function workerOom(
  exit: { code: number | null; signal: string | null } | null,
  memory: WorkerMemoryFacts | null | undefined,
): OomEvidence | undefined {
  if (!exit || !memory) return undefined;
  const { limit, last } = memory;
  return oomVerdict({
    exit,
    killedByEngine: memory.killed_by_worker,
    limit: { kb: limit.kb, source: limit.source, counter: limit.counter ?? undefined },
    last: last ? { rssKb: last.rss_kb, atMs: last.at_ms } : undefined,
    diedAtMs: memory.died_at_ms,
    killsBefore: memory.oom_kills_before ?? undefined,
    killsAfter: memory.oom_kills_after ?? undefined,
  });
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
