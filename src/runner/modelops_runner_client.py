"""ModelOps Pipeline Debugger: the warm-runner client, Python side (standard library only).

What the engine's src/engine/process/ does for a runner, for the places where no Node runs (a
Dask worker, the venv cache's functional check): the Content-Length framing, one runner
subprocess spoken to over JSON-RPC, and the *facts* it yields when it dies, hangs or breaks the
protocol (exit code or signal, phase, stderr tail, stacks on a timeout), which the engine's own
diagnosis (src/engine/diagnose) turns into failure kinds. Also the rules by which a runner's
descendants are found and its process group ended (process/descendants.ts).

The Dask driver imports the framing from here too.
"""

import base64
import json
import os
import posixpath
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import time

# what one task hands back of its runner's stderr; the rest stays in the worker's file
STDERR_REPORT_BYTES = 1024 * 1024
STDERR_TAIL_BYTES = 8 * 1024
STACK_DUMP_WAIT_S = 1.5
EXIT_WAIT_S = 2.0
# a runner's process group gets this long between SIGTERM and SIGKILL (the engine's GROUP_GRACE_MS)
GROUP_GRACE_S = 0.3
# marks a runner's descendants: each inherits it (the engine's RUNNER_TOKEN_ENV)
RUNNER_TOKEN_ENV = "MODELOPS_DEBUGGER_RUNNER"
DUMP_COMPLETE = re.compile(r"\(most recent call first\):\n(?: {2}File .*\n)+\s*$")
# how often a wait with a stop condition looks at it
STOP_POLL_S = 0.05


# ---- framing -------------------------------------------------------------------------------


def encode_frame(body):
    """`body`: the JSON text of one message."""
    data = body.encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


class FrameError(Exception):
    """Bytes that are not a frame: `noise` holds them."""

    def __init__(self, reason, noise):
        super().__init__(reason)
        self.noise = noise


class Oversized(object):
    """A frame over the cap, passed without being kept: only its size is known."""

    def __init__(self, length):
        self.length = length

    def get(self, name, default=None):
        return default


class FrameParser:
    """Content-Length frames out of a byte stream, as vscode-jsonrpc writes and reads them.
    Linear: bytes are appended to one bytearray and a frame's body is only measured until it is
    complete. A frame over `max_bytes` is never kept: its bytes are dropped as they come, and an
    Oversized stands in for it once the last one went by."""

    def __init__(self, max_bytes=None):
        self.buffer = bytearray()
        self.max_bytes = max_bytes
        self.header_end = -1
        self.length = -1
        self.skipping = 0
        self.skipped = 0

    def feed(self, data):
        messages = []
        if self.skipping:
            dropped = min(self.skipping, len(data))
            self.skipping -= dropped
            data = data[dropped:]
            if self.skipping:
                return messages
            messages.append(Oversized(self.skipped))
        self.buffer += data
        while True:
            if self.length < 0:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > 4096 and b"Content-Length" not in self.buffer[:4096]:
                        raise FrameError("bytes that are not a frame header", bytes(self.buffer))
                    return messages
                length = None
                for line in bytes(self.buffer[:end]).split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        try:
                            length = int(value.strip())
                        except ValueError:
                            length = None
                if length is None:
                    raise FrameError("a frame header without Content-Length", bytes(self.buffer[:end]))
                if self.max_bytes is not None and length > self.max_bytes:
                    del self.buffer[: end + 4]
                    dropped = min(length, len(self.buffer))
                    del self.buffer[:dropped]
                    if dropped < length:
                        self.skipping, self.skipped = length - dropped, length
                        return messages
                    messages.append(Oversized(length))
                    continue
                self.header_end, self.length = end + 4, length
            if len(self.buffer) < self.header_end + self.length:
                return messages
            body = bytes(self.buffer[self.header_end : self.header_end + self.length])
            del self.buffer[: self.header_end + self.length]
            self.header_end = self.length = -1
            messages.append(json.loads(body.decode("utf-8")))


# ---- a runner's descendants (src/engine/process/descendants.ts, the same rules) ------------------


def start_ticks(pid):
    """Linux: clock ticks since boot at which `pid` started; None elsewhere."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
        return int(stat[stat.rindex(")") + 2 :].split(" ")[19])
    except (OSError, ValueError, IndexError):
        return None


def describe_facts(facts):
    """A runner's facts in one line, for where no engine diagnoses them (the venv's functional check)."""
    outcome = facts.get("outcome")
    if outcome == "exited":
        exit_info = facts.get("exit") or {}
        signal_name = exit_info.get("signal")
        how = "killed by %s" % signal_name if signal_name else "exit code %s" % exit_info.get("code")
        said = "in phase %s" % facts["phase"] if facts.get("phase") else "before it said anything"
        tail = [line for line in (facts.get("stderr_tail") or "").splitlines() if line.strip()]
        return "the runner ended (%s) %s%s" % (how, said, ": %s" % tail[-1].strip() if tail else "")
    if outcome == "timeout":
        return "the runner did not answer within %d s" % round(facts.get("timeout_ms", 0) / 1000)
    if outcome == "protocol":
        return "the runner broke the protocol: %s" % facts.get("reason")
    error = facts.get("error") or {}
    return "the runner answered with an error: %s" % error.get("message")


def _process_table():
    """(pid, ppid, pgid, sid or None, start ticks or None, command or None) of every live process.
    Linux: /proc. Elsewhere (macOS) the fallback is ps, which shows no sessions and no other
    process's environment: an escaped process is found there only through what the runner
    reported."""
    table = []
    if sys.platform.startswith("linux"):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name, "rb") as handle:
                    stat = handle.read().decode("latin-1")
            except OSError:
                continue  # it ended meanwhile
            fields = stat[stat.rindex(")") + 2 :].split(" ")
            if fields[0] not in ("Z", "X"):
                table.append((int(name), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]), None))
        return table
    out = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,pgid=,stat=,command="], capture_output=True, text=True, timeout=5
    )
    for line in out.stdout.splitlines():
        parts = line.split(None, 4)
        if len(parts) >= 4 and not parts[3].startswith("Z"):
            table.append((int(parts[0]), int(parts[1]), int(parts[2]), None, None, parts[4] if len(parts) > 4 else ""))
    return table


def _carries(pid, needle):
    try:
        with open("/proc/%d/environ" % pid, "rb") as handle:
            return needle in handle.read()
    except OSError:
        return False  # another user's process, or it ended


def _command(pid, fallback):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            text = handle.read().rstrip(b"\0")
        if text:
            return text.replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        pass
    return fallback or "?"


def find_descendants(root, token, root_start, spawns):
    """Live descendants of the runner `root` (a session and group leader), linked to it or to a
    process it reported by parent, group or session, or marked by its token (Linux)."""
    table = [
        entry
        for entry in _process_table()
        if entry[0] not in (root, os.getpid()) and (root_start is None or entry[4] is None or entry[4] >= root_start)
    ]
    needle = ("%s=%s\0" % (RUNNER_TOKEN_ENV, token)).encode()
    linux = sys.platform.startswith("linux")
    marked = {entry[0] for entry in table if _carries(entry[0], needle)} if linux else set()
    roots = {root} | set(spawns)
    members = set()
    grew = True
    while grew:
        grew = False
        for pid, ppid, pgid, sid, _start, _command_text in table:
            if pid in members:
                continue
            if pid in marked or pid in spawns or roots & {ppid, pgid, sid} or members & {ppid, pgid, sid}:
                members.add(pid)
                grew = True
    found = []
    for pid, ppid, pgid, sid, _start, command in table:
        if pid not in members:
            continue
        spawn = spawns.get(pid) or spawns.get(pgid) or spawns.get(sid) or spawns.get(ppid)
        found.append(
            {
                "pid": pid,
                "command": _command(
                    pid, command or (" ".join(spawn["command"]) if spawn and spawn.get("command") else None)
                ),
                "escaped": pgid != root,
                "stack": spawn["stack"] if spawn else [],
            }
        )
    return sorted(found, key=lambda d: d["pid"])


def end_group(pgid):
    """SIGTERM to the runner's process group, SIGKILL to what is left after GROUP_GRACE_S."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except OSError:
        return  # nothing left in it
    deadline = time.monotonic() + GROUP_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            os.killpg(pgid, 0)
        except OSError:
            return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


# ---- a runner's memory (src/engine/process/memory.ts: the same sources, in the same order) -----
#
# The worker only gathers the facts: the limit and where it came from, the runner's resident size
# sampled while a request is in flight, the kernel's OOM-kill count before and after, and whether
# the worker sent a SIGKILL itself. The engine decides whether the OOM killer ended the runner
# (diagnose/oom.ts oomVerdict), as it does for a local runner.

MEMORY_LIMIT_ENV = "MODELOPS_MEMORY_LIMIT_MB"
LINUX = sys.platform.startswith("linux")
# Linux: a read of /proc every 250 ms; elsewhere a `ps` every second (memory.ts SAMPLE_MS)
SAMPLE_S = 0.25 if LINUX else 1.0
# how the resident size is read, said with the facts
RSS_FROM = "proc-status" if LINUX else "ps"


def setting_limit_kb(option_mb=None, env=None):
    """The limit the user set (the engine's option first, then the worker's environment), in kB."""
    env = os.environ if env is None else env
    try:
        mb = float(option_mb if option_mb is not None else env.get(MEMORY_LIMIT_ENV, "nan"))
    except ValueError:
        return None
    return int(round(mb * 1024)) if mb > 0 and mb != float("inf") else None


def physical_memory_kb():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    except (ValueError, OSError, AttributeError):
        pass
    try:  # macOS without SC_PHYS_PAGES
        out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5)
        return int(out.stdout.strip()) // 1024
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def memory_limit(pid, setting_kb=None, proc="/proc", cgroup="/sys/fs/cgroup", total_kb=None):
    """{kb, source, counter: {file, scope} or None} for process `pid`: the setting when there is
    one, else the lowest of its cgroup's (v2, then v1) and physical memory; the OOM counter is the
    cgroup's, else the machine's, whichever limit is the lowest. Never raises."""
    total_kb = total_kb if total_kb is not None else physical_memory_kb()
    physical = {"kb": total_kb, "source": "physical memory", "counter": None}
    found = None
    if LINUX or proc != "/proc":
        membership = _read_text(os.path.join(proc, str(pid), "cgroup"))
        found = None if membership is None else _cgroup_limit(membership, cgroup)
        if found is None:
            scope = "the machine (/proc/vmstat)"
            found = dict(physical, counter={"file": os.path.join(proc, "vmstat"), "scope": scope})
    if found is not None and found["kb"] != float("inf") and (total_kb is None or found["kb"] < total_kb):
        best = found
    else:
        best = dict(physical, counter=found["counter"] if found else None)
    if setting_kb is not None:
        return {"kb": setting_kb, "source": "setting", "counter": best["counter"]}
    return best if best["kb"] is not None else None


def _cgroup_limit(membership, root):
    """From /proc/<pid>/cgroup's lines: `0::/path` (v2), `N:…memory…:/path` (v1)."""
    lines = [line.split(":") for line in membership.split("\n")]
    v2 = next((parts for parts in lines if len(parts) >= 3 and parts[0] == "0" and parts[1] == ""), None)
    # v2 only where the unified hierarchy is mounted at the root (not a hybrid's /sys/fs/cgroup/unified)
    if v2 is not None and _read_text(os.path.join(root, "cgroup.controllers")) is not None:
        limit = _lowest_along(root, ":".join(v2[2:]), "memory.max")
        return _with_counter(limit, "cgroup v2", "memory.events")
    v1 = next((parts for parts in lines if len(parts) >= 3 and "memory" in parts[1].split(",")), None)
    if v1 is None:
        return None
    limit = _lowest_along(os.path.join(root, "memory"), ":".join(v1[2:]), "memory.limit_in_bytes")
    return _with_counter(limit, "cgroup v1", "memory.oom_control")


def _with_counter(limit, source, counter_name):
    """A cgroup's (kb, leaf) as a limit, counted by the leaf's `counter_name`."""
    if limit is None:
        return None
    scope = "the runner's cgroup (%s %s)" % (source.split(" ")[1], counter_name)
    return {"kb": limit[0], "source": source, "counter": {"file": os.path.join(limit[1], counter_name), "scope": scope}}


def _lowest_along(mount, cgroup_path, name):
    """(lowest limit in kB or inf, deepest folder with the file) from the cgroup's folder up to the
    mount; a folder that is not there is skipped; `max` and v1's ~2^63 are no limit."""
    lowest = float("inf")
    leaf = None
    folder = posixpath.normpath("/" + cgroup_path.lstrip("/"))  # not "//x", which POSIX keeps
    while True:
        text = _read_text(os.path.join(mount, folder.lstrip("/"), name))
        if text is not None:
            leaf = leaf or os.path.join(mount, folder.lstrip("/")).rstrip("/")
            try:
                value = int(text.strip())
            except ValueError:
                value = None  # "max"
            if value is not None and 0 < value < 2**62:
                lowest = min(lowest, value // 1024)
        if posixpath.dirname(folder) == folder:
            break
        folder = posixpath.dirname(folder)
    return None if leaf is None else (lowest, leaf)


def read_oom_kills(counter):
    """The `oom_kill` count in a counter file, or None."""
    match = counter and re.search(r"^oom_kill (\d+)$", _read_text(counter["file"]) or "", re.M)
    return int(match.group(1)) if match else None


def read_rss_kb(pid):
    """`pid`'s resident size in kB, or None once it ended: Linux /proc/<pid>/status VmRSS (no lock
    on the process's memory map), elsewhere `ps -o rss=` (KiB, and a process per sample)."""
    if LINUX:
        match = re.search(r"^VmRSS:\s+(\d+) kB$", _read_text("/proc/%d/status" % pid) or "", re.M)
        return int(match.group(1)) if match else None
    try:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, timeout=2)
        return int(out.stdout.strip()) if out.stdout.strip() else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _read_text(file):
    try:
        with open(file, "r", encoding="latin-1") as handle:
            return handle.read()
    except OSError:
        return None


class MemoryWatch:
    """One runner's memory while it works on a request (memory.ts MemoryWatch, sampled from the
    request's own wait loop rather than a timer: a request shorter than a period costs two clock
    comparisons). The OOM counter is read with each sample, and when a request begins if the last
    read is a period old (a read costs ~60 µs here: not one per trivial request), so the count
    "before" is at most a period older than the request, as locally."""

    def __init__(self, pid, setting_kb):
        self.pid = pid
        self.limit = memory_limit(pid, setting_kb)
        self.counter = self.limit["counter"] if self.limit else None
        self.began = self.next_at = 0.0
        self.last = None
        self.kills_before = read_oom_kills(self.counter)
        self.counted_at = time.monotonic()

    def begin(self, now):
        """A request began: the samples of the last one are forgotten."""
        self.began, self.next_at, self.last = now, now + SAMPLE_S, None
        if now - self.counted_at >= SAMPLE_S:
            self._count(now)

    def _count(self, now):
        kills = read_oom_kills(self.counter)
        if kills is not None:
            self.kills_before = kills
        self.counted_at = now

    def wait_s(self, now, longest):
        """How long the wait loop may block before the next sample is due."""
        return max(0.0, min(longest, self.next_at - now))

    def tick(self, now):
        """Sample when due (the OOM counter with it, so the count "before" is at most a period old)."""
        if now < self.next_at:
            return
        self.next_at = now + SAMPLE_S
        rss_kb = read_rss_kb(self.pid)
        if rss_kb is not None:
            self.last = {"rss_kb": rss_kb, "at_ms": round((time.monotonic() - self.began) * 1000, 1)}
        self._count(now)

    def facts(self, died, killed_by_worker):
        """What the engine's oomVerdict needs (protocol.ts WorkerMemoryFacts); None without a limit."""
        if self.limit is None:
            return None
        return {
            "limit": self.limit,
            "last": self.last,
            "rss_from": RSS_FROM,
            "died_at_ms": round((died - self.began) * 1000, 1),
            "oom_kills_before": self.kills_before,
            "oom_kills_after": read_oom_kills(self.counter),
            "killed_by_worker": killed_by_worker,
        }


class Runner:
    """A runner subprocess spoken to over JSON-RPC; its stderr goes to a file on the worker. It is
    the leader of its own session and process group, which is ended with it."""

    def __init__(
        self,
        python,
        runner_script,
        bundle_path,
        venv,
        digest,
        env=None,
        max_frame_bytes=None,
        stderr_dir=None,
        memory_limit_mb=None,
    ):
        """`env`: added to the inherited environment; `max_frame_bytes`: the largest answer read (and
        the runner's own cap), None for no cap; `stderr_dir`: where its stderr file goes;
        `memory_limit_mb`: the engine's memoryLimitMb, before this machine's MODELOPS_MEMORY_LIMIT_MB."""
        self.bundle_path = bundle_path
        stderr_dir = stderr_dir or os.path.dirname(os.path.abspath(runner_script))
        self.stderr_path = os.path.join(stderr_dir, "stderr-%d-%s.log" % (os.getpid(), secrets.token_hex(4)))
        self.token = "%d-%s" % (os.getpid(), secrets.token_hex(8))
        self.stderr_file = open(self.stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **dict(env or {}, **{RUNNER_TOKEN_ENV: self.token}))
        if max_frame_bytes is not None:
            env["MODELOPS_MAX_FRAME_BYTES"] = str(max_frame_bytes)
        self.process = subprocess.Popen(
            [python, runner_script, "--bundle-path", bundle_path, "--venv-path", venv, "--bundle-digest", digest],
            cwd=bundle_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env=env,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.start_ticks = start_ticks(self.pid)
        self.memory = MemoryWatch(self.pid, setting_limit_kb(memory_limit_mb))
        # this side sent it a SIGKILL (a timeout, a protocol error): never blamed on memory
        self.kill_sent = False
        # processes the bundle started (runner/spawned), by pid, since the last check
        self.spawns = {}
        self.parser = FrameParser(max_frame_bytes)
        self.next_id = 1
        self.phase = None
        self.runner_name = None
        self.fatal = None
        self.captures = []
        self.reported = 0  # stderr bytes already handed back with a task
        self.uses = 0

    @property
    def alive(self):
        return self.process.poll() is None

    def request(self, method, params_json, timeout_s, stop_when=None):
        """('ok', result) or ('failed', facts); ('stopped', None) once `stop_when()` is true (looked
        at every STOP_POLL_S while no answer came): the runner is left as it is, for the caller."""
        request_id = self.next_id
        self.next_id += 1
        self.last_resources = None
        began = time.monotonic()
        self.memory.begin(began)
        stderr_offset = self._stderr_size()
        body = '{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}' % (request_id, method, params_json)
        try:
            self.process.stdin.write(encode_frame(body))
            self.process.stdin.flush()
        except OSError:
            return "failed", self._exited(method, began, stderr_offset, timeout_s)
        fd = self.process.stdout.fileno()
        deadline = began + timeout_s
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return "failed", self._timed_out(method, began, stderr_offset, timeout_s)
            if stop_when is not None and stop_when():
                return "stopped", None
            self.memory.tick(now)
            longest = remaining if stop_when is None else min(remaining, STOP_POLL_S)
            ready, _, _ = select.select([fd], [], [], self.memory.wait_s(time.monotonic(), longest))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return "failed", self._exited(method, began, stderr_offset, timeout_s)
            try:
                messages = self.parser.feed(chunk)
            except (FrameError, ValueError) as exc:
                noise = getattr(exc, "noise", chunk)
                self.kill()
                facts = self.facts(method, began, stderr_offset, timeout_s)
                facts.update(outcome="protocol", reason=str(exc), noise_b64=base64.b64encode(noise[:65536]).decode())
                return "failed", facts
            for message in messages:
                if isinstance(message, Oversized):
                    # an answer over the cap (a runner that does not know it): passed unread, as the engine does
                    facts = self.facts(method, began, stderr_offset, timeout_s)
                    if method not in ("execute", "aggregate"):
                        self.kill()
                        facts.update(
                            outcome="protocol",
                            reason="a %d-byte frame exceeds the %d-byte frame cap"
                            % (message.length, self.parser.max_bytes),
                        )
                        return "failed", facts
                    self.uses += 1
                    data = {
                        "kind": "result-too-large",
                        "method": method,
                        "frame_bytes": message.length,
                        "max_frame_bytes": self.parser.max_bytes,
                        "outputs": [],
                    }
                    facts.update(outcome="error", error={"code": -32002, "message": "Result too large", "data": data})
                    return "failed", facts
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    # what the request cost, as our runner measures it (production's says nothing)
                    extras = message.get("modelops")
                    self.last_resources = extras.get("resources") if isinstance(extras, dict) else None
                    if method in ("execute", "aggregate"):
                        self.uses += 1
                    if "error" in message:
                        facts = self.facts(method, began, stderr_offset, timeout_s)
                        facts.update(outcome="error", error=message["error"])
                        return "failed", facts
                    return "ok", message["result"]
                self._notification(message)

    def _notification(self, message):
        method, params = message.get("method"), message.get("params") or {}
        if method == "runner/phase":
            self.phase = params.get("phase")
            self.runner_name = params.get("runner") or self.runner_name
        elif method == "runner/stdout":
            self.captures.append(params)
        elif method == "runner/fatal":
            self.fatal = params
        elif method == "runner/spawned":
            self.spawns[params.get("pid")] = params

    def _exited(self, method, began, stderr_offset, timeout_s):
        died = time.monotonic()
        try:
            self.process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        facts = self.facts(method, began, stderr_offset, timeout_s)
        facts["outcome"] = "exited"
        # read after its death: the kernel's count of OOM kills, against the one at the last sample
        facts["memory"] = self.memory.facts(died, self.kill_sent)
        return facts

    def _timed_out(self, method, began, stderr_offset, timeout_s):
        stacks = None
        if self.runner_name and self.alive:  # only our runner registers faulthandler on SIGUSR1
            before = self._stderr_size()
            os.kill(self.pid, signal.SIGUSR1)
            until = time.monotonic() + STACK_DUMP_WAIT_S
            while time.monotonic() < until:
                text = self._read_stderr(before, self._stderr_size())
                if DUMP_COMPLETE.search(text):
                    break
                time.sleep(0.02)
            stacks = self._read_stderr(before, self._stderr_size()).strip() or None
        self.kill()
        facts = self.facts(method, began, stderr_offset, timeout_s)
        facts.update(outcome="timeout", stacks=stacks, exit=None)
        return facts

    def facts(self, method, began, stderr_offset, timeout_s):
        """What the engine's diagnosis needs (classify.ts RunnerFacts), as of now."""
        code = self.process.poll()
        exit_info = None
        if code is not None:
            exit_info = (
                {"code": None, "signal": signal.Signals(-code).name} if code < 0 else {"code": code, "signal": None}
            )
        size = self._stderr_size()
        return {
            "method": method,
            "pid": self.pid,
            "phase": self.phase,
            "runner": self.runner_name,
            "fatal": self.fatal,
            "exit": exit_info,
            "stderr_since": self._read_stderr(max(stderr_offset, size - 256 * 1024), size),
            "stderr_tail": self._read_stderr(max(0, size - STDERR_TAIL_BYTES), size),
            "stderr_bytes": size,
            "elapsed_ms": (time.monotonic() - began) * 1000,
            "timeout_ms": timeout_s * 1000,
            "bundle_path": self.bundle_path,
        }

    def take_stderr(self):
        """Stderr written since the last call (bounded): the engine appends it to the job's logs/."""
        size = self._stderr_size()
        start = self.reported
        self.reported = size
        if size - start <= STDERR_REPORT_BYTES:
            return self._read_stderr(start, size)
        dropped = size - start - STDERR_REPORT_BYTES
        return "[modelops-debugger: %d bytes of stderr left out here; the Dask worker %s keeps them in %s]\n" % (
            dropped,
            socket.gethostname(),
            self.stderr_path,
        ) + self._read_stderr(size - STDERR_REPORT_BYTES, size)

    def _stderr_size(self):
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def _read_stderr(self, start, end):
        if end <= start:
            return ""
        with open(self.stderr_path, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start).decode("utf-8", "replace")

    def kill(self):
        if self.alive:
            self.kill_sent = True
            self.process.kill()
        try:
            self.process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            pass

    def lingering(self, broken):
        """Processes the last task left running: looked for when the runner reported starting
        one (a /proc scan is not free, and most tasks start nothing) or when it broke."""
        if not self.spawns and not broken:
            return []
        spawns, self.spawns = self.spawns, {}
        try:
            return find_descendants(self.pid, self.token, self.start_ticks, spawns)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            # the report is lost, not the task: say so in the runner's log, which goes to the engine
            self.stderr_file.write(("modelops-debugger: could not list the runner's descendants: %s\n" % exc).encode())
            self.stderr_file.flush()
            return []

    def close(self):
        """Retire it and end its process group (descendants that escaped it are left running);
        its stderr file goes once everything in it was reported."""
        self.kill()
        end_group(self.pid)
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass  # a write the runner never read: it is gone either way
        self.stderr_file.close()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass
