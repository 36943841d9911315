/**
 * `npm run bench:frames`: is reading a large answer linear, and close to what the pipe itself
 * costs? For each size (1, 5, 20, 50 MB), side by side in interleaved rounds:
 *  - ours: a WarmProcess `execute` request to our runner whose bundle returns that many random
 *    bytes (base64 holding "NaN", "Infinity" and long digit runs, as random outputs do), until
 *    the decoded result is in hand; and the same for an exception whose message is that long;
 *  - the pipe: a plain Python process (the same interpreter) that, asked by a line on stdin,
 *    builds the same frame (the same bytes, base64, JSON and Content-Length header as the
 *    runner) and writes it to stdout, read by Node as raw chunks until the frame is complete.
 * The target: ours ≤ 2× the pipe at every size.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Failure } from '../../src/engine/failure';
import { ExecuteRequest } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess } from '../../src/engine/process/warmProcess';
import { median } from './stats';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SIZES_MB = (process.env.BENCH_SIZES ?? '1,5,20,50').split(',').map(Number);
const CAP = 512 * 1024 * 1024;

/** Both sides make their payloads the same way, once per size, before any timing. */
const PAYLOAD = `import base64, random

MARKERS = [base64.b64decode(t) for t in ("Infinity", "NaNN", "1234567890123456")]
_cache = {}


def payload(mb):
    if mb not in _cache:
        data = bytearray(random.Random(mb).randbytes(int(mb * 1024 * 1024) // 3 * 3))
        for i, at in enumerate(range(0, len(data) - 24, 3 * 1000)):
            marker = MARKERS[i % 3]
            data[at:at + len(marker)] = marker
        _cache[mb] = bytes(data)
    return _cache[mb]


def message(mb):
    # text that holds NaN, Infinity and digit runs too: the payload's own base64
    return base64.b64encode(payload(mb))[: int(mb * 1024 * 1024)].decode()
`;

const WIRE = `${PAYLOAD}

def wire(entrypoint, params, seed):
    if params["raise"]:
        raise ValueError(message(params["mb"]))
    return {"data": payload(params["mb"])}
`;

/** The pipe alone: the same frame as the runner's, built and written on request. */
const PIPE_WRITER = `import json, os, sys, traceback
sys.path.insert(0, sys.argv[1])
from wire import payload, message
import binascii

out = sys.stdout.buffer.fileno()
for line in sys.stdin:
    kind, mb = line.split()
    mb = float(mb) if "." in mb else int(mb)
    if kind == "raise":
        try:
            raise ValueError(message(mb))
        except ValueError as exc:
            tb = "".join(traceback.format_exception_only(type(exc), exc))
            body = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "Execution failed", "data": {"exc_type": "ValueError", "exc": str(exc), "traceback": tb, "frames": []}}}
    else:
        body = {"jsonrpc": "2.0", "id": 1, "result": {"data": binascii.b2a_base64(payload(mb), newline=False).decode("ascii")}}
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    frame = b"Content-Length: %d\\r\\n\\r\\n%s" % (len(data), data)
    view = memoryview(frame)
    while view:
        view = view[os.write(out, view):]
`;

class PipeReader {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private want = -1;
  private headerEnd = -1;
  private done: ((frame: Buffer) => void) | undefined;
  readonly child;

  constructor(python: string, bundle: string) {
    this.child = execa(python, ['-c', PIPE_WRITER, bundle], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'inherit',
      buffer: false,
    });
    this.child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** One frame, as raw bytes joined once: what any reader must at least do. */
  request(kind: 'result' | 'raise', mb: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.done = resolve;
      this.child.stdin!.write(`${kind} ${mb}\n`);
    });
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.want < 0) {
      const head = Buffer.concat(this.chunks).subarray(0, 64).toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.headerEnd = end + 4;
      this.want = this.headerEnd + Number(/Content-Length: (\d+)/.exec(head)![1]);
    }
    if (this.bytes >= this.want) {
      const frame = Buffer.concat(this.chunks, this.want);
      this.chunks = [];
      this.bytes = 0;
      this.want = -1;
      this.done?.(frame.subarray(this.headerEnd));
    }
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const python = process.env.BENCH_PYTHON ?? (await resolvePython()).path;
  const root = mkdtempSync(path.join(os.tmpdir(), 'mo-bench-frames-'));
  writeFileSync(path.join(root, 'wire.py'), WIRE);
  const runner = WarmProcess.start({
    python,
    runnerScript: ourRunnerScript(),
    bundleDir: root,
    venvPath: '',
    bundleDigest: 'bench',
    maxFrameBytes: CAP,
  });
  const pipe = new PipeReader(python, root);
  try {
    await runner.ready(30_000);
    const ours = async (kind: 'result' | 'raise', mb: number) => {
      const request = runner.request(
        ExecuteRequest.type,
        { entrypoint: 'b.b/b', params: { mb, raise: kind === 'raise' }, seed: 1 },
        { timeoutMs: 300_000 },
      );
      if (kind === 'result') {
        const result = await request;
        if (Buffer.byteLength(result.data, 'base64') < mb * 1024 * 1024 - 3)
          throw new Error(`short result at ${mb} MB`);
        return;
      }
      const failure = await request.then(
        () => undefined,
        (error: unknown) => error,
      );
      if (
        !(failure instanceof Failure) ||
        failure.kind !== 'task-exception' ||
        failure.evidence.exception!.message.length !== Math.floor(mb * 1024 * 1024)
      ) {
        throw new Error(`the ${mb} MB exception did not come back whole: ${String(failure)}`);
      }
    };
    console.log(
      `frames: ours (WarmProcess execute → decoded result) vs the pipe (the same frame read raw), ${python}, medians of ${ROUNDS} interleaved rounds`,
    );
    console.log('  answer          size     ours ms   pipe ms   ratio   (fastest rounds: ours, pipe, ratio)');
    for (const kind of ['result', 'raise'] as const) {
      for (const mb of SIZES_MB) {
        // warm both sides (payload generation, page cache, JIT) before timing
        await ours(kind, mb);
        await pipe.request(kind, mb);
        const samples = { ours: [] as number[], pipe: [] as number[] };
        for (let round = 0; round < ROUNDS; round++) {
          samples.ours.push(await timed(() => ours(kind, mb)));
          samples.pipe.push(await timed(() => pipe.request(kind, mb)));
        }
        const [o, p] = [median(samples.ours), median(samples.pipe)];
        // on a shared machine the fastest round is the least disturbed one: shown beside the medians
        const [fo, fp] = [Math.min(...samples.ours), Math.min(...samples.pipe)];
        const label = kind === 'result' ? 'output' : 'exception msg';
        console.log(
          `  ${label.padEnd(14)} ${`${mb} MB`.padStart(6)} ${o.toFixed(1).padStart(9)} ${p.toFixed(1).padStart(9)} ${(o / p).toFixed(2).padStart(6)}×   (${fo.toFixed(1)}, ${fp.toFixed(1)}, ${(fo / fp).toFixed(2)}×)`,
        );
      }
    }
    console.log('  target: ours ≤ 2× the pipe at every size (medians)');
  } finally {
    pipe.child.stdin!.end();
    await runner.shutdown();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
