/**
 * A worker's venvs judged from its facts (facts.ts): each venv's key parsed, joined with its lock,
 * its bundle and the runners using it, and given one verdict with its reason (the worst of its
 * problems; all of them are kept). Pure: the worker only gathered the facts.
 */
import type { BundleFacts, LockFacts, RunnerProcessFacts, VenvFacts, WorkerSelfFacts } from './facts';

export type VerdictKind =
  | 'ok'
  | 'half-built'
  | 'python-mismatch'
  | 'locked-by-dead-pid'
  | 'stale-lock'
  | 'deps-marker-stale'
  | 'orphan-fresh-venv'
  | 'unrecognised-name'
  | 'bundle-incomplete'
  | 'zombie-runner'
  | 'stopped-runner';

/** Worst first: a venv's verdict is the first of its problems in this order. */
export const VERDICT_ORDER: readonly VerdictKind[] = [
  'half-built',
  'python-mismatch',
  'locked-by-dead-pid',
  'stale-lock',
  'deps-marker-stale',
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

/** Production's key `{digest[:12]}-py{X.Y}-{deps8}[-{uuid8}]`; the digest may be `sha256:abcde`. */
export interface VenvKey {
  digest: string;
  python: string;
  deps: string;
  fresh: string | null;
}

const KEY = /^(.+)-py(\d+\.\d+)-([0-9a-f]{8})(?:-([0-9a-f]{8}))?$/;
/** Ours, while it is built: `.tmp-{key}-{pid}-{hex8}`. */
const TEMP = /^\.tmp-(.+)-\d+-[0-9a-f]{8}$/;

export function parseVenvKey(name: string): VenvKey | undefined {
  const match = KEY.exec(name);
  return match ? { digest: match[1], python: match[2], deps: match[3], fresh: match[4] ?? null } : undefined;
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
  const keyName = venv.temp ? (TEMP.exec(venv.name)?.[1] ?? venv.name) : venv.name;
  const key = parseVenvKey(keyName) ?? null;
  const pyvenv = venv.pyvenv_version ? majorMinor(venv.pyvenv_version) : null;
  const binPython = venv.bin_python ? (/python(\d+\.\d+)$/.exec(venv.bin_python.real)?.[1] ?? null) : null;
  const bundle = key ? (bundles.find((b) => b.name === key.digest) ?? null) : null;
  const using = runners.filter((r) => r.venv !== null && samePath(r.venv, venv.path)).map((r) => r.pid);
  const problems: Verdict[] = [];
  const problem = (kind: VerdictKind, reason: string) => problems.push({ kind, reason });

  if (venv.temp) problem('half-built', `half-built (our build of ${keyName} in progress, or abandoned: ${venv.name})`);
  else if (!venv.bin_python) problem('half-built', 'half-built (no bin/python)');
  else if (!venv.bin_python.exists)
    problem('half-built', `half-built (bin/python → ${venv.bin_python.target ?? '?'}, which does not exist)`);
  if (!key && !venv.temp)
    problem('unrecognised-name', 'unrecognised name: not a venv key {digest12}-py{X.Y}-{deps8}[-{uuid8}]');
  const interpreter = pyvenv ?? binPython;
  if (key && interpreter && interpreter !== key.python)
    problem('python-mismatch', `python-mismatch: key says ${key.python}, interpreter is ${interpreter}`);
  const lockProblem = lock ? lockVerdict(lock) : undefined;
  if (lockProblem) problems.push(lockProblem);
  let depsMarker: VenvView['depsMarker'] = 'absent';
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
  if (key?.fresh && using.length === 0)
    problem(
      'orphan-fresh-venv',
      `orphan fresh venv (-${key.fresh}: no runner uses it; production never deletes these)`,
    );
  problems.sort((a, b) => VERDICT_ORDER.indexOf(a.kind) - VERDICT_ORDER.indexOf(b.kind));
  return {
    name: venv.name,
    path: venv.path,
    dir,
    key,
    layout: venv.ours_marker
      ? 'ours'
      : venv.deps_marker !== null || lock?.form === 'file'
        ? 'production'
        : lock?.form === 'directory'
          ? 'ours'
          : 'unknown',
    sizeBytes: venv.size_bytes,
    mtime: venv.mtime,
    interpreter: {
      version: interpreter,
      pyvenv: venv.pyvenv_version,
      binPython: venv.bin_python?.real ?? null,
      target: venv.bin_python?.target ?? null,
    },
    bundle: bundle?.name ?? null,
    depsMarker,
    lock,
    installLock: venv.install_lock,
    runners: using,
    logs: venv.logs,
    verdict: problems[0] ?? { kind: 'ok', reason: okReason(lock, using) },
    problems,
  };
}

/** What is wrong with a lock, if anything. A production lock file nobody holds is normal: it is never deleted. */
function lockVerdict(lock: LockFacts): Verdict | undefined {
  const name = lock.path.split('/').pop() ?? lock.path;
  if (lock.recorded_pid !== null && lock.pid_alive === false && lock.held !== true)
    return { kind: 'locked-by-dead-pid', reason: `locked by dead pid ${lock.recorded_pid} (${name})` };
  if (lock.form === 'directory' && !lock.owner && lock.mtime !== null && Date.now() / 1000 - lock.mtime > 5)
    return { kind: 'stale-lock', reason: `stale lock: ${name} has had no owner file for over 5 s` };
  return undefined;
}

function strayLockVerdict(lock: LockFacts): Verdict {
  const wrong = lockVerdict(lock);
  if (wrong) return wrong;
  const name = lock.path.split('/').pop() ?? lock.path;
  if (lock.held === true || (lock.form === 'directory' && lock.pid_alive !== false))
    return { kind: 'ok', reason: `${name} is held: its venv is being made` };
  return { kind: 'stale-lock', reason: `stale lock: ${name} has no venv beside it and nobody holds it` };
}

function okReason(lock: LockFacts | null, runners: number[]): string {
  const parts = ['ok'];
  if (runners.length) parts.push(`used by runner pid ${runners.join(', ')}`);
  if (lock?.held) parts.push(`lock held${lock.recorded_pid !== null ? ` by live pid ${lock.recorded_pid}` : ''}`);
  return parts.join(', ');
}

function majorMinor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

function samePath(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}
