/** A worker's facts in words, the same in `cluster inspect`'s text and the editor's Cluster view. */
import type { LockFacts } from './facts';

/** `held`, `free`, `not probed`, and the pid it records with whether that pid lives. */
export function describeLock(lock: LockFacts): string {
  const held =
    lock.form === 'directory' ? 'held (directory)' : lock.held === null ? 'not probed' : lock.held ? 'held' : 'free';
  const pid =
    lock.recorded_pid !== null
      ? `, records pid ${lock.recorded_pid} (${lock.pid_alive === false ? 'dead' : lock.pid_alive ? 'alive' : 'unknown'})`
      : '';
  return `${held}${pid}`;
}

export function formatAge(seconds: number): string {
  if (seconds >= 86400) return `${(seconds / 86400).toFixed(1)} d`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${(seconds / 60).toFixed(1)} min`;
  return `${seconds.toFixed(0)} s`;
}

/** Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC). */
export function formatTime(unix: number | null): string {
  return unix === null ? '?' : new Date(unix * 1000).toISOString().slice(0, 19).replace('T', ' ');
}
