// Runs ruff on the repository's Python files with the settings of ruff.toml: `check` lints, `format` formats,
// `format --check` only reports. Debian 12 packages no ruff and PyPI is out of reach here, so this drives
// ruff's own WebAssembly build (@astral-sh/ruff-wasm-nodejs): the same linter and formatter, without their
// file discovery, which is done below (git's file list, then ruff.toml's exclude and per-file-ignores globs).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'smol-toml';
import { PositionEncoding, Workspace } from '@astral-sh/ruff-wasm-nodejs';

const [mode, ...flags] = process.argv.slice(2);
const checkOnly = flags.includes('--check');
const known = mode === 'format' ? ['--check'] : [];
if ((mode !== 'check' && mode !== 'format') || flags.some((flag) => !known.includes(flag))) {
  console.error('usage: node scripts/ruff.mjs check | format [--check]');
  process.exit(2);
}

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const config = parse(readFileSync(path.join(root, 'ruff.toml'), 'utf8'));
const matches = (file, globs) => (globs ?? []).some((glob) => path.matchesGlob(file, glob));

// Tracked and new files alike, as ruff would find them, less what .gitignore leaves out.
const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', '*.py'], {
  cwd: root,
  encoding: 'utf8',
  timeout: 60_000,
});
const excluded = [
  ...(config['extend-exclude'] ?? []),
  ...((mode === 'check' ? config.lint : config.format)?.exclude ?? []),
];
const files = [...new Set(listed.split('\0'))]
  .filter((file) => file && existsSync(path.join(root, file)) && !matches(file, excluded))
  .sort();

// The WebAssembly build takes the settings only: file selection stays here.
const { 'extend-exclude': _extendExclude, ...settings } = config;
const { 'per-file-ignores': perFileIgnores = {}, exclude: _lintExclude, ...lintSettings } = config.lint ?? {};
const { exclude: _formatExclude, ...formatSettings } = config.format ?? {};
const workspace = new Workspace({ ...settings, lint: lintSettings, format: formatSettings }, PositionEncoding.Utf16);

let failures = 0;
let reformatted = 0;
for (const file of files) {
  const source = readFileSync(path.join(root, file), 'utf8');
  if (mode === 'check') {
    const ignored = Object.entries(perFileIgnores)
      .filter(([glob]) => path.matchesGlob(file, glob))
      .flatMap(([, codes]) => codes);
    for (const finding of workspace.check(source)) {
      // a syntax error has no code and is never ignored
      if (finding.code && ignored.some((prefix) => finding.code.startsWith(prefix))) continue;
      const { row, column } = finding.start_location;
      console.log(`${file}:${row}:${column}: ${finding.code ?? 'syntax-error'} ${finding.message}`);
      failures++;
    }
    continue;
  }
  let formatted;
  try {
    formatted = workspace.format(source);
  } catch (error) {
    console.log(`${file}: cannot format: ${error instanceof Error ? error.message : String(error)}`);
    failures++;
    continue;
  }
  if (formatted === source) continue;
  if (checkOnly) {
    console.log(`Would reformat: ${file}`);
    failures++;
  } else {
    writeFileSync(path.join(root, file), formatted);
    console.log(`Reformatted: ${file}`);
    reformatted++;
  }
}

const version = Workspace.version();
if (mode === 'check') {
  console.log(`ruff ${version} check: ${failures} finding(s) in ${files.length} file(s)`);
} else if (checkOnly) {
  console.log(`ruff ${version} format --check: ${failures} of ${files.length} file(s) would change`);
} else {
  console.log(`ruff ${version} format: ${reformatted} of ${files.length} file(s) reformatted`);
}
process.exit(failures > 0 ? 1 : 0);
