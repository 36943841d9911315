/**
 * Warm runner processes for one venv: up to `size` of them, each fed up to `depth` requests
 * at once (a runner answers strictly in order, so a second request waiting in the pipe hides
 * the round trip). A process that dies or breaks leaves the pool and is replaced on demand;
 * `cold` runs one task per process; `maxReuse` retires a process after that many tasks.
 *
 * `depth: 'auto'` (the default) queues two requests per process, and more when tasks are short:
 * as many as a process serves in about AUTO_QUEUE_MS, up to AUTO_DEPTH_MAX. A runner that
 * finishes a trivial task before the engine's next write reaches it goes to sleep in `read()`,
 * and every write then wakes it (on a busy machine, a wake-up that often pre-empts the engine
 * itself): with a few more requests waiting it never sleeps, and reads several frames at once.
 * Tasks of 2 ms or more keep two, so the last ones of a job never wait long behind a busy
 * process while another stands idle (what is queued beyond two is ~4 ms of work at most). The time
 * per task is the engine's view (a loaded machine makes it longer), not the runner's own.
 */
import { Failure, unexpectedFailure } from '../../failure';
import type { WarmProcess } from '../../process/warmProcess';

/** 'auto': queue what a process serves in about this long (at least 2 requests, at most AUTO_DEPTH_MAX). */
export const AUTO_QUEUE_MS = 4;
export const AUTO_DEPTH_MAX = 16;
const AUTO_DEPTH_MIN = 2;
/** Weight of the newest task in the running mean of how long a process takes per task. */
const SERVICE_WEIGHT = 0.05;

export interface PoolOptions {
  size: number;
  /** Requests at once per process; 'auto': see AUTO_QUEUE_MS. */
  depth: number | 'auto';
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
  /** Since when the process has been working without a pause (undefined: idle). */
  busySince: number | undefined;
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
  /** Requests at once per process, now (see `depth: 'auto'`). */
  private depthNow: number;
  /** Running mean of a task's time in a process that never paused for it (ms; undefined: none yet). */
  private meanServiceMs: number | undefined;

  constructor(private readonly options: PoolOptions) {
    this.depthNow =
      options.executor === 'cold' ? 1 : options.depth === 'auto' ? AUTO_DEPTH_MIN : Math.max(1, options.depth);
  }

  /** Requests each process may hold now: the pool runs at most `size` × this at once. */
  get depth(): number {
    return this.depthNow;
  }

  /** What sets `depth: 'auto'`: the running mean of a task's time in a process that never paused (ms). */
  get serviceMs(): number | undefined {
    return this.meanServiceMs;
  }

  get processes(): readonly WarmProcess[] {
    return this.slots.map((s) => s.process);
  }

  /** Run `work` on a process of the pool; the process is released when it settles. */
  run<T>(work: (process: WarmProcess) => Promise<T>): Promise<T> {
    // the hot path, once per task: a free process is used at once, without a promise of its own
    const free = this.fatal || this.closed ? undefined : this.freeSlot();
    if (free) {
      this.load(free);
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
      this.release(slot, false);
      return Promise.reject(error);
    }
    return working.then(
      (value) => {
        this.release(slot, true);
        return value;
      },
      (error: unknown) => {
        this.release(slot, false);
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
      this.load(slot);
      return Promise.resolve(slot);
    }
    const promise = new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.slots.length + this.starting < this.options.size) void this.grow();
    return promise;
  }

  private freeSlot(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.retiring || !slot.process.alive || slot.load >= this.depthNow) continue;
      if (this.options.maxReuse > 0 && slot.tasks + slot.load >= this.options.maxReuse) continue;
      if (!best || slot.load < best.load) best = slot;
    }
    return best;
  }

  /** One more request on the slot's process; one that was idle begins it now. */
  private load(slot: Slot): void {
    if (slot.load++ === 0) slot.busySince = performance.now();
  }

  /**
   * A task's time in a process that worked without a pause (it began as the one before it
   * ended), into the running mean that sets `depth: 'auto'`. Only answered requests count: those
   * a crash failed at once, queued behind it, say nothing of how long a task takes.
   */
  private served(ms: number): void {
    const mean =
      this.meanServiceMs === undefined ? ms : this.meanServiceMs + SERVICE_WEIGHT * (ms - this.meanServiceMs);
    this.meanServiceMs = mean;
    if (this.options.depth !== 'auto' || this.options.executor === 'cold') return;
    const wanted = Math.ceil(AUTO_QUEUE_MS / Math.max(mean, 0.001));
    this.depthNow = Math.max(AUTO_DEPTH_MIN, Math.min(AUTO_DEPTH_MAX, wanted));
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
    const slot: Slot = { process, load: 0, busySince: undefined, tasks: 0, retiring: false, removed: false };
    this.slots.push(slot);
    this.options.onProcessStart?.(process);
    this.dispatch();
  }

  private release(slot: Slot, answered: boolean): void {
    const now = performance.now();
    if (answered && slot.busySince !== undefined) this.served(now - slot.busySince);
    slot.load--;
    slot.tasks++;
    // the next request in its pipe begins now; none: it pauses
    slot.busySince = slot.load > 0 ? now : undefined;
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
      this.load(slot);
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
