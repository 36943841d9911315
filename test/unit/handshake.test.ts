/**
 * Every fixture bundle's handshake verdict, against real Python runner processes: our
 * runner and a production-style runner that does not protect stdout.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { handshake, type HandshakeOptions } from '../../src/engine/handshake/handshake';
import { bundle, lineOf, PROD_RUNNER } from './helpers';

const TIMEOUT_MS = 20_000;

function run(name: string, extra: Partial<HandshakeOptions> = {}) {
  return handshake({ bundleDir: bundle(name), timeoutMs: TIMEOUT_MS, ...extra }).then((outcome) => outcome.report);
}

describe('handshake with our runner', () => {
  for (const name of [
    'healthy-wire-py',
    'healthy-manifest',
    'healthy-manifest-file',
    'healthy-toml',
    'healthy-entrypoint',
  ]) {
    it(`${name}: ready, and one replicate runs`, async () => {
      const report = await run(name, {
        execute: { entrypoint: 'models.sir/baseline', params: { beta: 0.3, gamma: 0.1 }, seed: 7 },
      });
      assert.equal(report.ok, true, report.message);
      assert.equal(report.evidence.ready?.ready, true);
      assert.equal(report.evidence.ready?.runner, 'modelops-debugger-runner');
      assert.deepEqual(report.warnings, []);
      const result = JSON.parse(report.evidence.execute!.outputs.result.text!);
      // all five healthy bundles compute the same value by different discovery routes
      assert.equal(result.seed, 7);
      assert.ok(Math.abs(result.value - 0.723832764833) < 1e-9, String(result.value));
      // the bundle's venv is checked (or built, the first time) before the runner starts in it
      assert.match(report.phases[0].name, /^venv-(check|build)$/);
      assert.deepEqual(
        report.phases.slice(1).map((p) => p.name),
        ['interpreter-start', 'runner-setup', 'discover-wire', 'import-bundle', 'ready-reply', 'execute'],
      );
      assert.equal(report.evidence.ready?.venv, report.evidence.venv?.path);
    });
  }

  it('print-at-import: handshakes fine, and names the line that would break production', async () => {
    const report = await run('print-at-import');
    assert.equal(report.ok, true, report.message);
    assert.equal(report.warnings.length, 1);
    const [warning] = report.warnings;
    assert.equal(warning.kind, 'stdout-pollution');
    assert.match(warning.message, /Loading model weights\.\.\./);
    assert.match(warning.message, /would corrupt the production runner's frames/);
    const file = path.join(bundle('print-at-import'), 'wire.py');
    assert.deepEqual([warning.location?.file, warning.location?.line], [file, lineOf(file, 'print-at-import')]);
  });

  it('oswrite-at-import: the C-level write is blamed on its exact line', async () => {
    const report = await run('oswrite-at-import');
    assert.equal(report.ok, true, report.message);
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0].message, /os\.write\(1, …\) at import wrote "C-level banner v1\.2\\n"/);
    const file = path.join(bundle('oswrite-at-import'), 'wire.py');
    assert.equal(report.warnings[0].location?.line, lineOf(file, 'oswrite-at-import'));
  });

  it('nonutf8-stdout: the raw bytes are shown escaped, at their line', async () => {
    const report = await run('nonutf8-stdout');
    assert.equal(report.ok, true, report.message);
    assert.match(report.warnings[0].message, /\\xff\\xfe\\x80 binary junk/);
    const file = path.join(bundle('nonutf8-stdout'), 'wire.py');
    assert.equal(report.warnings[0].location?.line, lineOf(file, 'nonutf8'));
  });

  it('import-error: runner-exited-before-ready at the failing import, with the phase and exit code', async () => {
    const report = await run('import-error');
    assert.equal(report.ok, false);
    assert.equal(report.kind, 'runner-exited-before-ready');
    assert.match(report.message, /ModuleNotFoundError: No module named 'numpy_that_does_not_exist'/);
    assert.match(report.message, /while importing the bundle/);
    assert.equal(report.evidence.exitCode, 1);
    const file = path.join(bundle('import-error'), 'model_helpers.py');
    assert.deepEqual([report.location?.file, report.location?.line], [file, lineOf(file, 'import-error')]);
    assert.doesNotMatch(
      report.evidence.exception!.traceback!,
      /modelops_runner\.py/,
      "runner frames are not the user's business",
    );
  });

  it('exit-at-import: sys.exit(3) is named, with its line and exit code 3', async () => {
    const report = await run('exit-at-import');
    assert.equal(report.kind, 'runner-exited-before-ready');
    assert.match(report.message, /sys\.exit\(3\)/);
    assert.equal(report.evidence.exitCode, 3);
    const file = path.join(bundle('exit-at-import'), 'wire.py');
    assert.equal(report.location?.line, lineOf(file, 'exit-at-import'));
  });

  it('hang-at-import: handshake-timeout with the hung line from the stack dump', async () => {
    const report = await run('hang-at-import', { timeoutMs: 1500 });
    assert.equal(report.kind, 'handshake-timeout');
    assert.match(report.message, /within 1\.5 s/);
    assert.match(report.evidence.stacks!, /most recent call first/);
    const file = path.join(bundle('hang-at-import'), 'wire.py');
    assert.deepEqual([report.location?.file, report.location?.line], [file, lineOf(file, 'hang-at-import')]);
  });

  it('stderr-flood-at-import: 20 MB of stderr never stalls the handshake', async () => {
    const report = await run('stderr-flood-at-import');
    assert.equal(report.ok, true, report.message);
    assert.ok(
      report.evidence.stderrBytes! >= 20 * 1024 * 1024,
      `only ${report.evidence.stderrBytes} stderr bytes seen`,
    );
  });

  it('no-wire: bad input, in one sentence', async () => {
    const report = await run('no-wire');
    assert.equal(report.kind, 'bad-input');
    assert.match(report.message, /has no wire function/);
  });

  it('deep-exception: task-exception at the raising line three frames deep', async () => {
    const report = await run('deep-exception', {
      execute: { entrypoint: 'models.sir/baseline', params: { beta: -1.0, gamma: 0.1 }, seed: 1 },
    });
    assert.equal(report.kind, 'task-exception');
    assert.equal(report.message, 'ValueError: beta must be positive, got -1.0');
    const util = path.join(bundle('deep-exception'), 'model', 'util.py');
    assert.deepEqual([report.location?.file, report.location?.line], [util, lineOf(util, 'deep-raise')]);
    const frames = report.evidence.frames!.map((f) => `${path.relative(bundle('deep-exception'), f.file)}:${f.line}`);
    assert.deepEqual(frames, [
      `wire.py:${lineOf(path.join(bundle('deep-exception'), 'wire.py'), 'deep-call-1')}`,
      `model/core.py:${lineOf(path.join(bundle('deep-exception'), 'model', 'core.py'), 'deep-call-2')}`,
      `model/util.py:${lineOf(util, 'deep-raise')}`,
    ]);
  });

  it('sigkill-in-execute: process-crashed naming SIGKILL', async () => {
    const report = await run('sigkill-in-execute', { execute: { entrypoint: 'm.x/y', params: {}, seed: 1 } });
    assert.equal(report.kind, 'process-crashed');
    assert.equal(report.evidence.signal, 'SIGKILL');
    assert.match(report.message, /killed by SIGKILL \(signal 9\).*during the simulation/);
  });

  it('sigsegv-in-execute: process-crashed naming SIGSEGV, located from the fault dump', async () => {
    const report = await run('sigsegv-in-execute', { execute: { entrypoint: 'm.x/y', params: {}, seed: 1 } });
    assert.equal(report.kind, 'process-crashed');
    assert.equal(report.evidence.signal, 'SIGSEGV');
    assert.match(report.evidence.stderrTail!, /about to crash/);
    const file = path.join(bundle('sigsegv-in-execute'), 'wire.py');
    assert.equal(report.location?.line, lineOf(file, 'sigsegv'));
  });

  it('hang-in-execute: task-timeout with the stacks and the hung line', async () => {
    const report = await run('hang-in-execute', {
      execute: { entrypoint: 'm.x/y', params: {}, seed: 1, timeoutMs: 1500 },
    });
    assert.equal(report.kind, 'task-timeout');
    assert.equal(report.evidence.timeoutMs, 1500);
    const file = path.join(bundle('hang-in-execute'), 'wire.py');
    // (its evidence said when it is not: the stacks the runner dumped, or did not)
    assert.equal(
      report.location?.line,
      lineOf(file, 'hang-in-execute'),
      JSON.stringify({ message: report.message, evidence: report.evidence }).slice(0, 3000),
    );
  });

  it('print-in-execute: not a warning (production redirects it), but still reported', async () => {
    const report = await run('print-in-execute', { execute: { entrypoint: 'm.x/y', params: {}, seed: 2 } });
    assert.equal(report.ok, true, report.message);
    assert.deepEqual(report.warnings, []);
    const file = path.join(bundle('print-in-execute'), 'wire.py');
    assert.equal(report.evidence.harmlessStdout?.[0].location?.line, lineOf(file, 'print-in-execute'));
  });
});

describe('handshake with the production-style runner', () => {
  it('print-at-import is stdout-pollution with the offending text, not an EOF', async () => {
    const report = await run('print-at-import', { runnerScript: PROD_RUNNER });
    assert.equal(report.ok, false);
    assert.equal(report.kind, 'stdout-pollution');
    assert.match(report.message, /"Loading model weights\.\.\."/);
    assert.doesNotMatch(report.message, /Stream closed|EOF/);
    assert.equal(report.evidence.stdoutNoise, 'Loading model weights...\\n');
    assert.equal(Buffer.from(report.evidence.stdoutNoiseB64!, 'base64').toString(), 'Loading model weights...\n');
  });

  it('print-at-import: the bytes are put on their line by re-running under our runner', async () => {
    const report = await run('print-at-import', { runnerScript: PROD_RUNNER });
    const file = path.join(bundle('print-at-import'), 'wire.py');
    assert.deepEqual([report.location?.file, report.location?.line], [file, lineOf(file, 'print-at-import')]);
    assert.ok(report.evidence.notes?.some((n) => /re-running the bundle under the debugger's runner/.test(n)));
  });

  it('nonutf8-stdout: the raw bytes survive verbatim in the evidence', async () => {
    const report = await run('nonutf8-stdout', { runnerScript: PROD_RUNNER });
    assert.equal(report.kind, 'stdout-pollution');
    assert.deepEqual(
      Buffer.from(report.evidence.stdoutNoiseB64!, 'base64'),
      Buffer.from('\xff\xfe\x80 binary junk\n', 'latin1'),
    );
  });

  it('healthy bundles handshake with it as well (it sends no phase notifications)', async () => {
    const report = await run('healthy-wire-py', { runnerScript: PROD_RUNNER });
    assert.equal(report.ok, true, report.message);
    assert.equal(report.evidence.ready?.runner, undefined);
    assert.deepEqual(
      report.phases.slice(1).map((p) => p.name),
      ['start-to-ready'],
    );
  });

  it('import-error: located from the traceback on stderr', async () => {
    const report = await run('import-error', { runnerScript: PROD_RUNNER });
    assert.equal(report.kind, 'runner-exited-before-ready');
    assert.match(report.message, /ModuleNotFoundError/);
    const file = path.join(bundle('import-error'), 'model_helpers.py');
    assert.equal(report.location?.line, lineOf(file, 'import-error'));
  });

  it('no-wire: bad input, as with our runner', async () => {
    const report = await run('no-wire', { runnerScript: PROD_RUNNER });
    assert.equal(report.kind, 'bad-input');
  });
});
