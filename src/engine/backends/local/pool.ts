/**
 * Warm runner processes for one venv: up to `size` of them, each fed up to `depth` requests
 * at once (a runner answers strictly in order, so a second request waiting in the pipe hides
 * the round trip). A process that dies or breaks leaves the pool and is replaced on demand;
 * `cold` runs one task per process; `maxReuse` retires a process after that many tasks.
 */
import { Failure, unexpectedFailure } from '../../failure';
import type { WarmProcess } from '../../process/warmProcess';

export interface PoolOptions {
  size: number;
  depth: number;
  executor: 'warm' | 'cold';
  /** Retire a process after this many tasks (0: never). */
  maxReuse: number;
  /**
   * Start a process and wait for `ready`; rejects with the handshake failure. `signal` aborts
   * when the pool is killed: a process still starting is ended then, not waited for.
   */
  spawn: (signal: AbortSignal) => Promise<WarmProcess>;
  onProcessStart?: (process: WarmProcess) => void;
  onProcessEnd?: (process: WarmProcess, why: string) => void;
}

interface Slot {
  process: WarmProcess;
  load: number;
  tasks: number;
  retiring: boolean;
  removed: boolean;
}

interface Waiter {
  resolve: (slot: Slot) => void;
  reject: (failure: Failure) => void;
}

/** Spawns in a row that may fail before the pool gives up, once a process has ever started. */
const SPAWN_FAILURES_TOLERATED = 3;

export class WarmPool {
  private readonly slots: Slot[] = [];
  private starting = 0;
  private readonly killing = new AbortController();
  private readonly waiters: Waiter[] = [];
  private everStarted = false;
  private failuresInARow = 0;
  private fatal: Failure | undefined;
  private closed = false;
  /** Processes being stopped; close() waits for them so that nothing ends after the job. */
  private readonly ending = new Set<Promise<void>>();

  constructor(private readonly options: PoolOptions) {}

  get processes(): readonly WarmProcess[] {
    return this.slots.map((s) => s.process);
  }

  /** Run `work` on a process of the pool; the process is released when it settles. */
  run<T>(work: (process: WarmProcess) => Promise<T>): Promise<T> {
    // the hot path, once per task: a free process is used at once, without a promise of its own
    const free = this.fatal || this.closed ? undefined : this.freeSlot();
    if (free) {
      free.load++;
      return this.runOn(free, work);
    }
    return this.acquire().then((slot) => this.runOn(slot, work));
  }

  /** `work` on the slot's process; the slot is released before the caller sees the outcome. */
  private runOn<T>(slot: Slot, work: (process: WarmProcess) => Promise<T>): Promise<T> {
    let working: Promise<T>;
    try {
      working = work(slot.process);
    } catch (error) {
      this.release(slot);
      return Promise.reject(error);
    }
    return working.then(
      (value) => {
        this.release(slot);
        return value;
      },
      (error: unknown) => {
        this.release(slot);
        throw error;
      },
    );
  }

  /** Stop every process (a shutdown request, then signals). */
  async close(): Promise<void> {
    this.closed = true;
    this.rejectWaiters();
    for (const slot of this.slots.splice(0)) this.remove(slot, 'pool closed');
    await Promise.all(this.ending);
  }

  /**
   * Kill every process at once (Ctrl-C), those still starting too, and fail every request
   * still waiting for a process: nothing waits on a runner that will never come.
   */
  async kill(): Promise<void> {
    this.closed = true;
    this.killing.abort(); // runners still starting are ended by their spawn
    // tasks waiting for a process (one being replaced after a crash) would otherwise wait forever
    this.rejectWaiters();
    for (const slot of this.slots.splice(0)) {
      slot.removed = true;
      this.track(slot.process.kill().then(() => this.options.onProcessEnd?.(slot.process, 'killed')));
    }
    await Promise.all(this.ending);
  }

  private rejectWaiters(): void {
    const failure = new Failure('cancelled', 'the pool was closed');
    for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
  }

  private acquire(): Promise<Slot> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.closed) return Promise.reject(new Failure('cancelled', 'the pool was closed'));
    const slot = this.freeSlot();
    if (slot) {
      slot.load++;
      return Promise.resolve(slot);
    }
    const promise = new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.slots.length + this.starting < this.options.size) void this.grow();
    return promise;
  }

  private freeSlot(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.retiring || !slot.process.alive || slot.load >= this.depth()) continue;
      if (this.options.maxReuse > 0 && slot.tasks + slot.load >= this.options.maxReuse) continue;
      if (!best || slot.load < best.load) best = slot;
    }
    return best;
  }

  private depth(): number {
    return this.options.executor === 'cold' ? 1 : this.options.depth;
  }

  private async grow(): Promise<void> {
    this.starting++;
    let process: WarmProcess;
    try {
      process = await this.options.spawn(this.killing.signal);
    } catch (error) {
      this.starting--;
      const failure = unexpectedFailure(error, 'starting a runner');
      this.failuresInARow++;
      // a runner that never started is the bundle's or the environment's fault: stop at once
      if (!this.everStarted || this.failuresInARow >= SPAWN_FAILURES_TOLERATED) {
        this.fatal = failure;
        for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
      } else if (this.waiters.length) {
        void this.grow();
      }
      return;
    }
    this.starting--;
    this.everStarted = true;
    this.failuresInARow = 0;
    if (this.closed) {
      // started while the pool was closing: ended the way the others were (and not reported:
      // the job may have written its last event already)
      this.track((this.killing.signal.aborted ? process.kill() : process.shutdown()).then(() => process.closeStderr()));
      return;
    }
    const slot: Slot = { process, load: 0, tasks: 0, retiring: false, removed: false };
    this.slots.push(slot);
    this.options.onProcessStart?.(process);
    this.dispatch();
  }

  private release(slot: Slot): void {
    slot.load--;
    slot.tasks++;
    const reuseSpent =
      this.options.executor === 'cold' || (this.options.maxReuse > 0 && slot.tasks >= this.options.maxReuse);
    if (!slot.process.alive) {
      this.remove(slot, slot.process.brokenBy ? `broken: ${slot.process.brokenBy.kind}` : 'exited');
    } else if (reuseSpent) {
      slot.retiring = true;
      if (slot.load === 0)
        this.remove(
          slot,
          this.options.executor === 'cold'
            ? 'cold executor: one task per process'
            : `reused ${slot.tasks} times (--max-reuse)`,
        );
    }
    this.dispatch();
  }

  /** Hand free capacity to waiters; start processes for those still waiting. */
  private dispatch(): void {
    while (this.waiters.length) {
      const slot = this.freeSlot();
      if (!slot) break;
      slot.load++;
      this.waiters.shift()!.resolve(slot);
    }
    const wanted = Math.min(this.waiters.length, this.options.size - this.slots.length - this.starting);
    for (let i = 0; i < wanted; i++) void this.grow();
  }

  private remove(slot: Slot, why: string): void {
    if (slot.removed) return;
    slot.removed = true;
    const index = this.slots.indexOf(slot);
    if (index >= 0) this.slots.splice(index, 1);
    this.track(slot.process.shutdown().then(() => this.options.onProcessEnd?.(slot.process, why)));
  }

  private track(ending: Promise<void>): void {
    this.ending.add(ending);
    void ending.finally(() => this.ending.delete(ending));
  }
}
