// Bundles the extension and the command line into dist/, and copies the Python runner
// next to them. `--watch` rebuilds on change; `--production` minifies.
import * as esbuild from 'esbuild';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Copies src/runner/*.py to dist/runner/ after every build. */
const copyRunner = {
  name: 'copy-runner',
  setup(build) {
    build.onEnd(() => {
      rmSync('dist/runner', { recursive: true, force: true });
      mkdirSync('dist/runner', { recursive: true });
      cpSync('src/runner', 'dist/runner', { recursive: true, filter: (src) => !src.includes('__pycache__') });
    });
  },
};

/** The command line is the package's `bin`: it must be executable. */
const executableCli = {
  name: 'executable-cli',
  setup(build) {
    build.onEnd(() => {
      if (existsSync('dist/cli.js')) chmodSync('dist/cli.js', 0o755);
    });
  },
};

/** Prints errors in the form of the esbuild problem matcher, for VS Code watch tasks. */
const problemMatcher = {
  name: 'problem-matcher',
  setup(build) {
    build.onStart(() => {
      if (watch) console.log('[watch] build started');
    });
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      if (watch) console.log('[watch] build finished');
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

/** Test and benchmark files, each bundled on its own so mocha runs plain CommonJS. */
function filesUnder(dir, suffix) {
  return readdirSync(dir, { recursive: true })
    .filter((file) => file.endsWith(suffix))
    .map((file) => path.join(dir, file));
}

const entries = [
  { entryPoints: { extension: 'src/extension/extension.ts' }, external: ['vscode'], plugins: [copyRunner] },
  // the `bin` is a small loader that runs cli-main.js through V8's code cache (src/cli/codeCache.ts)
  { entryPoints: { cli: 'src/cli/bin.ts' }, banner: { js: '#!/usr/bin/env node' }, plugins: [executableCli] },
  { entryPoints: { 'cli-main': 'src/cli/main.ts' } },
  { entryPoints: filesUnder('test/bench', '.ts'), outbase: 'test', outdir: 'out' },
  { entryPoints: filesUnder('test/unit', '.test.ts'), outbase: 'test', outdir: 'out', sourcemap: 'inline' },
  { entryPoints: filesUnder('test/dask', '.test.ts'), outbase: 'test', outdir: 'out', sourcemap: 'inline' },
  // the UI test (plain JavaScript) lays out its loopback cluster with the extension-host tests' code
  { entryPoints: { 'shared/clusterLayout': 'test/shared/clusterLayout.ts' }, outdir: 'out' },
  // the extension-host suite runs inside VS Code: vscode and mocha come from there and node_modules
  {
    entryPoints: { 'vscode/suite': 'test/vscode/suite.ts' },
    outdir: 'out',
    external: ['vscode', 'mocha'],
    sourcemap: 'inline',
  },
];

// out/ holds only what this build makes: a test moved or deleted must not run from an old bundle
rmSync('out', { recursive: true, force: true });
const contexts = await Promise.all(
  entries.map((entry) =>
    esbuild.context({ ...common, outdir: 'dist', ...entry, plugins: [...(entry.plugins ?? []), problemMatcher] }),
  ),
);
if (watch) {
  await Promise.all(contexts.map((ctx) => ctx.watch()));
} else {
  await Promise.all(contexts.map((ctx) => ctx.rebuild()));
  await Promise.all(contexts.map((ctx) => ctx.dispose()));
}
