/**
 * A vscode-jsonrpc MessageReader over a child's stdout that reads frames the way runners'
 * frames are read (StdoutTap: linear, capped, never allocating an over-cap frame; pyjson:
 * Python-exact), for connections that use vscode-jsonrpc's MessageConnection (the Dask
 * driver). Every frame it cannot read is an error it fires, never a message silently lost.
 */
import {
  AbstractMessageReader,
  type DataCallback,
  type Disposable,
  type Message,
  type MessageReader,
} from 'vscode-jsonrpc';
import { showBytes } from '../diagnose/classify';
import { parseWireJson } from '../pyjson/pyjson';
import { StdoutTap, type TapEvent } from './stdoutTap';

export class TapMessageReader extends AbstractMessageReader implements MessageReader {
  private callback: DataCallback | undefined;
  private readonly tap: StdoutTap;

  constructor(
    private readonly readable: NodeJS.ReadableStream,
    maxFrameBytes: number,
  ) {
    super();
    this.tap = new StdoutTap(maxFrameBytes, (event) => this.onTap(event));
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    const onData = (chunk: Buffer) => this.tap.push(chunk);
    const onEnd = () => {
      this.tap.end();
      this.fireClose();
    };
    const onError = (error: Error) => this.fireError(error);
    this.readable.on('data', onData);
    this.readable.on('end', onEnd);
    this.readable.on('error', onError);
    return {
      dispose: () => {
        this.readable.off('data', onData);
        this.readable.off('end', onEnd);
        this.readable.off('error', onError);
      },
    };
  }

  private onTap(event: TapEvent): void {
    switch (event.type) {
      case 'frame': {
        let message: Message;
        try {
          message = parseWireJson(event.text) as Message;
        } catch (error) {
          this.fireError(new Error(`unreadable frame: ${(error as Error).message}`));
          return;
        }
        this.callback?.(message);
        return;
      }
      case 'noise':
        this.fireError(new Error(`${event.bytes.length} bytes that are not frames: "${showBytes(event.bytes, 200)}"`));
        return;
      case 'violation':
        this.fireError(new Error(`${event.reason} (frame header: ${JSON.stringify(event.header)})`));
        return;
      case 'oversized': // not passed: this reader refuses every over-cap frame
        this.fireError(new Error(`a ${event.length}-byte frame exceeds the cap`));
    }
  }
}
