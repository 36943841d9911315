/**
 * Task keys, as production's Dask keys are: `sim-{param_id}-{i}` for replicate i of a parameter
 * set, `agg-{param_id}` for its aggregation. They name tasks in events, result records and the
 * Dask driver's messages, so they are built and read here only: the Dask driver
 * (src/runner/modelops_dask_driver.py) is handed every key it submits and never parses one.
 */

const SIM = /^sim-([0-9a-f]{64})-(\d+)$/;
const AGG = /^agg-([0-9a-f]{64})$/;

export function simKey(paramId: string, replicate: number): string {
  return `sim-${paramId}-${replicate}`;
}

export function aggKey(paramId: string): string {
  return `agg-${paramId}`;
}

/** A replicate's task key read back: its parameter set and index; undefined for any other key. */
export function parseSimKey(key: string): { paramId: string; replicate: number } | undefined {
  const match = SIM.exec(key);
  return match ? { paramId: match[1], replicate: Number(match[2]) } : undefined;
}

/** An aggregation's task key read back: its parameter set's param_id; undefined for any other key. */
export function parseAggKey(key: string): string | undefined {
  return AGG.exec(key)?.[1];
}

/** A task key for people: the param_id cut to 8 digits (`sim-1a2b3c4d-7`); any other text as it is. */
export function shortKey(key: string | undefined): string {
  if (!key) return 'runner';
  const sim = parseSimKey(key);
  if (sim) return `sim-${sim.paramId.slice(0, 8)}-${sim.replicate}`;
  const agg = parseAggKey(key);
  return agg ? `agg-${agg.slice(0, 8)}` : key;
}

/**
 * A key as a results document names its task: the param_id whole, or cut to the 16 digits the
 * results folder names its set by; `replicate` as written (a sim key's index).
 */
export function parseFolderKey(key: string): { kind: 'sim' | 'agg'; param: string; replicate?: string } | undefined {
  const match = /^(agg|sim)-([0-9a-f]{16}|[0-9a-f]{64})(?:-(\d+))?$/.exec(key);
  return match ? { kind: match[1] as 'sim' | 'agg', param: match[2], replicate: match[3] } : undefined;
}

/** `agg-<param_id>` → `agg-<param16>`; `sim-<param_id>-<i>` → `sim-<param16>-<i>`: the folder's names. */
export function folderKey(key: string): string {
  return key.replace(/^(agg|sim)-([0-9a-f]{16})[0-9a-f]{48}/, '$1-$2');
}
