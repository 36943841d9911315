/**
 * The `lingering-descendants` warnings: one per task that left processes running after its
 * runner ended (or after the task, on Dask), located at the bundle line that started the first
 * of them when our runner saw it. Shared by the local and Dask backends.
 */
import type { JobEventBody } from '../job/events';
import { byTask, describeLingering, type LingeringDescendant } from './descendants';

export function lingeringWarnings(
  descendants: readonly LingeringDescendant[],
  pid: number | undefined,
  worker?: string,
): JobEventBody[] {
  const warnings: JobEventBody[] = [];
  for (const [task, group] of byTask(descendants)) {
    const location = group.find((d) => d.location)?.location;
    warnings.push({
      type: 'warning',
      kind: 'lingering-descendants',
      message: describeLingering(task, group),
      ...(location ? { location } : {}),
      ...(task ? { key: task } : {}),
      descendants: group,
      pid,
      ...(worker ? { worker } : {}),
    });
  }
  return warnings;
}
