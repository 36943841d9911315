/**
 * The last bytes a runner wrote to stderr. Bounded, so a runner that writes 50 MB costs a
 * fixed amount of memory; the stream itself is always drained (a full pipe froze production
 * at 3998/4000 tasks).
 */
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
    const slice = all.subarray(Math.max(0, all.length - maxBytes));
    const text = slice.toString('utf8');
    if (slice.length < all.length) {
      const newline = text.indexOf('\n');
      if (newline >= 0 && newline < text.length - 1) return text.slice(newline + 1);
    }
    return text;
  }

  /** Text written after absolute byte offset `offset` (as far as the tail still holds it). */
  since(offset: number): string {
    const available = this.total - offset;
    if (available <= 0) return '';
    return this.text(Math.min(available, this.capacity));
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
