"""ModelOps Pipeline Debugger: what `cluster handshake|rm-venv|clear-lock|rm-orphans` do on one Dask worker.

Standard library only. The driver (modelops_dask_driver.py `act`) sends this file's source, with
modelops_cluster_inspect.py's (whose readers it reuses: the venvs and bundles directories, the
lock probe, the runner scan), to the one worker named, through the scheduler (`client.run`), and
calls `act(action, params)` there in a thread, off the worker's event loop. Nothing is installed
on the worker; a runner of ours is written to a temporary directory and removed afterwards.

Every path comes from the user: it is resolved inside its directory (the venvs directory, or the
bundles cache's `bundles/`) as one entry of it, never through a symlink, never with `..`.
Refusals are values (`outcome: "refused"` with the reason); `bad_input` marks those where what
was asked for makes no sense (no such venv, a path outside the directory).

The handshake does not judge: it records the exchange byte for byte (what was written to the
runner, what it wrote to stdout and stderr, with times; its exit) and the engine diagnoses the
recording with the same rules as a local handshake (src/engine/cluster/workerHandshake.ts).
"""

import base64
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

# the driver puts the inspection module here before running this file; by hand, it is imported
inspect = globals().get("modelops_cluster_inspect")
if inspect is None:
    import modelops_cluster_inspect as inspect

# the engine's WarmProcess: `ready` is request 1, `shutdown` request 2, framed so
FRAME_HEADER = re.compile(rb"Content-Length: (\d+)\r\n\r\n")
# how long a runner that was asked to shut down gets to answer, then to exit by itself (warmProcess.ts)
SHUTDOWN_GRACE_S = 2.0
SELF_EXIT_S = 0.25
# how long a runner gets to write its stack dump after SIGUSR1 (warmProcess.ts STACK_DUMP_WAIT_MS)
STACK_DUMP_WAIT_S = 1.5
DUMP_COMPLETE = re.compile(r"\(most recent call first\):\n(?: {2}File .*\n)+\s*$")
# what is recorded of each stream at most (stdout's first bytes, stderr's last); the rest is counted
MAX_RECORDED = {"out": 1 << 20, "err": 1 << 20}
FRESH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


class Refusal(Exception):
    def __init__(self, reason, bad_input=False):
        super().__init__(reason)
        self.reason = reason
        self.bad_input = bad_input


def act(action, params):
    """One action on this worker: its result, or why it was refused."""
    actions = {
        "handshake": handshake,
        "remove-venv": remove_venv,
        "remove-venvs": remove_venvs,
        "clear-lock": clear_lock,
        "inspect": inspect.inspect_worker,
    }
    started = time.monotonic()
    try:
        result = actions[action](params)
    except Refusal as refusal:
        result = {"outcome": "refused", "reason": refusal.reason, "bad_input": refusal.bad_input}
    result["host"] = socket.gethostname()
    result["worker_pid"] = os.getpid()
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


# ---- where: one entry of a directory, never outside it -----------------------------------------


def _entry(roots, given, what):
    """(root, path) of `given` (a name, or an absolute path) as a direct entry of one of `roots`.
    A name with a separator, `..`, a hidden name, a path outside the roots or a symlink is refused."""
    if not isinstance(given, str) or not given or "\0" in given:
        raise Refusal("no %s given" % what, bad_input=True)
    if os.path.isabs(given):
        parent, name = os.path.split(given.rstrip("/"))
        matches = [r for r in roots if os.path.realpath(parent) == os.path.realpath(r) and ".." not in given.split("/")]
        if not matches:
            raise Refusal(
                "%s %s is not an entry of %s: refused (only what is directly in it is touched)"
                % (what, given, " or ".join(roots)),
                bad_input=True,
            )
        candidates = matches
    else:
        name = given
        candidates = roots
    if "/" in name or name in (".", "..") or name.startswith("."):
        raise Refusal(
            "%s %r is not a plain name in %s: refused (no '/', '..' or hidden names)" % (what, given, roots[0]),
            bad_input=True,
        )
    for root in candidates:
        path = os.path.join(root, name)
        if not os.path.lexists(path):
            continue
        if os.path.islink(path):
            raise Refusal(
                "%s %s is a symlink to %s: refused (nothing is reached through a link)"
                % (what, path, os.path.realpath(path)),
                bad_input=True,
            )
        if os.path.realpath(path) != os.path.join(os.path.realpath(root), name):
            raise Refusal("%s %s resolves outside %s: refused" % (what, path, root), bad_input=True)
        return root, path
    raise Refusal("no %s %s in %s" % (what, name, " or ".join(candidates)), bad_input=True)


def _venvs_roots(params):
    return [path for path, _ in inspect._venvs_dirs(params.get("venvs_dir"))]


def _runners_using(venv):
    """Pids of the runner processes (inspect's scan) whose venv is `venv`, and how they were found."""
    runners, scan = inspect._runners()
    real = os.path.realpath(venv)
    pids = [r["pid"] for r in runners if r.get("venv") and os.path.realpath(r["venv"]) == real]
    return pids, scan


# ---- remove a venv, its lock if nobody holds it ------------------------------------------------


def remove_venv(params):
    root, venv = _entry(_venvs_roots(params), params.get("venv"), "venv")
    if not os.path.isdir(venv):
        raise Refusal("%s is not a directory: not a venv" % venv, bad_input=True)
    return _remove_venv(root, venv, bool(params.get("force")))


def remove_venvs(params):
    """Several venvs of one directory, each checked as `remove_venv` checks it, none forced (rm-orphans)."""
    root = _entry_root(params)
    results = []
    for name in params.get("names") or []:
        try:
            _, venv = _entry([root], name, "venv")
            results.append(_remove_venv(root, venv, False))
        except Refusal as refusal:
            results.append({"outcome": "refused", "reason": refusal.reason, "path": os.path.join(root, name)})
    return {"outcome": "done", "dir": root, "results": results}


def _entry_root(params):
    roots = _venvs_roots(params)
    given = params.get("dir")
    if given and given not in roots:
        raise Refusal("%s is not a venvs directory of this worker (%s)" % (given, ", ".join(roots)), bad_input=True)
    return given or roots[0]


def _remove_venv(root, venv, force):
    pids, scan = _runners_using(venv)
    out = {"path": venv, "runners": pids, "runner_scan": scan, "forced": force}
    if pids and not force:
        return dict(
            out,
            outcome="refused",
            reason="runner process%s %s use%s it (--force removes it anyway)"
            % ("es" if len(pids) > 1 else "", ", ".join(map(str, pids)), "" if len(pids) > 1 else "s"),
        )
    if scan not in ("/proc", "psutil") and not force:
        return dict(out, outcome="refused", reason="cannot tell whether a runner uses it: %s" % scan)
    size = inspect._size(venv, time.monotonic() + 2.0)
    shutil.rmtree(venv)
    out.update(outcome="removed", reason="removed", size_bytes=size)
    lock = venv + ".lock"
    if os.path.lexists(lock):
        out["lock"] = _clear_lock(lock, "its venv was removed")
    return out


# ---- clear a lock whose holder is dead ---------------------------------------------------------


def clear_lock(params):
    given = params.get("lock")
    if isinstance(given, str) and not given.endswith(".lock"):
        given += ".lock"
    _, lock = _entry(_venvs_roots(params), given, "lock")
    return _clear_lock(lock, None)


def _clear_lock(path, why):
    """Removes `path` (production's flock file, or our lock directory) only when its holder is dead."""
    facts = inspect._lock_facts(path, None)
    out = {"path": path, "form": facts["form"], "recorded_pid": facts["recorded_pid"], "pid_alive": facts["pid_alive"]}
    if facts["form"] == "directory":
        pid, alive = facts["recorded_pid"], facts["pid_alive"]
        if pid is None or alive is None:
            return dict(out, outcome="refused", reason="cannot tell whether its owner is alive (no pid of this host)")
        if alive:
            return dict(out, outcome="refused", reason="its owner, pid %d, is alive" % pid)
        shutil.rmtree(path)
        return dict(out, outcome="removed", reason="its owner, pid %d, is dead" % pid)
    if fcntl is None:
        return dict(out, outcome="refused", reason="flock is not available on %s" % sys.platform)
    # the flock is taken and kept while the file is unlinked: nobody can take it in between
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return dict(out, outcome="refused", reason="held: flock LOCK_EX|LOCK_NB refused, a live process holds it")
        pid, alive = facts["recorded_pid"], facts["pid_alive"]
        if pid is not None and alive:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return dict(
                out, outcome="refused", reason="nobody holds the flock, but pid %d recorded in it is alive" % pid
            )
        if os.fstat(fd).st_ino != os.lstat(path).st_ino:
            return dict(out, outcome="refused", reason="the file was replaced meanwhile")
        os.unlink(path)
        dead = "recorded pid %d is dead" % pid if pid is not None else "no pid recorded"
        return dict(out, outcome="removed", reason="%snobody held it (%s)" % (why + "; " if why else "", dead))
    finally:
        os.close(fd)


# ---- handshake: the runner started as production starts it, the exchange recorded -------------


def handshake(params):
    _, venv = _entry(_venvs_roots(params), params.get("venv"), "venv")
    bundles_dir, _ = inspect._bundles_dir(params.get("bundles_dir"))
    _, bundle = _entry([os.path.join(bundles_dir, "bundles")], params.get("bundle"), "bundle")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        raise Refusal("%s has no bin/python (half-built): there is no interpreter to start the runner with" % venv)
    temp = None
    runner = params.get("runner_path")
    try:
        if runner:
            if not os.path.isabs(runner) or not os.path.isfile(runner):
                raise Refusal("runner %s is not a file on this worker" % runner, bad_input=True)
        else:
            temp = tempfile.mkdtemp(prefix="modelops-debugger-runner-")
            for name, source in params["runner_sources"].items():
                with open(os.path.join(temp, os.path.basename(name)), "w", encoding="utf-8") as handle:
                    handle.write(source)
            runner = os.path.join(temp, params["runner_file"])
        digest = params.get("bundle_digest") or os.path.basename(bundle)
        argv = [python, runner, "--bundle-path", bundle, "--venv-path", venv, "--bundle-digest", digest]
        recording = _record(argv, bundle, float(params["timeout_s"]))
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    return dict(
        recording,
        outcome="done",
        venv=venv,
        bundle=bundle,
        python=python,
        runner=runner,
        runner_ours=temp is not None,
        argv=argv,
        digest=digest,
        timeout_s=float(params["timeout_s"]),
    )


def _frame(message):
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class _Recorder:
    """The runner's three pipes, every byte with its time (ms since spawn)."""

    def __init__(self, argv, cwd):
        self.started = time.monotonic()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group, ended with it (as warmProcess.ts does)
        )
        self.events = []
        self.seen = {"out": 0, "err": 0}
        self.kept_err = 0
        self.out = b""
        self.err_since_usr1 = None
        self.selector = selectors.DefaultSelector()
        for fd, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            os.set_blocking(fd.fileno(), False)
            self.selector.register(fd, selectors.EVENT_READ, name)
        self.open = 2
        # the request whose answer ends a pump early
        self.waiting_for = None

    def at(self):
        return round((time.monotonic() - self.started) * 1000, 3)

    def send(self, message):
        data = _frame(message)
        self.events.append({"t": self.at(), "fd": "in", "b64": base64.b64encode(data).decode("ascii")})
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:  # it exited: the recording says so
            pass

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def pump(self, until):
        """Reads what comes until the monotonic time `until` or until both streams end."""
        while self.open and time.monotonic() < until:
            for key, _ in self.selector.select(max(0.0, min(0.05, until - time.monotonic()))):
                try:
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.selector.unregister(key.fileobj)
                    self.open -= 1
                    continue
                self._take(key.data, chunk)
            if self.open and self.answered_last():
                return

    def _take(self, fd, chunk):
        self.seen[fd] += len(chunk)
        if fd == "out":
            self.out += chunk
        elif self.err_since_usr1 is not None:
            self.err_since_usr1 += chunk
        if fd == "out" and self.seen[fd] > MAX_RECORDED[fd]:
            return  # stdout's first bytes say what went wrong; the rest is counted
        self.events.append({"t": self.at(), "fd": fd, "b64": base64.b64encode(chunk).decode("ascii"), "n": len(chunk)})
        if fd == "err":
            # stderr's last bytes say most (a traceback ends it): the oldest go first
            self.kept_err += len(chunk)
            while self.kept_err > MAX_RECORDED["err"]:
                first = next(i for i, e in enumerate(self.events) if e["fd"] == "err")
                self.kept_err -= self.events.pop(first)["n"]

    def messages(self):
        """The frames found on stdout so far, whatever stray bytes are between them."""
        found, at = [], 0
        while True:
            match = FRAME_HEADER.search(self.out, at)
            if not match:
                return found
            end = match.end() + int(match.group(1))
            if end > len(self.out):
                return found
            try:
                found.append(json.loads(self.out[match.end() : end].decode("utf-8", "replace")))
            except ValueError:
                pass
            at = end

    def answer(self, request_id):
        return next((m for m in self.messages() if isinstance(m, dict) and m.get("id") == request_id), None)

    def announced(self):
        """Our runner names itself in a runner/phase notification (production's never does)."""
        return any(
            isinstance(m, dict) and m.get("method") == "runner/phase" and m.get("params", {}).get("runner")
            for m in self.messages()
        )

    def answered_last(self):
        return self.waiting_for is not None and self.answer(self.waiting_for) is not None

    def exited(self):
        return self.proc.poll() is not None

    def signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except OSError:
            pass


def _record(argv, cwd, timeout_s):
    rec = _Recorder(argv, cwd)
    deadline = rec.started + timeout_s
    usr1_at = None
    timed_out = False
    rec.waiting_for = 1
    rec.send({"jsonrpc": "2.0", "id": 1, "method": "ready", "params": {}})
    rec.pump(deadline)
    if rec.answer(1) is not None and not rec.exited():
        # as the engine ends a handshake: shutdown, a moment to exit by itself, then SIGTERM, SIGKILL
        rec.waiting_for = 2
        rec.send({"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": {}})
        rec.pump(time.monotonic() + SHUTDOWN_GRACE_S)
        answered = rec.answer(2) is not None
        rec.waiting_for = None
        rec.close_stdin()
        if answered:
            rec.pump(time.monotonic() + SELF_EXIT_S)
    elif rec.answer(1) is None and time.monotonic() >= deadline and not rec.exited():
        timed_out = True
        rec.waiting_for = None
        if rec.announced():
            # as the engine asks our runner where it is stuck (faulthandler on SIGUSR1)
            usr1_at = rec.at()
            rec.err_since_usr1 = b""
            try:
                os.kill(rec.proc.pid, signal.SIGUSR1)
            except OSError:
                pass
            until = time.monotonic() + STACK_DUMP_WAIT_S
            while time.monotonic() < until and not DUMP_COMPLETE.search(rec.err_since_usr1.decode("utf-8", "replace")):
                rec.pump(min(until, time.monotonic() + 0.02))
        rec.signal(signal.SIGKILL)
    rec.waiting_for = None
    rec.close_stdin()
    try:
        rec.proc.wait(SELF_EXIT_S)
    except subprocess.TimeoutExpired:
        try:
            rec.proc.send_signal(signal.SIGTERM)
            rec.proc.wait(SHUTDOWN_GRACE_S)
        except (OSError, subprocess.TimeoutExpired):
            rec.signal(signal.SIGKILL)
    code = rec.proc.wait()
    exit_at = rec.at()
    rec.pump(time.monotonic() + 0.5)  # the last bytes still in the pipes
    rec.signal(signal.SIGKILL)  # what the runner started goes with it
    for stream in (rec.proc.stdout, rec.proc.stderr):
        stream.close()
    return {
        "pid": rec.proc.pid,
        "events": rec.events,
        "usr1_at": usr1_at,
        "timed_out": timed_out,
        "exit": {"code": code if code >= 0 else None, "signal": signal.Signals(-code).name if code < 0 else None},
        "exit_at": exit_at,
        "stdout_bytes": rec.seen["out"],
        "stderr_bytes": rec.seen["err"],
        "truncated": [fd for fd in ("out", "err") if rec.seen[fd] > MAX_RECORDED[fd]],
    }


if __name__ == "__main__":  # by hand, on one machine: python3 modelops_cluster_actions.py ACTION JSON-PARAMS
    print(json.dumps(act(sys.argv[1], json.loads(sys.argv[2])), indent=2))
