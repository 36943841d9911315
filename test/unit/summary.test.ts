/** The built-in summary aggregation: every JSON-number output summarised, whatever its name. */
import * as assert from 'node:assert/strict';
import { summarize } from '../../src/engine/job/summary';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('the built-in summary', () => {
  it('summarises outputs named like Object.prototype members (constructor, toString, __proto__, hasOwnProperty)', () => {
    const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'value'];
    const replicates = [1, 2, 3].map((x) => Object.fromEntries(names.map((name) => [name, json(x)])));
    const summary = summarize(replicates);
    for (const name of names) {
      assert.ok(Object.hasOwn(summary.outputs, name), `${name} is summarised`);
      assert.deepEqual(summary.outputs[name], { count: 3, mean: 2, std: Math.sqrt(2 / 3), min: 1, max: 3 }, name);
    }
    assert.deepEqual(Object.keys(summary.skipped), []);
    // as written to aggs/*.json
    assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(summary)).outputs).sort(), [...names].sort());
  });

  it('names what it cannot summarise, under those names too', () => {
    const summary = summarize([
      { constructor: Buffer.from('not json'), toString: json([1, 2]), valueOf: json(1) },
      { valueOf: json({ a: 1 }) },
    ]);
    assert.deepEqual(
      { ...summary.skipped },
      {
        constructor: 'not JSON',
        toString: 'a list, not a number or an object of numbers',
        valueOf: 'mixes numbers and objects',
      },
    );
    assert.deepEqual(Object.keys(summary.outputs), []);
  });
});
