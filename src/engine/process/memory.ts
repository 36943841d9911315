/**
 * How much memory a runner may use and how much it uses, so that a runner the kernel's OOM killer
 * ended can be told from one that died otherwise (diagnose/oom.ts decides; this module measures).
 *
 * - The limit: `MODELOPS_MEMORY_LIMIT_MB` or the engine's option (`setting`), else the runner's
 *   cgroup's (v2 `memory.max`, v1 `memory.limit_in_bytes`, the lowest along its path up to the
 *   mount, so a container's limit counts when the runner sits in a sub-cgroup), else the machine's
 *   physical memory. Cgroups are read at their usual mounts (`/sys/fs/cgroup` for v2, and
 *   `/sys/fs/cgroup/memory` for v1), as systemd, Docker and Kubernetes mount them; a cgroup
 *   mounted elsewhere is not found, and the limit is physical memory.
 * - Direct evidence: the kernel counts the processes its OOM killer ended, without privilege and
 *   without dmesg: cgroup v2 `memory.events` and v1 `memory.oom_control` (`oom_kill`, kernel
 *   ≥ 4.13; both count the cgroup's own processes, whichever OOM — the cgroup's or the machine's —
 *   killed them), else `/proc/vmstat` `oom_kill` (the whole machine, for a runner in no memory cgroup).
 * - The runner's resident size: Linux `/proc/<pid>/status` `VmRSS` (in kB, whatever the page
 *   size); elsewhere (macOS) `ps -o rss= -p <pid>` (in KiB), which costs a process, so it is
 *   sampled less often. macOS has neither cgroups nor counters: there the limit is physical
 *   memory and the resident size is the only evidence.
 *
 * `MemoryWatch` samples a runner only while it has a request in flight, every `sampleMs`, with an
 * unref'd timer that stops when the runner goes idle: a job of microsecond tasks pays a property
 * check per task, and a runner busy for a long task two small file reads per period.
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execa } from 'execa';

export type LimitSource = 'cgroup v2' | 'cgroup v1' | 'physical memory' | 'setting';

export interface MemoryLimit {
  kb: number;
  source: LimitSource;
  /** Where the kernel counts OOM kills for this runner (absent on macOS). */
  counter?: OomCounterFile;
}

/** A file holding an `oom_kill <n>` line. */
export interface OomCounterFile {
  file: string;
  /** What it counts, in words: "the runner's cgroup (v2 memory.events)". */
  scope: string;
}

export const MEMORY_LIMIT_ENV = 'MODELOPS_MEMORY_LIMIT_MB';

/** Linux: a read of /proc every 250 ms; elsewhere a `ps` every second. */
export const SAMPLE_MS = process.platform === 'linux' ? 250 : 1000;

/** Where to look: the real system by default; tests point these at fixture folders. */
export interface MemoryRoots {
  /** `/proc` */
  proc?: string;
  /** `/sys/fs/cgroup` */
  cgroup?: string;
  /** Physical memory in kB (os.totalmem()). */
  totalKb?: number;
}

/** The limit the user set (option first, then the environment), in kB; undefined when none or not a positive number. */
export function settingLimitKb(optionMb?: number, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const mb = optionMb ?? Number(env[MEMORY_LIMIT_ENV] ?? NaN);
  return Number.isFinite(mb) && mb > 0 ? Math.round(mb * 1024) : undefined;
}

/**
 * The memory limit that applies to process `pid`: the setting when there is one, else the lowest
 * of its cgroup's (v2, then v1) and physical memory. The OOM counter comes with it (the cgroup's,
 * else the machine's), whichever limit is the lowest. Never throws: what cannot be read is not a limit.
 */
export function memoryLimit(pid: number, settingKb?: number, roots: MemoryRoots = {}): MemoryLimit {
  const totalKb = roots.totalKb ?? Math.round(os.totalmem() / 1024);
  const physical: MemoryLimit = { kb: totalKb, source: 'physical memory' };
  const proc = roots.proc ?? '/proc';
  const cgroup = roots.cgroup ?? '/sys/fs/cgroup';
  let found: MemoryLimit | undefined;
  if (process.platform === 'linux' || roots.proc) {
    const membership = readText(path.join(proc, String(pid), 'cgroup'));
    found = membership === undefined ? undefined : cachedCgroupLimit(membership, cgroup);
    found ??= { ...physical, counter: { file: path.join(proc, 'vmstat'), scope: 'the machine (/proc/vmstat)' } };
  }
  const best = found && found.kb < totalKb ? found : { ...physical, counter: found?.counter };
  return settingKb === undefined ? best : { kb: settingKb, source: 'setting', counter: best.counter };
}

/**
 * The runners of a job almost always share the engine's cgroup: its limit is read once a minute
 * per cgroup, not at every spawn (which the cold executor does per task; ~1.5 ms of CPU each).
 */
const limits = new Map<string, { at: number; limit: MemoryLimit | undefined }>();
const LIMIT_KEPT_MS = 60_000;

function cachedCgroupLimit(membership: string, root: string): MemoryLimit | undefined {
  const key = `${root}\n${membership}`;
  const now = performance.now();
  const kept = limits.get(key);
  if (kept && now - kept.at < LIMIT_KEPT_MS) return kept.limit;
  if (limits.size > 64) limits.clear();
  const limit = cgroupLimit(membership, root);
  limits.set(key, { at: now, limit });
  return limit;
}

/** The cgroup's limit from `/proc/<pid>/cgroup`'s lines (`0::/path` for v2, `N:…memory…:/path` for v1). */
export function cgroupLimit(membership: string, root: string): MemoryLimit | undefined {
  const lines = membership.split('\n').map((line) => line.split(':'));
  const v2 = lines.find((parts) => parts.length >= 3 && parts[0] === '0' && parts[1] === '');
  // v2 only where the unified hierarchy is mounted at the root (not a hybrid's /sys/fs/cgroup/unified)
  if (v2 && readText(path.join(root, 'cgroup.controllers')) !== undefined) {
    const limit = lowestAlong(root, v2.slice(2).join(':'), 'memory.max');
    if (limit)
      return {
        kb: limit.kb,
        source: 'cgroup v2',
        counter: { file: path.join(limit.leaf, 'memory.events'), scope: "the runner's cgroup (v2 memory.events)" },
      };
    return undefined;
  }
  const v1 = lines.find((parts) => parts.length >= 3 && parts[1].split(',').includes('memory'));
  if (!v1) return undefined;
  const mount = path.join(root, 'memory');
  const limit = lowestAlong(mount, v1.slice(2).join(':'), 'memory.limit_in_bytes');
  if (!limit) return undefined;
  return {
    kb: limit.kb,
    source: 'cgroup v1',
    counter: {
      file: path.join(limit.leaf, 'memory.oom_control'),
      scope: "the runner's cgroup (v1 memory.oom_control)",
    },
  };
}

/**
 * The lowest limit in `file` from the cgroup's folder up to the mount (a folder that is not there,
 * as when a container sees its own cgroup at the mount, is skipped); `leaf`: the deepest folder
 * that has the file. `max` (v2) and v1's "no limit" (a number near 2^63) are no limit.
 */
function lowestAlong(mount: string, cgroupPath: string, file: string): { kb: number; leaf: string } | undefined {
  let lowest: number | undefined;
  let leaf: string | undefined;
  for (let dir = path.posix.normalize(`/${cgroupPath}`); ; dir = path.posix.dirname(dir)) {
    const text = readText(path.join(mount, dir, file));
    if (text !== undefined) {
      leaf ??= path.join(mount, dir);
      const bytes = Number(text.trim());
      if (text.trim() !== 'max' && Number.isFinite(bytes) && bytes > 0 && bytes < 2 ** 62)
        lowest = Math.min(lowest ?? Infinity, Math.floor(bytes / 1024));
    }
    if (dir === '/') break;
  }
  return leaf === undefined ? undefined : { kb: lowest ?? Infinity, leaf };
}

/** The `oom_kill` count in a counter file, or undefined when it cannot be read. */
export function readOomKills(counter: OomCounterFile | undefined): number | undefined {
  if (!counter) return undefined;
  const match = /^oom_kill (\d+)$/m.exec(readText(counter.file) ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * The resident size of `pid` in kB, or undefined when it has ended (or cannot be read): Linux
 * `/proc/<pid>/status` (which takes no lock of the process's memory map, unlike `maps` or
 * `cmdline`, so the read never waits on the runner), elsewhere `ps`.
 */
export function readRssKb(pid: number, proc = '/proc'): number | undefined | Promise<number | undefined> {
  if (process.platform === 'linux') {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readText(path.join(proc, String(pid), 'status')) ?? '');
    return match ? Number(match[1]) : undefined;
  }
  return rssFromPs(pid);
}

/** macOS and the other Unixes: ps (an argument array, no shell); its RSS is in KiB. */
async function rssFromPs(pid: number): Promise<number | undefined> {
  try {
    const { stdout } = await execa('ps', ['-o', 'rss=', '-p', String(pid)], { timeout: 2000, reject: false });
    const kb = Number(stdout.trim());
    return stdout.trim() && Number.isFinite(kb) ? kb : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A /proc or cgroup file, read synchronously: the kernel makes it in memory on read and never waits
 * on a disk, and a synchronous read costs a fraction of one through the thread pool (a sample, this
 * file and the runner's status: about 90 µs of CPU against 450 µs, measured here).
 */
function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}

/** A runner's resident size, sampled while it worked on a request. */
export interface MemorySample {
  rssKb: number;
  /** When (ms on the caller's clock). */
  atMs: number;
}

/**
 * Samples one runner's resident size while it has a request in flight (`busy()` when one
 * begins; the timer stops by itself at the first tick that finds it idle, and forgets the last
 * sample, so a sample always comes from the stretch of work that is going on). The OOM counter
 * is read with each sample, so the count "before" is at most one period old.
 */
export class MemoryWatch {
  readonly limit: MemoryLimit;
  /** The last sample of the current busy stretch. */
  last: MemorySample | undefined;
  /** The OOM counter at the last sample (or when the watch began). */
  oomKills: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly pid: number,
    private readonly options: {
      settingKb?: number;
      sampleMs?: number;
      /** Is a request in flight? */
      busy: () => boolean;
      /** The caller's clock, in ms. */
      now: () => number;
    },
  ) {
    this.limit = memoryLimit(pid, options.settingKb);
    this.oomKills = readOomKills(this.limit.counter);
  }

  get sampleMs(): number {
    return this.options.sampleMs ?? SAMPLE_MS;
  }

  /** A request began: sample from now on, unless already sampling. */
  busy(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.sampleMs);
    this.timer.unref();
  }

  /** The runner ended: no more samples (the last one stays, for the verdict). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (!this.options.busy()) {
      this.timer = undefined;
      this.last = undefined;
      return;
    }
    const rssKb = await readRssKb(this.pid);
    const kills = readOomKills(this.limit.counter);
    if (this.stopped) return; // it ended while being read (ps): no sample of a dead runner
    if (rssKb !== undefined) this.last = { rssKb, atMs: this.options.now() };
    if (kills !== undefined) this.oomKills = kills;
    this.timer = setTimeout(() => void this.tick(), this.sampleMs);
    this.timer.unref();
  }
}
