/**
 * A Debug Adapter Protocol client for tests: requests and events over a debug adapter's stdio
 * (Content-Length frames, as JSON-RPC), every wait bounded by a timeout that says what it waited for.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface DapMessage {
  seq: number;
  type: 'request' | 'response' | 'event';
  command?: string;
  event?: string;
  request_seq?: number;
  success?: boolean;
  message?: string;
  body?: any;
}

export class DapClient {
  readonly events: DapMessage[] = [];
  private readonly pending = new Map<number, (message: DapMessage) => void>();
  private readonly watchers: { match: (m: DapMessage) => boolean; resolve: (m: DapMessage) => void }[] = [];
  private buffer = Buffer.alloc(0);
  private seq = 1;
  stderr = '';

  private constructor(
    input: Readable,
    private readonly output: Writable,
    private readonly close: () => void,
  ) {
    input.on('data', (chunk: Buffer) => this.feed(chunk));
  }

  /** An adapter started here, speaking DAP on its stdio. */
  static start(command: string, args: string[], env: NodeJS.ProcessEnv): DapClient {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const client = new DapClient(child.stdout, child.stdin, () => child.kill('SIGKILL'));
    child.stderr.on('data', (chunk: Buffer) => (client.stderr += chunk.toString()));
    return client;
  }

  /** An adapter listening on 127.0.0.1:port (debugpy --listen), tried until it answers. */
  static async connect(port: number, timeoutMs = 30_000): Promise<DapClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s));
          s.once('error', reject);
        });
        return new DapClient(socket, socket, () => socket.destroy());
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms: ${error}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Sends a request; the promise is its response (whether it succeeded or not). */
  send(command: string, args: unknown = {}): Promise<DapMessage> {
    const seq = this.seq++;
    const body = Buffer.from(JSON.stringify({ seq, type: 'request', command, arguments: args }));
    this.output.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]));
    return this.within(
      new Promise<DapMessage>((resolve) => this.pending.set(seq, resolve)),
      `the response to ${command}`,
    );
  }

  /** A request that must succeed: its response's body. */
  async request(command: string, args: unknown = {}): Promise<any> {
    const response = await this.send(command, args);
    if (!response.success) throw new Error(`${command} failed: ${response.message} ${JSON.stringify(response.body)}`);
    return response.body;
  }

  /** The first event (already received or still to come) named `event` that `match` accepts. */
  event(event: string, match: (m: DapMessage) => boolean = () => true, timeoutMs = 60_000): Promise<DapMessage> {
    const accept = (m: DapMessage) => m.type === 'event' && m.event === event && match(m);
    const seen = this.events.find(accept);
    if (seen) return Promise.resolve(seen);
    return this.within(
      new Promise<DapMessage>((resolve) => this.watchers.push({ match: accept, resolve })),
      `the ${event} event`,
      timeoutMs,
    );
  }

  kill(): void {
    this.close();
  }

  private within<T>(promise: Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no ${what} within ${timeoutMs} ms; events: ${this.events.map((e) => e.event).join(', ')}; adapter stderr: ${this.stderr.slice(-2000)}`,
            ),
          ),
        timeoutMs,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  private feed(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/Content-Length: *(\d+)/i.exec(this.buffer.subarray(0, end).toString())?.[1]);
      if (this.buffer.length < end + 4 + length) return;
      const message = JSON.parse(this.buffer.subarray(end + 4, end + 4 + length).toString()) as DapMessage;
      this.buffer = this.buffer.subarray(end + 4 + length);
      this.dispatch(message);
    }
  }

  private dispatch(message: DapMessage): void {
    if (message.type === 'response') {
      this.pending.get(message.request_seq!)?.(message);
      this.pending.delete(message.request_seq!);
    } else if (message.type === 'event') {
      this.events.push(message);
      for (const watcher of [...this.watchers]) {
        if (!watcher.match(message)) continue;
        this.watchers.splice(this.watchers.indexOf(watcher), 1);
        watcher.resolve(message);
      }
    }
  }
}
