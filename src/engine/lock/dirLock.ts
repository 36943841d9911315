/**
 * A lock on a directory's contents, across processes: one per venv key (two CLIs or two editor
 * windows build one venv, not two) and one per results folder (one writer at a time). The lock
 * is a directory (`mkdir` is atomic) holding `owner.json`: pid, host, the process's start time
 * and a nonce. A holder that is gone — no such pid on this host, or a pid now used by a process
 * that started at another time — is taken over: the stale lock is renamed away (only one taker
 * can win that rename) and the lock taken afresh.
 *
 * Lock libraries judge staleness by age alone (a heartbeat mtime), which either waits out a
 * crashed builder or steals from a slow one; that is why this one is written here.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Failure, type FailureKind } from '../failure';
import { procStatFields } from '../process/procStat';

export interface LockOwner {
  pid: number;
  host: string;
  /** Process start time (Linux: clock ticks since boot, /proc/<pid>/stat field 22), '' when unknown. */
  startTime: string;
  nonce: string;
  acquiredAt: string;
  purpose: string;
}

export type LockEvent =
  | { type: 'lock-wait'; lock: string; holder: LockOwner | undefined }
  | { type: 'lock-takeover'; lock: string; holder: LockOwner; why: string };

export interface LockOptions {
  timeoutMs: number;
  purpose: string;
  /** The kind of the failure when the lock is still held after timeoutMs: the caller's to say. */
  failureKind: FailureKind;
  /** Its one sentence, given who holds the lock; by default "Timed out after … waiting for …". */
  busyMessage?: (holder: string, owner: LockOwner | undefined) => string;
  onEvent?: (event: LockEvent) => void;
  /** How often to look again while someone else holds it. */
  pollMs?: number;
}

const OWNER_FILE = 'owner.json';
/** A lock directory without an owner file is being created; after this long it never will be. */
const OWNERLESS_GRACE_MS = 5_000;

export function processStartTime(pid: number): string {
  try {
    return procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[19] ?? '';
  } catch {
    return '';
  }
}

const ourStartTime = processStartTime(process.pid);

/** Why a holder is gone, or undefined while it may still be alive. */
export function holderGone(owner: LockOwner): string | undefined {
  if (owner.host !== os.hostname()) return undefined; // cannot tell for another machine
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return `pid ${owner.pid} no longer exists`;
    // EPERM: alive, owned by someone else
  }
  const now = processStartTime(owner.pid);
  if (owner.startTime && now && now !== owner.startTime)
    return `pid ${owner.pid} now belongs to another process (started at tick ${now}, the holder at ${owner.startTime})`;
  return undefined;
}

export async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(lockDir, OWNER_FILE), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

export function describeHolder(holder: LockOwner | undefined): string {
  return holder
    ? `pid ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.acquiredAt})`
    : 'a process that has not written its name yet';
}

export class DirLock {
  private constructor(
    readonly dir: string,
    readonly owner: LockOwner,
  ) {}

  static async acquire(dir: string, options: LockOptions): Promise<DirLock> {
    const deadline = Date.now() + options.timeoutMs;
    const owner: LockOwner = {
      pid: process.pid,
      host: os.hostname(),
      startTime: ourStartTime,
      nonce: randomBytes(8).toString('hex'),
      acquiredAt: new Date().toISOString(),
      purpose: options.purpose,
    };
    let announced = false;
    await fs.mkdir(path.dirname(dir), { recursive: true });
    for (;;) {
      try {
        await fs.mkdir(dir);
        await fs.writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner));
        return new DirLock(dir, owner);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await readOwner(dir);
      const gone = holder ? holderGone(holder) : await ownerlessTooLong(dir);
      if (gone) {
        if ((await takeOver(dir, holder?.nonce)) && holder)
          options.onEvent?.({ type: 'lock-takeover', lock: dir, holder, why: gone });
        continue;
      }
      if (!announced) {
        options.onEvent?.({ type: 'lock-wait', lock: dir, holder });
        announced = true;
      }
      if (Date.now() >= deadline) {
        const who = describeHolder(holder);
        const message =
          options.busyMessage?.(who, holder) ??
          `Timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for the lock ${dir}, held by ${who}`;
        throw new Failure(options.failureKind, message, {
          pid: holder?.pid,
          notes: ['if that process is gone for good, remove the lock directory'],
        });
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 100));
    }
  }

  /** Release, unless someone has taken the lock over in the meantime. */
  async release(): Promise<void> {
    const current = await readOwner(this.dir);
    if (current?.nonce === this.owner.nonce) await fs.rm(this.dir, { recursive: true, force: true });
  }
}

async function ownerlessTooLong(dir: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(dir);
    const age = Date.now() - stat.mtimeMs;
    return age > OWNERLESS_GRACE_MS ? `the lock has had no owner file for ${Math.round(age / 1000)} s` : undefined;
  } catch {
    return undefined; // vanished: try again
  }
}

/**
 * Rename the stale lock away; only one of several takers can succeed. What was renamed is
 * checked to be the stale lock that was judged (`staleNonce`), not a fresh one another taker
 * created in between; a fresh one is put back.
 */
async function takeOver(dir: string, staleNonce: string | undefined): Promise<boolean> {
  if ((await readOwner(dir))?.nonce !== staleNonce) return false;
  const aside = `${dir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(dir, aside);
  } catch {
    return false;
  }
  if ((await readOwner(aside))?.nonce !== staleNonce) {
    await fs.rename(aside, dir).catch(() => undefined);
    return false;
  }
  await fs.rm(aside, { recursive: true, force: true });
  return true;
}
