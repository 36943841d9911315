"""ModelOps Pipeline Debugger: what one Dask worker has on disk and running (standard library only).

`cluster inspect` sends this file's source to every worker through the scheduler (the driver's
`dask/inspect`: `client.run` of a function that executes it there; nothing is installed or left
on the worker) and calls `inspect_worker(params)` in a thread of the worker, off its event loop.
It only reads: it gathers facts and judges nothing; the engine (src/engine/cluster/) parses the
venv keys and gives the verdicts. The facts' shape is typed once in src/engine/cluster/facts.ts.

Layouts read, production's (MO worker/process_manager.py, subprocess_runner.py) and ours
(src/runner/modelops_venv_cache.py):
  {venvs}/{key}/              a venv: bin/python, pyvenv.cfg, .deps_installed (production: BLAKE2b-16
                              over the dependency files), .install.lock, logs/runner-{digest12}-{pid}.stderr,
                              .modelops-venv.json (ours)
  {venvs}/{key}.lock          production: an empty file, flock'ed while a venv is made (never deleted);
                              ours: a directory holding owner.json
  {venvs}/.tmp-{key}-…        ours: a venv being built
  {bundles}/bundles/{digest12}/   a bundle, `.complete` once fully materialised

Every lock is probed without waiting and released at once (flock LOCK_EX|LOCK_NB, then LOCK_UN),
on a descriptor opened read-only, so the file is neither created nor changed.
"""

import hashlib
import json
import os
import re
import socket
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

# production's order (process_manager.py _compute_deps_hash, subprocess_runner.py _deps_fingerprint)
DEPS_FILES = ("uv.lock", "poetry.lock", "requirements.txt", "pyproject.toml")
PRODUCTION_VENVS_DIR = "/tmp/modelops/venvs"
PRODUCTION_BUNDLES_DIR = "/tmp/modelops/bundles"
# scripts whose processes are runners: production's and ours
RUNNER_SCRIPTS = ("subprocess_runner.py", "modelops_runner.py", "modelops_debugger_runner.py", "ultra_cold_runner.py")
LOG_NAME = re.compile(r"^runner-(.+)-(\d+)\.stderr$")


def inspect_worker(params):
    """Everything one worker can say about itself; `params`: venvs_dir, bundles_dir (optional), size_budget_s,
    runner_scan ("auto", or "proc" / "psutil" / "ps" to use that one: the fallbacks tested where /proc exists)."""
    started = time.monotonic()
    deadline = started + float(params.get("size_budget_s") or 5.0)
    venvs_dirs = _venvs_dirs(params.get("venvs_dir"))
    bundles_dir, bundles_source = _bundles_dir(params.get("bundles_dir"))
    runners, scan = _runners(params.get("runner_scan") or "auto")
    facts = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": sys.platform,
        "uptime_s": _uptime_s(os.getpid()),
        "rss_bytes": _rss_bytes(os.getpid()),
        "venvs_dirs": [_venvs_dir_facts(path, source, deadline) for path, source in venvs_dirs],
        "bundles_dir": bundles_dir,
        "bundles_dir_source": bundles_source,
        "bundles": _bundles(bundles_dir),
        "runners": runners,
        "runner_scan": scan,
    }
    facts["ms"] = round((time.monotonic() - started) * 1000, 1)
    return facts


# ---- where to look ---------------------------------------------------------------------------


def _venvs_dirs(given):
    """The directory asked for; else the worker's MODELOPS_VENVS_DIR; else production's default and ours."""
    if given:
        return [(os.path.abspath(given), "--venvs-dir")]
    if os.environ.get("MODELOPS_VENVS_DIR"):
        return [(os.path.abspath(os.environ["MODELOPS_VENVS_DIR"]), "MODELOPS_VENVS_DIR")]
    ours = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "modelops-debugger",
        "venvs",
    )
    return [(PRODUCTION_VENVS_DIR, "production default"), (ours, "modelops-debugger default")]


def _bundles_dir(given):
    if given:
        return os.path.abspath(given), "--bundles-dir"
    if os.environ.get("MODELOPS_BUNDLES_CACHE_DIR"):
        return os.path.abspath(os.environ["MODELOPS_BUNDLES_CACHE_DIR"]), "MODELOPS_BUNDLES_CACHE_DIR"
    return PRODUCTION_BUNDLES_DIR, "production default"


# ---- venvs and locks -------------------------------------------------------------------------


def _venvs_dir_facts(root, source, deadline):
    out = {"path": root, "source": source, "exists": os.path.isdir(root), "venvs": [], "locks": []}
    if not out["exists"]:
        return out
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
        return out
    for name in names:
        path = os.path.join(root, name)
        if name.endswith(".lock"):
            out["locks"].append(_lock_facts(path, name[: -len(".lock")]))
        elif os.path.isdir(path) and not os.path.islink(path):
            if name.startswith(".tmp-"):
                out["venvs"].append(dict(_venv_facts(path, deadline), name=name, temp=True, builder=_builder(name)))
            elif not name.startswith("."):
                out["venvs"].append(_venv_facts(path, deadline))
    return out


def _venv_facts(path, deadline):
    python = os.path.join(path, "bin", "python")
    facts = {
        "name": os.path.basename(path),
        "path": path,
        "mtime": _mtime(path),
        "size_bytes": _size(path, deadline),
        "pyvenv_version": _pyvenv_version(path),
        "bin_python": None,
        "deps_marker": _read_text(os.path.join(path, ".deps_installed"), 200),
        "ours_marker": os.path.exists(os.path.join(path, ".modelops-venv.json")),
        "install_lock": None,
        "logs": [],
    }
    if os.path.lexists(python):
        real = os.path.realpath(python)
        facts["bin_python"] = {
            "target": os.readlink(python) if os.path.islink(python) else None,
            "real": real,
            "exists": os.path.exists(python),
        }
    if facts["ours_marker"]:
        facts["ours"] = _our_marker(path)
    if facts["bin_python"] is not None and facts["bin_python"]["exists"]:
        facts["bin_python"]["identity"] = _binary_identity(facts["bin_python"]["real"])
    install_lock = os.path.join(path, ".install.lock")
    if os.path.exists(install_lock):
        facts["install_lock"] = _lock_facts(install_lock, None)
    logs = os.path.join(path, "logs")
    if os.path.isdir(logs):
        for name in sorted(os.listdir(logs)):
            full = os.path.join(logs, name)
            facts["logs"].append({"path": full, "bytes": _file_size(full), "mtime": _mtime(full)})
    return facts


TEMP_NAME = re.compile(r"^\.tmp-(.+)-(\d+)-[0-9a-f]{8}$")


def _builder(name):
    """Our build directory `.tmp-{key}-{pid}-{hex8}` names its builder: is it still alive?"""
    found = TEMP_NAME.match(name)
    if not found:
        return None
    pid = int(found.group(2))
    return {"key": found.group(1), "pid": pid, "alive": _pid_alive(pid)}


def _our_marker(venv):
    """What our `.modelops-venv.json` says that the checklist needs (src/engine/venv/marker.ts), and the
    bundle it names as it is now on this worker (its dependency files hashed as the key's deps part)."""
    text = _read_text(os.path.join(venv, ".modelops-venv.json"), 1 << 20)
    try:
        marker = json.loads(text) if text is not None else None
    except ValueError as exc:
        return {"error": "unreadable (%s)" % exc}
    if not isinstance(marker, dict):
        return {"error": "unreadable (not a JSON object)"}
    python = marker.get("python") if isinstance(marker.get("python"), dict) else None
    out = {k: marker.get(k) for k in ("schema", "key", "bundle", "bundleDigest", "depsHash", "createdAt")}
    out["python"] = (
        {k: python.get(k) for k in ("path", "realPath", "size", "mtimeMs", "version")} if python is not None else None
    )
    owner = marker.get("owner")
    if isinstance(owner, dict):
        out["owner"] = {k: owner.get(k) for k in ("pid", "host", "startTime")}
        out["owner_gone"] = _holder_gone(owner)
    bundle = marker.get("bundle")
    if isinstance(bundle, str) and os.path.isabs(bundle):
        present = [f for f in DEPS_FILES if os.path.isfile(os.path.join(bundle, f))]
        key_hash = hashlib.blake2b(digest_size=8)  # the engine's deps.ts, production's _compute_deps_hash
        for dep in present:
            with open(os.path.join(bundle, dep), "rb") as handle:
                key_hash.update(handle.read())
        out["bundle_now"] = {
            "exists": os.path.isdir(bundle),
            "deps_files": present,
            "deps_hash": key_hash.hexdigest() if os.path.isdir(bundle) else None,
        }
    return out


def _binary_identity(path):
    """Real path, size and mtime in ms as Node computes them (interpreter.ts binaryIdentity): our marker's terms."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    seconds, nanoseconds = divmod(st.st_mtime_ns, 1000000000)
    return {"realPath": path, "size": st.st_size, "mtimeMs": float(seconds) * 1e3 + float(nanoseconds) / 1e6}


def _holder_gone(owner):
    """Why our lock's (or fresh venv's) owner is gone (src/engine/lock/dirLock.ts holderGone), or None while it may
    be alive or is another host's."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    if _pid_alive(pid) is False:
        return "pid %d no longer exists" % pid
    now = _start_ticks(pid)
    if owner.get("startTime") and now and now != owner.get("startTime"):
        return "pid %d now belongs to another process (started at tick %s, the holder at %s)" % (
            pid,
            now,
            owner.get("startTime"),
        )
    return None


def _start_ticks(pid):
    stat = _proc_stat(pid)
    return stat["rest"][19] if stat else ""


def _lock_facts(path, key):
    """A lock: production's flock file or our lock directory, whether held, and by whom if it says."""
    facts = {"key": key, "path": path, "mtime": _mtime(path)}
    if os.path.isdir(path):
        facts["form"] = "directory"
        owner = _read_json(os.path.join(path, "owner.json"))
        facts["owner"] = owner
        pid = owner.get("pid") if isinstance(owner, dict) else None
        same_host = isinstance(owner, dict) and owner.get("host") == socket.gethostname()
        facts["recorded_pid"] = pid if isinstance(pid, int) else None
        gone = _holder_gone(owner) if isinstance(owner, dict) else None
        facts["pid_alive"] = (gone is None and _pid_alive(pid)) if isinstance(pid, int) and same_host else None
        facts["gone"] = gone
        facts["held"] = None  # a directory lock is held while it exists
        return facts
    facts["form"] = "file"
    text = _read_text(path, 256)
    pid = _recorded_pid(text)
    facts["recorded_pid"] = pid
    facts["pid_alive"] = _pid_alive(pid) if pid is not None else None
    facts["held"], facts["probe"] = _probe_flock(path)
    return facts


def _probe_flock(path):
    """(held, how it was found out): a non-blocking exclusive flock, released at once if it was granted."""
    if fcntl is None:
        return None, "flock is not available on %s" % sys.platform
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return None, "could not open it: %s" % exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return True, "flock LOCK_EX|LOCK_NB refused: another process holds it"
        except OSError as exc:
            return None, "flock failed: %s" % exc
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, "flock LOCK_EX|LOCK_NB granted and released at once: nobody holds it"
    finally:
        os.close(fd)


def _recorded_pid(text):
    """A pid the lock file names, if any: a bare number, or JSON with "pid"."""
    if not text:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        value = json.loads(text)
    except ValueError:
        found = re.match(r"^\s*(?:pid\s*[=:]\s*)?(\d+)\b", text)
        return int(found.group(1)) if found else None
    pid = value.get("pid") if isinstance(value, dict) else None
    return pid if isinstance(pid, int) else None


def _pid_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, someone else's
        return True
    return True


def _pyvenv_version(venv):
    """`version_info` (Python >= 3.11, uv) or `version` in pyvenv.cfg, as written there."""
    text = _read_text(os.path.join(venv, "pyvenv.cfg"), 8192)
    if text is None:
        return None
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            found[name.strip()] = value.strip()
    return found.get("version_info") or found.get("version")


# ---- bundles ---------------------------------------------------------------------------------


def _bundles(cache_dir):
    root = os.path.join(cache_dir, "bundles")
    out = {"path": root, "exists": os.path.isdir(root), "entries": []}
    if not out["exists"]:
        return out
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        present = [f for f in DEPS_FILES if os.path.isfile(os.path.join(path, f))]
        fingerprint = hashlib.blake2b(digest_size=16)  # subprocess_runner.py _deps_fingerprint
        key_hash = hashlib.blake2b(digest_size=8)  # process_manager.py _compute_deps_hash
        for dep in present:
            with open(os.path.join(path, dep), "rb") as handle:
                data = handle.read()
            fingerprint.update(data)
            key_hash.update(data)
        pyproject = os.path.join(path, "pyproject.toml")
        out["entries"].append(
            {
                "name": name,
                "path": path,
                "complete": os.path.exists(os.path.join(path, ".complete")),
                "pyproject": pyproject if os.path.isfile(pyproject) else None,
                "deps_files": present,
                "deps_fingerprint": fingerprint.hexdigest(),
                "deps_hash8": key_hash.hexdigest()[:8],
                "mtime": _mtime(path),
            }
        )
    return out


# ---- runner processes ------------------------------------------------------------------------
#
# Every process on the worker's machine whose command line runs a runner script (production's
# subprocess_runner.py: `{venv}/bin/python …/subprocess_runner.py --bundle-path B --venv-path V
# --bundle-digest D`, ours alike), and the zombies among this worker's own children, which keep no
# command line: theirs is read from the worker's own Popen objects. Three ways to list them, the
# first that works: /proc (Linux), psutil (macOS and others; Dask usually brings it), `ps -axo`
# (no psutil: its command lines are split on spaces, so an argument holding one is cut in two).
# `runner_scan` in the facts says which was used.

PS_COLUMNS = ["pid=", "ppid=", "stat=", "rss=", "etime=", "command="]


def _runners(prefer="auto"):
    """(runners, how they were found)."""
    have_proc = os.path.isdir("/proc/self")
    if prefer in ("auto", "proc") and have_proc:
        return _own_zombies(_runners_from_proc()), "/proc"
    if prefer in ("auto", "psutil"):
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            return _own_zombies(_runners_from_psutil(psutil)), "psutil" + ("" if have_proc else " (no /proc)")
        if prefer == "psutil":
            return [], "psutil is not installed for %s" % sys.executable
    found, why = _runners_from_ps()
    if found is None:
        return [], "not available on %s (no /proc, no psutil, %s)" % (sys.platform, why)
    return _own_zombies(found), "ps -axo" + ("" if prefer == "ps" else " (no /proc, no psutil)")


def _runners_from_proc():
    out = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None:
            continue
        runner = _runner_argv(_proc_cmdline(pid))
        if runner is None and not _own_zombie(stat["state"], stat["ppid"], stat["comm"], me):
            continue
        out.append(
            _with_log(
                runner or _no_argv(),
                pid=pid,
                ppid=stat["ppid"],
                age_s=_uptime_s(pid, stat),
                rss_bytes=_rss_bytes(pid),
                state=stat["state"],
                comm=stat["comm"],
                fd2=_proc_fd2(pid),
            )
        )
    return out


def _runners_from_psutil(psutil):
    out = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "ppid", "name", "cmdline", "create_time", "memory_info", "status"]):
        info = proc.info
        state = str(info.get("status"))
        runner = _runner_argv(info.get("cmdline") or [])
        if runner is None and not _own_zombie(state, info.get("ppid"), info.get("name") or "", me):
            continue
        memory = info.get("memory_info")
        fd2 = None
        if runner is not None:
            try:
                fd2 = next((f.path for f in proc.open_files() if f.fd == 2), None)
            except Exception:  # AccessDenied, gone: the production naming is used instead
                fd2 = None
        out.append(
            _with_log(
                runner or _no_argv(),
                pid=info["pid"],
                ppid=info.get("ppid"),
                age_s=round(time.time() - info["create_time"], 1) if info.get("create_time") else None,
                rss_bytes=memory.rss if memory else None,
                state=state,
                comm=info.get("name"),
                fd2=fd2,
            )
        )
    return out


def _runners_from_ps():
    """(runners, None) from `ps -axo pid=,ppid=,stat=,rss=,etime=,command=`, or (None, why not)."""
    import subprocess

    try:
        done = subprocess.run(
            ["ps", "-axo", ",".join(PS_COLUMNS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=10,
            env=dict(os.environ, LC_ALL="C"),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "ps failed: %s" % exc
    if done.returncode != 0:
        return None, "ps exited %d: %s" % (done.returncode, done.stderr.decode("utf-8", "replace").strip()[:200])
    out = []
    me = os.getpid()
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        pid, ppid, stat, rss, etime = int(fields[0]), int(fields[1]), fields[2], fields[3], fields[4]
        argv = fields[5].split() if len(fields) > 5 else []
        runner = _runner_argv(argv)
        # a zombie's command is `[python] <defunct>`; ps's stat: Z zombie, T stopped, … (its first letter is /proc's)
        comm = os.path.basename(argv[0].strip("[]")) if argv else ""
        if runner is None and not _own_zombie(stat[:1], ppid, comm, me):
            continue
        out.append(
            _with_log(
                runner or _no_argv(),
                pid=pid,
                ppid=ppid,
                age_s=_etime_s(etime),
                rss_bytes=int(rss) * 1024 if rss.isdigit() else None,
                state=stat[:1],
                comm=comm,
                fd2=None,
            )
        )
    return out, None


def _etime_s(text):
    """ps's elapsed time, `[[dd-]hh:]mm:ss`, in seconds."""
    days, _, rest = text.rpartition("-")
    parts = rest.split(":")
    try:
        seconds = sum(int(p) * 60**i for i, p in enumerate(reversed(parts)))
        return float(seconds + (int(days) * 86400 if days else 0))
    except ValueError:
        return None


def _own_zombie(state, ppid, comm, me):
    """A zombie Python child of this worker: a runner that died and was not reaped (its command line is gone)."""
    return str(state) in ("Z", "zombie") and ppid == me and str(comm).startswith("python")


def _no_argv():
    return {"argv": [], "script": None, "venv": None, "bundle_digest": None}


def _own_zombies(runners):
    """A zombie of this worker's keeps no command line; the worker's Popen object for it does (production's
    WarmProcess holds one): looked for only when there is such a zombie."""
    lost = {r["pid"]: r for r in runners if not r["argv"] and r.get("ppid") == os.getpid()}
    if not lost:
        return runners
    import gc
    import subprocess

    for obj in gc.get_objects():
        if isinstance(obj, subprocess.Popen) and obj.pid in lost and isinstance(obj.args, (list, tuple)):
            found = _runner_argv([str(a) for a in obj.args])
            if found is not None:
                runner = lost.pop(obj.pid)
                runner.update(found, argv_from="the worker's Popen object (a zombie keeps no command line)")
                runner.update(_with_log(runner))
    return runners


def _runner_argv(argv):
    """What a runner's command line says (script, venv, digest), or None when it is no runner's."""
    script = next((a for a in argv[1:3] if os.path.basename(a) in RUNNER_SCRIPTS), None)
    if script is None:
        return None
    option = _option(argv, "--venv-path")
    venv = option
    if venv is None and argv and argv[0].endswith(os.path.join("bin", "python")):
        venv = os.path.dirname(os.path.dirname(argv[0]))
    return {"argv": argv, "script": script, "venv": venv, "bundle_digest": _option(argv, "--bundle-digest")}


def _with_log(runner, fd2=None, **more):
    """Its stderr file: the file its fd 2 is open on, where that can be read (/proc, psutil); else production's
    naming, {venv}/logs/runner-{digest[:12]}-{its worker's pid}.stderr (process_manager.py: the worker's pid,
    so a runner whose worker died, reparented, is named after a pid it no longer has)."""
    runner = dict(runner, **more)
    log = None
    named = None
    if runner.get("venv") and runner.get("bundle_digest") and runner.get("ppid"):
        named = os.path.join(
            runner["venv"], "logs", "runner-%s-%d.stderr" % (runner["bundle_digest"][:12], runner["ppid"])
        )
    if fd2 and fd2.startswith("/") and os.path.isfile(fd2):
        log = {"path": fd2, "source": "fd 2"}
    elif named:
        log = {"path": named, "source": "production naming"}
    if log is not None:
        log.update(exists=os.path.exists(log["path"]), bytes=_file_size(log["path"]))
        if named and log["path"] != named:
            log["named"] = named  # where production's naming would look; not where it writes
    runner["stderr_log"] = log
    return runner


def _proc_fd2(pid):
    try:
        return os.readlink("/proc/%d/fd/2" % pid)
    except OSError:  # another user's, or gone
        return None


def _option(argv, name):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def _proc_stat(pid):
    text = _read_text("/proc/%d/stat" % pid, 4096)
    if not text or ")" not in text:
        return None
    rest = text[text.rindex(")") + 2 :].split(" ")
    return {"comm": text[text.index("(") + 1 : text.rindex(")")], "state": rest[0], "ppid": int(rest[1]), "rest": rest}


def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]


def _uptime_s(pid, stat=None):
    """Seconds since `pid` started: /proc (start tick against the boot clock), else psutil."""
    stat = stat or _proc_stat(pid)
    uptime = _read_text("/proc/uptime", 100)
    if stat and uptime:
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return round(float(uptime.split()[0]) - int(stat["rest"][19]) / ticks, 1)
    try:
        import psutil

        return round(time.time() - psutil.Process(pid).create_time(), 1)
    except Exception:
        return None


def _rss_bytes(pid):
    text = _read_text("/proc/%d/statm" % pid, 200)
    if text:
        return int(text.split()[1]) * (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096)
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:
        return None


# ---- small readers ---------------------------------------------------------------------------


def _read_text(path, limit):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _read_json(path):
    text = _read_text(path, 65536)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def _mtime(path):
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return None


def _file_size(path):
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


def _size(path, deadline):
    """Bytes under `path` (not following links); None when the time budget ran out first."""
    total = 0
    for parent, dirs, files in os.walk(path):
        if time.monotonic() > deadline:
            return None
        for name in files + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


if __name__ == "__main__":  # by hand: python3 modelops_cluster_inspect.py [VENVS_DIR [BUNDLES_DIR [RUNNER_SCAN]]]
    given = sys.argv[1:] + [None, None, None]
    print(
        json.dumps(inspect_worker({"venvs_dir": given[0], "bundles_dir": given[1], "runner_scan": given[2]}), indent=2)
    )
