/** Rules that keep the layers apart (DESIGN.md "Layers"). */
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as TS from 'typescript';
import { ROOT } from './helpers';

// loaded from node_modules when the test runs, not bundled into it (the compiler is 9 MB)
const ts = createRequire(__filename)('typescript') as typeof TS;

function sources(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

/** One import of a source file: a file of src/ (relative to the root) or a package, and where it is written. */
interface Import {
  /** `src/engine/job/book.ts`, or the package's name (`vscode`, `node:fs`, `execa`). */
  to: string;
  internal: boolean;
  /** `src/engine/job/run.ts:12` */
  at: string;
}

/**
 * Every file of src/ and what it imports, as the compiler resolves it (tsconfig.json's options):
 * static and type-only imports, re-exports, `require()` and `import()` alike, since a type-only
 * import is a loop for whoever reads the code even when the bundle drops it.
 */
function importGraph(): { graph: Map<string, Import[]>; unresolved: string[] } {
  const config = ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const graph = new Map<string, Import[]>();
  const unresolved: string[] = [];
  const relative = (file: string) => path.relative(ROOT, file).split(path.sep).join('/');
  for (const file of sources(path.join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const imports: Import[] = [];
    for (const { fileName: spec, pos } of ts.preProcessFile(text, true, true).importedFiles) {
      const at = `${relative(file)}:${text.slice(0, pos).split('\n').length}`;
      const resolved = ts.resolveModuleName(spec, file, options, ts.sys).resolvedModule;
      const local = spec.startsWith('.');
      if (local && !resolved) unresolved.push(`${at} '${spec}'`);
      const internal = Boolean(
        resolved && !resolved.isExternalLibraryImport && !resolved.resolvedFileName.includes('node_modules'),
      );
      imports.push({ to: internal ? relative(resolved!.resolvedFileName) : spec, internal, at });
    }
    graph.set(relative(file), imports);
  }
  return { graph, unresolved };
}

/** Every import loop, each once, as `a.ts → b.ts → a.ts` with the line of each import. */
function cycles(graph: Map<string, Import[]>): string[] {
  const found = new Map<string, string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: Import[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    for (const edge of graph.get(file) ?? []) {
      if (!edge.internal) continue;
      if (state.get(edge.to) === 'open') {
        const start = stack.findIndex((step) => step.to === edge.to);
        const loop = [...stack.slice(start + 1), edge];
        const files = loop.map((step) => step.to);
        // one loop found from different starting files is still one loop
        const name = [...files].sort().join(' ');
        if (!found.has(name))
          found.set(name, `${edge.to} → ${loop.map((step) => `${step.to} (${step.at})`).join(' → ')}`);
      } else if (!state.has(edge.to)) {
        stack.push(edge);
        visit(edge.to);
        stack.pop();
      }
    }
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) {
    if (state.has(file)) continue;
    stack.push({ to: file, internal: true, at: file });
    visit(file);
    stack.pop();
  }
  return [...found.values()];
}

/** The imports from files under `from` that break a rule: `forbidden` says which targets do. */
function offenders(graph: Map<string, Import[]>, from: string, forbidden: (imported: Import) => boolean): string[] {
  return [...graph]
    .filter(([file]) => file.startsWith(from))
    .flatMap(([, imports]) => imports.filter(forbidden).map((i) => `${i.at} imports ${i.to}`));
}

describe('layer boundaries', () => {
  const { graph, unresolved } = importGraph();
  const isVscode = (imported: Import) =>
    !imported.internal && (imported.to === 'vscode' || imported.to.startsWith('vscode/'));
  const under = (dir: string) => (imported: Import) => imported.internal && imported.to.startsWith(dir);

  it('the import graph of src/ is whole: every file read, every relative import resolved', () => {
    assert.deepEqual(unresolved, []);
    assert.ok(graph.size > 100, `only ${graph.size} files under src/`);
    // the graph sees what matters below: the editor's own vscode import and the engine's layers
    assert.ok(graph.get('src/extension/extension.ts')?.some(isVscode), 'extension.ts imports vscode');
    assert.ok(
      graph.get('src/engine/job/run.ts')?.some((i) => i.to === 'src/engine/backends/contract.ts'),
      'job/run.ts imports the backend contract',
    );
  });

  it('no import loop anywhere in src/ (type-only imports count)', () => {
    assert.deepEqual(cycles(graph), []);
  });

  it('nothing under src/engine imports vscode, src/cli or src/extension', () => {
    assert.deepEqual(
      offenders(graph, 'src/engine/', (i) => isVscode(i) || under('src/cli/')(i) || under('src/extension/')(i)),
      [],
    );
  });

  it('the editor never imports the command line, nor the command line the editor or vscode: shared text lives in the engine', () => {
    assert.deepEqual(offenders(graph, 'src/extension/', under('src/cli/')), []);
    assert.deepEqual(
      offenders(graph, 'src/cli/', (i) => isVscode(i) || under('src/extension/')(i)),
      [],
    );
  });

  it('no process is started through a shell', () => {
    const offenders = sources(path.join(ROOT, 'src')).filter((file) =>
      /shell:\s*true|execaCommand|\bexecSync\(|child_process['"].*\bexec\b/.test(readFileSync(file, 'utf8')),
    );
    assert.deepEqual(offenders, []);
  });
});
