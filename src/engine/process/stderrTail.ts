/**
 * The last bytes a runner wrote to stderr. Bounded, so a runner that writes 50 MB costs a
 * fixed amount of memory; the stream itself is always drained (a full pipe froze production
 * at 3998/4000 tasks).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class StderrTail {
  private chunks: Buffer[] = [];
  private held = 0;
  /** Every byte ever seen, including those that fell off the tail. */
  total = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly capacity: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.held - this.chunks[0].length >= this.capacity) {
      this.held -= this.chunks.shift()!.length;
    }
    for (const listener of [...this.listeners]) listener();
  }

  /** The tail as text, at most `maxBytes` long, starting at a line boundary when it can. */
  text(maxBytes = this.capacity): string {
    const all = Buffer.concat(this.chunks);
    return fromLineStart(all.subarray(Math.max(0, all.length - maxBytes)).toString('utf8'), maxBytes < all.length);
  }

  /** A position to ask `since` about later. */
  mark(): number {
    return this.total;
  }

  /** Text written after absolute byte offset `offset` (as far as the tail still holds it). */
  since(offset: number): string {
    const available = this.total - offset;
    if (available <= 0) return '';
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - available)).toString('utf8');
  }

  /** Resolves true when `predicate` holds for the tail, false after `timeoutMs`. */
  waitFor(predicate: (text: string) => boolean, timeoutMs: number): Promise<boolean> {
    if (predicate(this.text())) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (result: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(result);
      };
      const check = () => {
        if (predicate(this.text())) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.listeners.add(check);
    });
  }
}

/**
 * The same questions asked of a file: for runners whose stderr goes straight to a log file
 * (jobs), so that megabytes of it cost the engine nothing until someone looks.
 */
export class StderrFile {
  private readonly fd: number;
  /**
   * Its size and tail when it was closed: a diagnosis still under way (a stack dump racing the
   * runner's exit) reads these, never a closed descriptor (EBADF) or one reused for another file.
   */
  private final: { size: number; tail: Buffer } | undefined;

  constructor(
    readonly file: string,
    private readonly capacity: number,
  ) {
    this.fd = openSync(file, 'r');
  }

  get total(): number {
    return this.final ? this.final.size : fstatSync(this.fd).size;
  }

  /** The file offers no cheap position: "since" then means the whole tail. */
  mark(): number {
    return -1;
  }

  text(maxBytes = this.capacity): string {
    const size = this.total;
    return fromLineStart(this.last(Math.min(size, maxBytes), size), maxBytes < size);
  }

  since(offset: number): string {
    if (offset < 0) return this.text();
    const size = this.total;
    return size - offset <= 0 ? '' : this.last(Math.min(size - offset, this.capacity), size);
  }

  private last(length: number, size: number): string {
    if (this.final) return this.final.tail.subarray(Math.max(0, this.final.tail.length - length)).toString('utf8');
    const bytes = Buffer.alloc(length);
    readSync(this.fd, bytes, 0, length, size - length);
    return bytes.toString('utf8');
  }

  /** Polls: only asked for rare things (a stack dump), never per task. */
  async waitFor(predicate: (text: string) => boolean, timeoutMs: number, pollMs = 25): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.text())) {
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    return true;
  }

  /** Idempotent. */
  close(): void {
    if (this.final) return;
    const size = this.total;
    const length = Math.min(size, this.capacity);
    const tail = Buffer.alloc(length);
    readSync(this.fd, tail, 0, length, size - length);
    this.final = { size, tail };
    closeSync(this.fd);
  }
}

/** A tail cut out of a longer text starts at its first whole line. */
function fromLineStart(text: string, cut: boolean): string {
  if (!cut) return text;
  const newline = text.indexOf('\n');
  return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
}

/** What a WarmProcess asks of its stderr, wherever it goes. */
export type StderrSource = StderrTail | StderrFile;
