/**
 * A worker's venvs judged from its facts (facts.ts): each venv's key parsed, joined with its lock,
 * its bundle and the runners using it, and given one verdict with its reason (the worst of its
 * problems; all of them are kept). Production's layout (process_manager.py) and ours
 * (src/engine/venv/: the marker's checklist of marker.ts, in its words, our lock directories, our
 * build directories) are judged alike. Pure: the worker only gathered the facts.
 */
import type { BundleFacts, LockFacts, RunnerProcessFacts, VenvFacts, WorkerSelfFacts } from './facts';
import { describeBinary, MARKER_FILE, MARKER_SCHEMA } from '../venv/marker';
import { sameBinary, type BinaryIdentity } from '../venv/interpreter';

export type VerdictKind =
  | 'ok'
  | 'half-built'
  | 'marker-invalid'
  | 'python-mismatch'
  | 'interpreter-changed'
  | 'locked-by-dead-pid'
  | 'stale-lock'
  | 'deps-marker-stale'
  | 'deps-mismatch'
  | 'orphan-fresh-venv'
  | 'unrecognised-name'
  | 'bundle-incomplete'
  | 'zombie-runner'
  | 'stopped-runner';

/** Worst first: a venv's verdict is the first of its problems in this order. */
export const VERDICT_ORDER: readonly VerdictKind[] = [
  'half-built',
  'marker-invalid',
  'python-mismatch',
  'interpreter-changed',
  'locked-by-dead-pid',
  'stale-lock',
  'deps-marker-stale',
  'deps-mismatch',
  'orphan-fresh-venv',
  'unrecognised-name',
  'bundle-incomplete',
  'zombie-runner',
  'stopped-runner',
  'ok',
];

export interface Verdict {
  kind: VerdictKind;
  /** One line: `python-mismatch: key says 3.12, interpreter is 3.11`. */
  reason: string;
}

/**
 * The key `{digest[:12]}-py{X.Y}-{deps8}`, with a fresh venv's suffix: production's `-{uuid8}`, ours
 * `-fresh-{hex8}`. Production's digest may be `sha256:abcde`.
 */
export interface VenvKey {
  digest: string;
  python: string;
  deps: string;
  /** The fresh suffix's 8 hex, null for a cached venv. */
  fresh: string | null;
  freshForm: 'production' | 'ours' | null;
}

const KEY = /^(.+)-py(\d+\.\d+)-([0-9a-f]{8})(?:-([0-9a-f]{8})|-fresh-([0-9a-f]{8}))?$/;
/** Ours, while it is built: `.tmp-{key}-{pid}-{hex8}`. */
const TEMP = /^\.tmp-(.+)-\d+-[0-9a-f]{8}$/;

export function parseVenvKey(name: string): VenvKey | undefined {
  const match = KEY.exec(name);
  if (!match) return undefined;
  const fresh = match[4] ?? match[5] ?? null;
  return {
    digest: match[1],
    python: match[2],
    deps: match[3],
    fresh,
    freshForm: match[4] ? 'production' : match[5] ? 'ours' : null,
  };
}

export interface VenvView {
  name: string;
  path: string;
  /** The venvs directory it is in. */
  dir: string;
  key: VenvKey | null;
  /** `production` (.deps_installed or a `{key}.lock` file), `ours` (.modelops-venv.json), else `unknown`. */
  layout: 'production' | 'ours' | 'unknown';
  sizeBytes: number | null;
  mtime: number | null;
  /** The interpreter's real version: pyvenv.cfg's, else the `bin/python` target's name. */
  interpreter: { version: string | null; pyvenv: string | null; binPython: string | null; target: string | null };
  bundle: string | null;
  /** `.deps_installed` against the bundle's dependency files as they are now. */
  depsMarker: 'matches' | 'stale' | 'absent' | 'no bundle to compare';
  lock: LockFacts | null;
  installLock: LockFacts | null;
  /** Pids of the runner processes whose `--venv-path` (or interpreter) is this venv. */
  runners: number[];
  logs: VenvFacts['logs'];
  verdict: Verdict;
  problems: Verdict[];
}

/** A `{key}.lock` with no venv beside it. */
export interface StrayLockView {
  lock: LockFacts;
  dir: string;
  verdict: Verdict;
}

export interface BundleView extends BundleFacts {
  /** The venvs whose key's digest is this directory's name. */
  venvs: string[];
  verdict: Verdict;
}

export interface RunnerView extends RunnerProcessFacts {
  verdict: Verdict;
}

export interface WorkerVenvs {
  venvs: VenvView[];
  strayLocks: StrayLockView[];
  bundles: BundleView[];
  runners: RunnerView[];
}

export function judgeWorker(facts: WorkerSelfFacts): WorkerVenvs {
  const out: WorkerVenvs = { venvs: [], strayLocks: [], bundles: [], runners: facts.runners.map(judgeRunner) };
  for (const dir of facts.venvs_dirs) {
    const locks = new Map(dir.locks.map((l) => [l.key ?? '', l]));
    const names = new Set(dir.venvs.filter((v) => !v.temp).map((v) => v.name));
    for (const venv of dir.venvs) {
      const keyName = venv.temp ? (TEMP.exec(venv.name)?.[1] ?? venv.name) : venv.name;
      out.venvs.push(judgeVenv(venv, dir.path, locks.get(keyName) ?? null, facts.bundles.entries, facts.runners));
    }
    for (const lock of dir.locks)
      if (!names.has(lock.key ?? '')) out.strayLocks.push({ lock, dir: dir.path, verdict: strayLockVerdict(lock) });
  }
  for (const bundle of facts.bundles.entries)
    out.bundles.push({
      ...bundle,
      venvs: out.venvs.filter((v) => v.key?.digest === bundle.name).map((v) => v.name),
      verdict: bundle.complete
        ? { kind: 'ok', reason: 'ok' }
        : {
            kind: 'bundle-incomplete',
            reason: 'bundle-incomplete: no .complete marker (production removes it and fetches it again)',
          },
    });
  return out;
}

function judgeRunner(runner: RunnerProcessFacts): RunnerView {
  const state = runner.state.toLowerCase();
  if (state === 'z' || state === 'zombie')
    return { ...runner, verdict: { kind: 'zombie-runner', reason: 'zombie: exited, not reaped by its worker' } };
  if (runner.state === 'T' || runner.state === 't' || state === 'stopped' || state === 'tracing-stop')
    return { ...runner, verdict: { kind: 'stopped-runner', reason: `stopped (state ${runner.state})` } };
  return { ...runner, verdict: { kind: 'ok', reason: 'ok' } };
}

export function judgeVenv(
  venv: VenvFacts,
  dir: string,
  lock: LockFacts | null,
  bundles: BundleFacts[],
  runners: RunnerProcessFacts[],
): VenvView {
  const keyName = venv.temp ? (venv.builder?.key ?? TEMP.exec(venv.name)?.[1] ?? venv.name) : venv.name;
  const key = parseVenvKey(keyName) ?? null;
  const pyvenv = venv.pyvenv_version ? majorMinor(venv.pyvenv_version) : null;
  const binPython = venv.bin_python ? (/python(\d+\.\d+)$/.exec(venv.bin_python.real)?.[1] ?? null) : null;
  const bundle = key ? (bundles.find((b) => b.name === key.digest) ?? null) : null;
  const using = runners.filter((r) => r.venv !== null && samePath(r.venv, venv.path)).map((r) => r.pid);
  const problems: Verdict[] = [];
  const problem = (kind: VerdictKind, reason: string) => problems.push({ kind, reason });
  const interpreter = pyvenv ?? binPython;
  let depsMarker: VenvView['depsMarker'] = 'absent';

  if (venv.temp) {
    // ours, being built: nothing in it is final yet, so only its builder is judged
    const builder = venv.builder;
    if (!builder || builder.alive === false)
      problem(
        'half-built',
        builder
          ? `half-built (abandoned build of ${keyName}: its builder, pid ${builder.pid}, is gone)`
          : `half-built (our build of ${keyName} in progress, or abandoned: ${venv.name})`,
      );
  } else {
    if (!venv.bin_python) problem('half-built', 'half-built (no bin/python)');
    else if (!venv.bin_python.exists)
      problem('half-built', `half-built (bin/python → ${venv.bin_python.target ?? '?'}, which does not exist)`);
    else if (!venv.ours_marker && venv.deps_marker === null && venv.install_lock?.held !== true)
      problem('half-built', `half-built (no ${MARKER_FILE} or .deps_installed: its build or install never finished)`);
    if (!key) problem('unrecognised-name', 'unrecognised name: not a venv key {digest12}-py{X.Y}-{deps8}[-{uuid8}]');
    if (key && interpreter && interpreter !== key.python)
      problem('python-mismatch', `python-mismatch: key says ${key.python}, interpreter is ${interpreter}`);
    if (venv.ours_marker) problems.push(...ourChecklist(venv, key));
    for (const wrong of [lock, venv.install_lock].map((l) => (l ? lockVerdict(l) : undefined)))
      if (wrong) problems.push(wrong);
    if (venv.deps_marker !== null) {
      const have = venv.deps_marker.trim();
      if (!bundle) depsMarker = 'no bundle to compare';
      else if (have === bundle.deps_fingerprint) depsMarker = 'matches';
      else {
        depsMarker = 'stale';
        problem(
          'deps-marker-stale',
          `deps marker stale: .deps_installed says ${have.slice(0, 32) || '(empty)'}, ` +
            `the bundle's ${bundle.deps_files.join(', ') || 'no dependency files'} hash to ${bundle.deps_fingerprint}`,
        );
      }
    }
    if (key?.freshForm === 'production' && using.length === 0)
      problem(
        'orphan-fresh-venv',
        `orphan fresh venv (-${key.fresh}: no runner uses it; production never deletes these)`,
      );
  }
  problems.sort((a, b) => VERDICT_ORDER.indexOf(a.kind) - VERDICT_ORDER.indexOf(b.kind));
  const ours =
    venv.ours_marker ||
    venv.temp === true ||
    key?.freshForm === 'ours' ||
    (!venv.deps_marker && lock?.form === 'directory');
  return {
    name: venv.name,
    path: venv.path,
    dir,
    key,
    layout: ours ? 'ours' : venv.deps_marker !== null || lock?.form === 'file' ? 'production' : 'unknown',
    sizeBytes: venv.size_bytes,
    mtime: venv.mtime,
    interpreter: {
      version: interpreter,
      pyvenv: venv.pyvenv_version,
      binPython: venv.bin_python?.real ?? null,
      target: venv.bin_python?.target ?? null,
    },
    bundle: bundle?.name ?? (typeof venv.ours?.bundle === 'string' ? venv.ours.bundle : null),
    depsMarker,
    lock,
    installLock: venv.install_lock,
    runners: using,
    logs: venv.logs,
    verdict: problems[0] ?? { kind: 'ok', reason: okReason(venv, lock, using) },
    problems,
  };
}

/**
 * Our marker's checklist (src/engine/venv/marker.ts validateVenv), in its order and words, from
 * the facts: the marker readable and ours, its key the directory's, bin/python the very binary it
 * was built from, pyvenv.cfg's version the marker's; then the bundle it names as it is now, and a
 * fresh venv's run.
 */
function ourChecklist(venv: VenvFacts, key: VenvKey | null): Verdict[] {
  const marker = venv.ours ?? {};
  const out: Verdict[] = [];
  const invalid = (detail: string) => [{ kind: 'marker-invalid' as const, reason: `marker invalid: ${detail}` }];
  if (marker.error) return invalid(`${MARKER_FILE} is ${marker.error}`);
  const built = marker.python;
  if (marker.schema !== MARKER_SCHEMA || typeof built?.realPath !== 'string')
    return invalid(`${MARKER_FILE} is not a schema-${MARKER_SCHEMA} marker`);
  if (marker.key !== venv.name) return invalid(`the marker says ${String(marker.key)}, the directory is ${venv.name}`);
  const target = venv.bin_python?.identity;
  if (target && !sameBinary(target, built as BinaryIdentity))
    out.push({
      kind: 'interpreter-changed',
      reason:
        `interpreter changed: bin/python is now ${describeBinary(target)}, ` +
        `the venv was built from ${describeBinary(built as BinaryIdentity)}`,
    });
  const cfg = venv.pyvenv_version?.split('.').slice(0, 3).join('.') ?? null;
  if (cfg !== built.version)
    out.push({
      kind: 'python-mismatch',
      reason: `python-mismatch: pyvenv.cfg says ${cfg ?? 'nothing'}, the marker ${String(built.version)}`,
    });
  const now = marker.bundle_now;
  if (now?.exists && now.deps_hash !== marker.depsHash)
    out.push({
      kind: 'deps-mismatch',
      reason:
        `deps mismatch: built for dependencies hashing to ${String(marker.depsHash)}, ` +
        `${String(marker.bundle)} (${now.deps_files.join(', ') || 'no dependency files'}) now hashes to ${now.deps_hash}`,
    });
  if (key?.freshForm === 'ours') {
    const gone = marker.owner ? marker.owner_gone : 'its marker names no run';
    if (gone)
      out.push({
        kind: 'orphan-fresh-venv',
        reason: `orphan fresh venv (-fresh-${key.fresh}: its run is gone, ${gone}; ours are removed when their run ends)`,
      });
  }
  return out;
}

/** What is wrong with a lock, if anything. A production lock file nobody holds is normal: it is never deleted. */
function lockVerdict(lock: LockFacts): Verdict | undefined {
  const name = lock.path.split('/').pop() ?? lock.path;
  if (lock.recorded_pid !== null && lock.pid_alive === false && lock.held !== true) {
    // a pid that lives on as another process's is said so; a plain dead one needs no more words
    const reused = lock.gone && !lock.gone.endsWith('no longer exists') ? `: ${lock.gone}` : '';
    return { kind: 'locked-by-dead-pid', reason: `locked by dead pid ${lock.recorded_pid} (${name}${reused})` };
  }
  if (lock.form === 'directory' && !lock.owner && lock.mtime !== null && Date.now() / 1000 - lock.mtime > 5)
    return { kind: 'stale-lock', reason: `stale lock: ${name} has had no owner file for over 5 s` };
  return undefined;
}

/** Held by a process alive now: a flock refused, or our directory whose owner lives. */
function heldAlive(lock: LockFacts | null): boolean {
  return lock !== null && (lock.held === true || (lock.form === 'directory' && lock.pid_alive === true));
}

function strayLockVerdict(lock: LockFacts): Verdict {
  const wrong = lockVerdict(lock);
  if (wrong) return wrong;
  const name = lock.path.split('/').pop() ?? lock.path;
  if (lock.held === true || (lock.form === 'directory' && lock.pid_alive !== false))
    return { kind: 'ok', reason: `${name} is held: its venv is being made` };
  return { kind: 'stale-lock', reason: `stale lock: ${name} has no venv beside it and nobody holds it` };
}

function okReason(venv: VenvFacts, lock: LockFacts | null, runners: number[]): string {
  const parts = ['ok'];
  if (venv.temp && venv.builder) parts.push(`being built by live pid ${venv.builder.pid}`);
  if (runners.length) parts.push(`used by runner pid ${runners.join(', ')}`);
  // a build directory's lock is its builder's, said already
  if (heldAlive(lock) && !venv.temp)
    parts.push(`lock held${lock!.recorded_pid !== null ? ` by live pid ${lock!.recorded_pid}` : ''}`);
  if (venv.install_lock?.held) parts.push('.install.lock held: installing');
  return parts.join(', ');
}

function majorMinor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

function samePath(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}
