/**
 * The marker a venv carries once it is known good, and the checklist that decides whether a
 * cached venv may be reused. The checks are file-system only (well under 5 ms): the
 * interpreter *running* is proven by the runner that starts right after.
 */
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { binaryIdentity, sameBinary, type BinaryIdentity } from './interpreter';

export const MARKER_FILE = '.modelops-venv.json';
export const LAST_USED_FILE = '.last-used';
export const MARKER_SCHEMA = 1;

export interface VenvMarker {
  schema: typeof MARKER_SCHEMA;
  key: string;
  bundle: string;
  /** The bundle's project name (pyproject.toml), for labels; absent when it has none (or in older markers). */
  bundleName?: string;
  bundleDigest: string;
  depsHash: string;
  /** The interpreter the venv was built from. */
  python: BinaryIdentity & { path: string; version: string };
  installer: { name: string; version: string };
  requirements: string[];
  createdAt: string;
  buildMs: number;
  /** How the new venv proved it works before it was put in place. */
  functionalCheck: string;
  /** Set for a force-fresh venv: whose it is, so an orphan can be recognised. */
  owner?: { pid: number; host: string; startTime: string };
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Validity {
  valid: boolean;
  /** The first failed check, in words; "valid" when none failed. */
  reason: string;
  checks: Check[];
  marker?: VenvMarker;
}

export function venvPython(venvDir: string): string {
  return path.join(venvDir, 'bin', 'python');
}

export async function writeMarker(venvDir: string, marker: VenvMarker): Promise<void> {
  const file = path.join(venvDir, MARKER_FILE);
  await fs.writeFile(`${file}.tmp`, JSON.stringify(marker, null, 2));
  await fs.rename(`${file}.tmp`, file);
}

/** The marker as it is, unchecked (for listings of broken venvs); undefined when unreadable. */
export async function readMarker(venvDir: string): Promise<VenvMarker | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(venvDir, MARKER_FILE), 'utf8')) as VenvMarker;
  } catch {
    return undefined;
  }
}

/**
 * The validity checklist, in order; it stops at the first failure because the later checks
 * depend on the earlier ones. `base` is the interpreter a reuse would expect the venv to be
 * built from, when known.
 */
export async function validateVenv(venvDir: string, key: string, base?: BinaryIdentity): Promise<Validity> {
  const checks: Check[] = [];
  const fail = (name: string, detail: string): Validity => {
    checks.push({ name, ok: false, detail });
    return { valid: false, reason: `${name}: ${detail}`, checks };
  };
  const pass = (name: string, detail: string) => checks.push({ name, ok: true, detail });

  try {
    const stat = await fs.stat(venvDir);
    if (!stat.isDirectory()) return fail('directory', `${venvDir} is not a directory`);
  } catch {
    return fail('directory', 'not built yet');
  }
  pass('directory', venvDir);

  let marker: VenvMarker;
  try {
    marker = JSON.parse(await fs.readFile(path.join(venvDir, MARKER_FILE), 'utf8')) as VenvMarker;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fail(
      'marker',
      code === 'ENOENT'
        ? `no ${MARKER_FILE}: the build never finished`
        : `${MARKER_FILE} is unreadable (${(error as Error).message})`,
    );
  }
  if (marker?.schema !== MARKER_SCHEMA || typeof marker.python?.realPath !== 'string') {
    return fail('marker', `${MARKER_FILE} is not a schema-${MARKER_SCHEMA} marker`);
  }
  pass('marker', `written ${marker.createdAt} after install and ${marker.functionalCheck}`);

  if (marker.key !== key) return fail('key', `the marker says ${marker.key}, the directory is ${key}`);
  pass('key', key);

  const python = venvPython(venvDir);
  let target: BinaryIdentity;
  try {
    target = await binaryIdentity(python);
    await fs.access(target.realPath, fsConstants.X_OK);
  } catch {
    const link = await fs.readlink(python).catch(() => undefined);
    return fail('interpreter', link ? `bin/python points to ${link}, which does not exist` : 'bin/python is missing');
  }
  pass('interpreter', `bin/python → ${target.realPath}`);

  if (!sameBinary(target, marker.python)) {
    return fail(
      'interpreter identity',
      `bin/python is now ${describeBinary(target)}, the venv was built from ${describeBinary(marker.python)}`,
    );
  }
  if (base && !sameBinary(base, marker.python)) {
    return fail(
      'interpreter identity',
      `the requested interpreter is ${describeBinary(base)}, the venv was built from ${describeBinary(marker.python)}`,
    );
  }
  pass('interpreter identity', describeBinary(target));

  const cfgVersion = await pyvenvVersion(venvDir);
  if (cfgVersion !== marker.python.version) {
    return fail('version', `pyvenv.cfg says ${cfgVersion ?? 'nothing'}, the marker ${marker.python.version}`);
  }
  pass('version', `Python ${cfgVersion}`);

  return { valid: true, reason: 'valid', checks, marker };
}

export function describeBinary(identity: BinaryIdentity): string {
  return `${identity.realPath} (${identity.size} bytes, modified ${new Date(identity.mtimeMs).toISOString()})`;
}

/** `version_info` (Python ≥ 3.11, uv) or `version` from pyvenv.cfg. */
async function pyvenvVersion(venvDir: string): Promise<string | undefined> {
  try {
    const text = await fs.readFile(path.join(venvDir, 'pyvenv.cfg'), 'utf8');
    const value = (name: string) => new RegExp(`^\\s*${name}\\s*=\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1];
    return value('version_info')?.split('.').slice(0, 3).join('.') ?? value('version');
  } catch {
    return undefined;
  }
}
