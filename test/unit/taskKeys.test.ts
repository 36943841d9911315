/** Task keys (job/taskKeys.ts): production's Dask keys, built and read in one module. */
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  aggKey,
  folderKey,
  parseAggKey,
  parseFolderKey,
  parseSimKey,
  shortKey,
  simKey,
} from '../../src/engine/job/taskKeys';
import { ROOT } from './helpers';

const PARAM = 'ab'.repeat(32);

describe('task keys', () => {
  it('a replicate is sim-{param_id}-{i}, an aggregation agg-{param_id}, and each reads back', () => {
    assert.equal(simKey(PARAM, 7), `sim-${PARAM}-7`);
    assert.equal(aggKey(PARAM), `agg-${PARAM}`);
    assert.deepEqual(parseSimKey(simKey(PARAM, 7)), { paramId: PARAM, replicate: 7 });
    assert.equal(parseAggKey(aggKey(PARAM)), PARAM);
  });

  it('anything else is no key: the other kind, a short param_id, a missing index, a prefix', () => {
    for (const key of [aggKey(PARAM), `sim-${PARAM}`, 'sim-abcd-1', `sim-${PARAM}-x`, `xsim-${PARAM}-1`])
      assert.equal(parseSimKey(key), undefined, key);
    for (const key of [simKey(PARAM, 0), `agg-${PARAM}-1`, 'agg-abcd', `agg-${PARAM.toUpperCase()}`])
      assert.equal(parseAggKey(key), undefined, key);
  });

  it('shown short: the param_id cut to 8 digits; no key is "runner"; other text as it is', () => {
    assert.equal(shortKey(simKey(PARAM, 12)), 'sim-abababab-12');
    assert.equal(shortKey(aggKey(PARAM)), 'agg-abababab');
    assert.equal(shortKey(undefined), 'runner');
    assert.equal(shortKey('replicate'), 'replicate');
  });

  it("as a results document names a task: the param_id cut to the folder's 16 digits, read back either way", () => {
    assert.equal(folderKey(simKey(PARAM, 3)), `sim-${PARAM.slice(0, 16)}-3`);
    assert.equal(folderKey(aggKey(PARAM)), `agg-${PARAM.slice(0, 16)}`);
    assert.deepEqual(parseFolderKey(folderKey(simKey(PARAM, 3))), {
      kind: 'sim',
      param: PARAM.slice(0, 16),
      replicate: '3',
    });
    assert.deepEqual(parseFolderKey(aggKey(PARAM)), { kind: 'agg', param: PARAM, replicate: undefined });
    assert.equal(parseFolderKey(`sim-${PARAM.slice(0, 12)}-3`), undefined);
  });

  it('no other TypeScript file of src/ writes a key by hand (the event names agg-start, agg-done, dask/sim-done aside)', () => {
    const files = (readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[]).filter(
      (f) => f.endsWith('.ts') && !f.endsWith(path.join('job', 'taskKeys.ts')),
    );
    const offenders = files.flatMap((file) =>
      readFileSync(path.join(ROOT, 'src', file), 'utf8')
        .split('\n')
        .map((line, i) => [line.replace(/\b(?:agg-(?:start|done)|dask\/sim-done)\b/g, ''), i + 1] as const)
        .filter(([line]) => !/^\s*(?:\/?\*|\/\/)/.test(line) && /['"`](?:sim|agg)-/.test(line))
        .map(([, n]) => `src/${file}:${n}`),
    );
    assert.deepEqual(offenders, []);
  });
});
