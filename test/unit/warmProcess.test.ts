/**
 * WarmProcess against real Python processes, including runner scripts written by the tests
 * to misbehave in ways no bundle can (the runner is not what is under test there).
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { AggregateRequest, ExecuteRequest, type SerializedSimReturn } from '../../src/engine/protocol';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { WarmProcess, type WarmProcessOptions } from '../../src/engine/process/warmProcess';
import { bundle, rejection, ROOT, scratchDir } from './helpers';

let python: string;
const scratch = scratchDir('mo-warm-');

before(async () => {
  python = (await resolvePython()).path;
});

function start(options: Partial<WarmProcessOptions> & { bundleDir: string }): WarmProcess {
  return WarmProcess.start({
    python,
    runnerScript: ourRunnerScript(),
    venvPath: '',
    bundleDigest: 'test-digest',
    ...options,
  });
}

/** A bundle made on the spot, for behaviour that needs sizes a fixture should not carry. */
function tempBundle(name: string, wire: string): string {
  const dir = path.join(scratch, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'wire.py'), wire);
  return dir;
}

/** A runner script that answers with exactly the bytes given, whatever is asked. */
function scriptedRunner(name: string, reply: string): string {
  const file = path.join(scratch, `${name}.py`);
  writeFileSync(
    file,
    `import sys, os\nsys.stdin.buffer.readline()\nos.write(1, ${reply})\nimport time\ntime.sleep(30)\n`,
  );
  return file;
}

describe('WarmProcess', () => {
  it('a child that writes 50 MB to stderr during execute never stalls, and the tail stays bounded', async () => {
    const dir = tempBundle(
      'stderr-50mb',
      'import sys\ndef wire(entrypoint, params, seed):\n    chunk = "e" * 1023 + "\\n"\n    for _ in range(51200):\n        sys.stderr.write(chunk)\n    sys.stderr.flush()\n    return {"done": b"yes"}\n',
    );
    let streamed = 0;
    const runner = start({
      bundleDir: dir,
      stderrTailBytes: 64 * 1024,
      onStderr: (chunk) => (streamed += chunk.length),
    });
    try {
      await runner.ready(20_000);
      const result = await runner.request(
        ExecuteRequest.type,
        { entrypoint: 'a.b/c', params: {}, seed: 1 },
        { timeoutMs: 60_000 },
      );
      assert.equal(Buffer.from(result.done, 'base64').toString(), 'yes');
      assert.ok(runner.stderr.total >= 50 * 1024 * 1024, `saw ${runner.stderr.total} bytes`);
      assert.equal(streamed, runner.stderr.total, 'every byte reached the sink');
      assert.ok(runner.stderr.text().length <= 64 * 1024, 'the tail is bounded');
    } finally {
      await runner.shutdown();
    }
  });

  it('refuses a Content-Length of 9999999999 as a protocol error, without allocating it', async () => {
    const runnerScript = scriptedRunner('huge', 'b"Content-Length: 9999999999\\r\\n\\r\\n{"');
    const runner = start({ bundleDir: bundle('healthy-wire-py'), runnerScript });
    const failure = await rejection(runner.ready(10_000));
    assert.equal(failure.kind, 'protocol-error');
    assert.match(failure.message, /Content-Length 9999999999 exceeds the \d+-byte frame cap/);
    await runner.exited;
  });

  it('a frame header without Content-Length is a protocol error naming the header', async () => {
    const runnerScript = scriptedRunner('nolength', 'b"Content-Type: application/json\\r\\n\\r\\n{}"');
    const runner = start({ bundleDir: bundle('healthy-wire-py'), runnerScript });
    const failure = await rejection(runner.ready(10_000));
    assert.equal(failure.kind, 'protocol-error');
    assert.match(failure.message, /no Content-Length/);
  });

  it('a body that is not JSON is a protocol error', async () => {
    const runnerScript = scriptedRunner('badjson', 'b"Content-Length: 5\\r\\n\\r\\n{oops"');
    const runner = start({ bundleDir: bundle('healthy-wire-py'), runnerScript });
    const failure = await rejection(runner.ready(10_000));
    assert.equal(failure.kind, 'protocol-error');
    assert.match(failure.message, /unreadable frame/);
  });

  it('reads Python NaN and Infinity, and seeds above 2^53 exactly', async () => {
    const dir = tempBundle(
      'nan',
      'import json\ndef wire(entrypoint, params, seed):\n    return {"echo": json.dumps({"seed": seed, "nan": float("nan")})}\n',
    );
    const runnerScript = path.join(scratch, 'nan_runner.py');
    // our runner returns outputs as base64; to see raw tokens on the wire, echo them in `ready`
    writeFileSync(
      runnerScript,
      [
        'import sys, json, os',
        'def read():',
        '    n = int(sys.stdin.buffer.readline().split(b":")[1]); sys.stdin.buffer.readline(); return json.loads(sys.stdin.buffer.read(n))',
        'm = read()',
        'body = json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {"ready": True, "loss": float("nan"), "inf": float("-inf"), "big": 18446744073709551615}}).encode()',
        'os.write(1, b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)',
        'm = read()',
        'body = json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {"seed_seen": m["params"]["seed"], "beta_type": type(m["params"]["params"]["beta"]).__name__}}).encode()',
        'os.write(1, b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)',
        'sys.stdin.buffer.read()',
      ].join('\n'),
    );
    const runner = start({ bundleDir: dir, runnerScript });
    try {
      const ready = (await runner.ready(10_000)) as unknown as { loss: number; inf: number; big: bigint };
      assert.ok(Number.isNaN(ready.loss));
      assert.equal(ready.inf, Number.NEGATIVE_INFINITY);
      assert.equal(ready.big, 18446744073709551615n);
      const { parse } = await import('lossless-json');
      const echoed = (await runner.request(
        ExecuteRequest.type,
        { entrypoint: 'a.b/c', params: parse('{"beta": 1.0}') as never, seed: 2n ** 63n + 1n },
        { timeoutMs: 10_000 },
      )) as unknown as { seed_seen: bigint; beta_type: string };
      assert.equal(echoed.seed_seen, 2n ** 63n + 1n);
      assert.equal(echoed.beta_type, 'float', '1.0 must reach Python as a float');
    } finally {
      await runner.kill();
    }
  });

  it('records a transcript of every frame both ways, with timestamps', async () => {
    const runner = start({ bundleDir: bundle('healthy-wire-py'), recordTranscript: true });
    await runner.ready(20_000);
    await runner.request(
      ExecuteRequest.type,
      { entrypoint: 'a.b/c', params: { beta: 0.5 }, seed: 3 },
      { timeoutMs: 10_000 },
    );
    await runner.shutdown();
    const methods = runner.transcript.map((e) =>
      'message' in e
        ? `${e.dir}:${(e.message as { method?: string }).method ?? `response#${(e.message as { id: number }).id}`}`
        : `${e.dir}:noise`,
    );
    assert.deepEqual(
      methods.filter((m) => !m.includes('runner/')),
      ['out:ready', 'in:response#1', 'out:execute', 'in:response#2', 'out:shutdown', 'in:response#3'],
    );
    assert.ok(methods.includes('in:runner/phase'));
    const times = runner.transcript.map((e) => e.t);
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'timestamps are in order',
    );
  });

  it('stderr followed through a pipe goes to the task that wrote it, even when its answer is read in the same turn (300 tasks)', async () => {
    // a task's stderr is written before its answer, but the two pipes may be read in either order
    const dir = tempBundle(
      'stderr-then-answer',
      'import sys\n\ndef wire(entrypoint, params, seed):\n    sys.stderr.write("task %d\\n" % params["i"])\n    return {"i": str(params["i"]).encode()}\n',
    );
    const misplaced: string[] = [];
    const runner = start({
      bundleDir: dir,
      onStderr: (chunk, tag) => {
        for (const line of chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l.startsWith('task '))) {
          if (tag !== `t${line.slice(5)}`) misplaced.push(`${JSON.stringify(line)} tagged ${tag}`);
        }
      },
    });
    try {
      await runner.ready(30_000);
      for (let i = 0; i < 300; i++)
        await runner.request(
          ExecuteRequest.type,
          { entrypoint: 'e', params: { i }, seed: i },
          { timeoutMs: 30_000, tag: `t${i}` },
        );
      assert.deepEqual(misplaced, []);
    } finally {
      await runner.shutdown();
    }
  });

  it('keeps a user exception from killing the warm process', async () => {
    const runner = start({ bundleDir: bundle('raise-in-execute') });
    try {
      await runner.ready(20_000);
      const failure = await rejection(
        runner.request(ExecuteRequest.type, { entrypoint: 'a.b/c', params: {}, seed: 1 }, { timeoutMs: 10_000 }),
      );
      assert.equal(failure.kind, 'task-exception');
      assert.equal(runner.alive, true);
      const ok = await runner.request(
        ExecuteRequest.type,
        { entrypoint: 'a.b/c', params: {}, seed: 2 },
        { timeoutMs: 10_000 },
      );
      assert.ok(Object.keys(ok).length > 0);
    } finally {
      await runner.shutdown();
    }
  });

  it('aggregates replicates with an old-style target, on the same warm process', async () => {
    const example = path.join(ROOT, 'examples', 'sir', 'bundle');
    const runner = start({ bundleDir: example });
    try {
      await runner.ready(20_000);
      const simReturns: SerializedSimReturn[] = [];
      const rates: number[] = [];
      for (const seed of [1, 2, 3]) {
        const outputs = await runner.request(
          ExecuteRequest.type,
          { entrypoint: 'models.sir/baseline', params: { beta: 0.3, gamma: 0.1 }, seed },
          { timeoutMs: 10_000 },
        );
        rates.push(JSON.parse(Buffer.from(outputs.summary, 'base64').toString()).attack_rate);
        simReturns.push({
          task_id: `sim-${seed}`,
          outputs: Object.fromEntries(
            Object.entries(outputs).map(([name, inline]) => [
              name,
              { size: Buffer.from(inline, 'base64').length, checksum: '', inline },
            ]),
          ),
        });
      }
      const result = await runner.request(
        AggregateRequest.type,
        {
          target_entrypoint: 'targets.prevalence:prevalence_target',
          sim_returns: simReturns,
          target_data: { attack_rate: 0.5 },
        },
        { timeoutMs: 10_000 },
      );
      const mean = rates.reduce((a, b) => a + b) / rates.length;
      assert.equal(result.n_replicates, 3);
      assert.ok(Math.abs(result.loss - (mean - 0.5) ** 2) < 1e-12);
      assert.deepEqual(result.outputs, {});
      // the old "module/function" form resolves to the same target
      const old = await runner.request(
        AggregateRequest.type,
        {
          target_entrypoint: 'targets.prevalence/prevalence_target',
          sim_returns: simReturns,
          target_data: { attack_rate: 0.5 },
        },
        { timeoutMs: 10_000 },
      );
      assert.equal(old.loss, result.loss);
    } finally {
      await runner.shutdown();
    }
  });

  it('a target that raises is aggregation-failed at its line; a missing target names the module', async () => {
    const example = path.join(ROOT, 'examples', 'sir', 'bundle');
    const runner = start({ bundleDir: example });
    try {
      await runner.ready(20_000);
      const raised = await rejection(
        runner.request(
          AggregateRequest.type,
          { target_entrypoint: 'targets.prevalence:prevalence_target', sim_returns: [], target_data: null },
          { timeoutMs: 10_000 },
        ),
      );
      assert.equal(raised.kind, 'aggregation-failed');
      assert.equal(raised.message, 'ValueError: prevalence_target needs at least one replicate');
      const file = path.join(example, 'targets', 'prevalence.py');
      assert.equal(raised.location?.file, file);
      assert.match(readFileSync(file, 'utf8').split('\n')[raised.location!.line - 1], /raise ValueError/);
      const missing = await rejection(
        runner.request(
          AggregateRequest.type,
          { target_entrypoint: 'targets.nowhere:t', sim_returns: [], target_data: null },
          { timeoutMs: 10_000 },
        ),
      );
      assert.equal(missing.kind, 'aggregation-failed');
      assert.match(missing.message, /ModuleNotFoundError: No module named 'targets\.nowhere'/);
      assert.equal(runner.alive, true, 'a failed aggregation keeps the process warm');
    } finally {
      await runner.shutdown();
    }
  });

  it('a request to a process that already died fails at once with the same diagnosis', async () => {
    const runner = start({ bundleDir: bundle('sigkill-in-execute') });
    await runner.ready(20_000);
    const first = await rejection(
      runner.request(ExecuteRequest.type, { entrypoint: 'a.b/c', params: {}, seed: 1 }, { timeoutMs: 10_000 }),
    );
    assert.equal(first.kind, 'process-crashed');
    const second = await rejection(
      runner.request(ExecuteRequest.type, { entrypoint: 'a.b/c', params: {}, seed: 2 }, { timeoutMs: 10_000 }),
    );
    assert.equal(second.kind, 'process-crashed');
    assert.equal(second.evidence.signal, 'SIGKILL');
  });
});
