/**
 * Was a runner that died by SIGKILL ended by the kernel's OOM killer? Without dmesg (which needs
 * privilege) the engine has two kinds of evidence (process/memory.ts measures them):
 *
 * 1. Direct: the kernel's `oom_kill` counter (the runner's memory cgroup's, else the machine's)
 *    rose between the last sample and the death. Only a coincidence — another process of the same
 *    cgroup OOM-killed in the same quarter second in which something else SIGKILLed the runner —
 *    would make that wrong.
 * 2. The heuristic, where no counter can be read (macOS, kernels before 4.13) or it did not move:
 *    the runner's resident size at the last sample was at least OOM_SHARE of the limit. Why 80 %:
 *    the sample is up to one period (250 ms) older than the death, and a bundle filling arrays at
 *    numpy speed (~1 GB/s of first touches) grows by a quarter of a GB in that time, 10–15 % of a
 *    typical 2–4 GB runner limit; the cgroup is charged besides for page tables, kernel memory and
 *    page cache it could not reclaim in time. Below that, the OOM killer would have had to choose
 *    a runner well short of the ceiling, which happens when other processes share the cgroup, and
 *    there the counter (1) says so. A SIGKILL while the runner used less is a plain crash: nothing
 *    is blamed on memory without evidence.
 *
 * A SIGKILL the engine sent (a timeout, a cancel, the editor's "Kill") is never blamed on memory.
 * The failure keeps its kind, `process-crashed` (it retries and counts like any crash; its exit
 * code, the editor's icons and the Testing view's error stay what they are); `evidence.oom` and
 * the message say what ended it.
 */
import type { OomEvidence } from '../failure';
import type { MemoryLimit, MemorySample } from '../process/memory';

/** The share of the limit a runner's last sampled resident size must reach to blame a SIGKILL on memory. */
export const OOM_SHARE = 0.8;

export interface DeathFacts {
  /** How the runner ended (classify.ts's ExitInfo; not imported: classify.ts imports this). */
  exit: { code: number | null; signal: string | null };
  /** The engine (or the editor, through killRunner) sent a SIGKILL to it. */
  killedByEngine: boolean;
  limit: MemoryLimit | undefined;
  last: MemorySample | undefined;
  /** When it died, on the samples' clock. */
  diedAtMs: number;
  /** The OOM counter at the last sample, and read after the death. */
  killsBefore: number | undefined;
  killsAfter: number | undefined;
}

/** The evidence that the kernel's OOM killer ended the runner, or undefined when there is none. */
export function oomVerdict(facts: DeathFacts): OomEvidence | undefined {
  const { exit, limit, last } = facts;
  if (exit.signal !== 'SIGKILL' || facts.killedByEngine || !limit) return undefined;
  const counted =
    facts.killsBefore !== undefined && facts.killsAfter !== undefined && facts.killsAfter > facts.killsBefore;
  const near = last !== undefined && last.rssKb >= OOM_SHARE * limit.kb;
  if (!counted && !near) return undefined;
  const evidence: OomEvidence = { limit_kb: limit.kb, limit_source: limit.source };
  if (last) {
    evidence.rss_kb = last.rssKb;
    evidence.sampled_ms_before_death = Math.max(0, Math.round(facts.diedAtMs - last.atMs));
  }
  if (counted && limit.counter)
    evidence.oom_kill_counter = { before: facts.killsBefore!, after: facts.killsAfter!, scope: limit.counter.scope };
  return evidence;
}

/**
 * The cause in words, appended to the crash's message: "most likely by the kernel's OOM killer:
 * the runner used 1.9 GB of a 2.0 GB limit (cgroup v2) 120 ms before it died".
 */
export function oomCause(oom: OomEvidence): string {
  const counter = oom.oom_kill_counter;
  const who = counter
    ? `by the kernel's OOM killer (the OOM-kill count of ${counter.scope} went from ${counter.before} to ${counter.after})`
    : "most likely by the kernel's OOM killer";
  const used =
    oom.rss_kb === undefined
      ? `before its memory was first sampled (the limit: ${showKb(oom.limit_kb)}, ${oom.limit_source})`
      : `the runner used ${showKb(oom.rss_kb)} of a ${showKb(oom.limit_kb)} limit (${oom.limit_source}) ` +
        `${oom.sampled_ms_before_death ?? '?'} ms before it died`;
  return `${who}: ${used}`;
}

/** kB as people read memory: "245 MB", "1.9 GB" (binary units, as `free` and `top` show them). */
export function showKb(kb: number): string {
  if (kb >= 1024 * 1024) return `${(kb / (1024 * 1024)).toFixed(1)} GB`;
  return `${Math.round(kb / 1024)} MB`;
}
