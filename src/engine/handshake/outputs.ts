/** A runner's base64 outputs as a person wants to see them: size, and the text when it is text. */
export interface OutputView {
  bytes: number;
  /** Present when the bytes are printable UTF-8. */
  text?: string;
  /** First bytes in hex otherwise (Arrow IPC, Parquet, …). */
  head?: string;
}

const PRINTABLE = /^[\P{Cc}\n\r\t]*$/u;

export function describeOutput(b64: string, maxText = 2000): OutputView {
  const bytes = Buffer.from(b64, 'base64');
  const text = bytes.toString('utf8');
  if (!text.includes('\uFFFD') && PRINTABLE.test(text)) {
    return { bytes: bytes.length, text: text.length > maxText ? `${text.slice(0, maxText)}…` : text };
  }
  return { bytes: bytes.length, head: bytes.subarray(0, 16).toString('hex') };
}
