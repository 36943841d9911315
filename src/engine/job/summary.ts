/**
 * The built-in aggregation, so "no aggregated results" is never an outcome: for every output
 * whose bytes are JSON — a number, or an object of numbers — count, mean, population std, min
 * and max (per key for objects). Outputs that are not such JSON are named, not dropped.
 */
export interface Stats {
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

export interface Summary {
  /** output name → stats (a number output) or key → stats (an object output) */
  outputs: Record<string, Stats | Record<string, Stats>>;
  /** Outputs that could not be summarised, and why. */
  skipped: Record<string, string>;
  n_replicates: number;
}

class Accumulator {
  private values: number[] = [];
  add(value: number): void {
    this.values.push(value);
  }
  stats(): Stats {
    const n = this.values.length;
    const mean = this.values.reduce((a, b) => a + b, 0) / n;
    const variance = this.values.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    const min = this.values.reduce((a, b) => (b < a ? b : a), Infinity);
    const max = this.values.reduce((a, b) => (b > a ? b : a), -Infinity);
    return { count: n, mean, std: Math.sqrt(variance), min, max };
  }
}

/** `replicates`: each replicate's outputs as raw bytes, by output name. */
export function summarize(replicates: Record<string, Buffer>[]): Summary {
  const numbers = new Map<string, Accumulator>();
  const objects = new Map<string, Map<string, Accumulator>>();
  // output names are the bundle's: keyed without a prototype, so `constructor`, `toString` or
  // `__proto__` are outputs like any other (on a plain object `in` finds them inherited)
  const skipped: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const outputs of replicates) {
    for (const [name, bytes] of Object.entries(outputs)) {
      if (name in skipped) continue;
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString('utf8'));
      } catch {
        skipped[name] = 'not JSON';
        continue;
      }
      if (typeof value === 'number' && !numbers.has(name) && objects.has(name))
        skipped[name] = 'mixes numbers and objects';
      else if (typeof value === 'number') accumulator(numbers, name).add(value);
      else if (
        value &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === 'number')
      ) {
        if (numbers.has(name)) {
          skipped[name] = 'mixes numbers and objects';
          continue;
        }
        const perKey = objects.get(name) ?? new Map<string, Accumulator>();
        objects.set(name, perKey);
        for (const [key, v] of Object.entries(value as Record<string, number>)) accumulator(perKey, key).add(v);
      } else {
        skipped[name] = Array.isArray(value)
          ? 'a list, not a number or an object of numbers'
          : 'not a number or an object of numbers';
      }
    }
  }
  const outputs: Summary['outputs'] = Object.create(null) as Summary['outputs'];
  for (const [name, acc] of numbers) if (!(name in skipped)) outputs[name] = acc.stats();
  for (const [name, perKey] of objects) {
    if (name in skipped) continue;
    outputs[name] = Object.fromEntries([...perKey].map(([key, acc]) => [key, acc.stats()]));
  }
  return { outputs, skipped, n_replicates: replicates.length };
}

function accumulator(map: Map<string, Accumulator>, key: string): Accumulator {
  let acc = map.get(key);
  if (!acc) map.set(key, (acc = new Accumulator()));
  return acc;
}

/** The value at quantile `q` of ascending `sorted` (nearest rank); undefined when there is none. */
export function quantile(sorted: readonly number[], q: number): number | undefined {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1) + 0.5))] : undefined;
}
