// `npm run test:electron`: the same extension-host suite (out/vscode/suite.js) in a desktop VS Code
// that @vscode/test-electron downloads (1.100.3 unless VSCODE_TEST_VERSION says otherwise). For
// machines that can download VS Code; `npm test` runs the suite in code-server instead.
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { ROOT } from './codeServer.mjs';

try {
  await runTests({
    version: process.env.VSCODE_TEST_VERSION ?? '1.100.3',
    extensionDevelopmentPath: ROOT,
    extensionTestsPath: path.join(ROOT, 'out', 'vscode', 'suite.js'),
    // never the user's venv cache
    extensionTestsEnv: { MODELOPS_VENVS_DIR: mkdtempSync(path.join(os.tmpdir(), 'modelops-electron-venvs-')) },
    launchArgs: [path.join(ROOT, 'test', 'fixtures'), '--disable-extensions', '--disable-workspace-trust'],
  });
} catch (error) {
  console.error(`the extension-host tests failed or could not run: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
