/**
 * Large legal results (issue 10): answers of tens of megabytes come back whole from real
 * runners (ours and the production-style one) and from a real Dask cluster; random bytes whose
 * base64 holds "NaN", "Infinity" and long digit runs are results, never protocol errors; and
 * an answer over the frame cap is `result-too-large`, named, located at its `return` line,
 * with the runner still usable.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ExecuteRequest, type ExecuteResult } from '../../src/engine/protocol';
import { FrameOutliner } from '../../src/engine/process/frameOutline';
import { resolvePython } from '../../src/engine/process/python';
import { ourRunnerScript } from '../../src/engine/process/runnerScript';
import { StdoutTap, type TapEvent } from '../../src/engine/process/stdoutTap';
import { WarmProcess, type WarmProcessOptions } from '../../src/engine/process/warmProcess';
import { parsePythonJson, parseWireJson, PyFloat, stringifyWireJson } from '../../src/engine/pyjson/pyjson';
import { MB, randomBundle } from '../shared/frames';
import { simRecord } from '../shared/simRecords';
import { CLI, events, lineOf, PROD_RUNNER, readJson, rejection, scratchDir } from './helpers';

const scratch = scratchDir('mo-frames-');

let python: string;

before(async () => {
  python = (await resolvePython()).path;
});

function start(options: Partial<WarmProcessOptions> & { bundleDir: string }): WarmProcess {
  return WarmProcess.start({
    python,
    runnerScript: ourRunnerScript(),
    venvPath: '',
    bundleDigest: 'frames',
    ...options,
  });
}

function execute(runner: WarmProcess, params: Record<string, unknown>, seed: number): Promise<ExecuteResult> {
  return runner.request(
    ExecuteRequest.type,
    { entrypoint: 'frames.m/x', params: params as never, seed },
    { timeoutMs: 240_000 },
  );
}

/** The output came whole (its sha256 is the one Python computed) and its base64 holds the tokens. */
function assertRandomResult(result: ExecuteResult, mb: number): void {
  const data = Buffer.from(result.data, 'base64');
  assert.equal(data.length, Math.floor((mb * MB) / 3) * 3);
  assert.equal(createHash('sha256').update(data).digest('hex'), Buffer.from(result.sha256, 'base64').toString());
  for (const token of ['NaN', 'Infinity', '1234567890123456'])
    assert.ok(result.data.includes(token), `the base64 holds ${token}`);
}

describe('large frames: the Python-exact JSON reader', () => {
  it('takes NaN, Infinity and long digit runs inside strings as text, and reads them outside', () => {
    const b64 = `${'A'.repeat(5000)}NaN${'Infinity'.repeat(3)}12345678901234567890\\"NaN`;
    const text = `{"data":"${b64}","escaped":"a\\\\","loss":NaN,"hi":Infinity,"lo":-Infinity,"seed":18446744073709551615,"x":1.0,"big":"${'9'.repeat(20000)}","n":-12345678901234567890}`;
    const value = parseWireJson(text) as Record<string, unknown>;
    assert.equal(value.data, b64.replace('\\"', '"'));
    assert.equal(value.escaped, 'a\\');
    assert.ok(Number.isNaN(value.loss));
    assert.equal(value.hi, Infinity);
    assert.equal(value.lo, -Infinity);
    assert.equal(value.seed, 2n ** 64n - 1n);
    assert.equal(value.x, 1);
    assert.equal(value.big, '9'.repeat(20000));
    assert.equal(value.n, -12345678901234567890n);
    // user input keeps every number's Python kind, also beside long strings
    const python = parsePythonJson(
      `{"s":"${'N'.repeat(9000)}aN","f":1.0,"i":2,"nan":NaN,"k${'e'.repeat(5000)}":3}`,
    ) as Record<string, unknown>;
    assert.equal(python.s, `${'N'.repeat(9000)}aN`);
    assert.ok(python.f instanceof PyFloat && python.f.value === 1);
    assert.equal(python.i, 2);
    assert.ok(python.nan instanceof PyFloat && Number.isNaN(python.nan.value));
    assert.equal(python[`k${'e'.repeat(5000)}`], 3, 'a long key stays a key');
    assert.throws(() => parsePythonJson('{"a": 1-2}'), 'not a number literal');
  });

  it('decodes the escapes of long strings (a traceback) exactly as JSON.parse does, sparse or dense', () => {
    const sparse =
      String.raw`Traceback (most recent call last):\n  File \"w.py\", line 3\n` +
      'x'.repeat(10_000) +
      String.raw` \"q\" \\ \u00e9 \ud83d\ude00 \t\/ NaN 12345678901234567890`;
    const dense = String.raw`\\n`.repeat(5000);
    const text = `{"traceback":"${sparse}","dense":"${dense}","after":NaN,"tail":"${'y'.repeat(5000)}${String.raw`\\`}"}`;
    const expected = JSON.parse(text.replace('"after":NaN', '"after":null')) as Record<string, unknown>;
    const value = parseWireJson(text) as Record<string, unknown>;
    assert.equal(value.traceback, expected.traceback);
    assert.equal(value.dense, expected.dense);
    assert.equal(value.tail, expected.tail);
    assert.ok(Number.isNaN(value.after));
    assert.throws(
      () => parseWireJson(`{"bad":"${'z'.repeat(5000)}${String.raw`\x`}"}`),
      'an invalid escape is still refused',
    );
  });

  it("reads a 40 MB base64 string holding the tokens (the old regex overflowed V8's stack at ~1 MB)", () => {
    const data = Buffer.alloc(40 * MB, 7);
    for (let at = 0; at < data.length - 24; at += 3 * 100_000)
      Buffer.from(['Infinity', 'NaNN', '1234567890123456'][(at / 300_000) % 3], 'base64').copy(data, at);
    const b64 = data.toString('base64');
    const value = parseWireJson(`{"jsonrpc":"2.0","id":7,"result":{"data":"${b64}","loss":NaN}}`) as {
      result: { data: string; loss: number };
    };
    assert.equal(value.result.data, b64);
    assert.ok(Number.isNaN(value.result.loss));
  });

  it('writes a 20 MB string and floats and bigints beside it exactly', () => {
    const long = 'x'.repeat(20 * MB);
    assert.equal(
      stringifyWireJson({ a: new PyFloat(1), s: long, n: 2n ** 64n - 1n }),
      `{"a":1.0,"s":"${long}","n":18446744073709551615}`,
    );
  });
});

describe('large frames: the stdout tap', () => {
  it('a 30 MB frame in 64 KiB chunks comes out whole, once', () => {
    const body = `{"id":1,"result":{"data":"${'Q'.repeat(30 * MB)}"}}`;
    const bytes = Buffer.from(`Content-Length: ${body.length}\r\n\r\n${body}Content-Length: 2\r\n\r\n{}`);
    const events: TapEvent[] = [];
    const tap = new StdoutTap(64 * MB, (event) => events.push(event));
    for (let i = 0; i < bytes.length; i += 65536) tap.push(bytes.subarray(i, i + 65536));
    assert.deepEqual(
      events.map((e) => e.type),
      ['frame', 'frame'],
    );
    assert.equal(events[0].type === 'frame' && events[0].text, body);
  });

  it('lets an over-cap frame pass unkept when asked, and outlines it: id, result, each output and its size', () => {
    const body = `{"jsonrpc":"2.0","id":12,"result":{"small":"b2s=","data":"${'A'.repeat(5000)}\\"x","n":[1,{"a":"}"}]}}`;
    const frame = Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}Content-Length: 2\r\n\r\n{}`);
    for (const size of [1, 7, 100, frame.length]) {
      const events: TapEvent[] = [];
      const tap = new StdoutTap(
        1000,
        (event) => events.push(event),
        () => true,
      );
      for (let i = 0; i < frame.length; i += size) tap.push(frame.subarray(i, i + size));
      assert.equal(events.length, 2, `chunks of ${size}`);
      const [oversized, next] = events;
      assert.ok(oversized.type === 'oversized');
      assert.equal(oversized.length, Buffer.byteLength(body));
      assert.deepEqual(oversized.outline, {
        id: 12,
        part: 'result',
        members: [
          { name: 'small', encodedBytes: 6 },
          { name: 'data', encodedBytes: 5005 },
          { name: 'n', encodedBytes: 13 },
        ],
      });
      assert.equal(next.type === 'frame' && next.text, '{}');
    }
  });

  it('outlines an error response and a notification', () => {
    const outline = (body: string) => {
      const outliner = new FrameOutliner();
      outliner.feed(Buffer.from(body));
      return outliner.result();
    };
    assert.deepEqual(outline('{"jsonrpc":"2.0","id":"a1","error":{"code":-32000,"data":{"exc":"x"}}}'), {
      id: 'a1',
      part: 'error',
      members: [],
    });
    assert.deepEqual(outline('{"jsonrpc":"2.0","method":"runner/stdout","params":{"text":"x"}}'), {
      part: 'method',
      members: [],
    });
  });
});

describe('large frames: real runners', function () {
  this.timeout(600_000);

  it('random-byte outputs of 1 to 40 MB (base64 with NaN, Infinity, long digit runs) are results from our runner', async () => {
    const runner = start({ bundleDir: randomBundle('random-ours') });
    try {
      await runner.ready(30_000);
      for (const [mb, seed] of [
        [1, 1],
        [1, 2],
        [5, 3],
        [8, 4],
        [20, 5],
        [40, 6],
      ])
        assertRandomResult(await execute(runner, { mb }, seed), mb);
      assert.equal(runner.uses, 6, 'one warm runner answered them all');
    } finally {
      await runner.shutdown();
    }
  });

  it('and from the production-style runner', async () => {
    const runner = start({ bundleDir: randomBundle('random-prod'), runnerScript: PROD_RUNNER });
    try {
      await runner.ready(30_000);
      for (const [mb, seed] of [
        [1, 11],
        [3, 12],
        [20, 13],
      ])
        assertRandomResult(await execute(runner, { mb }, seed), mb);
    } finally {
      await runner.shutdown();
    }
  });

  it('a 20 MB exception message comes back whole, from both runners, as task-exception at its line', async () => {
    for (const runnerScript of [ourRunnerScript(), PROD_RUNNER]) {
      const dir = randomBundle(`raise-${path.basename(runnerScript)}`);
      const runner = start({ bundleDir: dir, runnerScript });
      try {
        await runner.ready(30_000);
        const failure = await rejection(execute(runner, { mb: 15, raise: true }, 21));
        assert.equal(failure.kind, 'task-exception');
        assert.equal(failure.evidence.exception!.message.length, ((15 * MB) / 3) * 4, 'the whole 20 MB message');
        assert.ok(failure.evidence.exception!.message.includes('NaN'));
        assert.ok(failure.message.length < 3000, 'the one-line message is clipped; the evidence keeps it whole');
        assert.equal(failure.location?.line, lineOf(path.join(dir, 'wire.py'), 'raise'));
        assert.deepEqual(
          Object.keys(await execute(runner, { mb: 0.01 }, 22)),
          ['data', 'sha256'],
          'the runner still serves',
        );
      } finally {
        await runner.shutdown();
      }
    }
  });

  it('our runner refuses an over-cap result before sending it: result-too-large naming the output, at the return line; the runner stays warm', async () => {
    const dir = randomBundle('too-large-ours');
    const wire = path.join(dir, 'wire.py');
    const runner = start({ bundleDir: dir, maxFrameBytes: 1 * MB });
    try {
      await runner.ready(30_000);
      const pid = runner.pid;
      const failure = await rejection(execute(runner, { mb: 2 }, 31));
      assert.equal(failure.kind, 'result-too-large');
      assert.match(
        failure.message,
        /^Output "data" is 2\.0 MB \(2\.7 MB encoded\): the result of 2\.7 MB exceeds the 1\.0 MB frame cap \(raise it with --max-frame-mb\)$/,
      );
      assert.deepEqual(
        [failure.location?.file, failure.location?.line, failure.location?.function],
        [wire, lineOf(wire, 'return'), 'wire'],
      );
      assert.ok(
        failure.evidence.notes!.some((n) => /^output "data": 2097150 bytes, 2796202 bytes encoded$/.test(n)),
        failure.evidence.notes!.join('\n'),
      );
      // another return statement, another line
      const other = await rejection(execute(runner, { mb: 3, two: true }, 32));
      assert.equal(other.location?.line, lineOf(wire, 'return-two'));
      assert.match(other.message, /^Output "data" is 3\.0 MB/);
      assertRandomResult(await execute(runner, { mb: 0.5 }, 33), 0.5);
      assert.equal(runner.pid, pid);
      assert.ok(runner.alive, 'the same warm runner');
      // an exception report over the cap is still the task's exception, its message clipped
      const raised = await rejection(execute(runner, { mb: 2, raise: true }, 34));
      assert.equal(raised.kind, 'task-exception');
      assert.match(
        raised.evidence.exception!.message,
        /characters left out: the report exceeded the 1048576-byte frame cap\]$/,
      );
      assert.equal(raised.location?.line, lineOf(wire, 'raise'));
      assert.ok(runner.alive);
    } finally {
      await runner.shutdown();
    }
  });

  it('an over-cap answer of the production-style runner is passed unread: result-too-large naming the output; the runner stays in step', async () => {
    const runner = start({
      bundleDir: randomBundle('too-large-prod'),
      runnerScript: PROD_RUNNER,
      maxFrameBytes: 1 * MB,
    });
    try {
      await runner.ready(30_000);
      const failure = await rejection(execute(runner, { mb: 4 }, 41));
      assert.equal(failure.kind, 'result-too-large');
      assert.match(
        failure.message,
        /^Output "data" is 5\.3 MB encoded: the result of 5\.3 MB exceeds the 1\.0 MB frame cap/,
      );
      assertRandomResult(await execute(runner, { mb: 0.5 }, 42), 0.5);
      assert.ok(runner.alive);
      assert.equal(runner.uses, 2);
    } finally {
      await runner.shutdown();
    }
  });
});

describe('large frames: the command line', function () {
  this.timeout(600_000);

  function cli(args: string[]) {
    const result = spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      timeout: 300_000,
      maxBuffer: 256 * MB,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  function job(name: string, bundle: string, sets: Record<string, unknown>[], replicates: number): string {
    const file = path.join(scratch, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({ job_id: name, bundle, entrypoint: 'frames.m/x', parameter_sets: sets, replicates }),
    );
    return file;
  }

  it('run: 8 MB random outputs are results; --max-frame-mb 1 makes a 2 MB output result-too-large at its return line (exit 1)', () => {
    const bundle = randomBundle('cli-bundle');
    const out = path.join(scratch, 'cli-out');
    const ok = cli(['run', job('big-ok', bundle, [{ mb: 8 }], 2), '--out', out, '--python', python, '--workers', '1']);
    assert.equal(ok.code, 0, ok.stderr);
    for (const i of [0, 1]) {
      const sim = simRecord(
        path.join(out, 'big-ok'),
        readJson(path.join(out, 'big-ok', 'job.json')).parameter_sets[0].param_id,
        i,
      );
      assert.equal(sim.status, 'ok');
      assert.equal(sim.outputs.data.size, Math.floor((8 * MB) / 3) * 3);
    }
    const capped = cli([
      'run',
      job('big-capped', bundle, [{ mb: 2 }, { mb: 0.5 }], 1),
      '--out',
      out,
      '--python',
      python,
      '--workers',
      '1',
      '--max-frame-mb',
      '1',
    ]);
    assert.equal(capped.code, 1, capped.stderr);
    const log = events(path.join(out, 'big-capped'));
    const failed = log.filter((e) => e.type === 'task-done' && e.status === 'failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].kind, 'result-too-large');
    assert.match(failed[0].message, /^Output "data" is 2\.0 MB/);
    assert.equal(
      log.filter((e) => e.type === 'task-done' && e.status === 'ok').length,
      1,
      'the set under the cap succeeded',
    );
    assert.equal(
      log.filter((e) => e.type === 'process-start').length,
      1,
      'on one warm runner: the over-cap result did not kill it',
    );
    const manifest = readJson(path.join(out, 'big-capped', 'manifest.json'));
    assert.equal(manifest.options.max_frame_bytes, MB);
  });

  it('handshake --execute --max-frame-mb: result-too-large at the return line', () => {
    const bundle = randomBundle('cli-handshake');
    const result = cli([
      'handshake',
      bundle,
      '--python',
      python,
      '--execute',
      'frames.m/x',
      '--params',
      '{"mb": 2}',
      '--max-frame-mb',
      '1.5',
      '--json',
    ]);
    const report = JSON.parse(result.stdout);
    assert.equal(report.ok, false);
    assert.equal(report.kind, 'result-too-large', result.stdout.slice(0, 2000));
    assert.equal(report.location.line, lineOf(path.join(bundle, 'wire.py'), 'return'));
    assert.match(report.message, /exceeds the 1\.5 MB frame cap/);
  });
});
