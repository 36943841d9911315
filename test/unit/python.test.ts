/**
 * Finding the interpreter (src/engine/process/python.ts): a script on PATH that launches Python
 * (a pyenv shim) is asked once which binary it runs, and that binary is what runners start.
 * (The other unit tests run with the real binary first on PATH: test/unit/globalFixtures.cjs.)
 */
import * as assert from 'node:assert/strict';
import { chmodSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { isFailure } from '../../src/engine/failure';
import { resolvePython } from '../../src/engine/process/python';
import { scratchDir } from './helpers';

describe('resolvePython', () => {
  const dir = scratchDir('mo-python-');
  let real: string;

  before(async () => {
    real = realpathSync((await resolvePython('python3')).path);
  });

  function script(name: string, body: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it('a shim (a script that execs Python) on PATH: the binary it runs, found by asking it once', async () => {
    const bin = scratchDir('mo-python-shim-');
    const shim = path.join(bin, 'python3');
    const counter = path.join(dir, 'asked');
    writeFileSync(shim, `#!/bin/sh\necho x >> ${JSON.stringify(counter)}\nexec ${JSON.stringify(real)} "$@"\n`);
    chmodSync(shim, 0o755);
    const found = await resolvePython('python3', `${path.join(dir, 'nowhere')}${path.delimiter}${bin}`);
    assert.equal(found.path, real);
    assert.equal(found.requested, 'python3');
    assert.deepEqual(found.tried, [path.join(dir, 'nowhere', 'python3'), shim]);
    assert.equal(readFileSync(counter, 'utf8'), 'x\n', 'asked once');
  });

  it('a binary is taken as it is, by path or on PATH', async () => {
    assert.equal((await resolvePython(real)).path, real);
    assert.equal((await resolvePython(path.basename(real), path.dirname(real))).path, real);
  });

  it('nothing on PATH, or a shim that does not start Python: interpreter-not-found, saying where it looked or what the shim said', async () => {
    await assert.rejects(resolvePython('python3', path.join(dir, 'empty')), (error) => {
      assert.ok(isFailure(error) && error.kind === 'interpreter-not-found');
      assert.match(error.message, /python3 is not on PATH \(searched 1 directories\)/);
      return true;
    });
    const broken = script('broken-python', 'echo "pyenv: version 9.9 is not installed" >&2\nexit 127');
    await assert.rejects(resolvePython(broken), (error) => {
      assert.ok(isFailure(error) && error.kind === 'interpreter-not-found');
      assert.match(error.message, /did not start Python \(exit 127\); stderr: pyenv: version 9\.9 is not installed/);
      return true;
    });
  });
});
