/**
 * Work that engine events ask for many times a second (tree refreshes, the status bar,
 * diagnostics, output channels) done at most once per interval. Each of those is a message to
 * the editor's window; a 100 000-task job must not turn into 100 000 of them.
 */
export class Coalesced {
  private timer: NodeJS.Timeout | undefined;
  private pending = false;

  /**
   * `leading`: a call after a quiet interval runs the work on the next turn of the timers
   * rather than an interval later, and each run is followed by an interval in which calls only
   * mark work for its end (a throttle: sparse events show at once, a stream of them at most
   * once per interval). Otherwise the work runs an interval after the first call.
   */
  constructor(
    private readonly work: () => void,
    private readonly intervalMs = 100,
    private readonly options: { leading?: boolean } = {},
  ) {}

  /** Runs the work once, within the interval, however many times this is called. */
  schedule(): void {
    this.pending = true;
    // a timer even when leading, never inline: the events of one burst (one read of a runner's
    // pipe) land in one run
    this.timer ??= setTimeout(() => this.tick(), this.options.leading ? 0 : this.intervalMs);
  }

  /** Runs pending work now (at a job's end, so what it left is shown at once). */
  flush(): void {
    if (!this.pending) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.run();
  }

  /** Drops pending work. */
  cancel(): void {
    this.pending = false; // a leading one's quiet interval goes on: its timer ends it
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = false;
  }

  private tick(): void {
    this.timer = undefined;
    if (this.pending) this.run();
  }

  private run(): void {
    this.pending = false;
    // the quiet interval is timed from here, in the same turn as whatever the work sets off
    // (VS Code's debounce of a tree's change event, see TREE_REFRESH_MS): of two timers set in
    // one turn, the longer falls due after the shorter
    if (this.options.leading) this.timer = setTimeout(() => this.tick(), this.intervalMs);
    this.work();
  }
}

/**
 * How often a tree view may say it changed while events stream in. VS Code (1.100.3, the
 * version the tests run) debounces a provider's `onDidChangeTreeData` in the extension host:
 * `Event.debounce(this._onDidChangeData.event, merge, 200, true)` (leading edge) in
 * src/vs/workbench/api/common/extHostTreeViews.ts (ExtHostTreeView's constructor, lines
 * 382-402 in 1.100.3; the same in microsoft/vscode's main today), and `Event.debounce` in
 * src/vs/base/common/event.ts (lines 256-287) fires the first event at once and then
 * `clearTimeout(handle); handle = setTimeout(doFire, delay)` on every further one, so the
 * trailing refresh waits for 200 ms without a change event. A tree that fires every 100 ms
 * during a job is therefore refreshed once when the job starts and then only when the job
 * pauses (issue 11: the job row said 1/20000 while the status bar said 8347/20000).
 *
 * Fired at most once per this interval, timed from the moment of the previous change event,
 * every change event finds VS Code's 200 ms timer of the previous one already run (both are set
 * in the same turn of the extension host's loop, and Node runs due timers in the order they
 * fall due), so each is a leading edge and refreshes the view at once. (Firing per-element
 * changes would not help: VS Code debounces those the same way.)
 */
export const TREE_REFRESH_MS = 220;

/** How long a change event may go without VS Code asking for the rows before the next is fired anyway. */
export const TREE_STALL_MS = 2000;

/**
 * A tree view's refresh during a stream of changes: at most one change event per
 * TREE_REFRESH_MS, and none while VS Code has not yet asked for the rows since the last one.
 *
 * VS Code queues each refresh behind the one before (`this._refreshQueue.then(...)` in
 * extHostTreeViews.ts) and a refresh is a round trip through a busy extension host: a tree
 * that fires faster than that round trip piles up refreshes that run long after the job, while
 * what they show is no newer. So a change event waits for the view to ask for its root
 * (`fetched()`); what it gets then already holds every change until that moment. A view that
 * is not shown asks when it is shown again (VS Code keeps the refresh for then); one that
 * never asks within TREE_STALL_MS is sent the next change anyway, so a refresh VS Code dropped
 * cannot freeze the tree.
 */
export class TreeRefresh {
  private readonly throttle: Coalesced;
  /** A change event was fired and the view has not asked for its root since. */
  private awaiting: NodeJS.Timeout | undefined;
  /** Changes made while awaiting, which what the view will fetch may not hold. */
  private wanted = false;

  constructor(fire: () => void) {
    this.throttle = new Coalesced(
      () => {
        this.awaiting = setTimeout(() => this.release(), TREE_STALL_MS);
        fire();
      },
      TREE_REFRESH_MS,
      { leading: true },
    );
  }

  /** The model changed. */
  schedule(): void {
    if (this.awaiting) this.wanted = true;
    else this.throttle.schedule();
  }

  /** The view is asking for its root: the rows it gets now show every change made so far. */
  fetched(): void {
    if (!this.awaiting) return;
    this.wanted = false;
    this.release();
  }

  dispose(): void {
    clearTimeout(this.awaiting);
    this.awaiting = undefined;
    this.throttle.dispose();
  }

  private release(): void {
    clearTimeout(this.awaiting);
    this.awaiting = undefined;
    if (this.wanted) {
      this.wanted = false;
      this.throttle.schedule();
    }
  }
}
