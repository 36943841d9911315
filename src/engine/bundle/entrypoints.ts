/**
 * The entrypoints a bundle offers, found by reading its files, never by importing them: a
 * bundle's Python may take seconds to import, need its venv, or have side effects, and this
 * runs on every completion request in a job file.
 *
 * What counts (production's entrypoint grammar, modelops-contracts entrypoint.py):
 * - a model entrypoint `import.path/scenario` is any Python string literal of that form in the
 *   bundle (a wire function's table of the entrypoints it accepts, e.g. the SIR example's
 *   `ENTRYPOINTS = ("models.sir/baseline",)`), and any `entrypoint:` of `models` in
 *   `.modelops-bundle/registry.yaml` combined with its `scenarios`;
 * - a target entrypoint `module.path:function` is a top-level `def` in a module of a `targets`
 *   package (or a `targets.py`), or a top-level `def` whose name ends in `_target`, and any
 *   `entrypoint:` of `targets` in the registry.
 * The registry is read line by line (its keys and list items), not as full YAML.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { listFiles } from './bundleDir';

export interface FoundEntrypoint {
  value: string;
  kind: 'model' | 'target';
  /** Where it was found: the file (absolute) and its 1-based line. */
  file: string;
  line: number;
}

/** `import.path/scenario`, the import path with at least one dot (modelops-contracts). */
const MODEL_ENTRYPOINT = /^[A-Za-z_][\w.]*\.[A-Za-z_]\w*\/[a-z0-9](?:[a-z0-9\-_.]{0,62}[a-z0-9])?$/;
const STRING_LITERAL = /(["'])((?:(?!\1)[^\\\n])+)\1/g;
const TOP_LEVEL_DEF = /^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(/;
/** A Python file read for entrypoints at most this big: larger ones are data, not a model's table. */
const MAX_SOURCE_BYTES = 1024 * 1024;

export async function findEntrypoints(bundleDir: string): Promise<FoundEntrypoint[]> {
  const found = new Map<string, FoundEntrypoint>();
  const add = (entry: FoundEntrypoint) => {
    const key = `${entry.kind}:${entry.value}`;
    if (!found.has(key)) found.set(key, entry);
  };
  for (const rel of await listFiles(bundleDir)) {
    const file = path.join(bundleDir, ...rel.split('/'));
    if (rel === '.modelops-bundle/registry.yaml') {
      for (const entry of registryEntrypoints(file, await readSmall(file))) add(entry);
      continue;
    }
    if (!rel.endsWith('.py')) continue;
    const text = await readSmall(file);
    if (text === undefined) continue;
    const module = rel
      .slice(0, -'.py'.length)
      .split('/')
      .filter((part) => part !== '__init__')
      .join('.');
    const inTargets = rel.split('/').slice(0, -1).includes('targets') || path.posix.basename(rel) === 'targets.py';
    text.split('\n').forEach((source, index) => {
      for (const match of source.matchAll(STRING_LITERAL)) {
        if (MODEL_ENTRYPOINT.test(match[2])) add({ value: match[2], kind: 'model', file, line: index + 1 });
      }
      const def = TOP_LEVEL_DEF.exec(source);
      if (def && module && ((inTargets && !def[1].startsWith('_')) || def[1].endsWith('_target')))
        add({ value: `${module}:${def[1]}`, kind: 'target', file, line: index + 1 });
    });
  }
  return [...found.values()].sort((a, b) =>
    a.kind === b.kind ? a.value.localeCompare(b.value) : a.kind === 'model' ? -1 : 1,
  );
}

async function readSmall(file: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(file);
    return stat.isFile() && stat.size <= MAX_SOURCE_BYTES ? await fs.readFile(file, 'utf8') : undefined;
  } catch {
    return undefined; // a file that went away or cannot be read offers nothing
  }
}

/**
 * `models: {id: {entrypoint: "models.sir:SIR", scenarios: [baseline, …]}}` → `models.sir/baseline`;
 * `targets: {id: {entrypoint: "targets.x:fn"}}` → `targets.x:fn`. Indentation tells the section.
 */
function registryEntrypoints(file: string, text: string | undefined): FoundEntrypoint[] {
  if (text === undefined) return [];
  const out: FoundEntrypoint[] = [];
  let section: string | undefined;
  let model: { module: string; line: number } | undefined;
  let inScenarios = false;
  const unquote = (value: string) => value.trim().replace(/^(["'])(.*)\1$/, '$2');
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\s+#.*$/, '');
    if (!line.trim()) return;
    const top = /^([A-Za-z_]\w*):\s*$/.exec(line);
    if (top) {
      section = top[1];
      model = undefined;
      inScenarios = false;
      return;
    }
    const entry = /^\s+entrypoint:\s*(\S.*)$/.exec(line);
    if (entry) {
      const value = unquote(entry[1]);
      inScenarios = false;
      if (section === 'targets' && /^[\w.]+:\w+$/.test(value))
        out.push({ value, kind: 'target', file, line: index + 1 });
      if (section === 'models') model = { module: value.split(':')[0], line: index + 1 };
      return;
    }
    const scenarios = /^\s+scenarios:\s*(\[.*\])?\s*$/.exec(line);
    if (scenarios && section === 'models') {
      inScenarios = !scenarios[1];
      for (const name of scenarios[1] ? scenarios[1].slice(1, -1).split(',').map(unquote).filter(Boolean) : [])
        pushScenario(name, index);
      return;
    }
    const item = /^\s+-\s*(\S.*)$/.exec(line);
    if (item && inScenarios) pushScenario(unquote(item[1]), index);
    else if (!item) inScenarios = false;
  });
  return out;

  function pushScenario(name: string, index: number) {
    const value = model && `${model.module}/${name}`;
    if (value && MODEL_ENTRYPOINT.test(value)) out.push({ value, kind: 'model', file, line: index + 1 });
  }
}
