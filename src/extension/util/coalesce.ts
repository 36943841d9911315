/**
 * Work that engine events ask for many times a second (tree refreshes, the status bar,
 * diagnostics, output channels) done at most once per interval. Each of those is a message to
 * the editor's window; a 100 000-task job must not turn into 100 000 of them.
 */
export class Coalesced {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly work: () => void,
    private readonly intervalMs = 100,
  ) {}

  /** Runs the work once, within the interval, however many times this is called. */
  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.work();
    }, this.intervalMs);
  }

  /** Runs pending work now (at a job's end, so what it left is shown at once). */
  flush(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.work();
  }

  /** Drops pending work. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.cancel();
  }
}
