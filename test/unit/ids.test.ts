/** param_id and replicate seeds against Python's hashlib, computed in the test itself. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { canonicalJson, paramId, replicateSeeds } from '../../src/engine/job/ids';
import { parsePythonJson, pyFloatRepr } from '../../src/engine/pyjson/pyjson';
import type { Params } from '../../src/engine/job/ids';

/** The same JSON text, read by Python's json module (ints stay ints, floats floats). */
const CASES = [
  '{"beta": 0.3, "gamma": 0.1}',
  '{"a": 1e-05, "b": 0.1, "c": 1e+16, "d": 1e16, "e": 1.5e-7, "f": 123456789.125}',
  '{"n": 1, "x": 1.0, "y": -0.0, "z": 100, "w": 1E5}',
  '{"big": 123456789012345678901234567890, "neg": -9007199254740993}',
  '{"ß": 1, "é": "naïve ☃", "𝔘": 2.5, "ｚ": 3, "a": true, "b": false, "s": "quote \\" and \\\\ and \\n"}',
  '{"tiny": 5e-324, "max": 1.7976931348623157e308, "third": 0.3333333333333333, "sum": 0.30000000000000004}',
  '{"p": 0.0001, "q": 0.00001, "r": 9999999999999998.0, "t": 1234567890123456.7}',
];

const PYTHON = `
import hashlib, json, sys
out = []
for text in json.loads(sys.stdin.read()):
    params = json.loads(text)
    canon = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    pid = hashlib.blake2b(("contracts:param:v1|" + canon).encode(), digest_size=32).hexdigest()
    seeds = [int.from_bytes(hashlib.blake2b(f"{pid}:{i}".encode(), digest_size=8).digest(), "big") % 2**32 for i in range(5)]
    out.append({"canon": canon, "param_id": pid, "seeds": seeds})
print(json.dumps(out))
`;

describe('ids and seeds equal Python', () => {
  const python = spawnSync('python3', ['-c', PYTHON], { input: JSON.stringify(CASES), encoding: 'utf8' });
  const expected = JSON.parse(python.stdout || '[]') as { canon: string; param_id: string; seeds: number[] }[];

  it('python computed the reference', () => assert.equal(expected.length, CASES.length, python.stderr));

  CASES.forEach((text, i) => {
    it(`param_id, canonical JSON and seeds of ${text}`, () => {
      const params = parsePythonJson(text) as Params;
      assert.equal(canonicalJson(params), expected[i].canon);
      assert.equal(paramId(params), expected[i].param_id);
      assert.deepEqual(replicateSeeds(paramId(params), 5), expected[i].seeds);
    });
  });

  it("floats are formatted as Python's repr", () => {
    const table: [number, string][] = [
      [1e-5, '1e-05'],
      [0.1, '0.1'],
      [1e16, '1e+16'],
      [1e15, '1000000000000000.0'],
      [1, '1.0'],
      [-0, '-0.0'],
      [1.5e300, '1.5e+300'],
      [0.0001, '0.0001'],
      [123.456, '123.456'],
      [2.5e-7, '2.5e-07'],
    ];
    for (const [value, repr] of table) assert.equal(pyFloatRepr(value), repr, String(value));
  });
});
