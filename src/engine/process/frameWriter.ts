/**
 * Frames to a runner's (or the Dask driver's) stdin: one `write()` per message. vscode-jsonrpc's
 * StreamMessageWriter writes the header, waits for its callback, then writes the body: two
 * system calls and three promises per request, which was most of a trivial task's framing cost.
 * Here a message is serialised once (the wire JSON of pyjson.ts, as Python reads it: big integers, raw
 * params, floats that stay floats), header and body land in one Buffer, and that Buffer is
 * handed to the stream in one `write`, so libuv makes one `write()` of it.
 */
import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-jsonrpc';
import { stringifyWireJson } from '../pyjson/pyjson';

const HEADER = 'Content-Length: ';

/** `Content-Length: N\r\n\r\n` + the UTF-8 body, in one Buffer (the body is encoded straight into it). */
export function encodeFrame(message: Message): Buffer {
  const body = stringifyWireJson(message);
  const bodyBytes = Buffer.byteLength(body, 'utf8');
  const header = `${HEADER}${bodyBytes}\r\n\r\n`;
  const frame = Buffer.allocUnsafe(header.length + bodyBytes);
  frame.write(header, 0, 'latin1');
  frame.write(body, header.length, 'utf8');
  return frame;
}

export class FrameWriter extends AbstractMessageWriter implements MessageWriter {
  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
    // without a listener an EPIPE would be thrown from the stream; the owner learns of a gone
    // process from its exit, and of the error through onError
    stream.on('error', (error: Error) => this.fireError(error));
    stream.on('close', () => this.fireClose());
  }

  /** The hot path: no promise. A stream that fails reports through onError. */
  sendFrame(frame: Buffer): void {
    this.stream.write(frame);
  }

  /** MessageWriter's form, for vscode-jsonrpc's MessageConnection (the Dask driver). */
  write(message: Message): Promise<void> {
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (error) {
      this.fireError(error, message);
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.stream.write(frame, (error?: Error | null) => (error ? reject(error) : resolve()));
    });
  }

  end(): void {
    this.stream.end();
  }
}
