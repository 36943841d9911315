/**
 * Venv labels a person can tell apart (issue 11), and a prune limited to what a confirmation
 * listed. A real venv is built from a real interpreter for the label; the prune runs on a real
 * cache directory.
 */
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { resolvePython } from '../../src/engine/process/python';
import { VenvCache } from '../../src/engine/venv/cache';
import { venvLabels } from '../../src/engine/venv/describe';
import { probeInterpreter } from '../../src/engine/venv/interpreter';
import { scratchDir, writeBundle } from './helpers';

const scratch = scratchDir('mo-venv-labels-');

describe('venv labels', function () {
  this.timeout(120_000);

  it("a built venv is named after its bundle's project, its Python and its dependency count", async () => {
    const bundle = writeBundle(path.join(scratch, 'sir-bundle'), {
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {}\n',
      'pyproject.toml': '[project]\nname = "sir-example"\nversion = "1"\ndependencies = []\n',
    });
    const plain = writeBundle(path.join(scratch, 'plain'), {
      'wire.py': 'def wire(entrypoint, params, seed):\n    return {}\n',
    });
    const cache = new VenvCache({ dir: path.join(scratch, 'venvs') });
    const base = await probeInterpreter((await resolvePython()).path);
    for (const dir of [bundle, plain]) await (await cache.ensure(dir, base)).release();
    const entries = await cache.list();
    const labels = venvLabels(entries);
    const xy = base.versionXY;
    assert.deepEqual(entries.map((e) => labels.get(e.key)).sort(), [
      `plain · py${xy} · 0 deps`,
      `sir-example · py${xy} · 0 deps`,
    ]);
  });

  it('bundles whose folders share a name get their parent folder; a venv without a marker is called by its key', () => {
    const labels = venvLabels([
      { key: 'aaa-py3.11-1', bundle: '/work/sir/bundle', python: '3.11.2', deps: 2 },
      { key: 'bbb-py3.12-2', bundle: '/work/seir/bundle', python: '3.12.1', deps: 1 },
      { key: 'ccc-py3.11-3-fresh-99', bundle: '/work/other', python: '3.11.2', deps: 0 },
      { key: 'ddd-py3.11-4' },
    ]);
    assert.deepEqual(
      [...labels.values()],
      [
        'sir/bundle · py3.11 · 2 deps',
        'seir/bundle · py3.12 · 1 dep',
        'other · py3.11 · 0 deps · fresh',
        'ddd-py3.11-4',
      ],
    );
  });

  it('prune({ only }) removes only the venvs named, even when more are broken', async () => {
    const dir = path.join(scratch, 'prune-venvs');
    for (const key of ['111111111111-py3.11-aaaaaaaa', '222222222222-py3.11-bbbbbbbb'])
      mkdirSync(path.join(dir, key, 'bin'), { recursive: true });
    const cache = new VenvCache({ dir });
    const planned = await cache.prune({ dryRun: true });
    assert.equal(planned.removed.length, 2);
    const result = await cache.prune({ only: ['111111111111-py3.11-aaaaaaaa'] });
    assert.deepEqual(
      result.removed.map((r) => r.key),
      ['111111111111-py3.11-aaaaaaaa'],
    );
    assert.equal(existsSync(path.join(dir, '111111111111-py3.11-aaaaaaaa')), false);
    assert.equal(existsSync(path.join(dir, '222222222222-py3.11-bbbbbbbb')), true);
  });
});
