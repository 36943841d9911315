// The unit tests (test/unit, built to out/unit): the files run in two parallel workers, the
// slowest first so that neither worker is left alone with a long file at the end.
// Global fixtures (the scratch venv cache): test/unit/globalFixtures.cjs.
const { existsSync, readdirSync } = require('node:fs');

const SLOWEST_FIRST = ['cliUnix', 'resultsFolder', 'job', 'venvContract', 'handshake', 'venv', 'endings', 'replicate'];
const built = existsSync('out/unit') ? readdirSync('out/unit') : []; // not built yet: mocha says no test found
const all = built.filter((name) => name.endsWith('.test.js')).map((name) => name.slice(0, -'.test.js'.length));
const rank = (name) => (SLOWEST_FIRST.includes(name) ? SLOWEST_FIRST.indexOf(name) : SLOWEST_FIRST.length);
const ordered = [...all].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

module.exports = {
  spec: ordered.map((name) => `out/unit/${name}.test.js`),
  require: ['test/unit/globalFixtures.cjs'],
  parallel: true,
  jobs: 2,
  timeout: 60000,
  'node-option': ['enable-source-maps'],
  reporter: 'spec',
};
