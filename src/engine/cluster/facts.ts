/**
 * What a Dask worker says about itself to `cluster inspect`: the facts gathered by
 * src/runner/modelops_cluster_inspect.py on the worker (read only, nothing judged there) and what
 * the driver adds from the scheduler (src/runner/modelops_dask_driver.py `inspect`), typed once.
 * Times are Unix seconds (mtime) or seconds ago (age, uptime); sizes are bytes.
 */
import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { DriverErrorData } from '../backends/dask/protocol';

/** A lock: production's `{key}.lock` file (flock'ed, empty, never deleted) or our lock directory. */
export interface LockFacts {
  /** The venv key it locks (`{key}.lock`); null for a venv's own `.install.lock`. */
  key: string | null;
  path: string;
  mtime: number | null;
  form: 'file' | 'directory';
  /** A file: whether the non-blocking flock probe was refused (null: could not probe). A directory: null. */
  held: boolean | null;
  /** How `held` was found out. */
  probe?: string;
  /** The pid the file (or our directory's owner.json) records, if any. */
  recorded_pid: number | null;
  /** os.kill(pid, 0) on the worker; null when there is no pid, or it is another host's. */
  pid_alive: boolean | null;
  owner?: Record<string, unknown> | null;
  /** Our lock directory: why its owner is gone (no such pid, or the pid is now another process's), else null. */
  gone?: string | null;
}

/** A binary as our marker records it (src/engine/venv/interpreter.ts BinaryIdentity). */
export interface BinaryFacts {
  realPath: string;
  size: number;
  mtimeMs: number;
}

/** What our `.modelops-venv.json` says (src/engine/venv/marker.ts), read on the worker. */
export interface OurMarkerFacts {
  /** Set when the file cannot be read as a JSON object. */
  error?: string;
  schema?: unknown;
  key?: unknown;
  bundle?: unknown;
  bundleDigest?: unknown;
  depsHash?: unknown;
  createdAt?: unknown;
  python?: (Partial<BinaryFacts> & { path?: unknown; version?: unknown }) | null;
  /** A force-fresh venv's run, and why it is gone (null while it may be alive). */
  owner?: { pid: unknown; host: unknown; startTime: unknown };
  owner_gone?: string | null;
  /** The bundle the marker names, as it is on the worker now: its dependency files' BLAKE2b-8. */
  bundle_now?: { exists: boolean; deps_files: string[]; deps_hash: string | null };
}

export interface VenvFacts {
  /** The directory's name: the venv key (ours: `.tmp-{key}-{pid}-{hex}` while it is built). */
  name: string;
  path: string;
  temp?: boolean;
  /** Our build directory's builder, from its name `.tmp-{key}-{pid}-{hex8}`. */
  builder?: { key: string; pid: number; alive: boolean | null } | null;
  mtime: number | null;
  /** null when the size budget ran out first. */
  size_bytes: number | null;
  /** pyvenv.cfg `version_info`, else `version`. */
  pyvenv_version: string | null;
  /** Absent (null) when there is no `bin/python` at all. */
  bin_python: { target: string | null; real: string; exists: boolean; identity?: BinaryFacts | null } | null;
  /** `.deps_installed`, as written (production: BLAKE2b-16 of the dependency files). */
  deps_marker: string | null;
  /** Our `.modelops-venv.json` is there. */
  ours_marker: boolean;
  ours?: OurMarkerFacts;
  install_lock: LockFacts | null;
  logs: { path: string; bytes: number | null; mtime: number | null }[];
}

export interface VenvsDirFacts {
  path: string;
  source: '--venvs-dir' | 'MODELOPS_VENVS_DIR' | 'production default' | 'modelops-debugger default';
  exists: boolean;
  error?: string;
  venvs: VenvFacts[];
  locks: LockFacts[];
}

export interface BundleFacts {
  /** The directory's name: `digest[:12]` (production: `sha256:abcde`). */
  name: string;
  path: string;
  complete: boolean;
  pyproject: string | null;
  deps_files: string[];
  /** BLAKE2b-16 over the dependency files present, in production's order: what `.deps_installed` must hold. */
  deps_fingerprint: string;
  /** BLAKE2b-8's first 8 hex: the key's deps part for the bundle as it is now. */
  deps_hash8: string;
  mtime: number | null;
}

export interface RunnerProcessFacts {
  pid: number;
  ppid: number | null;
  argv: string[];
  script: string | null;
  venv: string | null;
  bundle_digest: string | null;
  age_s: number | null;
  rss_bytes: number | null;
  /** /proc's state letter (R, S, D, Z zombie, T stopped, t traced), or psutil's word. */
  state: string;
  comm?: string | null;
  /** Set when the command line was not the process's own: a zombie's, from its worker's Popen object. */
  argv_from?: string;
  /**
   * Its stderr file: the file its fd 2 is open on (`fd 2`, /proc or psutil), else production's naming
   * `{venv}/logs/runner-{digest[:12]}-{ppid}.stderr` (`production naming`; `named` is that path when fd 2
   * says otherwise). Null when neither can say.
   */
  stderr_log: {
    path: string;
    source: 'fd 2' | 'production naming';
    exists: boolean;
    bytes: number | null;
    named?: string;
  } | null;
}

export interface WorkerSelfFacts {
  host: string;
  pid: number;
  python: string;
  executable: string;
  platform: string;
  uptime_s: number | null;
  rss_bytes: number | null;
  venvs_dirs: VenvsDirFacts[];
  bundles_dir: string;
  bundles_dir_source: string;
  bundles: { path: string; exists: boolean; entries: BundleFacts[] };
  runners: RunnerProcessFacts[];
  /**
   * How runner processes were listed: '/proc', 'psutil', 'ps -axo' (each saying why the better ones
   * were not), or why they could not be.
   */
  runner_scan: string;
  ms: number;
}

/** One worker as the scheduler knows it, and what it answered (or that it did not). */
export interface WorkerAnswer {
  address: string;
  host: string | null;
  name: string;
  nthreads: number | null;
  memory_limit: number | null;
  /** The worker process's memory as the scheduler last heard it. */
  memory: number | null;
  /** Tasks the scheduler has on it now. */
  processing: number;
  facts?: WorkerSelfFacts;
  /** It answered with an exception. */
  error?: string;
  /** It did not answer within the timeout. */
  no_answer?: boolean;
  ms: number;
}

export type RunnerScan = 'auto' | 'proc' | 'psutil' | 'ps';

export interface InspectParams {
  timeout_s: number;
  venvs_dir?: string;
  bundles_dir?: string;
  /** How to list runner processes: the first that works (auto), or that one (the fallbacks, tested on Linux). */
  runner_scan?: RunnerScan;
  /** When given, each worker's answer is also sent as it comes (`dask/inspect-worker`), tagged with it. */
  call?: number;
}

export interface InspectResult {
  scheduler: string;
  workers: WorkerAnswer[];
  timeout_s: number;
  ms: number;
}

/** `dask/inspect` (the driver's `inspect`). */
export const InspectRequest = {
  type: new RequestType<InspectParams, InspectResult, DriverErrorData>('dask/inspect'),
};

/** One worker's answer to an inspection, as it comes (before the whole result). */
export const InspectWorkerNotification = {
  type: new NotificationType<{ call: number; worker: WorkerAnswer }>('dask/inspect-worker'),
};
