/**
 * Extension-host tests: mocha inside a real VS Code (code-server), with the real `vscode`
 * API. Started by test/vscode/run.mjs; bundled with `vscode` and `mocha` left external.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import Mocha from 'mocha';
import * as vscode from 'vscode';
import type { HandshakeReport } from '../../src/engine/handshake/handshake';

const EXTENSION_ID = 'modelops-debugger.modelops-debugger';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 120_000, color: false, reporter: 'spec' });
  mocha.suite.emit('pre-require', globalThis, 'suite', mocha);

  describe('the extension in VS Code', () => {
    let root: string;

    before(async () => {
      const extension = vscode.extensions.getExtension(EXTENSION_ID);
      assert.ok(extension, `${EXTENSION_ID} is not loaded`);
      await extension.activate();
      root = extension.extensionPath;
    });

    it('runs in VS Code 1.100', () => {
      assert.match(vscode.version, /^1\.100\./);
    });

    it('"ModelOps: Handshake Bundle…" handshakes a bundle in its venv and reports the stray print', async () => {
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'print-at-import'));
      const report = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
      assert.equal(report.ok, true, report.message);
      assert.equal(report.evidence.venv?.built !== undefined, true);
      assert.equal(report.warnings[0]?.kind, 'stdout-pollution');
      assert.equal(path.basename(report.warnings[0].location!.file), 'wire.py');
    });

    it('a bundle whose import fails: the kind and the line', async () => {
      const bundle = vscode.Uri.file(path.join(root, 'test', 'fixtures', 'bundles', 'import-error'));
      const report = await vscode.commands.executeCommand<HandshakeReport>('modelopsDebugger.handshake', bundle);
      assert.equal(report.kind, 'runner-exited-before-ready');
      assert.equal(path.basename(report.location!.file), 'model_helpers.py');
    });
  });

  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} failed`)) : resolve()));
  });
}
