/**
 * The Testing view's items: the jobs of the Jobs view (the newest run of each job file) as
 * job → parameter set → its aggregation and its replicates. A set's replicates become items only
 * when the set is expanded or one of them fails, so a 20 × 200 job is about 40 items and a
 * 100 000-task job never floods the view. Items hold where they are (job id, param id,
 * replicate), never model objects: a resume replaces a job's info, and the item stays.
 */
import * as vscode from 'vscode';
import { jobLabel } from '../../engine/job/spec';
import { setLabel, type JobInfo, type JobModel, type ParamSetInfo, type TaskInfo } from '../jobs/jobModel';

export type ItemRef =
  | { kind: 'job'; jobId: string }
  | { kind: 'set'; jobId: string; paramId: string }
  | { kind: 'aggregation'; jobId: string; paramId: string }
  | { kind: 'replicate'; jobId: string; paramId: string; replicate: number };

/** What an item stands for, found in the model as it is now. */
export interface Found {
  ref: ItemRef;
  job: JobInfo;
  set?: ParamSetInfo;
  task?: TaskInfo;
}

const AGGREGATION_ID = 'aggregation';

export class TestItems {
  private readonly refs = new WeakMap<vscode.TestItem, ItemRef>();
  /** The job infos whose sets the items were checked against (a run or a resume makes a new one). */
  private readonly checked = new WeakSet<JobInfo>();

  constructor(
    readonly controller: vscode.TestController,
    private readonly model: JobModel,
  ) {}

  /** The jobs of the Jobs view's top level, no more: a job file's earlier runs leave the view. */
  sync(): void {
    const jobs = this.model.latestRuns().filter((job) => !job.notStarted);
    const shown = new Set(jobs.map((job) => job.jobId));
    const gone: string[] = [];
    this.controller.items.forEach((item) => void (shown.has(item.id) || gone.push(item.id)));
    for (const id of gone) this.controller.items.delete(id);
    for (const job of jobs) this.jobItem(job);
  }

  /** The job's item with an item per parameter set (made now if need be). */
  jobItem(job: JobInfo): vscode.TestItem {
    let item = this.controller.items.get(job.jobId);
    if (!item) {
      item = this.made(job.jobId, jobLabel(job.jobId), { kind: 'job', jobId: job.jobId });
      this.controller.items.add(item);
    }
    if (this.checked.has(job)) return item;
    this.checked.add(job);
    const replicates = job.sets.values().next().value?.tasks.length ?? 0;
    item.description = `${job.sets.size} set${job.sets.size === 1 ? '' : 's'} × ${replicates}`;
    if (item.children.size !== job.sets.size || [...job.sets.keys()].some((id) => !item.children.get(id))) {
      // a new job under a known id (a new run written over a deleted folder): its sets anew
      item.children.replace([...job.sets.values()].map((set, index) => this.setItem(job, set, index)));
    }
    return item;
  }

  setItemOf(job: JobInfo, paramId: string): vscode.TestItem | undefined {
    return this.jobItem(job).children.get(paramId);
  }

  aggregationItemOf(job: JobInfo, paramId: string): vscode.TestItem | undefined {
    return this.setItemOf(job, paramId)?.children.get(AGGREGATION_ID);
  }

  /** A replicate's item, if its set was expanded or it failed: `make` makes it. */
  replicateItemOf(job: JobInfo, paramId: string, replicate: number, make = false): vscode.TestItem | undefined {
    const setItem = this.setItemOf(job, paramId);
    const set = job.sets.get(paramId);
    if (!setItem || !set || !set.tasks[replicate]) return undefined;
    const found = setItem.children.get(replicateId(replicate));
    if (found || !make) return found;
    const item = this.replicateItem(job, set, replicate);
    setItem.children.add(item);
    return item;
  }

  /** A set expanded in the view: all its replicates. */
  resolve(item: vscode.TestItem): void {
    const found = this.find(item);
    if (found?.ref.kind !== 'set' || !found.set) return;
    const made = found.set.tasks
      .map((_, replicate) => replicate)
      .filter((replicate) => !item.children.get(replicateId(replicate)))
      .map((replicate) => this.replicateItem(found.job, found.set!, replicate));
    for (const child of made) item.children.add(child);
    item.canResolveChildren = false;
  }

  /** What an item stands for now; undefined for one whose job or set left the model. */
  find(item: vscode.TestItem): Found | undefined {
    const ref = this.refs.get(item);
    const job = ref && this.model.jobs.get(ref.jobId);
    if (!ref || !job) return undefined;
    if (ref.kind === 'job') return { ref, job };
    const set = job.sets.get(ref.paramId);
    if (!set) return undefined;
    if (ref.kind === 'set') return { ref, job, set };
    if (ref.kind === 'aggregation') return { ref, job, set, task: set.aggregation };
    const task = set.tasks[ref.replicate];
    return task && { ref, job, set, task };
  }

  private setItem(job: JobInfo, set: ParamSetInfo, index: number): vscode.TestItem {
    const item = this.made(set.paramId, setLabel(set), { kind: 'set', jobId: job.jobId, paramId: set.paramId });
    item.description = `param_id ${set.paramId.slice(0, 12)}`;
    item.sortText = String(index).padStart(8, '0');
    item.canResolveChildren = true;
    const aggregation = this.made(AGGREGATION_ID, 'aggregation', {
      kind: 'aggregation',
      jobId: job.jobId,
      paramId: set.paramId,
    });
    aggregation.sortText = '0';
    item.children.add(aggregation);
    return item;
  }

  private replicateItem(job: JobInfo, set: ParamSetInfo, replicate: number): vscode.TestItem {
    const item = this.made(replicateId(replicate), `replicate ${replicate}`, {
      kind: 'replicate',
      jobId: job.jobId,
      paramId: set.paramId,
      replicate,
    });
    item.description = `seed ${set.tasks[replicate].seed}`;
    item.sortText = `1${String(replicate).padStart(10, '0')}`;
    return item;
  }

  private made(id: string, label: string, ref: ItemRef): vscode.TestItem {
    const item = this.controller.createTestItem(id, label);
    this.refs.set(item, ref);
    return item;
  }
}

function replicateId(replicate: number): string {
  return `r${replicate}`;
}
