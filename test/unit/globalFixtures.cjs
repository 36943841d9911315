// Mocha's global fixtures for the unit tests (.mocharc.json `require`): run once in mocha's main
// process, before any test file, whether the files run one after another or in parallel workers
// (which inherit the environment). Tests never touch the user's venv cache: one scratch cache for
// the whole run, shared by every test file and every CLI process the tests start, removed at the end.
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

exports.mochaGlobalSetup = function () {
  process.env.MODELOPS_TEST_VENVS_DIR = mkdtempSync(path.join(os.tmpdir(), 'mo-test-venvs-'));
};

exports.mochaGlobalTeardown = function () {
  rmSync(process.env.MODELOPS_TEST_VENVS_DIR, { recursive: true, force: true });
};
