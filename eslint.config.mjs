// ESLint for the TypeScript sources and the Node scripts: the recommended sets, a few type-aware rules for
// promises, and the layering of DESIGN.md ("Layers") with no import cycles. Formatting is Prettier's
// (eslint-config-prettier turns off every rule that would fight it).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'out/', 'tmp/', 'test-results/', '.vscode-test/', '**/node_modules/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2022, sourceType: 'module' },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { 'import-x': importX },
    settings: {
      // import-x follows imports only into files it can parse: TypeScript's, through typescript-eslint.
      'import-x/extensions': ['.ts', '.mjs', '.cjs', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.mjs', '.cjs', '.js', '.json'] })],
    },
    rules: {
      // The one import loop the issue names (job/run.ts <-> backends/dask) must not come back in another form.
      'import-x/no-cycle': 'error',
      // `_` marks a parameter or binding kept for its position (tsc's noUnusedParameters agrees).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Type-aware rules cost one TypeScript program for the whole tree (tsconfig.json): only those that
    // catch a swallowed error, which the project's rules forbid.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // DESIGN.md "Layers": the engine is pure Node.js, below the command line and the editor.
    files: ['src/engine/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'src/engine never imports vscode.' }] }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            { target: './src/engine', from: './src/cli', message: 'src/engine never imports the command line.' },
            { target: './src/engine', from: './src/extension', message: 'src/engine never imports the editor.' },
          ],
        },
      ],
    },
  },
  {
    // The editor and the command line are siblings: what both need lives in the engine.
    files: ['src/extension/**'],
    rules: {
      'import-x/no-restricted-paths': [
        'error',
        { zones: [{ target: './src/extension', from: './src/cli', message: 'put what both share in src/engine.' }] },
      ],
    },
  },
  {
    // The JSON-RPC methods are typed as vscode-jsonrpc's own protocols are: `XRequest.method`, `XRequest.type`.
    files: ['src/engine/**/protocol.ts'],
    rules: { '@typescript-eslint/no-namespace': 'off' },
  },
  {
    // Tests read the records and events the engine wrote (parsed JSON) and reach into any field of them.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Node scripts outside the TypeScript program (build, test runners, benchmarks).
    files: ['**/*.mjs', '**/*.cjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  // CommonJS is what a .cjs file is: require() is its import.
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Functions that Playwright runs inside the editor's page.
    files: ['test/e2e/**', 'test/bench/editor.mjs'],
    languageOptions: { globals: { ...globals.browser } },
  },
  prettier,
  {
    // Prettier wraps code at 120 columns but leaves comments long; strings, templates and regexps stay whole.
    rules: {
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
);
