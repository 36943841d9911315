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
