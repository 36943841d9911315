/** Venv events in words, for logs and progress lines (the CLI's stderr, the extension's output channel). */
import type { VenvEvent } from './cache';

export function describeVenvEvent(event: VenvEvent): string {
  switch (event.type) {
    case 'venv-reuse':
      return `venv ${event.key}: valid, reused`;
    case 'venv-build':
      return `venv ${event.key}: building (${event.reason})…`;
    case 'venv-built':
      return `venv ${event.key}: built in ${(event.ms / 1000).toFixed(1)} s with ${event.installer}; log ${event.logFile}`;
    case 'venv-removed':
      return `venv ${event.key}: removed (${event.reason})`;
    case 'lock-wait':
      return `venv lock ${event.lock}: waiting for ${event.holder ? `pid ${event.holder.pid} on ${event.holder.host} (${event.holder.purpose})` : 'its holder'}…`;
    case 'lock-takeover':
      return `venv lock ${event.lock}: taken over from pid ${event.holder.pid} on ${event.holder.host} (${event.why})`;
  }
}

/**
 * Names for venvs that a person can tell apart — `sir-example · py3.11 · 2 deps` — instead of
 * their hash keys (which stay in tooltips and listings): the bundle's project name, else its
 * folder's name, with the parent folder added where two bundles would read the same. A venv
 * whose marker cannot say is called by its key.
 */
export function venvLabels(
  entries: readonly { key: string; bundle?: string; bundleName?: string; python?: string; deps?: number }[],
): Map<string, string> {
  const folder = (bundle: string) => bundle.split(/[\\/]+/).filter(Boolean);
  const nameOf = (entry: (typeof entries)[number], withParent: boolean) => {
    if (entry.bundleName) return entry.bundleName;
    const parts = folder(entry.bundle!);
    return (withParent ? parts.slice(-2) : parts.slice(-1)).join('/');
  };
  const bundlesByName = new Map<string, Set<string>>();
  for (const entry of entries) {
    if (!entry.bundle) continue;
    const name = nameOf(entry, false);
    bundlesByName.set(name, (bundlesByName.get(name) ?? new Set()).add(entry.bundle));
  }
  const labels = new Map<string, string>();
  for (const entry of entries) {
    if (!entry.bundle) {
      labels.set(entry.key, entry.key);
      continue;
    }
    const plain = nameOf(entry, false);
    const parts = [entry.bundleName || (bundlesByName.get(plain)?.size ?? 0) < 2 ? plain : nameOf(entry, true)];
    const xy = /^(\d+\.\d+)/.exec(entry.python ?? '')?.[1];
    if (xy) parts.push(`py${xy}`);
    if (entry.deps !== undefined) parts.push(entry.deps === 1 ? '1 dep' : `${entry.deps} deps`);
    if (entry.key.includes('-fresh-')) parts.push('fresh');
    labels.set(entry.key, parts.join(' · '));
  }
  return labels;
}

/** A size as people read it (binary units): a venv's, a worker's memory, a runner's RSS. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${Math.round(bytes / 1024)} KB`;
}
