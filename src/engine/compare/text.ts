/** Two runs' comparison in words, for the command line and the editor alike: only what differs. */
import type { RunDiff, Timings } from './diff';

export function renderRunDiff(diff: RunDiff): string {
  const lines = [`${diff.agree ? '✔' : '✘'} ${diff.message}`];
  lines.push(`  A: ${diff.a.job_id} (${diff.a.status ?? 'no manifest'}) ${diff.a.dir}`);
  lines.push(`  B: ${diff.b.job_id} (${diff.b.status ?? 'no manifest'}) ${diff.b.dir}`);
  for (const set of diff.sets) {
    if (set.status === 'same') continue;
    const params =
      Object.entries(set.params)
        .map(([key, value]) => `${key}=${value}`)
        .join(', ') || 'no parameters';
    lines.push(`  ✘ parameter set ${set.param_id.slice(0, 16)} (${params})`);
    for (const difference of set.differences) lines.push(`      ${difference}`);
    const shown = set.replicates.slice(0, 10);
    for (const replicate of shown) lines.push(`      replicate ${replicate.replicate}: ${replicate.difference}`);
    if (set.replicates.length > shown.length)
      lines.push(`      … and ${set.replicates.length - shown.length} more replicates (--json lists them all)`);
  }
  if (diff.environment.length) {
    lines.push('  environment (not counted as a difference):');
    for (const { field, a, b } of diff.environment) lines.push(`      ${field}: ${String(a)} vs ${String(b)}`);
  }
  lines.push(`  timings (not counted): ${timingText(diff.timings.a)} vs ${timingText(diff.timings.b)}`);
  return `${lines.join('\n')}\n`;
}

function timingText(timings: Timings): string {
  const ms = (value: number | undefined) => (value === undefined ? '–' : `${value} ms`);
  return `run ${timings.run_ms === undefined ? '–' : `${(timings.run_ms / 1000).toFixed(1)} s`}, replicate p50 ${ms(timings.p50_ms)} / p95 ${ms(timings.p95_ms)}, slowest ${ms(timings.slowest?.ms)}`;
}
