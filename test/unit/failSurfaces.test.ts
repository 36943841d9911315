/**
 * Issue 11, "every failure on every surface": the text the command line and the editor share
 * comes from the engine; a job file's refusal has a line; an install that could not reach its
 * package index says so (real pip, real venv, a closed port).
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Failure } from '../../src/engine/failure';
import { foundNoVersions, indexUrls, networkFailureIn } from '../../src/engine/diagnose/installError';
import { handshake } from '../../src/engine/handshake/handshake';
import { renderHandshake } from '../../src/engine/handshake/describe';
import { loadJobFile } from '../../src/engine/job/spec';
import { locateInJobFile } from '../../src/engine/job/specLocation';
import { resolvePython } from '../../src/engine/process/python';
import { VenvCache } from '../../src/engine/venv/cache';
import { probeInterpreter } from '../../src/engine/venv/interpreter';
import { bundle, CLI, rejection, ROOT, scratchDir, writeBundle } from './helpers';

describe('one text for the command line and the editor', () => {
  // that the editor never imports the command line is checked on the import graph (boundaries.test.ts)
  it("the command line prints handshakes and replays with the engine's describe module", () => {
    const handshakeCommand = readFileSync(path.join(ROOT, 'src', 'cli', 'handshakeCommand.ts'), 'utf8');
    assert.match(
      handshakeCommand,
      /import \{ renderHandshake, renderReplay \} from '\.\.\/engine\/handshake\/describe'/,
    );
    assert.doesNotMatch(
      readFileSync(path.join(ROOT, 'src', 'cli', 'render.ts'), 'utf8'),
      /function renderHandshake|function renderReplay/,
    );
  });

  it('a handshake with a stray print: "ok with 1 warning", the same verdict from the engine and from the command line', async () => {
    const { report } = await handshake({ bundleDir: bundle('print-at-import'), timeoutMs: 30_000 });
    assert.equal(report.ok, true);
    assert.match(report.message, /^Handshake ok with 1 warning in [\d.]+ ms: /);
    const text = renderHandshake(report, undefined);
    assert.match(text, /^✔ Handshake ok with 1 warning in/);
    assert.match(text, /\n⚠ stdout-pollution at .*wire\.py:\d+ in <module>\(\)\n/);
    const cli = spawnSync(process.execPath, [CLI, 'handshake', bundle('print-at-import')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /^✔ Handshake ok with 1 warning in [\d.]+ ms: /);
    // the lines after the timings are the same text (paths relative to each one's directory aside)
    const tail = (s: string) => s.slice(s.indexOf('⚠')).replace(/ at \S+wire\.py/, ' at wire.py');
    assert.equal(tail(cli.stdout), tail(text));
  });

  it('a healthy handshake says "ok" with no warning count', async () => {
    const { report } = await handshake({ bundleDir: bundle('healthy-wire-py'), timeoutMs: 30_000 });
    assert.match(report.message, /^Handshake ok in [\d.]+ ms: /);
  });
});

describe('a refused job file points at its line', () => {
  const scratch = scratchDir('mo-fail-jobfile-');

  const cases: [string, string, RegExp, number][] = [
    [
      'replicates that are not a whole number',
      '{\n  "bundle": "b",\n  "entrypoint": "e.f/g",\n  "replicates": 2.5,\n  "parameter_sets": [{"beta": 0.3}]\n}\n',
      /replicates must be a whole number/,
      4,
    ],
    [
      'an unknown field',
      '{\n  "bundle": "b",\n  "entrypoint": "e.f/g",\n  "replicates": 2,\n  "parameter_sets": [{"beta": 0.3}],\n  "replicate": 3\n}\n',
      /unknown field "replicate"/,
      6,
    ],
    [
      'a null parameter in the second set',
      '{\n  "bundle": "b",\n  "entrypoint": "e.f/g",\n  "replicates": 2,\n  "parameter_sets": [\n    {"beta": 0.3},\n    {"beta": null}\n  ]\n}\n',
      /parameter_sets\[1\]\.beta is null/,
      7,
    ],
    [
      'JSON with a syntax error',
      '{\n  "bundle": "b",\n  "entrypoint": "e.f/g",,\n  "replicates": 2\n}\n',
      /is not valid JSON/,
      3,
    ],
  ];
  it('a bundle directory that does not exist: the "bundle" line; a message about something else: no line', async () => {
    const file = path.join(scratch, 'missing-bundle.json');
    writeFileSync(file, '{\n  "job_id": "j",\n  "bundle": "nowhere",\n  "entrypoint": "e.f/g"\n}\n');
    const missing = new Failure('bad-input', `Bundle directory ${path.join(scratch, 'nowhere')} does not exist.`);
    assert.deepEqual(((await locateInJobFile(missing, file)) as Failure).location, { file, line: 3 });
    const other = new Failure('bad-input', '--replicates: value must be a whole number from 1 to 10000000, not 0.');
    assert.equal(await locateInJobFile(other, file), other);
  });

  for (const [name, text, message, line] of cases) {
    it(`${name}: line ${line}`, async () => {
      const file = path.join(scratch, `${name.replace(/\W+/g, '-')}.json`);
      writeFileSync(file, text);
      const refused = await rejection(loadJobFile(file));
      assert.match(refused.message, message);
      assert.equal(refused.location, undefined, 'the command line words it without a line, as before');
      const located = (await locateInJobFile(refused, file)) as Failure;
      assert.equal(located.message, refused.message);
      assert.deepEqual(located.location, { file, line });
    });
  }
});

describe('deps-install-failed when the package index cannot be reached', () => {
  const scratch = scratchDir('mo-fail-index-');

  /** A port on 127.0.0.1 that nothing listens on (taken, then let go). */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it("real pip, real venv, PIP_INDEX_URL at a closed port with --retries 0: the message says the index could not be reached, at the requirement's line", async function () {
    this.timeout(180_000);
    const port = await closedPort();
    const bundleDir = writeBundle(path.join(scratch, 'needs-dep'), {
      'pyproject.toml':
        '[project]\nname = "needs-dep"\nversion = "0.1.0"\ndependencies = [\n    "mo-some-dep==1.0",\n]\n',
      'wire.py': 'import mo_some_dep\n\ndef wire(entrypoint, params, seed):\n    return {}\n',
    });
    const base = await probeInterpreter((await resolvePython()).path);
    const index = `http://127.0.0.1:${port}/simple`;
    // pip's configuration on this machine (files, find-links) set aside: only the closed index
    const cache = new VenvCache({
      dir: path.join(scratch, 'venvs'),
      env: {
        PIP_INDEX_URL: index,
        PIP_CONFIG_FILE: '/dev/null',
        PIP_FIND_LINKS: '',
        PIP_EXTRA_INDEX_URL: '',
        PIP_NO_INDEX: '',
      },
      extraInstallArgs: ['--retries', '0', '--timeout', '2'],
    });
    const started = performance.now();
    const failure = await rejection(cache.ensure(bundleDir, base));
    const ms = performance.now() - started;
    assert.equal(failure.kind, 'deps-install-failed');
    assert.match(
      failure.message,
      new RegExp(
        `^Installing mo-some-dep==1\\.0 failed: the package index ${index.replace(/[.]/g, '\\.')} could not be reached \\(connection refused\\); pip said: .*mo-some-dep`,
      ),
    );
    assert.deepEqual(failure.location, { file: path.join(bundleDir, 'pyproject.toml'), line: 5 });
    assert.ok(
      failure.evidence.notes?.some((n) => /found by connecting to/.test(n)),
      String(failure.evidence.notes),
    );
    // pip itself said nothing about the network: the cause was not in its output
    const log = readFileSync(
      failure.evidence.notes!.find((n) => n.startsWith('full output: '))!.slice('full output: '.length),
      'utf8',
    );
    assert.doesNotMatch(log, /Failed to establish a new connection/);
    assert.ok(ms < 60_000, `took ${Math.round(ms)} ms`);
  });

  it("pip's retry warnings and uv's error chain are read as the index being unreachable; a package that is simply absent is not", () => {
    const pip = `Looking in indexes: http://127.0.0.1:9/simple
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPConnection object at 0x7f5bf5dc3d90>: Failed to establish a new connection: [Errno 111] Connection refused')': /simple/some-dep-xyz/
ERROR: Could not find a version that satisfies the requirement some-dep-xyz (from versions: none)
ERROR: No matching distribution found for some-dep-xyz`;
    assert.deepEqual(networkFailureIn(pip), {
      url: undefined,
      path: '/simple/some-dep-xyz/',
      why: 'connection refused',
      how: 'output',
    });
    const uv = `error: Failed to fetch: \`https://pypi.example.org/simple/six/\`
  Caused by: Request failed after 3 retries
  Caused by: error sending request for url (https://pypi.example.org/simple/six/)
  Caused by: client error (Connect)
  Caused by: dns error: failed to lookup address information: Name or service not known`;
    assert.deepEqual(networkFailureIn(uv), {
      url: 'https://pypi.example.org/simple/six/',
      path: undefined,
      why: 'name resolution failed',
      how: 'output',
    });
    const absent =
      'ERROR: Could not find a version that satisfies the requirement mo-absent (from versions: none)\nERROR: No matching distribution found for mo-absent';
    assert.equal(networkFailureIn(absent), undefined);
    assert.equal(foundNoVersions(absent), true);
    assert.deepEqual(
      indexUrls(['install', '--index-url', 'http://a/simple', '--extra-index-url=http://b/simple', 'six'], {
        PIP_EXTRA_INDEX_URL: 'http://c/simple file:///opt/x',
      }),
      ['http://a/simple', 'http://b/simple', 'http://c/simple'],
    );
    assert.deepEqual(indexUrls(['install', 'six'], { PIP_NO_INDEX: '1' }), []);
  });
});
