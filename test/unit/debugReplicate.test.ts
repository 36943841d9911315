/**
 * Debugging one replicate: debugpy's own adapter (`python -m debugpy.adapter`) driven over the
 * Debug Adapter Protocol from Node, without VS Code, launching the harness with the launch
 * configuration the engine makes; debugpy is Debian's python3-debugpy, reached from another
 * Python (the tests' python3) through the directory of links findDebugpy makes.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { isFailure } from '../../src/engine/failure';
import { replicateSeed, paramId } from '../../src/engine/job/ids';
import { findDebugpy, pythonPath, replicateLaunchConfig, type Debugpy } from '../../src/engine/replicate/debug';
import { PyFloat } from '../../src/engine/pyjson/pyjson';
import { DapClient } from '../shared/dap';
import { simRecord } from '../shared/simRecords';
import { CLI, lineOf, scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-debug-');
let counter = 0;

const WIRE = `import json


def wire(entrypoint, params, seed):
    if params["mode"] == "raise":
        raise ValueError("beta too high: %s" % params["beta"])  # MARK:raise
    value = params["beta"] * 2  # MARK:break
    return {"value": json.dumps({"value": value, "seed": seed}).encode()}
`;

/** The python3 on PATH (pyenv's here), which has no debugpy of its own. */
const PYTHON = 'python3';

/** A port nothing listens on (for now). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

describe('debugging one replicate under debugpy (its adapter driven over DAP from Node)', function () {
  this.timeout(120_000);
  let debugpy: Debugpy;
  let bundleDir: string;
  let wireFile: string;

  before(async () => {
    debugpy = await findDebugpy(PYTHON, { cacheDir: path.join(scratch, 'cache') });
    bundleDir = writeBundle(path.join(scratch, 'bundle'), { 'wire.py': WIRE });
    wireFile = path.join(bundleDir, 'wire.py');
  });

  /** A job of the test bundle (one set, 2 replicates) run by the CLI: its results folder. */
  function runJob(params: Record<string, unknown>): string {
    const file = path.join(scratch, `job-${++counter}.json`);
    const out = path.join(scratch, `out-${counter}`);
    writeFileSync(
      file,
      JSON.stringify({
        job_id: 'debugged',
        bundle: bundleDir,
        entrypoint: 'models.m/base',
        parameter_sets: [params],
        replicates: 2,
      }),
    );
    const ran = spawnSync(process.execPath, [CLI, 'run', file, '--out', out, '--workers', '1'], { encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    return path.join(out, 'debugged');
  }

  /** The adapter, initialized, and the harness launched with a breakpoint at `line` (if any). */
  async function launch(params: Record<string, unknown>, seed: number, line?: number) {
    const outputsFile = path.join(scratch, `outputs-${++counter}.json`);
    const env = { ...process.env, ...(debugpy.path ? { PYTHONPATH: pythonPath(debugpy.path) } : {}) };
    const dap = DapClient.start(PYTHON, ['-m', 'debugpy.adapter'], env);
    await dap.request('initialize', {
      clientID: 'modelops-tests',
      adapterID: 'modelops-replicate',
      linesStartAt1: true,
      columnsStartAt1: true,
      pathFormat: 'path',
    });
    const config = replicateLaunchConfig(
      { bundleDir, entrypoint: 'models.m/base', params: params as never, seed },
      { python: PYTHON, debugpy, outputsFile, name: 'replicate' },
    );
    const launched = dap.send('launch', config);
    await dap.event('initialized').catch((error: Error) => {
      dap.kill();
      throw new Error(
        `${error.message}; output: ${dap.events
          .filter((e) => e.event === 'output')
          .map((e) => e.body.output)
          .join('')}`,
      );
    });
    if (line !== undefined) {
      const set = await dap.request('setBreakpoints', { source: { path: wireFile }, breakpoints: [{ line }] });
      assert.equal(set.breakpoints[0].verified, true, JSON.stringify(set));
    }
    await dap.request('setExceptionBreakpoints', { filters: ['uncaught'] });
    await dap.request('configurationDone');
    const response = await launched;
    assert.ok(response.success, JSON.stringify(response));
    return { dap, outputsFile };
  }

  it('debugpy is found for an interpreter that has none (through links to a system debugpy) and imports there', () => {
    assert.match(debugpy.version, /^\d+\.\d+/);
    if (debugpy.path) assert.ok(existsSync(path.join(debugpy.path, 'debugpy')), debugpy.path);
  });

  it("a breakpoint in the bundle is hit with the replicate's params and seed; the console evaluates them; continue runs it to the end and its outputs are written", async () => {
    const params = { beta: new PyFloat(0.25), mode: 'ok' };
    const seed = replicateSeed(paramId(params), 3);
    const { dap, outputsFile } = await launch(params, seed, lineOf(wireFile, 'break'));
    try {
      const stopped = await dap.event('stopped');
      assert.equal(stopped.body.reason, 'breakpoint');
      const { stackFrames } = await dap.request('stackTrace', { threadId: stopped.body.threadId });
      assert.equal(stackFrames[0].source.path, wireFile);
      assert.equal(stackFrames[0].line, lineOf(wireFile, 'break'));
      const { scopes } = await dap.request('scopes', { frameId: stackFrames[0].id });
      const { variables } = await dap.request('variables', { variablesReference: scopes[0].variablesReference });
      assert.equal(variables.find((v: any) => v.name === 'seed')?.value, String(seed));
      const evaluated = await dap.request('evaluate', {
        expression: 'params["beta"], seed',
        frameId: stackFrames[0].id,
        context: 'repl',
      });
      assert.equal(evaluated.result, `(0.25, ${seed})`);
      await dap.request('continue', { threadId: stopped.body.threadId });
      const exited = await dap.event('exited');
      assert.equal(exited.body.exitCode, 0);
      await dap.event('terminated');
    } finally {
      dap.kill();
    }
    const written = JSON.parse(readFileSync(outputsFile, 'utf8'));
    assert.deepEqual(JSON.parse(Buffer.from(written.outputs.value, 'base64').toString()), { value: 0.5, seed });
  });

  it('an exception the bundle raises stops at the raising line', async () => {
    const { dap, outputsFile } = await launch({ beta: new PyFloat(9.5), mode: 'raise' }, 7);
    try {
      const stopped = await dap.event('stopped');
      assert.equal(stopped.body.reason, 'exception');
      const { stackFrames } = await dap.request('stackTrace', { threadId: stopped.body.threadId });
      assert.equal(stackFrames[0].source.path, wireFile);
      assert.equal(stackFrames[0].line, lineOf(wireFile, 'raise'));
      const info = await dap.request('exceptionInfo', { threadId: stopped.body.threadId });
      assert.match(info.description, /beta too high: 9\.5/);
      await dap.request('continue', { threadId: stopped.body.threadId });
      await dap.event('terminated');
    } finally {
      dap.kill();
    }
    assert.deepEqual(JSON.parse(readFileSync(outputsFile, 'utf8')), {
      error: { type: 'ValueError', message: 'beta too high: 9.5' },
    });
  });

  it("replicate --debug: debugpy listens, a debugger attached over TCP stops at a breakpoint with the replicate's seed, and the reproduction is compared as ever (same, exit 0)", async () => {
    const jobDir = runJob({ beta: 0.75, mode: 'ok' });
    const seed = simRecord(jobDir, paramId({ beta: new PyFloat(0.75), mode: 'ok' }), 1).seed;
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [CLI, 'replicate', jobDir, '--param', '0', '--replicate', '1', '--debug', '--debug-port', String(port), '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!stderr.includes(`listens on 127.0.0.1:${port}`)) {
        if (Date.now() > deadline) assert.fail(`debugpy did not listen: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const dap = await DapClient.connect(port);
      try {
        await dap.request('initialize', { clientID: 'modelops-tests', adapterID: 'debugpy', pathFormat: 'path' });
        const attached = dap.send('attach', { justMyCode: true });
        await dap.event('initialized');
        await dap.request('setBreakpoints', {
          source: { path: wireFile },
          breakpoints: [{ line: lineOf(wireFile, 'break') }],
        });
        await dap.request('configurationDone');
        assert.ok((await attached).success);
        const stopped = await dap.event('stopped');
        const { stackFrames } = await dap.request('stackTrace', { threadId: stopped.body.threadId });
        assert.equal(stackFrames[0].line, lineOf(wireFile, 'break'));
        const evaluated = await dap.request('evaluate', {
          expression: 'seed',
          frameId: stackFrames[0].id,
          context: 'repl',
        });
        assert.equal(evaluated.result, String(seed));
        await dap.request('continue', { threadId: stopped.body.threadId });
        // as a debugger does when the debuggee has ended: debugpy lets it exit once the client has gone
        await dap.event('terminated');
        await dap.send('disconnect', {});
      } finally {
        dap.kill();
      }
      const code = await Promise.race([
        exited,
        new Promise((resolve) =>
          setTimeout(() => resolve('still running 30 s after the debugger left'), 30_000).unref(),
        ),
      ]);
      assert.equal(code, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    const report = JSON.parse(stdout);
    assert.equal(report.verdict, 'same', stdout);
    assert.equal(report.seed, seed);
    assert.match(report.ran.runner, /modelops_debug_harness\.py$/);
  });

  it('no debugpy anywhere is debugger-not-found, saying where to get one', async () => {
    await assert.rejects(
      findDebugpy(PYTHON, { cacheDir: path.join(scratch, 'none'), systemPythons: [], candidates: [scratch] }),
      (error: unknown) =>
        isFailure(error) && error.kind === 'debugger-not-found' && /install python3-debugpy/.test(error.message),
    );
    await assert.rejects(
      findDebugpy(PYTHON, { cacheDir: path.join(scratch, 'none'), configured: scratch }),
      (error: unknown) =>
        isFailure(error) &&
        error.kind === 'debugger-not-found' &&
        error.message.includes('modelopsDebugger.debugpyPath'),
    );
  });
});
