/**
 * A bundle's dependency files: production's deps hash over them, the requirements to install
 * (each with the file and line it came from, so a failure can point there), and
 * `requires-python`.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { Failure, type SourceLocation } from '../failure';

/** Production's order (process_manager.py `_compute_deps_hash`): raw bytes, concatenated. */
export const DEPS_FILES = ['uv.lock', 'poetry.lock', 'requirements.txt', 'pyproject.toml'] as const;

export interface Requirement {
  /** As written, e.g. `numpy>=1.20; python_version > "3.8"`. */
  spec: string;
  /** PEP 503-normalised project name, e.g. `numpy`. */
  name: string;
  file: string;
  line: number;
}

export interface BundleDeps {
  /** BLAKE2b-8 over the files present, 16 hex digits; the venv key uses the first 8. */
  depsHash: string;
  filesHashed: string[];
  /** Where the requirements come from. */
  source: 'pyproject.toml' | 'requirements.txt' | 'none';
  requirements: Requirement[];
  /** `requirements.txt` lines that are pip options (`--find-links …`), passed on as they are. */
  requirementOptions: string[];
  requiresPython?: { spec: string; location: SourceLocation };
  /** `[project].name` of pyproject.toml, when it has one: how people call the bundle. */
  projectName?: string;
}

export async function readBundleDeps(bundleDir: string): Promise<BundleDeps> {
  const contents = new Map<string, Buffer>();
  for (const name of DEPS_FILES) {
    const bytes = await fs.readFile(path.join(bundleDir, name)).catch(() => undefined);
    if (bytes) contents.set(name, bytes);
  }
  const depsHash = bytesToHex(blake2b(Buffer.concat([...contents.values()]), { dkLen: 8 }));
  const deps: BundleDeps = {
    depsHash,
    filesHashed: [...contents.keys()],
    source: 'none',
    requirements: [],
    requirementOptions: [],
  };

  const pyproject = contents.get('pyproject.toml');
  if (pyproject) {
    const file = path.join(bundleDir, 'pyproject.toml');
    const text = pyproject.toString('utf8');
    const project = readPyproject(text, file).project as
      { name?: unknown; dependencies?: unknown; 'requires-python'?: unknown } | undefined;
    if (typeof project?.name === 'string' && project.name.trim()) deps.projectName = project.name.trim();
    if (typeof project?.['requires-python'] === 'string') {
      deps.requiresPython = {
        spec: project['requires-python'],
        location: { file, line: lineOfKey(text, 'requires-python') },
      };
    }
    if (project?.dependencies !== undefined) {
      if (!Array.isArray(project.dependencies) || !project.dependencies.every((d) => typeof d === 'string')) {
        throw new Failure(
          'bad-input',
          `${file}: [project].dependencies must be a list of strings.`,
          {},
          { file, line: lineOfKey(text, 'dependencies') },
        );
      }
      deps.source = 'pyproject.toml';
      deps.requirements = (project.dependencies as string[]).map((spec) => ({
        spec,
        name: requirementName(spec),
        file,
        line: lineOfRequirement(text, spec),
      }));
      return deps;
    }
  }
  const requirements = contents.get('requirements.txt');
  if (requirements) {
    deps.source = 'requirements.txt';
    const file = path.join(bundleDir, 'requirements.txt');
    requirements
      .toString('utf8')
      .split('\n')
      .forEach((raw, index) => {
        const line = raw.replace(/(^|\s)#.*$/, '').trim();
        if (!line) return;
        if (line.startsWith('-')) deps.requirementOptions.push(line);
        else deps.requirements.push({ spec: line, name: requirementName(line), file, line: index + 1 });
      });
  }
  return deps;
}

function readPyproject(text: string, file: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
      throw new Failure(
        'bad-input',
        `${file} is not valid TOML: ${reason} (line ${error.line}, column ${error.column}).`,
        {},
        { file, line: error.line },
      );
    }
    throw error;
  }
}

/** PEP 503 normalised name of a PEP 508 requirement. */
export function requirementName(spec: string): string {
  const match = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(spec);
  return (match ? match[1] : spec.trim()).toLowerCase().replace(/[-_.]+/g, '-');
}

function lineOfKey(text: string, key: string): number {
  const index = text.split('\n').findIndex((line) => new RegExp(`^\\s*["']?${key}["']?\\s*=`).test(line));
  return index + 1 || 1;
}

/** The line that writes this requirement: the quoted spec itself, else the first line naming it. */
function lineOfRequirement(text: string, spec: string): number {
  const lines = text.split('\n');
  let index = lines.findIndex((line) => line.includes(`"${spec}"`) || line.includes(`'${spec}'`));
  if (index < 0) {
    const name = requirementName(spec);
    index = lines.findIndex((line) => requirementName(line.replace(/^[\s[,"']+/, '')) === name);
  }
  return index + 1 || lineOfKey(text, 'dependencies');
}
