/**
 * Processes a runner leaves behind. Every runner starts as the leader of its own session and
 * process group (WarmProcess spawns it detached), so whatever the bundle starts (a
 * multiprocessing helper, an `os.fork()` child, a `subprocess.Popen`) is in that group unless it
 * called `setsid()`/`setpgid()`. When the runner ends, the group is ended with it; processes
 * that escaped the group are found, reported and left running, never waited for.
 *
 * Finding them: the runner's environment carries a token that every descendant inherits, our
 * runner reports each process it saw the bundle start (`runner/spawned`, with the Python
 * stack), and the process table links the rest by parent, group and session.
 * - Linux: /proc (stat for parent, group, session and start time; environ for the token;
 *   cmdline). /proc/<pid>/task/<tid>/children is not used: kernels built without
 *   CONFIG_PROC_CHILDREN do not have it, and it misses re-parented (daemonised) processes.
 * - macOS and other Unixes (fallback): `ps -A -o pid=,ppid=,pgid=,stat=,command=`. ps shows
 *   neither sessions nor other processes' environments, so an escaped process is found only
 *   through a pid or process group our runner reported (a double-forked daemon started by
 *   C code, or by a bundle under production's runner, is missed there).
 */
import { readdir, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { locate } from '../diagnose/pythonTrace';
import type { SourceLocation } from '../failure';
import type { SpawnedParams } from '../protocol';
import { procStatFields } from './procStat';

/** The environment variable that marks a runner's descendants (its value: one runner's token). */
export const RUNNER_TOKEN_ENV = 'MODELOPS_DEBUGGER_RUNNER';
/** How long a group gets between SIGTERM and SIGKILL once its runner is gone. */
export const GROUP_GRACE_MS = 300;
const PS_TIMEOUT_MS = 5000;
/**
 * /proc/<pid>/stat start times are in clock ticks; USER_HZ is 100 on every Linux ABI that
 * exposes it to user space (sysconf(_SC_CLK_TCK)), and Node cannot ask sysconf.
 */
const MS_PER_TICK = 10;
/** How far the process table's clock and ours may disagree (see taskAt). */
const CLOCK_SLACK_MS = 100;

interface ProcessEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** Linux only. */
  sid?: number;
  /** Linux only: clock ticks since boot. */
  startTicks?: number;
  zombie: boolean;
  /** From ps (fallback); on Linux read later, for the members only. */
  command?: string;
}

/** A process the bundle started, as our runner reported it, with the task it was working on. */
export interface Spawn extends SpawnedParams {
  task?: string;
}

/** One task the runner ran, in ms since the runner was spawned. */
export interface TaskSpan {
  task: string;
  startMs: number;
  endMs: number;
}

export interface Family {
  /** The runner: leader of its session and process group, so also their id. */
  pid: number;
  token: string;
  /** Linux: the runner's start time (clock ticks since boot). */
  startTicks?: number;
  spawns: readonly Spawn[];
  tasks: readonly TaskSpan[];
  bundleDir: string;
}

export interface LingeringDescendant {
  pid: number;
  command: string;
  /** It left the runner's process group (setsid): reported and left running. */
  escaped: boolean;
  /** The task the runner was working on when it started, when known. */
  task?: string;
  /** The bundle's line that started it, when our runner saw it start. */
  location?: SourceLocation;
}

/** The runner's start time on Linux (undefined elsewhere, or when it is already gone). */
export async function startTicksOf(pid: number): Promise<number | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    return parseStat(pid, await readFile(`/proc/${pid}/stat`, 'latin1'))?.startTicks;
  } catch {
    return undefined;
  }
}

/** Every live process descended from the runner (the runner itself excluded), attributed. */
export async function findDescendants(family: Family): Promise<LingeringDescendant[]> {
  const table = process.platform === 'linux' ? await procTable() : await psTable();
  const byPid = new Map(table.map((entry) => [entry.pid, entry]));
  const spawned = new Map(family.spawns.map((spawn) => [spawn.pid, spawn]));
  const startedAfterRunner = (entry: ProcessEntry) =>
    family.startTicks === undefined || entry.startTicks === undefined || entry.startTicks >= family.startTicks;
  const candidates = table.filter(
    (entry) => !entry.zombie && entry.pid !== family.pid && entry.pid !== process.pid && startedAfterRunner(entry),
  );
  const marked = process.platform === 'linux' ? await carriesToken(candidates, family.token) : new Set<number>();

  // the family: the runner, what it reported, and everything linked to them by parent, group or session
  const roots = new Set<number>([family.pid, ...spawned.keys()]);
  const members = new Set<number>();
  const linked = (id: number | undefined) => id !== undefined && (roots.has(id) || members.has(id));
  for (let grew = true; grew;) {
    grew = false;
    for (const entry of candidates) {
      if (members.has(entry.pid)) continue;
      if (
        marked.has(entry.pid) ||
        spawned.has(entry.pid) ||
        linked(entry.ppid) ||
        linked(entry.pgid) ||
        linked(entry.sid)
      ) {
        members.add(entry.pid);
        grew = true;
      }
    }
  }

  const found: LingeringDescendant[] = [];
  for (const pid of members) {
    const entry = byPid.get(pid)!;
    const spawn = spawnOf(entry, spawned, byPid);
    const task = spawn?.task ?? taskAt(entry, family);
    const location = spawn ? locate(spawn.stack, family.bundleDir) : undefined;
    const command = entry.command ?? (await cmdline(pid)) ?? spawn?.command?.join(' ') ?? '?';
    found.push({
      pid,
      command,
      escaped: entry.pgid !== family.pid,
      ...(task ? { task } : {}),
      ...(location ? { location } : {}),
    });
  }
  return found.sort((a, b) => a.pid - b.pid);
}

/**
 * End a runner's process group: SIGTERM, then SIGKILL to whatever is left after `graceMs`.
 * Resolves at once when the group is already empty.
 */
export async function endProcessGroup(pgid: number, graceMs = GROUP_GRACE_MS): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  const deadline = performance.now() + graceMs;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (!signalGroup(pgid, 0)) return;
  }
  signalGroup(pgid, 'SIGKILL');
}

/** False when the group has no member left (ESRCH) or cannot be signalled. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** One line naming the task, the processes and what became of them. */
export function describeLingering(task: string | undefined, descendants: readonly LingeringDescendant[]): string {
  const who = task ?? 'the runner';
  const listed = descendants
    .map(
      (d) =>
        `pid ${d.pid} \`${clip(d.command)}\`${d.location ? ` (started at ${d.location.file}:${d.location.line})` : ''}${d.escaped ? ' [escaped the group: left running]' : ''}`,
    )
    .join('; ');
  const escaped = descendants.filter((d) => d.escaped).length;
  const fate =
    escaped === descendants.length
      ? 'they escaped its process group (setsid), so they were left running: end them yourself'
      : escaped
        ? 'those in its process group were ended with it; those that escaped it (setsid) were left running'
        : "they were ended with the runner's process group";
  const count = descendants.length === 1 ? '1 process' : `${descendants.length} processes`;
  return `${who} left ${count} running after it finished: ${listed}; ${fate}`;
}

/** Descendants grouped by the task that started them (undefined: not known). */
export function byTask(descendants: readonly LingeringDescendant[]): Map<string | undefined, LingeringDescendant[]> {
  const groups = new Map<string | undefined, LingeringDescendant[]>();
  for (const d of descendants) groups.set(d.task, [...(groups.get(d.task) ?? []), d]);
  return groups;
}

// ---- the process table -------------------------------------------------------------------

async function procTable(): Promise<ProcessEntry[]> {
  const names = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const entries = await Promise.all(
    names.map(async (name) => {
      try {
        return parseStat(Number(name), await readFile(`/proc/${name}/stat`, 'latin1'));
      } catch {
        return undefined; // it ended meanwhile
      }
    }),
  );
  return entries.filter((entry): entry is ProcessEntry => entry !== undefined);
}

function parseStat(pid: number, stat: string): ProcessEntry | undefined {
  const fields = procStatFields(stat);
  if (fields.length < 20) return undefined;
  return {
    pid,
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    sid: Number(fields[3]),
    startTicks: Number(fields[19]),
    zombie: fields[0] === 'Z' || fields[0] === 'X',
  };
}

async function carriesToken(entries: ProcessEntry[], token: string): Promise<Set<number>> {
  const needle = Buffer.from(`${RUNNER_TOKEN_ENV}=${token}\0`);
  const marked = new Set<number>();
  await Promise.all(
    entries.map(async (entry) => {
      try {
        if ((await readFile(`/proc/${entry.pid}/environ`)).includes(needle)) marked.add(entry.pid);
      } catch {
        // another user's process (EACCES) or one that ended: not ours
      }
    }),
  );
  return marked;
}

async function cmdline(pid: number): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    const text = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0+$/, '');
    return text ? text.split('\0').join(' ') : undefined;
  } catch {
    return undefined;
  }
}

/** The fallback: one `ps` (an argument array, no shell). */
async function psTable(): Promise<ProcessEntry[]> {
  // a ps that fails throws: the caller notes it in the runner's log and still ends the group
  const { stdout } = await execa('ps', ['-A', '-o', 'pid=,ppid=,pgid=,stat=,command='], { timeout: PS_TIMEOUT_MS });
  const entries: ProcessEntry[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s?(.*)$/.exec(line);
    if (match)
      entries.push({
        pid: Number(match[1]),
        ppid: Number(match[2]),
        pgid: Number(match[3]),
        zombie: match[4].startsWith('Z'),
        command: match[5],
      });
  }
  return entries;
}

// ---- who started it ------------------------------------------------------------------------

/** The reported spawn this process is, or descends from (by parent, group or session). */
function spawnOf(
  entry: ProcessEntry,
  spawned: Map<number, Spawn>,
  byPid: Map<number, ProcessEntry>,
): Spawn | undefined {
  const seen = new Set<number>();
  for (
    let current: ProcessEntry | undefined = entry;
    current && !seen.has(current.pid);
    current = byPid.get(current.ppid)
  ) {
    seen.add(current.pid);
    const spawn =
      spawned.get(current.pid) ??
      spawned.get(current.pgid) ??
      (current.sid !== undefined ? spawned.get(current.sid) : undefined);
    if (spawn) return spawn;
  }
  return undefined;
}

/**
 * Linux: the task running when a process our runner did not report started. Its start time is
 * on the kernel's boot-time clock in 10 ms ticks, the tasks' on ours, measured from the spawn;
 * the two drift apart by tens of ms (more on virtual machines), so a task is named only when it
 * is the one task that ran around then, never a wrong one.
 */
function taskAt(entry: ProcessEntry, family: Family): string | undefined {
  if (entry.startTicks === undefined || family.startTicks === undefined) return undefined;
  const atMs = (entry.startTicks - family.startTicks) * MS_PER_TICK;
  const spans = family.tasks.filter((t) => atMs >= t.startMs - CLOCK_SLACK_MS && atMs <= t.endMs + CLOCK_SLACK_MS);
  return spans.length === 1 ? spans[0].task : undefined;
}

function clip(command: string, max = 160): string {
  return command.length > max ? `${command.slice(0, max - 1)}…` : command;
}
