/**
 * What a JSON-RPC frame too large to keep holds, learnt while its bytes are thrown away: its
 * id, whether it is a result, an error or a notification, and the name and encoded size of
 * each member of its `result` (a runner's outputs). Bytes are looked at once and never kept,
 * so a frame over the cap is judged without allocating it.
 */

export interface FrameOutline {
  id?: number | string;
  /** The top-level member that says what the message is. */
  part?: 'result' | 'error' | 'method';
  /** Members of `result` (outputs), in order, with the encoded size of each value. */
  members: { name: string; encodedBytes: number }[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_NAME = 200;

export class FrameOutliner {
  private offset = 0;
  private depth = 0;
  /** '{' or '[' for the containers at depth 1 and 2 (deeper ones are only counted). */
  private readonly kinds: number[] = [];
  private inString = false;
  /** Backslashes just before the end of what was read, while in a string. */
  private backslashes = 0;
  private expectKey = false;
  private stringIsKey = false;
  private name: number[] = [];
  private topKey: string | undefined;
  private idText = '';
  private capturingId = false;
  private member: { name: string; start: number } | undefined;
  private readonly outline: FrameOutline = { members: [] };

  feed(bytes: Buffer): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.inString) {
        i = this.readString(bytes, i);
        continue;
      }
      const byte = bytes[i];
      const at = this.offset + i;
      i++;
      if (this.capturingId && (byte === 0x2c || byte === 0x7d) && this.depth === 1) this.endId();
      switch (byte) {
        case QUOTE:
          this.inString = true;
          this.backslashes = 0;
          this.stringIsKey = this.expectKey;
          this.expectKey = false;
          this.name = [];
          this.valueStarts(at);
          if (this.capturingId) this.idText += '"';
          break;
        case 0x7b: // {
        case 0x5b: // [
          this.valueStarts(at);
          this.depth++;
          if (this.depth <= 2) this.kinds[this.depth - 1] = byte;
          this.expectKey = byte === 0x7b;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          if (this.depth === 2) this.memberEnds(at);
          this.depth--;
          break;
        case 0x2c: // ,
          if (this.depth === 2) this.memberEnds(at);
          this.expectKey = this.depth >= 1 && this.depth <= 2 && this.kinds[this.depth - 1] === 0x7b;
          break;
        case 0x3a: // :
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          break;
        default: // a number or a literal
          this.valueStarts(at);
          if (this.capturingId && this.idText.length < 40) this.idText += String.fromCharCode(byte);
      }
    }
    this.offset += bytes.length;
  }

  /** What was learnt; complete once the whole frame was fed. */
  result(): FrameOutline {
    if (this.capturingId) this.endId();
    return this.outline;
  }

  private readString(bytes: Buffer, from: number): number {
    const quote = bytes.indexOf(QUOTE, from);
    const end = quote < 0 ? bytes.length : quote;
    let run = 0;
    while (end - 1 - run >= from && bytes[end - 1 - run] === BACKSLASH) run++;
    if (end - 1 - run < from) run += this.backslashes;
    if (this.stringIsKey || this.capturingId) this.keep(bytes, from, quote < 0 ? end : end + 1);
    if (quote < 0) {
      this.backslashes = run;
      return end;
    }
    this.backslashes = 0;
    if (run % 2 === 1) return end + 1; // an escaped quote: still in the string
    this.inString = false;
    const wasKey = this.stringIsKey;
    this.stringIsKey = false;
    if (wasKey) this.keyRead(Buffer.from(this.name).toString('utf8').replace(/"$/, ''));
    return end + 1;
  }

  private keep(bytes: Buffer, from: number, to: number): void {
    if (this.stringIsKey) for (let i = from; i < to && this.name.length < MAX_NAME; i++) this.name.push(bytes[i]);
    else if (this.idText.length < 40) this.idText += bytes.subarray(from, Math.min(to, from + 40)).toString('utf8');
  }

  private keyRead(key: string): void {
    if (this.depth === 1) {
      this.topKey = key;
      if (key === 'result' || key === 'error' || key === 'method') this.outline.part ??= key;
      if (key === 'id') {
        this.capturingId = true;
        this.idText = '';
      }
    } else if (this.depth === 2 && this.topKey === 'result' && this.kinds[0] === 0x7b && this.kinds[1] === 0x7b) {
      this.member = { name: key, start: -1 };
    }
  }

  /** A value begins at `at` (depth as before its first byte). */
  private valueStarts(at: number): void {
    if (this.depth === 2 && this.member && this.member.start < 0 && !this.stringIsKey) this.member.start = at;
  }

  private memberEnds(at: number): void {
    if (this.member && this.member.start >= 0)
      this.outline.members.push({ name: this.member.name, encodedBytes: at - this.member.start });
    this.member = undefined;
  }

  private endId(): void {
    this.capturingId = false;
    const text = this.idText.trim();
    if (/^-?\d+$/.test(text)) this.outline.id = Number(text);
    else if (text.startsWith('"')) this.outline.id = text.slice(1, text.endsWith('"') ? -1 : undefined);
  }
}
