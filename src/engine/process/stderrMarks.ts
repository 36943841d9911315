/**
 * Where each answer's stderr ends, when the engine reads a runner's stderr through a pipe (the
 * editor follows it live). stderr and stdout are two pipes, read in whatever order the poll
 * returns them: by the time an answer is handled, the next task may have written more. Our
 * runner (told by STDERR_MARKS_ENV) writes a mark, `\0MO|<request id>\0`, to stderr just before
 * each answer; the engine takes the marks out of the stream — the log, the tail and the channel
 * never see them — and keeps where they were, so a task's part of the log is exact.
 */
export const STDERR_MARKS_ENV = 'MODELOPS_STDERR_MARKS';

const MARK_START = Buffer.from('\0MO|', 'latin1');
/** Longer than any mark: a NUL that starts something longer is the bundle's own byte. */
const MAX_MARK = 32;

export type StderrPiece = { data: Buffer } | { mark: number };

export class StderrMarks {
  private carry: Buffer | undefined;

  /** The chunk as data and marks, in order; a mark cut by the chunk's end waits for the next chunk. */
  split(chunk: Buffer): StderrPiece[] {
    const buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    const pieces: StderrPiece[] = [];
    let segment = 0;
    let from = 0;
    for (;;) {
      const at = buf.indexOf(0, from);
      if (at < 0) break;
      const head = buf.subarray(at, Math.min(buf.length, at + MARK_START.length));
      if (!MARK_START.subarray(0, head.length).equals(head)) {
        from = at + 1;
        continue;
      }
      const end = head.length === MARK_START.length ? buf.indexOf(0, at + MARK_START.length) : -1;
      if (end < 0) {
        if (buf.length - at <= MAX_MARK) {
          // perhaps a mark cut in two: decided with the next chunk
          if (at > segment) pieces.push({ data: buf.subarray(segment, at) });
          this.carry = Buffer.from(buf.subarray(at));
          return pieces;
        }
        from = at + 1;
        continue;
      }
      const id = buf.toString('latin1', at + MARK_START.length, end);
      if (end - at > MAX_MARK || !/^\d+$/.test(id)) {
        from = at + 1;
        continue;
      }
      if (at > segment) pieces.push({ data: buf.subarray(segment, at) });
      pieces.push({ mark: Number(id) });
      segment = from = end + 1;
    }
    if (segment < buf.length) pieces.push({ data: segment === 0 ? buf : buf.subarray(segment) });
    return pieces;
  }

  /** The stream ended: bytes held back as a possible mark were the bundle's. */
  flush(): Buffer | undefined {
    const rest = this.carry;
    this.carry = undefined;
    return rest;
  }
}
