/**
 * Acting on one worker of a production cluster, through its scheduler only (the Dask driver's
 * `dask/act`, which runs src/runner/modelops_cluster_actions.py there): remove a venv, clear a
 * stale lock, remove the orphan fresh venvs; the handshake is workerHandshake.ts. The worker
 * checks and does; what it answers is typed here once, and every action ends in a typed result
 * (what was done, or why it was refused) that the CLI prints and the editor logs.
 *
 * Consent is the caller's: nothing here asks. Every refusal is the worker's, made where the facts
 * are (a runner process using the venv, a live lock holder), at the moment of acting.
 */
import { RequestType } from 'vscode-jsonrpc';
import { withConnectedDriver, type DriverOptions } from '../backends/dask/probe';
import type { DaskDriver } from '../backends/dask/driver';
import type { DriverErrorData } from '../backends/dask/protocol';
import { Failure } from '../failure';
import type { WorkerSelfFacts } from './facts';
import { judgeWorker } from './verdict';

/** What the driver may take beyond the worker's deadline: the scheduler's own questions, the answer's framing. */
const DRIVER_SLACK_MS = 30_000;

// ---- the wire: dask/act ---------------------------------------------------------------------

export type WorkerAction = 'handshake' | 'remove-venv' | 'remove-venvs' | 'clear-lock' | 'inspect';

export interface ActParams {
  /** The worker's address, as the scheduler knows it (tcp://HOST:PORT). */
  worker: string;
  action: WorkerAction;
  params: Record<string, unknown>;
  /** The worker has this long to answer; past it, it is said to be silent. */
  timeout_s: number;
}

export interface ActAnswer {
  worker: string;
  timeout_s: number;
  ms: number;
  result?: WorkerSide & Record<string, unknown>;
  /** The action raised on the worker (or the worker left). */
  error?: string;
  no_answer?: boolean;
}

/** `dask/act` (the driver's `act`). */
export const ActRequest = {
  type: new RequestType<ActParams, ActAnswer, DriverErrorData>('dask/act'),
};

/** What every action answers beside its own fields. */
export interface WorkerSide {
  host: string;
  worker_pid: number;
  ms: number;
  outcome: 'done' | 'removed' | 'refused';
  reason?: string;
  /** The refusal is about what was asked (no such venv, a path outside its directory). */
  bad_input?: boolean;
}

/** A lock the worker removed, or why not (its holder alive, or not known to be dead). */
export interface LockOutcome {
  path: string;
  form: 'file' | 'directory';
  recorded_pid: number | null;
  pid_alive: boolean | null;
  outcome: 'removed' | 'refused';
  reason: string;
}

/** A venv the worker removed, or why not. */
export interface VenvRemoval {
  path: string;
  /** Runner processes using it (the inspection's runner scan), when it was looked at. */
  runners?: number[];
  runner_scan?: string;
  forced?: boolean;
  outcome: 'removed' | 'refused';
  reason: string;
  size_bytes?: number | null;
  /** Its `{key}.lock`: removed with it only when nobody held it. */
  lock?: LockOutcome;
}

// ---- the results -----------------------------------------------------------------------------

export interface ActionBase {
  scheduler: string;
  worker: string;
  host: string | null;
  /** done: carried out (a handshake: it ran, whatever its verdict); refused: see `reason`. */
  outcome: 'done' | 'refused';
  /** Refused because of what was asked (no such venv, a path outside the venvs directory): exit 2. */
  badInput: boolean;
  /** One line for a log: what was done where, or why not. */
  message: string;
  ms: number;
}

export interface RemoveVenvResult extends ActionBase {
  action: 'rm-venv';
  venv: string;
  removal?: VenvRemoval;
}

export interface ClearLockResult extends ActionBase {
  action: 'clear-lock';
  lock: string;
  cleared?: LockOutcome;
}

export interface RemoveOrphansResult extends ActionBase {
  action: 'rm-orphans';
  /** The venvs directory looked in. */
  dir: string;
  removed: VenvRemoval[];
  /** Orphans found by the inspection that the worker kept (a runner took one up meanwhile). */
  kept: VenvRemoval[];
}

export interface ActionTarget extends DriverOptions {
  scheduler: string;
  worker: string;
  /** The worker's venvs directory (default: its MODELOPS_VENVS_DIR, else production's and ours). */
  venvsDir?: string;
  /** How long the worker has to answer. */
  timeoutS: number;
}

/** Remove one venv on the worker, refused while a runner process uses it unless `force`. */
export async function removeVenv(target: ActionTarget, venv: string, force: boolean): Promise<RemoveVenvResult> {
  return withConnectedDriver(target.scheduler, target, async (driver) => {
    const answer = await act(driver, target, 'remove-venv', { venv, force, venvs_dir: target.venvsDir });
    const removal =
      answer.outcome === 'refused' && !('path' in answer) ? undefined : (answer as unknown as VenvRemoval);
    const base = resultBase(target, answer);
    const path = removal?.path ?? venv;
    const lock = removal?.lock
      ? `; its lock ${removal.lock.outcome === 'removed' ? 'removed' : `kept: ${removal.lock.reason}`}`
      : '';
    return {
      ...base,
      action: 'rm-venv',
      venv: path,
      removal,
      message:
        answer.outcome === 'removed'
          ? `Removed venv ${path} on ${target.worker}${removal?.forced && removal.runners?.length ? ` (forced: runner ${removal.runners.join(', ')} used it)` : ''}${lock}`
          : `Refused to remove venv ${path} on ${target.worker}: ${answer.reason}`,
    };
  });
}

/** Remove a lock on the worker, only when its holder is dead. */
export async function clearLock(target: ActionTarget, lock: string): Promise<ClearLockResult> {
  return withConnectedDriver(target.scheduler, target, async (driver) => {
    const answer = await act(driver, target, 'clear-lock', { lock, venvs_dir: target.venvsDir });
    const cleared = 'path' in answer ? (answer as unknown as LockOutcome) : undefined;
    const path = cleared?.path ?? lock;
    return {
      ...resultBase(target, answer),
      action: 'clear-lock',
      lock: path,
      cleared,
      message:
        answer.outcome === 'removed'
          ? `Cleared lock ${path} on ${target.worker}: ${answer.reason}`
          : `Refused to clear lock ${path} on ${target.worker}: ${answer.reason}`,
    };
  });
}

/**
 * Remove the fresh (`-{uuid8}`) venvs no runner uses: the inspection's verdict (verdict.ts
 * `orphan-fresh-venv`) picks them, and the worker removes each only if no runner uses it now.
 */
export async function removeOrphans(target: ActionTarget): Promise<RemoveOrphansResult> {
  return withConnectedDriver(target.scheduler, target, async (driver) => {
    const facts = (await act(driver, target, 'inspect', {
      venvs_dir: target.venvsDir,
      size_budget_s: target.timeoutS / 2,
    })) as unknown as WorkerSelfFacts & WorkerSide;
    const judged = judgeWorker(facts);
    const dirs = facts.venvs_dirs.filter((d) => d.exists).map((d) => d.path);
    const removed: VenvRemoval[] = [];
    const kept: VenvRemoval[] = [];
    for (const dir of dirs) {
      const names = judged.venvs
        .filter((v) => v.dir === dir && v.problems.some((p) => p.kind === 'orphan-fresh-venv'))
        .map((v) => v.name);
      if (names.length === 0) continue;
      const answer = await act(driver, target, 'remove-venvs', { names, dir, venvs_dir: target.venvsDir });
      for (const one of (answer as unknown as { results: VenvRemoval[] }).results)
        (one.outcome === 'removed' ? removed : kept).push(one);
    }
    const where = dirs.join(', ') || 'no venvs directory';
    return {
      scheduler: target.scheduler,
      worker: target.worker,
      host: facts.host,
      outcome: 'done',
      badInput: false,
      action: 'rm-orphans',
      dir: where,
      removed,
      kept,
      ms: facts.ms,
      message:
        `Removed ${removed.length} orphan fresh venv${removed.length === 1 ? '' : 's'} in ${where} on ${target.worker}` +
        (removed.length ? `: ${removed.map((r) => r.path).join(', ')}` : '') +
        (kept.length ? `; kept ${kept.map((k) => `${k.path} (${k.reason})`).join(', ')}` : ''),
    };
  });
}

/**
 * One action on the worker: its answer, or a Failure when there is none — `bad-input` for a
 * worker the scheduler does not have (the driver's), `dask-stalled` for one that did not answer
 * in time, `dask-task-erred` for an action that raised there.
 */
export async function act(
  driver: DaskDriver,
  target: Pick<ActionTarget, 'worker' | 'timeoutS'>,
  action: WorkerAction,
  params: Record<string, unknown>,
): Promise<WorkerSide & Record<string, unknown>> {
  const answer = await driver.request(
    ActRequest.type,
    { worker: target.worker, action, params: dropUndefined(params), timeout_s: target.timeoutS },
    target.timeoutS * 1000 + DRIVER_SLACK_MS,
    `ask ${target.worker} to ${action}`,
  );
  if (answer.no_answer)
    throw new Failure(
      'dask-stalled',
      `Worker ${target.worker} did not answer within ${target.timeoutS} s (${action}); nothing is known to have been done.`,
    );
  if (answer.error !== undefined || !answer.result)
    throw new Failure('dask-task-erred', `${action} failed on worker ${target.worker}: ${answer.error ?? 'no result'}`);
  return answer.result;
}

function resultBase(target: ActionTarget, answer: WorkerSide): Omit<ActionBase, 'message'> {
  return {
    scheduler: target.scheduler,
    worker: target.worker,
    host: answer.host ?? null,
    outcome: answer.outcome === 'refused' ? 'refused' : 'done',
    badInput: Boolean(answer.bad_input),
    ms: answer.ms,
  };
}

function dropUndefined(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined));
}
