// Mocha's global fixtures for the unit tests (.mocharc.json `require`): run once in mocha's main
// process, before any test file, whether the files run one after another or in parallel workers
// (which inherit the environment). Tests never touch the user's venv cache: one scratch cache for
// the whole run, shared by every test file and every CLI process the tests start, removed at the end.
const { execFileSync } = require('node:child_process');
const { mkdtempSync, rmSync, symlinkSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

exports.mochaGlobalSetup = function () {
  process.env.MODELOPS_TEST_VENVS_DIR = mkdtempSync(path.join(os.tmpdir(), 'mo-test-venvs-'));
  putRealPythonFirst();
};

exports.mochaGlobalTeardown = function () {
  rmSync(process.env.MODELOPS_TEST_VENVS_DIR, { recursive: true, force: true });
  if (process.env.MODELOPS_TEST_BIN_DIR) rmSync(process.env.MODELOPS_TEST_BIN_DIR, { recursive: true, force: true });
};

/**
 * `python3` on PATH may be a pyenv shim: a bash script that costs about 0.3 s of CPU each time it
 * starts (0.31–0.36 s here, against 0.06 s for the binary it runs), and the unit tier starts it
 * hundreds of times (every CLI run that is given no --python asks it once which binary it runs).
 * The tests get that binary first on PATH, as on a machine without pyenv; a shim itself is tested
 * in python.test.ts (resolvePython asks a script which binary it runs).
 */
function putRealPythonFirst() {
  let real;
  try {
    real = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return; // no python3: the tests that need one say so
  }
  if (!real || !path.isAbsolute(real)) return;
  const bin = mkdtempSync(path.join(os.tmpdir(), 'mo-test-bin-'));
  symlinkSync(real, path.join(bin, 'python3'));
  process.env.MODELOPS_TEST_BIN_DIR = bin;
  process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;
}
