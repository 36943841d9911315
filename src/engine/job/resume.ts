/**
 * Opening an earlier run's results folder for `--resume` or `--rerun-failed` (the CLI and the
 * editor alike), trusting nothing in it: no symbolic links anywhere in it; `job.json` checked
 * like a new job file, every param_id and seed recomputed; the bundle unchanged since the run
 * (or the change allowed, and recorded); one writer at a time. Each result is checked when it is
 * read (resultSchema.ts); a set aggregated `ok` is counted from its aggregation (book.ts). A folder
 * of results layout 1 is converted to layout 2 once it is locked. Everything refused is refused
 * before anything is written.
 */
import * as path from 'node:path';
import { bundleDigest, checkBundleDir } from '../bundle/bundleDir';
import { Failure } from '../failure';
import { ResultsStore } from './results';
import { readJobJson } from './resultsReader';
import { checkFolderItself, cutTornLine, inspectFolder, lockResultsFolder, removeTemps } from './resultsFolder';
import type { JobSpec } from './spec';

export interface ResumeOptions {
  /** Forget the failed tasks (and the aggregations they feed) so that they run again. */
  rerunFailed?: boolean;
  /** Run even though the bundle's digest is not the one recorded when the job was created. */
  allowBundleChange?: boolean;
}

/** A bundle that changed since the job was created, run anyway: the manifest records it. */
export interface BundleChange {
  recorded: string;
  now: string;
}

/**
 * The job of an earlier run's results folder, read and checked without writing anything or
 * taking its lock (a resume locks it next; a reproduction of one replicate only reads it): no
 * links or special files in the folder, `job.json` valid like a new job file. Also returns the
 * bundle digest recorded when it ran.
 */
export async function readEarlierJob(
  folder: string,
): Promise<{ dir: string; job: JobSpec; file: string; bundleDigest?: string; jobJsonSha256: string }> {
  const dir = path.resolve(folder);
  checkFolderItself(dir);
  inspectFolder(dir); // refuses links before reading anything through one
  const file = path.join(dir, 'job.json');
  const { job, bundleDigest, jobJsonSha256 } = await readJobJson(dir);
  return { dir, job, file, bundleDigest, jobJsonSha256 };
}

export async function openEarlierRun(
  folder: string,
  options: ResumeOptions = {},
): Promise<{ job: JobSpec; store: ResultsStore; bundleChange?: BundleChange }> {
  const { dir, job, file, bundleDigest: recorded, jobJsonSha256 } = await readEarlierJob(folder);
  await checkBundleDir(job.bundleDir);
  const now = await bundleDigest(job.bundleDir);
  const notices: string[] = [];
  let bundleChange: BundleChange | undefined;
  if (!recorded) {
    notices.push(
      `${file} records no bundle digest (written by an earlier version): the bundle cannot be checked against the run.`,
    );
  } else if (recorded !== now) {
    if (!options.allowBundleChange) {
      throw new Failure(
        'bad-input',
        `The bundle ${job.bundleDir} changed since this job ran (digest ${recorded.slice(0, 12)} then, ${now.slice(0, 12)} now); its results would mix two bundles, so it is not resumed (--allow-bundle-change runs it anyway).`,
      );
    }
    bundleChange = { recorded, now };
    notices.push(
      `The bundle changed since this job ran (digest ${recorded.slice(0, 12)} then, ${now.slice(0, 12)} now); running anyway (--allow-bundle-change), as the manifest records.`,
    );
  }

  const lock = await lockResultsFolder(
    dir,
    `${options.rerunFailed ? 'rerunning the failed tasks of' : 'resuming'} job ${job.jobId}`,
    (notice) => notices.push(notice),
  );
  let store: ResultsStore | undefined;
  try {
    // what a killed writer or a full disk left: only now, with the folder ours
    const cut = cutTornLine(dir, path.join(dir, 'events.jsonl'));
    if (cut)
      notices.push(`Cut a torn last line (${cut} bytes) off events.jsonl, left by a run that was stopped mid-write.`);
    const removed = removeTemps(dir, inspectFolder(dir).temps);
    if (removed)
      notices.push(`Removed ${removed} temporary file${removed === 1 ? '' : 's'} of writes that never finished.`);
    store = ResultsStore.reopen(dir, lock, notices, now, jobJsonSha256);
    store.convertLayout1(job); // a folder written before layout 2: its sets' files become .jsonl, said as a notice
    if (options.rerunFailed) store.forgetFailures(job);
    return { job, store, bundleChange };
  } catch (error) {
    if (store) await store.close();
    else await lock.release().catch(() => undefined);
    throw error;
  }
}
