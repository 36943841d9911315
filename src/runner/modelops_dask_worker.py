"""ModelOps Pipeline Debugger: the Dask worker side (standard library + distributed only).

The driver (modelops_dask_driver.py) uploads this module to every Dask worker and submits its
`run_sim` and `run_agg` functions. A task never runs bundle code in the worker process: it
hands the request to a warm runner subprocess (our src/runner runner, shipped by the driver
in a payload module next to the bundle's files), started from a venv cached on the worker, exactly as the local
backend does. What comes back to the engine are *facts* (the answer or the error payload, the
exit code or signal, the runner's phase, its stderr, stacks on a timeout), so the engine's own
diagnosis (src/engine/diagnose) turns them into the same failure kinds, messages and source
lines as locally.

Also the Content-Length framing both Python sides speak (the driver imports it from here).
"""
import atexit
import base64
import errno
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HELPER_VERSION = "1"
EVENT_TOPIC = "modelops-debugger"
MARKER_FILE = ".modelops-venv.json"
LAST_USED_FILE = ".last-used"
MARKER_SCHEMA = 1
# what one task hands back of its runner's stderr; the rest stays in the worker's file
STDERR_REPORT_BYTES = 1024 * 1024
STDERR_TAIL_BYTES = 8 * 1024
STACK_DUMP_WAIT_S = 1.5
EXIT_WAIT_S = 2.0
# a runner's process group gets this long between SIGTERM and SIGKILL (the engine's GROUP_GRACE_MS)
GROUP_GRACE_S = 0.3
# marks a runner's descendants: each inherits it (the engine's RUNNER_TOKEN_ENV)
RUNNER_TOKEN_ENV = "MODELOPS_DEBUGGER_RUNNER"
LOCK_POLL_S = 0.1
DUMP_COMPLETE = re.compile(r"\(most recent call first\):\n(?: {2}File .*\n)+\s*$")


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


# ---- what a worker is given: the runner and the bundle ----------------------------------------


def cache_root():
    """The venvs directory, as the engine's venv/cache.ts finds it (MODELOPS_VENVS_DIR first)."""
    if os.environ.get("MODELOPS_VENVS_DIR"):
        return os.path.abspath(os.environ["MODELOPS_VENVS_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "modelops-debugger", "venvs")


def _safe_relative(name):
    """A path from the driver never leaves the directory it is written into."""
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("unsafe path in bundle: %r" % name)
    return os.path.join(*parts)


def _write_tree(target, files):
    """`files` (relative path -> bytes) into `target`, whole or not at all (temp dir + rename)."""
    if os.path.isdir(target):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    temp = "%s.tmp-%d-%s" % (target, os.getpid(), secrets.token_hex(4))
    for name, data in files.items():
        path = os.path.join(temp, _safe_relative(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    try:
        os.rename(temp, target)
    except OSError:  # another worker process on this machine put it there first
        shutil.rmtree(temp, ignore_errors=True)
        if not os.path.isdir(target):
            raise
    return target


def payload_source(bundle_files, runner_files, spec):
    """A module that holds the job's settings and the bundle's and the runner's files as data
    (importing it runs none of them). The driver uploads it with distributed's own UploadFile
    plugin, which every worker, also one that joins later, sets up before it takes tasks; the
    tasks then carry only its name, not the settings."""
    return "# modelops-debugger payload: data only\nSPEC = %r\nBUNDLE = %r\nRUNNER = %r\n" % (spec, bundle_files, runner_files)


def _spec(payload):
    """The job's settings from its payload module, with where the bundle and runner were put."""
    spec = _SPECS.get(payload)
    if spec is not None:
        return spec
    import importlib

    module = importlib.import_module(payload)
    spec = dict(module.SPEC, payload_module=payload)
    root = cache_root()
    spec["runner_dir"] = _write_tree(os.path.join(root, ".dask-runner", payload.rsplit("_", 1)[-1]), module.RUNNER)
    spec["bundle_path"] = _write_tree(os.path.join(root, ".dask-bundles", spec["digest"]), module.BUNDLE)
    _SPECS[payload] = spec
    return spec


# payload module name -> the job settings it holds, once its files are in place on this machine
_SPECS = {}


# ---- the venv cache on the worker (compatible with src/engine/venv/) --------------------------


class EnvironmentFailure(Exception):
    def __init__(self, kind, message, log_tail="", notes=None):
        super().__init__(message)
        self.kind = kind
        self.log_tail = log_tail
        self.notes = notes or []


def _identity(path):
    real = os.path.realpath(path)
    st = os.stat(real)
    return {"realPath": real, "size": st.st_size, "mtimeMs": st.st_mtime_ns / 1e6}


def _same_binary(a, b):
    # mtimeMs is a float in both languages: compare to the microsecond
    return a["realPath"] == b.get("realPath") and a["size"] == b.get("size") and abs(a["mtimeMs"] - b.get("mtimeMs", -1)) < 0.001


def _pyvenv_version(venv):
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as handle:
            text = handle.read()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            found[name.strip()] = value.strip()
    if "version_info" in found:
        return ".".join(found["version_info"].split(".")[:3])
    return found.get("version")


def venv_validity(venv, key, base_identity):
    """The engine's checklist (venv/marker.ts validateVenv): the first failed check, or None."""
    if not os.path.isdir(venv):
        return "directory: not built yet"
    try:
        with open(os.path.join(venv, MARKER_FILE)) as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return "marker: no readable %s: the build never finished" % MARKER_FILE
    if marker.get("schema") != MARKER_SCHEMA or not isinstance(marker.get("python", {}).get("realPath"), str):
        return "marker: %s is not a schema-%d marker" % (MARKER_FILE, MARKER_SCHEMA)
    if marker.get("key") != key:
        return "key: the marker says %s, the directory is %s" % (marker.get("key"), key)
    try:
        target = _identity(os.path.join(venv, "bin", "python"))
    except OSError:
        return "interpreter: bin/python is missing"
    if not _same_binary(target, marker["python"]) or not _same_binary(base_identity, marker["python"]):
        return "interpreter identity: the venv was built from %s, which changed or is not the requested one" % marker["python"]["realPath"]
    if _pyvenv_version(venv) != marker["python"].get("version"):
        return "version: pyvenv.cfg and the marker disagree"
    return None


class DirLock:
    """The engine's lock (lock/dirLock.ts): a directory, made atomically, holding owner.json."""

    def __init__(self, path, timeout_s, purpose):
        self.path = path
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                if self._holder_gone():
                    aside = "%s.stale-%s" % (path, secrets.token_hex(4))
                    try:
                        os.rename(path, aside)
                        shutil.rmtree(aside, ignore_errors=True)
                    except OSError:
                        pass
                    continue
                if time.monotonic() > deadline:
                    raise EnvironmentFailure("venv-create-failed", "Timed out after %d s waiting for the lock %s (%s)" % (timeout_s, path, self._describe()))
                time.sleep(LOCK_POLL_S)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "startTime": _start_time(os.getpid()), "nonce": secrets.token_hex(8), "acquiredAt": _now_iso(), "purpose": purpose}
        with open(os.path.join(path, "owner.json"), "w") as handle:
            json.dump(owner, handle)

    def _owner(self):
        try:
            with open(os.path.join(self.path, "owner.json")) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def _describe(self):
        owner = self._owner()
        return "held by pid %s on %s" % (owner.get("pid"), owner.get("host")) if owner else "no owner"

    def _holder_gone(self):
        owner = self._owner()
        if owner is None:
            try:
                return time.time() - os.stat(self.path).st_mtime > 5
            except OSError:
                return False
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except (OSError, ValueError, KeyError):
            return False
        return bool(owner.get("startTime")) and _start_time(int(owner["pid"])) != owner.get("startTime")

    def release(self):
        shutil.rmtree(self.path, ignore_errors=True)


def _start_ticks(pid):
    try:
        return int(_start_time(pid))
    except ValueError:
        return None  # not Linux


def _start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
        return stat[stat.rindex(")") + 2 :].split(" ")[19]
    except (OSError, ValueError, IndexError):
        return ""


def _now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"


def ensure_venv(spec, bundle_path):
    """The bundle's venv on this worker: reused when its checklist passes, else built (atomically,
    under the key's lock). Returns (venv path, python, how: 'reuse' or the rebuild reason)."""
    base = spec["base_python"] or sys.executable
    version = "%d.%d.%d" % sys.version_info[:3] if base == sys.executable else _probe_version(base)
    _check_requires_python(spec, base, version)
    xy = ".".join(version.split(".")[:2])
    key = "%s-py%s-%s" % (spec["digest"][:12], xy, spec["deps_hash"][:8])
    root = cache_root()
    venv = os.path.join(root, key)
    base_identity = _identity(base)
    if venv_validity(venv, key, base_identity) is None:
        _touch(os.path.join(venv, LAST_USED_FILE))
        return venv, key, "valid"
    os.makedirs(root, exist_ok=True)
    lock = DirLock(venv + ".lock", spec["install_timeout_s"] + 60, "building venv %s on a Dask worker" % key)
    try:
        reason = venv_validity(venv, key, base_identity)
        if reason is None:
            return venv, key, "valid"
        if os.path.isdir(venv):
            shutil.rmtree(venv, ignore_errors=True)
        _build_venv(spec, bundle_path, base, version, key, venv)
        return venv, key, reason
    finally:
        lock.release()


def _check_requires_python(spec, base, version):
    """The bundle's requires-python against this worker's interpreter, before any venv is made
    (workers need not all have the same Python, so each one checks its own)."""
    wanted = spec.get("requires_python") or ""
    if not wanted:
        return
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet  # distributed depends on packaging
    except ImportError:
        return  # cannot judge here: the runner's own import of the bundle decides
    try:
        fits = SpecifierSet(wanted).contains(version, prereleases=True)
    except InvalidSpecifier:
        return  # the engine has validated it; nothing better to say here
    if not fits:
        raise EnvironmentFailure(
            "python-mismatch",
            "The bundle requires Python %s (pyproject.toml requires-python), but the Dask worker's %s is Python %s" % (wanted, base, version),
            notes=["give the workers another interpreter with --worker-python"],
        )


def _probe_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise EnvironmentFailure("interpreter-not-found", "%s did not start on the Dask worker: %s" % (python, out.stderr.strip()[-300:]))
    return out.stdout.strip()


def _build_venv(spec, bundle_path, base, version, key, final):
    started = time.monotonic()
    root = os.path.dirname(final)
    temp = os.path.join(root, ".tmp-%s-%d-%s" % (key, os.getpid(), secrets.token_hex(4)))
    log_path = os.path.join(root, "%s.install.log" % key)
    needs_install = bool(spec["requirements"]) or bool(spec["requirement_options"])
    with open(log_path, "w") as log:
        log.write("# modelops-debugger venv build %s (Dask worker %s)\n# python %s (%s)\n\n" % (key, socket.gethostname(), base, version))

        def step(kind, args):
            log.write("$ %s\n" % " ".join(args))
            log.flush()
            try:
                done = subprocess.run(args, cwd=bundle_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=spec["install_timeout_s"], env=dict(os.environ, PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1"))
                output, code = done.stdout.decode("utf-8", "replace"), done.returncode
            except subprocess.TimeoutExpired as exc:
                output, code = (exc.output or b"").decode("utf-8", "replace"), "timeout"
            log.write(output + "# exit %s\n" % code)
            if code != 0:
                lines = [l for l in output.splitlines() if l.strip()]
                cause = next((l for l in reversed(lines) if "error" in l.lower()), lines[-1] if lines else "exit %s" % code)
                what = "Creating the venv failed" if kind == "venv-create-failed" else "Installing the bundle's dependencies failed"
                raise EnvironmentFailure(kind, "%s on the Dask worker: %s" % (what, cause.strip()), output[-4000:], ["full output on the worker: %s" % log_path])

        try:
            # without pip a venv takes ~50 ms instead of seconds
            step("venv-create-failed", [base, "-m", "venv"] + ([] if needs_install else ["--without-pip"]) + [temp])
            python = os.path.join(temp, "bin", "python")
            if needs_install:
                what = ["-r", os.path.join(bundle_path, "requirements.txt")] if spec["deps_source"] == "requirements.txt" else list(spec["requirements"])
                step("deps-install-failed", [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"] + list(spec["extra_install_args"]) + what)
                _relocate_scripts(temp, final)
            step("venv-create-failed", [python, "-c", "import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)"])
            marker = {
                "schema": MARKER_SCHEMA,
                "key": key,
                "bundle": bundle_path,
                "bundleDigest": spec["digest"],
                "depsHash": spec["deps_hash"],
                "python": dict(_identity(base), path=base, version=version),
                "installer": {"name": "pip" if needs_install else "venv", "version": "Python %s" % version},
                "requirements": list(spec["requirements"]),
                "createdAt": _now_iso(),
                "buildMs": round((time.monotonic() - started) * 1000),
                "functionalCheck": "the venv's interpreter started inside the venv (Dask worker)",
            }
            with open(os.path.join(temp, MARKER_FILE), "w") as handle:
                json.dump(marker, handle, indent=2)
            os.rename(temp, final)
            _touch(os.path.join(final, LAST_USED_FILE))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise


def _relocate_scripts(temp, final):
    bin_dir = os.path.join(temp, "bin")
    for name in os.listdir(bin_dir):
        path = os.path.join(bin_dir, name)
        if not os.path.isfile(path) or os.path.islink(path) or os.path.getsize(path) > 1024 * 1024:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        if temp.encode() in data:
            with open(path, "wb") as handle:
                handle.write(data.replace(temp.encode(), final.encode()))


def _touch(path):
    with open(path, "a"):
        os.utime(path, None)


# ---- one warm runner ------------------------------------------------------------------------


# ---- a runner's descendants (src/engine/process/descendants.ts, the same rules) ------------------


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
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid=,stat=,command="], capture_output=True, text=True, timeout=5)
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
    table = [entry for entry in _process_table() if entry[0] not in (root, os.getpid()) and (root_start is None or entry[4] is None or entry[4] >= root_start)]
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
        found.append({"pid": pid, "command": _command(pid, command or (" ".join(spawn["command"]) if spawn and spawn.get("command") else None)), "escaped": pgid != root, "stack": spawn["stack"] if spawn else []})
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


class Runner:
    """A runner subprocess spoken to over JSON-RPC; its stderr goes to a file on the worker. It is
    the leader of its own session and process group, which is ended with it."""

    def __init__(self, spec, python, venv, bundle_path, runner_script):
        self.spec = spec
        self.bundle_path = bundle_path
        self.stderr_path = os.path.join(cache_root(), ".dask-runner", "stderr-%d-%s.log" % (os.getpid(), secrets.token_hex(4)))
        self.token = "%d-%s" % (os.getpid(), secrets.token_hex(8))
        self.stderr_file = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [python, runner_script, "--bundle-path", bundle_path, "--venv-path", venv, "--bundle-digest", spec["digest"]],
            cwd=bundle_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env=dict(os.environ, PYTHONUNBUFFERED="1", MODELOPS_MAX_FRAME_BYTES=str(spec["max_frame_bytes"]), **dict(spec["env"], **{RUNNER_TOKEN_ENV: self.token})),
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.start_ticks = _start_ticks(self.pid)
        # processes the bundle started (runner/spawned), by pid, since the last check
        self.spawns = {}
        self.parser = FrameParser(spec["max_frame_bytes"])
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

    def request(self, method, params_json, timeout_s):
        """('ok', result) or ('failed', facts)."""
        request_id = self.next_id
        self.next_id += 1
        began = time.monotonic()
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
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "failed", self._timed_out(method, began, stderr_offset, timeout_s)
            ready, _, _ = select.select([fd], [], [], remaining)
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
                        facts.update(outcome="protocol", reason="a %d-byte frame exceeds the %d-byte frame cap" % (message.length, self.parser.max_bytes))
                        return "failed", facts
                    self.uses += 1
                    data = {"kind": "result-too-large", "method": method, "frame_bytes": message.length, "max_frame_bytes": self.parser.max_bytes, "outputs": []}
                    facts.update(outcome="error", error={"code": -32002, "message": "Result too large", "data": data})
                    return "failed", facts
                if message.get("id") == request_id and ("result" in message or "error" in message):
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
        try:
            self.process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        facts = self.facts(method, began, stderr_offset, timeout_s)
        facts["outcome"] = "exited"
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
            exit_info = {"code": None, "signal": signal.Signals(-code).name} if code < 0 else {"code": code, "signal": None}
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
        return "[modelops-debugger: %d bytes of stderr left out here; the Dask worker %s keeps them in %s]\n" % (dropped, socket.gethostname(), self.stderr_path) + self._read_stderr(size - STDERR_REPORT_BYTES, size)

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
        self.stderr_file.close()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass


# ---- tasks ----------------------------------------------------------------------------------

# Idle warm runners per bundle (and runner and interpreter): a task takes one, or starts one,
# and gives it back. Keyed by bundle, not by thread: Dask's executor replaces idle threads, and
# a runner kept per thread would be left behind with each of them.
# A newer helper uploaded by a later job reloads this module in place: the runners the older
# code started are closed rather than left behind.
for _runners in globals().get("_IDLE", {}).values():
    for _runner in _runners:
        _runner.close()
_IDLE = {}
_RUNNERS_LOCK = threading.Lock()


def _close_idle():
    """Worker teardown: every idle runner is retired, its process group ended with it."""
    with _RUNNERS_LOCK:
        runners = [runner for idle in _IDLE.values() for runner in idle]
        _IDLE.clear()
    for runner in runners:
        runner.close()


atexit.register(_close_idle)


def _worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _emit(event):
    worker = _worker()
    if worker is not None:
        event["worker"] = worker.address
        try:
            worker.log_event(EVENT_TOPIC, event)
        except Exception as exc:  # the event is lost, the task is not: say so on the worker's log
            sys.stderr.write("modelops-debugger: could not send event %r: %s\n" % (event.get("type"), exc))


def _where():
    worker = _worker()
    return worker.address if worker is not None else socket.gethostname()


def _slot(spec):
    # the frame cap is in the runner's environment: a job with another cap gets runners of its own
    return (spec["digest"], spec["runner_file"], spec["base_python"], spec["max_frame_bytes"])


def _runner_for(spec):
    """An idle warm runner for this job's bundle, else a new one (its venv built or reused, and
    ready). Returns (runner, None) or (None, facts of why it could not start)."""
    with _RUNNERS_LOCK:
        idle = _IDLE.setdefault(_slot(spec), [])
        runner = idle.pop() if idle else None
    while runner is not None and not runner.alive:
        _retire(runner, "exited")
        with _RUNNERS_LOCK:
            runner = idle.pop() if idle else None
    if runner is not None:
        return runner, None
    try:
        venv, key, how = ensure_venv(spec, spec["bundle_path"])
    except EnvironmentFailure as exc:
        return None, {"outcome": "environment", "kind": exc.kind, "message": str(exc), "stderr_tail": exc.log_tail, "notes": exc.notes}
    except OSError as exc:
        return None, _venvs_dir_failure(exc, "build the bundle's venv")
    if how != "valid":
        _emit({"type": "venv-built", "key": key, "reason": how})
    runner = Runner(spec, os.path.join(venv, "bin", "python"), venv, spec["bundle_path"], os.path.join(spec["runner_dir"], spec["runner_file"]))
    status, answer = runner.request("ready", "{}", spec["ready_timeout_s"])
    if status != "ok":
        answer["stderr"] = runner.take_stderr()
        runner.close()
        return None, answer
    _emit({"type": "process-start", "pid": runner.pid, "venv": key})
    return runner, None


def _give_back(spec, runner):
    with _RUNNERS_LOCK:
        _IDLE.setdefault(_slot(spec), []).append(runner)


def _retire(runner, why):
    code = runner.process.poll()
    runner.close()
    _emit({"type": "process-end", "pid": runner.pid, "why": why, "uses": runner.uses, "exit_code": code if code is not None and code >= 0 else None, "signal": signal.Signals(-code).name if code is not None and code < 0 else None})


def _call(spec, key, method, params_json):
    """One request on a warm runner: (status, result or facts, what the runner said meanwhile).
    Its stderr since its last task goes with it (the engine writes it to logs/); a runner that
    crashed, hung or broke the protocol is retired, any other goes back to the idle ones."""
    runner, facts = _runner_for(spec)
    if runner is None:
        facts["start_failed"] = True
        return "failed", facts, None
    status, answer = runner.request(method, params_json, spec["task_timeout_s"])
    said = {"pid": runner.pid, "stderr": runner.take_stderr(), "captures": _take_captures(runner)}
    broken = status == "failed" and answer["outcome"] != "error"  # it cannot be trusted with another request
    lingering = runner.lingering(broken)
    if lingering:
        # named with the task that left them; the runner goes, and its process group with it
        said["descendants"] = [dict(d, task=key, runner_pid=runner.pid) for d in lingering]
    if status == "failed":
        answer["stderr"] = said["stderr"]
        if lingering:
            answer["descendants"] = said["descendants"]
        if broken:
            _retire(runner, {"exited": "crashed", "timeout": "timed out", "protocol": "protocol error"}[answer["outcome"]])
            return status, answer, said
    if lingering:
        _retire(runner, "its task left processes running")
        return status, answer, said
    _give_back(spec, runner)
    return status, answer, said


def _settings(payload, key, seed):
    """The job's settings, or the result that says why this worker could not have them."""
    try:
        return _spec(payload), None
    except OSError as exc:  # the worker's venvs directory (where the bundle goes) cannot serve
        facts = _venvs_dir_failure(exc, "put the job's bundle in place")
        facts["start_failed"] = True
        return None, {"key": key, "status": "failed", "seed": seed, "worker": _where(), "attempts": [facts], "ms": 0}
    except (ImportError, ValueError) as exc:
        facts = {"outcome": "environment", "kind": "protocol-error", "message": "The job's bundle could not be put in place on Dask worker %s: %s: %s" % (_where(), type(exc).__name__, exc), "start_failed": True}
        return None, {"key": key, "status": "failed", "seed": seed, "worker": _where(), "attempts": [facts], "ms": 0}


def _venvs_dir_failure(exc, doing):
    """An OSError in the worker's venvs directory, as the engine's venv-create-failed: the path
    and the errno, named and said in words."""
    name = errno.errorcode.get(exc.errno, "error") if exc.errno else type(exc).__name__
    where = exc.filename or cache_root()
    message = "The venvs directory %s on Dask worker %s cannot be used: could not %s at %s (%s: %s); give the workers another MODELOPS_VENVS_DIR" % (cache_root(), _where(), doing, where, name, (exc.strerror or str(exc)).lower())
    return {"outcome": "environment", "kind": "venv-create-failed", "message": message, "stderr_tail": "", "notes": ["venvs directory: %s" % cache_root()]}


def run_sim(payload, key, seed, params_json):
    """A `sim-{param_id}-{i}` task. Crashes are retried here, on a fresh runner, so the
    aggregation's graph stays as submitted; every attempt's facts go back to the engine."""
    spec, failed = _settings(payload, key, seed)
    if failed is not None:
        return failed
    attempts = []
    began = time.monotonic()
    execute = '{"entrypoint":%s,"params":%s,"seed":%d}' % (json.dumps(spec["entrypoint"]), params_json, seed)
    for attempt in range(1, spec["retries"] + 2):
        status, answer, said = _call(spec, key, "execute", execute)
        if status == "ok":
            return {"key": key, "status": "ok", "outputs": answer, "seed": seed, "pid": said["pid"], "worker": _where(), "attempts": attempts, "ms": _ms(began), "stderr": said["stderr"], "captures": said["captures"], "bundle_path": spec["bundle_path"], "descendants": said.get("descendants", [])}
        attempts.append(answer)
        crashed = answer.get("outcome") == "exited"
        if not crashed or attempt > spec["retries"]:
            break
        _emit({"type": "task-retry", "key": key, "attempt": attempt + 1, "exit": answer.get("exit")})
    return {"key": key, "status": "failed", "seed": seed, "worker": _where(), "attempts": attempts, "ms": _ms(began)}


def run_agg(payload, agg, *sims):
    """An `agg-{param_id}` task: the simulations' results arrive as positional arguments (as in
    production since its deadlock fix). Each target is aggregated by a warm runner. The
    simulations' results go back with it, so the client gathers one result per parameter set
    instead of one per task; the engine records them, then builds the summary and the record."""
    began = time.monotonic()
    ok = [s for s in sims if s.get("status") == "ok"]
    result = {"status": "ok", "targets": {}, "worker": _where(), "pid": None, "ms": 0, "stderr": "", "sims": list(sims)}
    if (len(ok) < len(sims) and not agg["allow_partial"]) or not ok:
        result["status"] = "skipped"
    elif agg["targets"]:
        spec, failed = _settings(payload, agg["key"], None)
        if failed is not None:
            result["targets"] = {target: {"status": "failed", "facts": failed["attempts"][0]} for target in agg["targets"]}
            result["ms"] = _ms(began)
            return result
        returns = json.dumps([_sim_return(agg["param_id"], s) for s in ok])
        for target in agg["targets"]:
            params = '{"target_entrypoint":%s,"sim_returns":%s,"target_data":%s}' % (json.dumps(target), returns, agg["target_data_json"])
            status, answer, said = _call(spec, agg["key"], "aggregate", params)
            if said is not None:
                answer.pop("stderr", None)
                answer.pop("descendants", None)
                result["pid"] = said["pid"]
                result["stderr"] += said["stderr"]
                result["descendants"] = result.get("descendants", []) + said.get("descendants", [])
                result["bundle_path"] = spec["bundle_path"]
            result["targets"][target] = {"status": "ok", "result": answer} if status == "ok" else {"status": "failed", "facts": answer}
            if status == "failed" and answer.get("start_failed"):
                break
    result["ms"] = _ms(began)
    return result


def _sim_return(param_id, sim):
    """A replicate as production's aggregation receives it (isolated_warm.py _serialize_sim_returns)."""
    outputs = {}
    for name, inline in sim["outputs"].items():
        data = base64.b64decode(inline)
        outputs[name] = {"size": len(data), "checksum": hashlib.blake2b(data, digest_size=32).hexdigest(), "inline": inline}
    text = "%s-%s-%s" % (param_id[:16], sim["seed"], ",".join(sorted(sim["outputs"])))
    return {"task_id": hashlib.blake2b(text.encode(), digest_size=32).hexdigest(), "outputs": outputs}


def _take_captures(runner):
    captures, runner.captures = runner.captures, []
    return captures[:20]


def _ms(began):
    return round((time.monotonic() - began) * 1000, 3)
