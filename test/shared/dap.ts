/**
 * A Debug Adapter Protocol client for tests: requests and events over a debug adapter's stdio
 * (Content-Length frames, as JSON-RPC), every wait bounded by a timeout that says what it waited for.
 */
import { spawn, type ChildProcess } from 'node:child_process';

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

  private constructor(readonly process: ChildProcess) {
    process.stdout!.on('data', (chunk: Buffer) => this.feed(chunk));
    process.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  static start(command: string, args: string[], env: NodeJS.ProcessEnv): DapClient {
    return new DapClient(spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** Sends a request; the promise is its response (whether it succeeded or not). */
  send(command: string, args: unknown = {}): Promise<DapMessage> {
    const seq = this.seq++;
    const body = Buffer.from(JSON.stringify({ seq, type: 'request', command, arguments: args }));
    this.process.stdin!.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]));
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
    this.process.kill('SIGKILL');
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
