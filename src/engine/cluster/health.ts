/**
 * "Cluster Health": the verdicts counted over every worker, the workers that did not answer,
 * and the workers that disagree with the others about the same venv (one worker with a stale
 * venv among eight). What `cluster inspect` prints first.
 */
import type { WorkerAnswer } from './facts';
import { VERDICT_ORDER, type VerdictKind, type WorkerVenvs } from './verdict';

/** One worker's answer and its venvs judged (null when it gave no facts). */
export interface WorkerReport extends WorkerAnswer {
  judged: WorkerVenvs | null;
}

export interface Disagreement {
  /** The venv key (or lock file) the workers disagree about. */
  name: string;
  /** What most workers that have it say. */
  majority: VerdictKind;
  /** The workers that say otherwise, and what they say. */
  dissenters: { address: string; verdict: VerdictKind; reason: string }[];
}

export interface ClusterHealth {
  workers: number;
  answered: number;
  /** Workers that did not answer within the timeout. */
  silent: string[];
  /** Workers whose inspection raised. */
  failed: { address: string; error: string }[];
  /** Every verdict over every worker's venvs and stray locks, worst first. */
  counts: Partial<Record<VerdictKind, number>>;
  disagreements: Disagreement[];
  /** Every worker answered and every verdict is ok. */
  healthy: boolean;
}

export function clusterHealth(workers: WorkerReport[]): ClusterHealth {
  const counted = new Map<VerdictKind, number>();
  const byName = new Map<string, { address: string; verdict: VerdictKind; reason: string }[]>();
  // every worker lists its machine's runners: workers sharing a machine (`--nworkers`) list the same ones
  const runnersSeen = new Set<string>();
  for (const worker of workers) {
    if (!worker.judged) continue;
    const verdicts = [
      ...worker.judged.venvs.map((v) => ({ name: v.name, verdict: v.verdict })),
      ...worker.judged.strayLocks.map((l) => ({
        name: l.lock.path.split('/').pop() ?? l.lock.path,
        verdict: l.verdict,
      })),
      ...worker.judged.bundles.map((b) => ({ name: `bundle ${b.name}`, verdict: b.verdict })),
    ];
    // a runner is its machine's own: counted once, never compared
    for (const runner of worker.judged.runners) {
      const id = `${worker.facts?.host ?? worker.address} ${runner.pid}`;
      if (runnersSeen.has(id)) continue;
      runnersSeen.add(id);
      counted.set(runner.verdict.kind, (counted.get(runner.verdict.kind) ?? 0) + 1);
    }
    for (const { name, verdict } of verdicts) {
      counted.set(verdict.kind, (counted.get(verdict.kind) ?? 0) + 1);
      const seen = byName.get(name) ?? [];
      seen.push({ address: worker.address, verdict: verdict.kind, reason: verdict.reason });
      byName.set(name, seen);
    }
  }
  const counts: Partial<Record<VerdictKind, number>> = {};
  for (const kind of VERDICT_ORDER) if (counted.has(kind)) counts[kind] = counted.get(kind);
  const disagreements: Disagreement[] = [];
  for (const [name, seen] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    const kinds = new Set(seen.map((s) => s.verdict));
    if (kinds.size < 2) continue;
    const tally = new Map<VerdictKind, number>();
    for (const s of seen) tally.set(s.verdict, (tally.get(s.verdict) ?? 0) + 1);
    // the most common; on a tie, the better (ok before anything wrong)
    const majority = [...tally].sort(
      ([ka, a], [kb, b]) => b - a || VERDICT_ORDER.indexOf(kb) - VERDICT_ORDER.indexOf(ka),
    )[0][0];
    disagreements.push({ name, majority, dissenters: seen.filter((s) => s.verdict !== majority) });
  }
  const silent = workers.filter((w) => w.no_answer).map((w) => w.address);
  const failed = workers.filter((w) => w.error !== undefined).map((w) => ({ address: w.address, error: w.error! }));
  return {
    workers: workers.length,
    answered: workers.filter((w) => w.facts).length,
    silent,
    failed,
    counts,
    disagreements,
    healthy: silent.length === 0 && failed.length === 0 && [...counted.keys()].every((k) => k === 'ok'),
  };
}
