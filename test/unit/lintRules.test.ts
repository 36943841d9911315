/**
 * The layering and import-cycle rules of eslint.config.mjs are live: a misconfigured resolver or plugin makes
 * them pass silently (import-x follows no import into a file type it was not told to parse), so each is shown
 * failing on a probe, and passing on an import the layers allow.
 */
import * as assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as eslintApi from 'eslint';
import { ROOT } from './helpers';

// Loaded from the repository's node_modules at run time: the test bundle does not carry ESLint and its plugins.
const load = createRequire(path.join(ROOT, 'package.json'));

describe('lint rules: layers and import cycles', function () {
  let eslint: eslintApi.ESLint;

  before(function () {
    const { ESLint } = load('eslint') as typeof eslintApi;
    const tseslint = load('typescript-eslint') as { configs: { disableTypeChecked: eslintApi.Linter.Config } };
    // the rules under test need no types: no TypeScript program is built for the probes
    eslint = new ESLint({
      cwd: ROOT,
      overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
    });
  });

  /** The findings on `code` as if it were the file at `file` (relative to the repository). */
  async function findings(file: string, code: string): Promise<string[]> {
    const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
    return result.messages.map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
  }

  it('src/engine importing vscode, src/cli or src/extension is an error, each named', async () => {
    const found = await findings(
      'src/engine/probe.ts',
      [
        "import * as vscode from 'vscode';",
        "import { main } from '../cli/main';",
        "import { activate } from '../extension/extension';",
        'export const all = [vscode, main, activate];',
      ].join('\n'),
    );
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0], /^no-restricted-imports: .*src\/engine never imports vscode/);
    assert.match(found[1], /^import-x\/no-restricted-paths: .*"\.\.\/cli\/main".*never imports the command line/);
    assert.match(found[2], /^import-x\/no-restricted-paths: .*"\.\.\/extension\/extension".*never imports the editor/);
  });

  it('src/extension importing src/cli is an error; importing src/engine is not', async () => {
    const found = await findings(
      'src/extension/probe.ts',
      [
        "import { main } from '../cli/main';",
        "import { Failure } from '../engine/failure';",
        'export const all = [main, Failure];',
      ].join('\n'),
    );
    assert.deepEqual(
      found.map((f) => f.split(':')[0]),
      ['import-x/no-restricted-paths'],
    );
    assert.match(found[0], /"\.\.\/cli\/main"/);
  });

  it('an import cycle is an error: src/engine/failure.ts importing job/book.ts, which imports it', async () => {
    assert.deepEqual(await findings('src/engine/failure.ts', "import './job/book';\nexport const probe = 1;\n"), [
      'import-x/no-cycle: Dependency cycle detected',
    ]);
    assert.deepEqual(await findings('src/engine/failure.ts', "import './errno';\nexport const probe = 1;\n"), []);
  });
});
