/** The cluster's events in one line each, for the command line's progress and the editor's log. */
import type { JobEvent } from '../../job/events';

export interface ClusterNews {
  level: 'info' | 'warning' | 'error';
  text: string;
}

export function describeClusterEvent(event: JobEvent): ClusterNews | undefined {
  switch (event.type) {
    case 'dask-connected':
      return {
        level: 'info',
        text: `Dask ${event.dask_version} at ${event.scheduler}, ${event.workers.length} worker(s): ${event.workers.join(', ') || 'none yet'}`,
      };
    case 'worker-joined':
      return { level: 'info', text: `Dask worker ${event.worker} joined` };
    case 'worker-lost':
      return { level: 'warning', text: `Dask worker ${event.worker} lost: ${event.cause}` };
    case 'dask-task-erred':
      return { level: 'error', text: `${event.key} erred on Dask: ${event.exc_type}: ${event.cause}` };
    case 'scheduler-lost':
      return { level: 'error', text: `the Dask scheduler ${event.scheduler} went away: ${event.cause}` };
    default:
      return undefined;
  }
}
