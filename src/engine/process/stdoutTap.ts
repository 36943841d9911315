/**
 * Reads a runner's stdout byte stream into Content-Length frames.
 *
 * It finds where each frame starts and ends, so that it can:
 * - separate bytes that are not part of any frame (a stray `print`, a C-level write) and
 *   keep them verbatim as evidence of stdout pollution, instead of letting them surface as
 *   "Header must provide a Content-Length property" or "Stream closed while reading headers";
 * - refuse a frame whose Content-Length exceeds the cap before anything is buffered for it
 *   (or, when the owner asks, let it pass unkept and say what it held: see FrameOutliner);
 * - hand on only whole, clean frames.
 *
 * Linear in what it reads: a frame's body is copied, as its chunks arrive (while the runner
 * is still writing the rest), into one buffer of the declared length (at most the cap), and
 * decoded once when its last byte came; nothing is re-scanned or re-copied as a frame grows.
 */
import { FrameOutliner, type FrameOutline } from './frameOutline';

/** One or more `Name: value\r\n` header lines followed by the blank line. */
const COMPLETE_HEADER = /^((?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r\n)+)\r\n/;
/** A byte prefix that may still grow into a complete header. */
const PARTIAL_HEADER = /^(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r\n)*(?:[A-Za-z][A-Za-z0-9-]*(?::[^\r\n]*)?\r?|\r)?$/;
const CONTENT_LENGTH_LINE = /^content-length:\s*(\S*)\s*$/im;
const MAX_HEADER_BYTES = 1024;
/** `content-length:`, matched without regard to the case of its letters. */
const FRAME_START = Buffer.from('content-length:');
const EMPTY = Buffer.alloc(0);

export type TapEvent =
  /** `header`: its header lines; `text`: its body, decoded from UTF-8. */
  | { type: 'frame'; header: string; text: string }
  | { type: 'noise'; bytes: Buffer }
  /** A frame over the cap that was let pass without being kept (see `passOversized`). */
  | { type: 'oversized'; header: string; length: number; outline: FrameOutline }
  | { type: 'violation'; reason: string; header: string };

export class StdoutTap {
  /** Header mode: bytes not judged yet (a header still arriving, or noise). */
  private head: Buffer = EMPTY;
  /** Frame mode: the body, filled as its chunks arrive. */
  private body: Buffer = EMPTY;
  private header = '';
  private gathered = 0;
  private bodyLength = -1;
  /** Passing an oversized frame: bytes still to come, and what they are learnt to hold. */
  private passing: { remaining: number; length: number; header: string; outliner: FrameOutliner } | undefined;
  private broken = false;

  /**
   * @param passOversized asked when a frame over the cap is announced: true lets it pass unkept
   *   (an `oversized` event follows its last byte), false refuses it (a `violation`).
   */
  constructor(
    private readonly maxFrameBytes: number,
    private readonly emit: (event: TapEvent) => void,
    private readonly passOversized: (length: number) => boolean = () => false,
  ) {}

  push(chunk: Buffer): void {
    let input = chunk;
    while (!this.broken) {
      if (this.passing) input = this.pass(input);
      else if (this.bodyLength >= 0) input = this.gather(input);
      else {
        if (input.length) this.head = this.head.length ? Buffer.concat([this.head, input]) : input;
        input = EMPTY;
        if (!this.head.length || !this.readHeader()) return;
        if (this.bodyLength >= 0 || this.passing) {
          input = this.head; // the frame's first bytes
          this.head = EMPTY;
        }
        continue;
      }
      if (!input.length) return;
    }
  }

  /** The stream ended: whatever is left over was never a frame. */
  end(): void {
    if (this.broken) return;
    const cut = this.bodyLength >= 0 ? [Buffer.from(this.header, 'latin1'), this.body.subarray(0, this.gathered)] : [];
    const left = [...cut, this.head].filter((b) => b.length);
    if (left.length) this.emit({ type: 'noise', bytes: Buffer.concat(left) });
    this.head = EMPTY;
    this.body = EMPTY;
  }

  private gather(input: Buffer): Buffer {
    const take = Math.min(this.bodyLength - this.gathered, input.length);
    input.copy(this.body, this.gathered, 0, take);
    this.gathered += take;
    if (this.gathered === this.bodyLength) {
      const text = this.body.toString('utf8');
      this.body = EMPTY;
      this.gathered = 0;
      this.bodyLength = -1;
      this.emit({ type: 'frame', header: this.header, text });
    }
    return input.subarray(take);
  }

  private pass(input: Buffer): Buffer {
    const passing = this.passing!;
    const take = Math.min(passing.remaining, input.length);
    passing.outliner.feed(input.subarray(0, take));
    passing.remaining -= take;
    if (passing.remaining === 0) {
      this.passing = undefined;
      this.emit({
        type: 'oversized',
        header: passing.header,
        length: passing.length,
        outline: passing.outliner.result(),
      });
    }
    return input.subarray(take);
  }

  /** Returns false when more bytes are needed. */
  private readHeader(): boolean {
    const head = this.head.subarray(0, MAX_HEADER_BYTES).toString('latin1');
    const complete = COMPLETE_HEADER.exec(head);
    if (complete) {
      const header = complete[1];
      const declared = CONTENT_LENGTH_LINE.exec(header)?.[1];
      if (declared === undefined) return this.violate('frame header has no Content-Length', header);
      const length = this.checkLength(declared, header);
      if (length < 0) return false;
      const headerLength = complete[0].length;
      if (length > this.maxFrameBytes) {
        this.passing = { remaining: length, length, header, outliner: new FrameOutliner() };
        this.head = this.head.subarray(headerLength);
        return true;
      }
      this.header = this.head.subarray(0, headerLength).toString('latin1');
      this.head = this.head.subarray(headerLength);
      this.bodyLength = length;
      // at most the cap (checked above): the frame's own size, allocated once
      this.body = Buffer.allocUnsafe(length);
      if (length === 0) this.gather(EMPTY);
      return true;
    }
    if (head.length < MAX_HEADER_BYTES && PARTIAL_HEADER.test(head)) {
      return false; // a header still arriving
    }
    // Not a frame: everything up to the next "Content-Length:" is noise.
    const cut = this.noiseEnd();
    if (cut === 0) return false;
    this.emit({ type: 'noise', bytes: this.head.subarray(0, cut) });
    this.head = this.head.subarray(cut);
    return true;
  }

  /** Without a following frame start, keep back a tail that may be the start of one. */
  private noiseEnd(): number {
    const bytes = this.head;
    const next = frameStartAt(bytes, 1);
    if (next > 0) return next;
    for (let keep = Math.min(FRAME_START.length - 1, bytes.length); keep > 0; keep--) {
      if (matchesFrameStart(bytes, bytes.length - keep, keep)) return bytes.length - keep;
    }
    return bytes.length;
  }

  /** The declared body length, or -1 after reporting a violation. */
  private checkLength(declared: string, header: string): number {
    if (!/^\d+$/.test(declared)) {
      this.violate(`Content-Length is not a number: ${JSON.stringify(declared)}`, header);
      return -1;
    }
    const length = Number(declared);
    if (length > this.maxFrameBytes && !this.passOversized(length)) {
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

/** Whether `count` bytes at `at` are the first `count` bytes of `content-length:` (any case). */
function matchesFrameStart(bytes: Buffer, at: number, count: number): boolean {
  for (let j = 0; j < count; j++) {
    const byte = bytes[at + j];
    const wanted = FRAME_START[j];
    const letter = wanted >= 0x61 && wanted <= 0x7a;
    if ((letter ? byte | 0x20 : byte) !== wanted) return false;
  }
  return true;
}

/** Where the next `content-length:` begins at or after `from`, or -1: one linear walk. */
function frameStartAt(bytes: Buffer, from: number): number {
  const last = bytes.length - FRAME_START.length;
  for (let i = from; i <= last; i++) {
    if ((bytes[i] | 0x20) === 0x63 && matchesFrameStart(bytes, i, FRAME_START.length)) return i;
  }
  return -1;
}
