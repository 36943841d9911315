/** Rules that keep the layers apart (DESIGN.md "Layers"). */
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './helpers';

function sources(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
}

describe('layer boundaries', () => {
  it('nothing under src/engine imports vscode', () => {
    const offenders = sources(path.join(ROOT, 'src', 'engine')).filter((file) =>
      /(?:from\s+['"]vscode['"]|require\(\s*['"]vscode['"]\s*\)|import\(\s*['"]vscode['"]\s*\))/.test(readFileSync(file, 'utf8')),
    );
    assert.deepEqual(offenders, []);
  });

  it('nothing under src/engine imports the extension or the command line', () => {
    const offenders = sources(path.join(ROOT, 'src', 'engine')).filter((file) => /from\s+['"](?:\.\.\/)+(?:extension|cli)\//.test(readFileSync(file, 'utf8')));
    assert.deepEqual(offenders, []);
  });

  it('no process is started through a shell', () => {
    const offenders = sources(path.join(ROOT, 'src')).filter((file) => /shell:\s*true|execaCommand|\bexecSync\(|child_process['"].*\bexec\b/.test(readFileSync(file, 'utf8')));
    assert.deepEqual(offenders, []);
  });
});
