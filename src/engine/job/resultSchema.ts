/**
 * What an earlier run's result file must look like to be counted on a resume. A file that does
 * not pass — a stub `{"status":"ok"}`, a record of another parameter set or seed, outputs whose
 * sizes do not match their bytes — is not a result: its task runs again.
 */
import { PyFloat } from '../pyjson/pyjson';
import { canonicalJson, type Params } from './ids';
import type { AggRecord, SimRecord } from './records';
import type { ParameterSet } from './spec';
import { aggKey, simKey } from './taskKeys';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The record, or why it is not one. */
export type Checked<T> = { record: T } | { why: string };

export function checkSimRecord(value: unknown, set: ParameterSet, replicate: number): Checked<SimRecord> {
  if (!isObject(value)) return { why: 'not a JSON object' };
  const expected: [string, unknown][] = [
    ['key', simKey(set.paramId, replicate)],
    ['param_id', set.paramId],
    ['replicate', replicate],
  ];
  for (const [field, want] of expected)
    if (value[field] !== want)
      return { why: `${field} is ${JSON.stringify(String(value[field]))}, not ${JSON.stringify(String(want))}` };
  if (!isWhole(value.seed) || String(value.seed) !== String(set.seeds[replicate]))
    return { why: `seed ${String(value.seed)} is not this replicate's seed ${String(set.seeds[replicate])}` };
  if (!isWhole(value.attempts) || Number(value.attempts) < 1) return { why: 'attempts is not a whole number from 1' };
  if (typeof value.ms !== 'number' || !(value.ms >= 0)) return { why: 'ms is not a duration' };
  if (value.status === 'ok') {
    const outputs = value.outputs;
    if (!isObject(outputs)) return { why: 'a result with status ok has no outputs' };
    for (const [name, output] of Object.entries(outputs)) {
      const why = checkOutput(output);
      if (why) return { why: `output ${JSON.stringify(name)}: ${why}` };
    }
  } else if (value.status === 'failed') {
    if (typeof value.kind !== 'string' || typeof value.message !== 'string')
      return { why: 'a failed result has no kind and message' };
  } else {
    return { why: `status is ${JSON.stringify(String(value.status))}, not ok or failed` };
  }
  return { record: value as unknown as SimRecord };
}

export function checkAggRecord(value: unknown, set: ParameterSet): Checked<AggRecord> {
  if (!isObject(value)) return { why: 'not a JSON object' };
  if (value.key !== aggKey(set.paramId) || value.param_id !== set.paramId)
    return { why: `it is the aggregation of ${JSON.stringify(String(value.key))}` };
  if (!['ok', 'failed', 'skipped'].includes(value.status as string))
    return { why: `status is ${JSON.stringify(String(value.status))}` };
  if (!isWhole(value.n_replicates) || Number(value.n_replicates) < 0 || Number(value.n_replicates) > set.seeds.length)
    return { why: 'n_replicates is not a count of its replicates' };
  if (!isObject(value.targets)) return { why: 'targets is not an object' };
  if (typeof value.ms !== 'number') return { why: 'ms is not a duration' };
  if (!isObject(value.params) || !sameParams(value.params as Params, set.params))
    return { why: 'params are not its parameter set' };
  if (value.status !== 'ok' && typeof value.message !== 'string')
    return { why: 'a failed or skipped aggregation has no message' };
  return { record: value as unknown as AggRecord };
}

function checkOutput(output: unknown): string | undefined {
  if (!isObject(output) || typeof output.inline !== 'string' || !isWhole(output.size)) return 'not {size, inline}';
  const { inline } = output;
  if (inline.length % 4 !== 0 || !BASE64.test(inline)) return 'inline is not base64';
  const padding = inline.endsWith('==') ? 2 : inline.endsWith('=') ? 1 : 0;
  if ((inline.length / 4) * 3 - padding !== Number(output.size))
    return `size ${String(output.size)} is not the size of its bytes`;
  return undefined;
}

function sameParams(a: Params, b: Params): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

function isWhole(value: unknown): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof PyFloat);
}
