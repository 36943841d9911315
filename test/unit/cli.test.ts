/** The command line as a user runs it: a real `node dist/cli.js` process, exit codes and output. */
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bundle, CLI, lineOf, scratchDir } from './helpers';

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('modelops-debugger handshake (command line)', () => {
  const scratch = scratchDir('mo-cli-');

  it('healthy bundle: exit 0 and a verdict with per-phase timings', () => {
    const { code, stdout } = cli('handshake', bundle('healthy-wire-py'));
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^✔ Handshake ok in [\d.]+ ms/);
    assert.match(stdout, /import-bundle\s+[\d.]+ ms/);
  });

  it('--json prints the one object DESIGN.md specifies', () => {
    const { code, stdout } = cli('handshake', bundle('print-at-import'), '--json');
    assert.equal(code, 0);
    const report = JSON.parse(stdout);
    assert.deepEqual(Object.keys(report).sort(), ['evidence', 'message', 'ok', 'phases', 'warnings']);
    assert.equal(report.ok, true);
    assert.equal(report.warnings[0].kind, 'stdout-pollution');
    const file = path.join(bundle('print-at-import'), 'wire.py');
    assert.deepEqual(report.warnings[0].location, {
      file,
      line: lineOf(file, 'print-at-import'),
      function: '<module>',
    });
  });

  it('a failing handshake exits 3 and names kind, cause and file:line', () => {
    const { code, stdout } = cli('handshake', bundle('import-error'));
    assert.equal(code, 3);
    assert.match(stdout, /✘ runner-exited-before-ready: .*ModuleNotFoundError/);
    assert.match(
      stdout,
      new RegExp(
        `at .*model_helpers\\.py:${lineOf(path.join(bundle('import-error'), 'model_helpers.py'), 'import-error')}`,
      ),
    );
  });

  it('--execute runs one replicate; a user exception exits 1 at its line', () => {
    const ok = cli(
      'handshake',
      bundle('deep-exception'),
      '--execute',
      'models.sir/baseline',
      '--params',
      '{"beta": 0.5, "gamma": 0.1}',
      '--seed',
      '4',
    );
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /outputs:/);
    const bad = cli(
      'handshake',
      bundle('deep-exception'),
      '--execute',
      'models.sir/baseline',
      '--params',
      '{"beta": -1.0, "gamma": 0.1}',
      '--json',
    );
    assert.equal(bad.code, 1);
    const report = JSON.parse(bad.stdout);
    assert.equal(report.kind, 'task-exception');
    assert.equal(report.location.line, lineOf(path.join(bundle('deep-exception'), 'model', 'util.py'), 'deep-raise'));
  });

  describe('bad input: exit 2 and one clear sentence', () => {
    const cases: [string, string[], RegExp][] = [
      [
        'a missing bundle dir',
        ['handshake', '/nonexistent/bundle'],
        /Bundle directory \/nonexistent\/bundle does not exist\./,
      ],
      [
        'a file instead of a dir',
        ['handshake', path.join(bundle('healthy-wire-py'), 'wire.py')],
        /wire\.py is a file, not a bundle directory\./,
      ],
      ['a bundle with no wire function', ['handshake', bundle('no-wire')], /has no wire function: add wire\.py/],
      [
        'params that are not JSON',
        ['handshake', bundle('healthy-wire-py'), '--execute', 'a.b/c', '--params', '{beta'],
        /--params is not valid JSON/,
      ],
      [
        'a seed out of range',
        ['handshake', bundle('healthy-wire-py'), '--execute', 'a.b/c', '--seed', '18446744073709551616'],
        /--seed .* is above 2\^64-1/,
      ],
      ['an unknown option', ['handshake', bundle('healthy-wire-py'), '--bogus'], /unknown option '--bogus'/],
      [
        'a missing runner script',
        ['handshake', bundle('healthy-wire-py'), '--runner', '/nope/runner.py'],
        /Runner script \/nope\/runner\.py does not exist\./,
      ],
    ];
    for (const [what, args, message] of cases) {
      it(what, () => {
        const { code, stdout, stderr } = cli(...args);
        assert.equal(code, 2, stdout + stderr);
        assert.match(stdout + stderr, message);
      });
    }
  });

  it('a Python that does not exist: exit 3 naming what was tried', () => {
    const { code, stdout } = cli('handshake', bundle('healthy-wire-py'), '--python', '/opt/no-such/python3.42');
    assert.equal(code, 3);
    assert.match(
      stdout,
      /✘ interpreter-not-found: No Python interpreter: \/opt\/no-such\/python3\.42 does not exist or is not executable/,
    );
    assert.match(stdout, /tried: \/opt\/no-such\/python3\.42/);
    const onPath = cli('handshake', bundle('healthy-wire-py'), '--python', 'python3.42-not-here', '--json');
    assert.equal(onPath.code, 3);
    const report = JSON.parse(onPath.stdout);
    assert.equal(report.kind, 'interpreter-not-found');
    assert.ok(
      report.evidence.tried.length > 0 &&
        report.evidence.tried.every((p: string) => p.endsWith('/python3.42-not-here')),
    );
  });

  it('--replay of a healthy transcript reports no difference; against a changed bundle it shows the change', () => {
    const copy = path.join(scratch, 'replayed-bundle');
    cpSync(bundle('healthy-wire-py'), copy, { recursive: true });
    const transcript = path.join(scratch, 'healthy.transcript.json');
    const recorded = cli(
      'handshake',
      copy,
      '--execute',
      'models.sir/baseline',
      '--params',
      '{"beta": 0.3}',
      '--seed',
      '7',
      '--transcript',
      transcript,
    );
    assert.equal(recorded.code, 0, recorded.stdout);
    const saved = JSON.parse(readFileSync(transcript, 'utf8'));
    assert.equal(saved.version, 1);
    assert.ok(
      saved.entries.some(
        (e: { dir: string; message?: { method?: string } }) => e.dir === 'out' && e.message?.method === 'execute',
      ),
    );

    const same = cli('handshake', copy, '--replay', transcript);
    assert.equal(same.code, 0, same.stdout);
    assert.match(same.stdout, /Replayed 2 requests against a fresh runner: no differences\./);

    const wire = path.join(copy, 'wire.py');
    writeFileSync(wire, readFileSync(wire, 'utf8').replace('total + rng.random()', 'total * 2 + rng.random()'));
    const changed = cli('handshake', copy, '--replay', transcript, '--json');
    assert.equal(changed.code, 1, changed.stdout);
    const report = JSON.parse(changed.stdout);
    assert.equal(report.same, false);
    // the edit changes the bundle's identity, and the one output that depends on it
    assert.deepEqual(
      report.differences.map((d: { request: string; path: string }) => `${d.request} ${d.path}`),
      ['#1 ready result.bundle_digest', '#2 execute result.result'],
    );
    const output = report.differences[1];
    const [before, after] = [JSON.parse(output.recorded).value, JSON.parse(output.replayed).value];
    assert.ok(Math.abs(after - before - 0.3) < 1e-9, `${before} → ${after}`);
  });

  it('the bin entry runs as a program', () => {
    const out = execFileSync(CLI, ['--version'], { encoding: 'utf8' });
    assert.match(out, /^\d+\.\d+\.\d+/);
  });
});
