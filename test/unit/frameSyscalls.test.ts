/**
 * One `write()` per framed message, both ways, and one `read()` per frame in the runner: the
 * real CLI runs a real job under `strace -f`, and every system call on the protocol pipes is
 * counted. strace sees what the kernel was asked, so a frame split into header and body (what
 * vscode-jsonrpc's StreamMessageWriter does) shows as two writes whatever the JavaScript
 * looks like; counting stream.write calls in Node could not tell libuv's coalescing apart.
 * Without strace (macOS) or without the right to trace, the test says so and is skipped.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-syscalls-');

/** One frame-starting system call, as strace printed it: `write(5, "Content-Length: 53\r\n\r\n{…"..., 75) = 75`. */
interface FrameCall {
  call: 'read' | 'write';
  fd: string;
  /** header + Content-Length */
  whole: number;
  returned: number;
  kind: 'request' | 'answer' | 'notification';
  line: string;
}

const FRAME_CALL =
  /^(write|read)\((\d+), "Content-Length: (\d+)\\r\\n\\r\\n\{\\"jsonrpc\\":\\"2.0\\",(.*), (\d+)\) = (-?\d+)/;
/** A body written on its own: the second half of a split frame. */
const BODY_ONLY = /^write(v)?\(\d+, \[?\{?(iov_base=)?"\{\\"jsonrpc\\"/;

function frameCall(line: string): FrameCall | undefined {
  const m = FRAME_CALL.exec(line);
  if (!m) return undefined;
  const rest = m[4];
  const kind = /^\\"id\\":\d+,\\"method/.test(rest)
    ? 'request'
    : rest.startsWith('\\"method')
      ? 'notification'
      : 'answer';
  const whole = 'Content-Length: \r\n\r\n'.length + m[3].length + Number(m[3]);
  return { call: m[1] as 'read' | 'write', fd: m[2], whole, returned: Number(m[6]), kind, line };
}

function straceWorks(): string | undefined {
  const probe = spawnSync('strace', ['-o', '/dev/null', 'true'], { encoding: 'utf8' });
  if (probe.error) return `strace is not available (${probe.error.message})`;
  if (probe.status !== 0) return `strace cannot trace here: ${probe.stderr.trim().split('\n').pop()}`;
  return undefined;
}

describe('frames on the pipes, counted in system calls (strace)', () => {
  it('every request and every answer is one write() of its whole frame; the runner reads one frame per read()', function () {
    const why = straceWorks();
    if (why) {
      process.stderr.write(`skipping the system-call count: ${why}\n`);
      return this.skip();
    }
    const bundle = writeBundle(path.join(scratch, 'bundle'), {
      'wire.py':
        'import json\n\ndef wire(entrypoint, params, seed):\n    return {"value": json.dumps(seed % 7).encode()}\n',
    });
    const job = path.join(scratch, 'job.json');
    const sets = 2;
    const replicates = 15;
    writeFileSync(
      job,
      JSON.stringify({
        job_id: 'syscalls',
        bundle,
        entrypoint: 'm/x',
        parameter_sets: [{ x: 1.0 }, { x: 2.0 }],
        replicates,
      }),
    );
    const traces = scratchDir('mo-strace-');
    const run = spawnSync(
      'strace',
      [
        ...['-f', '-ff', '-o', path.join(traces, 't'), '-e', 'trace=execve,read,write,writev', '-s', '80'],
        process.execPath,
        CLI,
        ...['run', job, '--out', path.join(scratch, 'out'), '--workers', '2'],
      ],
      { encoding: 'utf8', timeout: 180_000 },
    );
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);

    // one file per traced pid (thread or process)
    const files = readdirSync(traces).map((name) =>
      readFileSync(path.join(traces, name), 'utf8')
        .split('\n')
        .map((line) => ({ line, frame: frameCall(line) })),
    );
    const bodyOnly = files.flatMap((lines) => lines.filter(({ line }) => BODY_ONLY.test(line)).map(({ line }) => line));
    assert.deepEqual(bodyOnly.slice(0, 3), [], 'no body is written apart from its header');
    const frames = files.flatMap((lines) => lines.flatMap(({ frame }) => (frame ? [frame] : [])));
    for (const frame of frames.filter((f) => f.call === 'write'))
      assert.equal(frame.returned, frame.whole, `a frame written in one piece: ${frame.line}`);

    // requests: per runner `ready` and `shutdown`, and the executes (the job has no targets); the
    // venv's check may start one more runner
    const requests = sets * replicates + 2 * 2;
    const writes = (kind: FrameCall['kind']) => frames.filter((f) => f.call === 'write' && f.kind === kind).length;
    const methods = frames
      .filter((f) => f.call === 'write' && f.kind === 'request')
      .map((f) => /method\\":\\"(\w+)/.exec(f.line)?.[1])
      .join(' ');
    assert.ok(writes('request') >= requests, `each request: one write() of its whole frame (${methods})`);
    assert.equal(writes('answer'), writes('request'), 'each answer: one write() of its whole frame');
    assert.ok(writes('notification') >= 2, 'the runners announced their phases');

    // the runners: the processes that read requests; every read() of their protocol fd, EOF included
    const runners = files.filter((lines) =>
      lines.some(({ frame }) => frame?.call === 'read' && frame.kind === 'request'),
    );
    assert.ok(runners.length >= 2, 'the two runners traced');
    for (const lines of runners) {
      const fds = new Set(lines.flatMap(({ frame }) => (frame?.call === 'read' ? [frame.fd] : [])));
      assert.equal(fds.size, 1, 'one protocol fd per runner');
      const [fd] = fds;
      // before the runner took fd 0's copy, the same number was its imports' files
      const first = lines.findIndex(({ frame }) => frame?.call === 'read');
      const reads = lines
        .slice(first)
        .filter(({ line }) => line.startsWith(`read(${fd}, `))
        .map(({ line }) => line);
      // the requests it got are the ones it answered; two queued requests may come in one read()
      const answered = lines.filter(({ frame }) => frame?.call === 'write' && frame.kind === 'answer').length;
      assert.ok(
        reads.length <= answered + 1,
        `the runner made ${reads.length} read() calls for ${answered} requests:\n${reads.slice(0, 8).join('\n')}`,
      );
    }
  });
});
