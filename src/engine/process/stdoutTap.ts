/**
 * Watches a runner's stdout byte stream *before* vscode-jsonrpc frames it.
 *
 * It does not decode messages (vscode-jsonrpc does). It only finds where each frame starts
 * and ends, so that it can:
 * - separate bytes that are not part of any frame (a stray `print`, a C-level write) and
 *   keep them verbatim as evidence of stdout pollution, instead of letting them surface as
 *   "Header must provide a Content-Length property" or "Stream closed while reading headers";
 * - refuse a frame whose Content-Length exceeds the cap before anything is buffered for it;
 * - hand vscode-jsonrpc only whole, clean frames.
 */

/** One or more `Name: value\r\n` header lines followed by the blank line. */
const COMPLETE_HEADER = /^((?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r\n)+)\r\n/;
/** A byte prefix that may still grow into a complete header. */
const PARTIAL_HEADER = /^(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r\n)*(?:[A-Za-z][A-Za-z0-9-]*(?::[^\r\n]*)?\r?|\r)?$/;
const CONTENT_LENGTH_LINE = /^content-length:\s*(\S*)\s*$/im;
const MAX_HEADER_BYTES = 1024;
const FRAME_START = 'content-length:';

export type TapEvent =
  | { type: 'frame'; bytes: Buffer }
  | { type: 'noise'; bytes: Buffer }
  | { type: 'violation'; reason: string; header: string };

export class StdoutTap {
  private pending: Buffer = Buffer.alloc(0);
  private bodyLength = -1;
  private headerLength = 0;
  private broken = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly emit: (event: TapEvent) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.broken) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length > 0 && !this.broken) {
      if (this.bodyLength >= 0) {
        const end = this.headerLength + this.bodyLength;
        if (this.pending.length < end) return;
        this.emit({ type: 'frame', bytes: this.pending.subarray(0, end) });
        this.pending = this.pending.subarray(end);
        this.bodyLength = -1;
        continue;
      }
      if (!this.readHeader()) return;
    }
  }

  /** The stream ended: whatever is left over was never a frame. */
  end(): void {
    if (!this.broken && this.pending.length > 0) {
      this.emit({ type: 'noise', bytes: this.pending });
      this.pending = Buffer.alloc(0);
    }
  }

  /** Returns false when more bytes are needed. */
  private readHeader(): boolean {
    const head = this.pending.subarray(0, MAX_HEADER_BYTES).toString('latin1');
    const complete = COMPLETE_HEADER.exec(head);
    if (complete) {
      const header = complete[1];
      const declared = CONTENT_LENGTH_LINE.exec(header)?.[1];
      if (declared === undefined) return this.violate('frame header has no Content-Length', header);
      const length = this.checkLength(declared, header);
      if (length < 0) return false;
      this.headerLength = complete[0].length;
      this.bodyLength = length;
      return true;
    }
    if (head.length < MAX_HEADER_BYTES && PARTIAL_HEADER.test(head)) {
      return false; // a header still arriving
    }
    // Not a frame: everything up to the next "Content-Length:" is noise.
    const cut = this.noiseEnd();
    if (cut === 0) return false;
    this.emit({ type: 'noise', bytes: this.pending.subarray(0, cut) });
    this.pending = this.pending.subarray(cut);
    return true;
  }

  /** Without a following frame start, keep back a tail that may be the start of one. */
  private noiseEnd(): number {
    const text = this.pending.toString('latin1').toLowerCase();
    const next = text.indexOf(FRAME_START, 1);
    if (next > 0) return next;
    for (let keep = Math.min(FRAME_START.length - 1, text.length); keep > 0; keep--) {
      if (FRAME_START.startsWith(text.slice(text.length - keep))) return text.length - keep;
    }
    return text.length;
  }

  /** The declared body length, or -1 after reporting a violation. */
  private checkLength(declared: string, header: string): number {
    if (!/^\d+$/.test(declared)) {
      this.violate(`Content-Length is not a number: ${JSON.stringify(declared)}`, header);
      return -1;
    }
    const length = Number(declared);
    if (length > this.maxFrameBytes) {
      this.violate(`Content-Length ${declared} exceeds the ${this.maxFrameBytes}-byte frame cap`, header);
      return -1;
    }
    return length;
  }

  private violate(reason: string, header: string): boolean {
    this.broken = true;
    this.emit({ type: 'violation', reason, header });
    return false;
  }
}
