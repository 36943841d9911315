/**
 * Progress of a job on stderr: a bar on a terminal (counts per state, tasks/s, ETA), plain
 * lines otherwise. Both are fed by the engine's event stream and never touch stdout.
 */
import { SingleBar } from 'cli-progress';
import type { JobEvent } from '../engine/job/events';
import { describeClusterEvent } from '../engine/backends/dask/describe';
import { describeVenvEvent } from '../engine/venv/describe';

const PLAIN_INTERVAL_MS = 2000;
/** One warning per task can be thousands: the first few are shown. */
const LINGERING_SHOWN = 5;

export class Progress {
  private bar: SingleBar | undefined;
  private total = 0;
  private done = 0;
  private ok = 0;
  private failed = 0;
  /** Tasks announced as running (a task that ends fast is never announced: JobBook.taskStarted). */
  private readonly running = new Set<string>();
  private aggDone = 0;
  private aggTotal = 0;
  private started = 0;
  private doneAtStart = 0;
  private lastPlain = 0;
  /** lingering-descendants warnings printed (the first few; all are in events.jsonl). */
  private lingering = 0;
  /** Dask: simulations counted as done when they finished, before their results came. */
  private readonly finishedEarly = new Set<string>();

  constructor(private readonly tty: boolean) {}

  onEvent(event: JobEvent): void {
    switch (event.type) {
      case 'job-start':
        this.total = event.sims;
        this.done = event.skipped_sims;
        this.doneAtStart = event.skipped_sims;
        this.aggTotal = event.aggregations;
        this.aggDone = event.skipped_aggregations;
        this.started = Date.now();
        this.line(
          `job ${event.job_id}: ${event.sims} simulations, ${event.aggregations} aggregations${event.resumed ? ` (resuming: ${event.skipped_sims} simulations and ${event.skipped_aggregations} aggregations already done)` : ''} → ${event.out}`,
        );
        break;
      case 'venv':
        this.line(describeVenvEvent(event.event));
        break;
      case 'process-start':
        if (!this.bar && this.tty) this.startBar();
        break;
      case 'task-start':
        this.running.add(event.key);
        break;
      case 'task-retry':
        this.running.delete(event.key);
        this.line(`retrying ${event.key} (attempt ${event.attempt}): ${event.kind}: ${event.message}`);
        break;
      case 'task-finished':
        this.finishedEarly.add(event.key);
        this.done++;
        break;
      case 'task-done':
        this.running.delete(event.key);
        if (!this.finishedEarly.delete(event.key)) this.done++;
        if (event.status === 'ok') this.ok++;
        else this.failed++;
        if (event.status !== 'ok' && this.failed <= 5)
          this.line(
            `✘ ${event.key}: ${event.kind}: ${event.message}${event.location ? ` (${event.location.file}:${event.location.line})` : ''}`,
          );
        break;
      case 'agg-done':
        this.aggDone++;
        if (event.status !== 'ok') this.line(`✘ ${event.key}: ${event.kind}: ${event.message}`);
        break;
      case 'warning':
        if (event.kind === 'lingering-descendants' && ++this.lingering > LINGERING_SHOWN) {
          if (this.lingering === LINGERING_SHOWN + 1)
            this.line('⚠ more tasks left processes running: every lingering-descendants warning is in events.jsonl');
          break;
        }
        this.line(`⚠ ${event.message}`);
        break;
      case 'results-folder':
        this.line(`⚠ ${event.message}`);
        break;
      case 'dask-connected':
      case 'worker-joined':
      case 'worker-lost':
      case 'dask-task-erred':
      case 'scheduler-lost': {
        const news = describeClusterEvent(event)!;
        this.line(`${news.level === 'error' ? '✘ ' : news.level === 'warning' ? '⚠ ' : ''}${news.text}`);
        break;
      }
      case 'job-done':
        this.stopBar();
        return;
    }
    this.render();
  }

  stop(): void {
    this.stopBar();
  }

  private startBar(): void {
    this.bar = new SingleBar({
      format:
        '{bar} {percentage}% | {value}/{total} sims ✓{ok} ✗{failed} ▶{running} | aggs {aggs} | {rate}/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 200,
      fps: 10,
      barCompleteChar: '█',
      barIncompleteChar: '░',
    });
    this.bar.start(this.total, this.done, this.payload());
  }

  private stopBar(): void {
    if (!this.bar) return;
    this.bar.update(this.done, this.payload());
    this.bar.stop();
    this.bar = undefined;
  }

  private payload() {
    const seconds = Math.max(0.001, (Date.now() - this.started) / 1000);
    return {
      ok: this.ok,
      failed: this.failed,
      running: this.running.size,
      aggs: `${this.aggDone}/${this.aggTotal}`,
      rate: Math.round((this.done - this.doneAtStart) / seconds),
    };
  }

  private render(): void {
    if (this.bar) {
      this.bar.update(this.done, this.payload());
      return;
    }
    if (this.tty || Date.now() - this.lastPlain < PLAIN_INTERVAL_MS || this.total === 0) return;
    this.lastPlain = Date.now();
    const p = this.payload();
    process.stderr.write(
      `${this.done}/${this.total} sims (✓${p.ok} ✗${p.failed}), aggregations ${p.aggs}, ${p.rate}/s\n`,
    );
  }

  /** A line above the bar (or a plain line). */
  private line(text: string): void {
    if (this.bar) {
      this.bar.stop();
      process.stderr.write(`${text}\n`);
      this.bar.start(this.total, this.done, this.payload());
    } else {
      process.stderr.write(`${text}\n`);
    }
  }
}
