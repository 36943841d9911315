/**
 * The venv cache: one venv per `{digest12}-py{X.Y}-{deps8}` key, never silently wrong.
 * A cached venv is reused only when its validity checklist passes; otherwise it is rebuilt and
 * the reason said. Builds are atomic (build.ts) and locked per key across processes (lock.ts).
 */
import { satisfies, validRange } from '@renovatebot/pep440';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleDigest } from '../bundle/bundleDir';
import { readBundleDeps, type BundleDeps } from '../bundle/deps';
import { describeSystemError, explainErrno, systemError } from '../errno';
import { Failure } from '../failure';
import { buildVenv, installLogFile, tempPrefix } from './build';
import { probeInterpreter, type InterpreterInfo } from './interpreter';
import { DirLock, holderGone, readOwner, type LockEvent, type LockOwner } from '../lock/dirLock';
import { venvsDirProblem } from './venvsDir';
import {
  LAST_USED_FILE,
  MARKER_FILE,
  readMarker,
  validateVenv,
  venvPython,
  type Check,
  type Validity,
  type VenvMarker,
} from './marker';

export type VenvEvent =
  | { type: 'venv-reuse'; key: string; path: string }
  | { type: 'venv-build'; key: string; reason: string }
  | { type: 'venv-built'; key: string; path: string; ms: number; installer: string; logFile: string }
  | { type: 'venv-removed'; key: string; reason: string }
  | LockEvent;

export interface VenvCacheOptions {
  /** The venvs directory (see `venvsDir`). */
  dir: string;
  /** Appended to every install command (pip or uv), e.g. `--find-links /wheels --no-index`. */
  extraInstallArgs?: string[];
  installTimeoutMs?: number;
  /** Environment for builds and installs, on top of the inherited one. */
  env?: Record<string, string>;
  onEvent?: (event: VenvEvent) => void;
}

export interface VenvLease {
  key: string;
  path: string;
  /** The venv's interpreter, to start runners with. */
  python: string;
  built: boolean;
  /** Why it was built, or "valid" when reused. */
  reason: string;
  fresh: boolean;
  /** Done with it: a force-fresh venv is removed; a cached one stays. */
  release(): Promise<void>;
}

export interface EnsureOptions {
  /** Build a private venv for this run and remove it on release. */
  forceFresh?: boolean;
  /** Already known (the job engine computes it once per job). */
  digest?: string;
  /**
   * The key the venv must have (a reproduction of a job's replicate: the job's key); any other
   * key is refused before anything is built, saying which part differs.
   */
  expectKey?: string;
}

export interface VenvEntry {
  key: string;
  path: string;
  bundle?: string;
  /** The bundle's project name, when its marker records one. */
  bundleName?: string;
  python?: string;
  /** How many requirements were installed into it (from its marker). */
  deps?: number;
  sizeBytes: number;
  createdAt?: string;
  lastUsedAt?: string;
  valid: boolean;
  reason: string;
  /** A private venv of a run that is gone, or a cached one. */
  orphanedFresh: boolean;
  /** Pids whose command line runs this venv's interpreter. */
  usedBy: number[];
  lock?: LockOwner;
}

export interface PruneOptions {
  olderThanDays?: number;
  keep?: number;
  maxSizeGB?: number;
  dryRun?: boolean;
  /** Remove only these of the venvs found (what a confirmation listed): one broken since waits for the next prune. */
  only?: readonly string[];
}

/** How long installing a bundle's dependencies may take (`--install-timeout`). */
export const DEFAULT_INSTALL_TIMEOUT_MS = 15 * 60_000;
const LOCK_MARGIN_MS = 60_000;

/** `MODELOPS_VENVS_DIR`, else the setting, else the per-user cache directory. */
export function venvsDir(setting?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.MODELOPS_VENVS_DIR) return path.resolve(env.MODELOPS_VENVS_DIR);
  if (setting) return path.resolve(setting);
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'modelops-debugger', 'venvs');
}

/** Production's form (process_manager.py `_get_venv_key`), on a bare-hex digest. */
export function venvKey(digest: string, pythonXY: string, depsHash: string): string {
  return `${digest.slice(0, 12)}-py${pythonXY}-${depsHash.slice(0, 8)}`;
}

/** A force-fresh venv's key is its cache key plus `-fresh-<8 hex>`: the key it stands for. */
export function cacheKeyOf(key: string): string {
  return key.replace(/-fresh-[0-9a-f]{8}$/, '');
}

/**
 * The key a venv must have, or a sentence on which part differs: the bundle's digest (its files
 * changed: bad input), the Python version (`python-mismatch`), or the dependency files.
 */
function checkExpectedKey(expected: string, key: string, base: InterpreterInfo): void {
  const want = cacheKeyOf(expected);
  if (want === key) return;
  const parts = (k: string) => /^([0-9a-f]{12})-py(\d+\.\d+)-([0-9a-f]{8})$/.exec(k);
  const [w, k] = [parts(want), parts(key)];
  const why: string[] = [];
  if (w && k) {
    if (w[1] !== k[1]) why.push(`the bundle's digest begins ${k[1]}, not ${w[1]} (its files changed)`);
    if (w[2] !== k[2]) why.push(`the interpreter ${base.realPath} is Python ${k[2]}, not ${w[2]} (give --base-python)`);
    if (w[3] !== k[3]) why.push(`the dependency files hash to ${k[3]}, not ${w[3]}`);
  }
  const kind = w && k && w[2] !== k[2] && w[1] === k[1] ? 'python-mismatch' : 'bad-input';
  throw new Failure(
    kind,
    `The venv would be ${key}, but the run to reproduce used ${want}${why.length ? `: ${why.join('; ')}` : ''}; it would not be the same environment.`,
    { tried: [base.realPath] },
  );
}

/** `MODELOPS_FORCE_FRESH_VENV`: only the string "true", in any case, as in production. */
export function forceFreshFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.MODELOPS_FORCE_FRESH_VENV ?? '').toLowerCase() === 'true';
}

export class VenvCache {
  readonly dir: string;

  constructor(private readonly options: VenvCacheOptions) {
    this.dir = options.dir;
  }

  /**
   * The venv for this bundle and interpreter: validated and reused, or built. Fails before any
   * work when `requires-python` excludes the interpreter.
   */
  async ensure(bundleDir: string, base: InterpreterInfo, options: EnsureOptions = {}): Promise<VenvLease> {
    const deps = await readBundleDeps(bundleDir);
    checkRequiresPython(deps, base);
    const digest = options.digest ?? (await bundleDigest(bundleDir));
    const key = venvKey(digest, base.versionXY, deps.depsHash);
    if (options.expectKey !== undefined) checkExpectedKey(options.expectKey, key, base);
    if (options.forceFresh) return this.buildFresh(key, bundleDir, digest, deps, base);

    const venv = path.join(this.dir, key);
    const first = await validateVenv(venv, key, base);
    if (first.valid) return this.reuse(key, venv);

    await this.checkDir('build');
    const lock = await DirLock.acquire(`${venv}.lock`, {
      timeoutMs: (this.options.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS) + LOCK_MARGIN_MS,
      purpose: `building venv ${key}`,
      failureKind: 'venv-create-failed',
      onEvent: this.options.onEvent,
    });
    try {
      const again = await validateVenv(venv, key, base);
      if (again.valid) return this.reuse(key, venv); // built by whoever held the lock
      await this.clearLeftovers(key, again);
      this.emit({ type: 'venv-build', key, reason: again.reason });
      const result = await buildVenv(this.buildRequest(key, bundleDir, digest, deps, base));
      this.emit({
        type: 'venv-built',
        key,
        path: result.path,
        ms: result.marker.buildMs,
        installer: result.marker.installer.name,
        logFile: result.logFile,
      });
      await touch(path.join(result.path, LAST_USED_FILE));
      return lease(key, result.path, true, again.reason, false, async () => undefined);
    } finally {
      await lock.release();
    }
  }

  async validate(key: string): Promise<Validity> {
    return validateVenv(path.join(this.dir, safeKey(key)), safeKey(key));
  }

  /** Every venv in the cache, broken ones included (with why). */
  async list(): Promise<VenvEntry[]> {
    await this.checkDir('list');
    const dirents = await fs.readdir(this.dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return []; // nothing built yet
      throw new Failure(
        'venv-create-failed',
        `The venvs directory ${this.dir} cannot be read (${explainErrno(error.code ?? 'EIO')}).`,
      );
    });
    // venvs are the visible directories; locks are `<key>.lock`, builds and removals hidden
    const keys = dirents
      .filter((d) => d.isDirectory() && !d.name.startsWith('.') && !d.name.endsWith('.lock'))
      .map((d) => d.name);
    const entries: VenvEntry[] = [];
    for (const key of keys.sort()) entries.push(await this.entry(key));
    return entries;
  }

  /** The checklist of one venv, line by line, plus whether its interpreter actually runs. */
  async inspect(key: string): Promise<VenvEntry & { checks: Check[]; marker?: VenvMarker; logFile: string }> {
    const safe = safeKey(key);
    const validity = await validateVenv(path.join(this.dir, safe), safe);
    if (validity.checks[0]?.ok === false) throw new Failure('bad-input', `No venv ${safe} in ${this.dir}.`);
    return {
      ...(await this.entry(safe, validity)),
      checks: validity.checks,
      marker: validity.marker,
      logFile: installLogFile(this.dir, safe),
    };
  }

  /** Remove one venv; refused while a live process runs its interpreter, unless forced. */
  async remove(key: string, options: { force?: boolean } = {}): Promise<void> {
    const safe = safeKey(key);
    const venv = path.join(this.dir, safe);
    await fs.stat(venv).catch(() => {
      throw new Failure('bad-input', `No venv ${safe} in ${this.dir}.`);
    });
    const users = processesUsing(venv);
    if (users.length && !options.force) {
      throw new Failure(
        'bad-input',
        `Venv ${safe} is in use by pid ${users.join(', ')}; stop those processes or pass --force.`,
      );
    }
    await removeDir(venv);
    await fs.rm(installLogFile(this.dir, safe), { force: true });
    this.emit({
      type: 'venv-removed',
      key: safe,
      reason: users.length ? `removed by request while in use by pid ${users.join(', ')}` : 'removed by request',
    });
  }

  /**
   * Builds a cached venv again from what its marker says it was built for: the same bundle and
   * base interpreter. Refused while the venv is in use, and for a venv whose marker cannot say.
   */
  async rebuild(key: string): Promise<VenvLease> {
    const safe = safeKey(key);
    const marker = await readMarker(path.join(this.dir, safe));
    if (!marker)
      throw new Failure(
        'bad-input',
        `Venv ${safe} cannot be rebuilt: its marker (${MARKER_FILE}) is missing or unreadable, so what it was built for is unknown; delete it and run its bundle again.`,
      );
    await fs.stat(marker.bundle).catch(() => {
      throw new Failure('bad-input', `Venv ${safe} cannot be rebuilt: its bundle ${marker.bundle} is gone.`);
    });
    const base = await probeInterpreter(marker.python.path, this.dir);
    await this.remove(safe);
    return this.ensure(marker.bundle, base);
  }

  /**
   * Remove what is least worth keeping: venvs unused for `olderThanDays`, beyond the `keep`
   * most recently used, or the least recently used until the cache fits `maxSizeGB`. Broken
   * venvs, orphaned private venvs and abandoned build directories always go. Venvs in use stay.
   */
  async prune(
    options: PruneOptions,
  ): Promise<{ removed: { key: string; reason: string; sizeBytes: number }[]; kept: number }> {
    const entries = await this.list();
    const removed: { key: string; reason: string; sizeBytes: number }[] = [];
    const doomed = new Map<string, string>();
    for (const entry of entries) {
      if (entry.orphanedFresh) doomed.set(entry.key, 'private venv of a run that is gone');
      else if (!entry.valid) doomed.set(entry.key, `broken: ${entry.reason}`);
    }
    const byRecency = entries
      .filter((e) => !doomed.has(e.key))
      .sort((a, b) => (b.lastUsedAt ?? '').localeCompare(a.lastUsedAt ?? ''));
    if (options.olderThanDays !== undefined) {
      const cutoff = Date.now() - options.olderThanDays * 86_400_000;
      for (const entry of byRecency)
        if (Date.parse(entry.lastUsedAt ?? entry.createdAt ?? '0') < cutoff)
          doomed.set(entry.key, `unused for more than ${options.olderThanDays} days`);
    }
    if (options.keep !== undefined) {
      for (const entry of byRecency.slice(options.keep))
        if (!doomed.has(entry.key)) doomed.set(entry.key, `beyond the ${options.keep} most recently used`);
    }
    if (options.maxSizeGB !== undefined) {
      let total = byRecency.filter((e) => !doomed.has(e.key)).reduce((sum, e) => sum + e.sizeBytes, 0);
      for (const entry of [...byRecency].reverse()) {
        if (total <= options.maxSizeGB * 1024 ** 3) break;
        if (doomed.has(entry.key)) continue;
        doomed.set(entry.key, `least recently used while the cache exceeds ${options.maxSizeGB} GB`);
        total -= entry.sizeBytes;
      }
    }
    for (const entry of entries) {
      const reason = doomed.get(entry.key);
      if (!reason) continue;
      if (options.only && !options.only.includes(entry.key)) continue;
      if (entry.usedBy.length) continue; // never pull a venv from under a running process
      if (!options.dryRun) {
        await removeDir(entry.path);
        await fs.rm(installLogFile(this.dir, entry.key), { force: true });
        this.emit({ type: 'venv-removed', key: entry.key, reason });
      }
      removed.push({ key: entry.key, reason, sizeBytes: entry.sizeBytes });
    }
    if (!options.dryRun) await this.removeAbandonedBuilds();
    return { removed, kept: entries.length - removed.length };
  }

  /**
   * Why venvs cannot be built here (or, for `list`, why this is not a directory at all), as a
   * `venv-create-failed`; undefined when they can. A read-only cache still serves its valid
   * venvs: only building needs to write.
   */
  async dirProblem(purpose: 'list' | 'build'): Promise<Failure | undefined> {
    return venvsDirProblem(this.dir, purpose);
  }

  // ---- internals ------------------------------------------------------------------------------

  private async checkDir(purpose: 'list' | 'build'): Promise<void> {
    const problem = await venvsDirProblem(this.dir, purpose);
    if (problem) throw problem;
  }

  private async reuse(key: string, venv: string): Promise<VenvLease> {
    await touch(path.join(venv, LAST_USED_FILE));
    this.emit({ type: 'venv-reuse', key, path: venv });
    return lease(key, venv, false, 'valid', false, async () => undefined);
  }

  private async buildFresh(
    key: string,
    bundleDir: string,
    digest: string,
    deps: BundleDeps,
    base: InterpreterInfo,
  ): Promise<VenvLease> {
    await this.checkDir('build');
    const freshKey = `${key}-fresh-${randomBytes(4).toString('hex')}`;
    this.emit({ type: 'venv-build', key: freshKey, reason: 'a fresh venv was asked for (force fresh)' });
    const result = await buildVenv({
      ...this.buildRequest(freshKey, bundleDir, digest, deps, base),
      privateOwner: true,
    });
    this.emit({
      type: 'venv-built',
      key: freshKey,
      path: result.path,
      ms: result.marker.buildMs,
      installer: result.marker.installer.name,
      logFile: result.logFile,
    });
    return lease(freshKey, result.path, true, 'a fresh venv was asked for (force fresh)', true, async () => {
      await removeDir(result.path);
      await fs.rm(result.logFile, { force: true });
      this.emit({ type: 'venv-removed', key: freshKey, reason: 'private venv of a finished run' });
    });
  }

  private buildRequest(key: string, bundleDir: string, digest: string, deps: BundleDeps, base: InterpreterInfo) {
    return {
      cacheDir: this.dir,
      key,
      bundleDir,
      bundleDigest: digest,
      deps,
      base,
      extraInstallArgs: this.options.extraInstallArgs ?? [],
      installTimeoutMs: this.options.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS,
      env: this.options.env,
    };
  }

  /** Under the key's lock: an invalid venv and any half-built directory of this key go. */
  private async clearLeftovers(key: string, validity: Validity): Promise<void> {
    if (validity.checks[0]?.ok) {
      await removeDir(path.join(this.dir, key));
      this.emit({ type: 'venv-removed', key, reason: `invalid: ${validity.reason}` });
    }
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith(tempPrefix(key))) await removeDir(path.join(this.dir, name));
    }
  }

  /** Build directories whose builder holds no lock any more. */
  private async removeAbandonedBuilds(): Promise<void> {
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      const match = /^\.tmp-(.+)-(\d+)-[0-9a-f]{8}$/.exec(name);
      if (!match) continue;
      const owner = await readOwner(path.join(this.dir, `${match[1]}.lock`));
      if (!owner || holderGone(owner)) await removeDir(path.join(this.dir, name));
    }
  }

  private async entry(key: string, known?: Validity): Promise<VenvEntry> {
    const venv = path.join(this.dir, key);
    const validity = known ?? (await validateVenv(venv, key));
    const marker = validity.marker ?? (await readMarker(venv));
    const lastUsed = await fs.stat(path.join(venv, LAST_USED_FILE)).catch(() => undefined);
    const owner = marker?.owner;
    const orphanedFresh =
      key.includes('-fresh-') &&
      (!owner || holderGone({ ...owner, nonce: '', acquiredAt: '', purpose: '' }) !== undefined);
    return {
      key,
      path: venv,
      bundle: marker?.bundle,
      bundleName: typeof marker?.bundleName === 'string' ? marker.bundleName : undefined,
      python: marker?.python?.version,
      deps: Array.isArray(marker?.requirements) ? marker.requirements.length : undefined,
      sizeBytes: await directorySize(venv),
      createdAt: marker?.createdAt,
      lastUsedAt: lastUsed ? new Date(lastUsed.mtimeMs).toISOString() : undefined,
      valid: validity.valid,
      reason: validity.reason,
      orphanedFresh,
      usedBy: processesUsing(venv),
      lock: await readOwner(`${venv}.lock`),
    };
  }

  private emit(event: VenvEvent): void {
    this.options.onEvent?.(event);
  }
}

function lease(
  key: string,
  venv: string,
  built: boolean,
  reason: string,
  fresh: boolean,
  release: () => Promise<void>,
): VenvLease {
  return { key, path: venv, python: venvPython(venv), built, reason, fresh, release };
}

function checkRequiresPython(deps: BundleDeps, base: InterpreterInfo): void {
  const required = deps.requiresPython;
  if (!required) return;
  if (!validRange(required.spec)) {
    throw new Failure(
      'bad-input',
      `requires-python = "${required.spec}" is not a valid version specifier.`,
      {},
      required.location,
    );
  }
  if (!satisfies(base.version, required.spec)) {
    throw new Failure(
      'python-mismatch',
      `The bundle requires Python ${required.spec} (pyproject.toml requires-python), but ${base.path} is Python ${base.version}`,
      { notes: ['choose another interpreter (--base-python, or the modelopsDebugger.pythonPath setting)'] },
      required.location,
    );
  }
}

/** A key from input never names anything outside the cache directory. */
function safeKey(key: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key) || key.includes('..')) {
    throw new Failure(
      'bad-input',
      `${JSON.stringify(key)} is not a venv key (letters, digits, ".", "_" and "-" only).`,
    );
  }
  return key;
}

/** Rename aside first, so a half-removed directory is never mistaken for a venv. */
async function removeDir(dir: string): Promise<void> {
  const aside = path.join(path.dirname(dir), `.removing-${path.basename(dir)}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.rename(dir, aside);
  } catch (error) {
    const system = systemError(error);
    if (system?.code === 'ENOENT') return; // gone already
    // never say "removed" of what is still there (a read-only cache, say)
    throw new Failure(
      'venv-create-failed',
      system ? describeSystemError(system, 'remove') : `Could not remove ${dir}: ${String(error)}.`,
      { notes: [`venv: ${dir}`] },
    );
  }
  await fs.rm(aside, { recursive: true, force: true });
}

async function touch(file: string): Promise<void> {
  const now = new Date();
  await fs.utimes(file, now, now).catch(() =>
    fs.writeFile(file, '').catch((error: NodeJS.ErrnoException) => {
      // a read-only cache (a shared mount, an image layer) still serves its venvs: the last-used
      // time only orders `venv prune`, which cannot remove anything there anyway
      if (!['EROFS', 'EACCES', 'EPERM'].includes(error.code ?? '')) throw error;
    }),
  );
}

async function directorySize(dir: string): Promise<number> {
  let total = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const stat = await fs.lstat(path.join(entry.parentPath ?? entry.path, entry.name)).catch(() => undefined);
    total += stat?.size ?? 0;
  }
  return total;
}

/** Pids (Linux, via /proc) whose command runs an interpreter inside `venv`. */
export function processesUsing(venv: string): number[] {
  const prefix = `${venv}${path.sep}`;
  const pids: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv0 = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')[0];
      if (argv0.startsWith(prefix)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}
