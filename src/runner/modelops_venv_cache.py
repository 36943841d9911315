"""ModelOps Pipeline Debugger: the venv cache, Python side (standard library only).

The same cache as the engine's src/engine/venv/ and src/engine/lock/, for the places where no
Node runs (a Dask worker): the key `{digest12}-py{X.Y}-{deps8}`, the marker
`.modelops-venv.json`, the validity checklist, the per-key lock and the atomic build. Both
sides may share one venvs directory, so every rule here is the TypeScript one, word for word
where a reason is shown; test/unit/venvContract.test.ts holds the two to it.

Also a small command line, for that test and for looking at a worker's cache by hand:

    python3 modelops_venv_cache.py key BUNDLE [--python P]
    python3 modelops_venv_cache.py check KEY [--python P] [--venvs-dir D]
    python3 modelops_venv_cache.py ensure BUNDLE [--python P] [--venvs-dir D] [--install-timeout S]
    python3 modelops_venv_cache.py lock DIR [--timeout S]   (held until stdin closes)

Each prints one JSON object on stdout (`ensure` first prints each lock event as {"event": ...}); a
failure is {"error": {"kind", "message", ...}}, exit 1.
"""

import datetime
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time

import modelops_runner_client as client

HERE = os.path.dirname(os.path.abspath(__file__))
MARKER_FILE = ".modelops-venv.json"
LAST_USED_FILE = ".last-used"
MARKER_SCHEMA = 1
OWNER_FILE = "owner.json"
# a lock directory without an owner file is being created; after this long it never will be (dirLock.ts)
OWNERLESS_GRACE_S = 5.0
LOCK_POLL_S = 0.1
# the lock waits for a build at most this much longer than the build may take (cache.ts LOCK_MARGIN_MS)
LOCK_MARGIN_S = 60
DEFAULT_INSTALL_TIMEOUT_S = 15 * 60
# the new venv must start our runner within this long (build.ts FUNCTIONAL_CHECK_TIMEOUT_MS) ...
FUNCTIONAL_CHECK_TIMEOUT_S = 60.0
# ... or reach the bundle's code and then get this grace (BUNDLE_IMPORT_GRACE_MS)
BUNDLE_IMPORT_GRACE_S = 2.0
RUNNER_FILE = "modelops_runner.py"
# bundle identity (src/engine/bundle/bundleDir.ts)
SKIPPED_DIRS = {
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
}
SKIPPED_FILE = re.compile(r"(\.py[co]|^\.DS_Store)$")
# production's order (process_manager.py _compute_deps_hash): raw bytes, concatenated (deps.ts)
DEPS_FILES = ("uv.lock", "poetry.lock", "requirements.txt", "pyproject.toml")


class EnvironmentFailure(Exception):
    """A venv that cannot be had: `kind` is the engine's failure kind."""

    def __init__(self, kind, message, log_tail="", notes=None):
        super().__init__(message)
        self.kind = kind
        self.log_tail = log_tail
        self.notes = notes or []


def venvs_dir(env=None):
    """The venvs directory, as the engine's venv/cache.ts venvsDir finds it (MODELOPS_VENVS_DIR first)."""
    env = os.environ if env is None else env
    if env.get("MODELOPS_VENVS_DIR"):
        return os.path.abspath(env["MODELOPS_VENVS_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "modelops-debugger", "venvs")


# ---- the key ---------------------------------------------------------------------------------


def venv_key(digest, python_xy, deps_hash):
    """Production's form (process_manager.py `_get_venv_key`), on a bare-hex digest."""
    return "%s-py%s-%s" % (digest[:12], python_xy, deps_hash[:8])


def bundle_files(bundle_dir):
    """POSIX relative paths of the files that count, sorted by byte order (bundleDir.ts listFiles)."""
    out = []

    def walk(relative):
        with os.scandir(os.path.join(bundle_dir, relative) if relative else bundle_dir) as entries:
            for entry in entries:
                rel = "%s/%s" % (relative, entry.name) if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIPPED_DIRS:
                        walk(rel)
                elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    if not SKIPPED_FILE.search(entry.name):
                        out.append(rel)

    walk("")
    return sorted(out, key=lambda name: name.encode("utf-8", "surrogateescape"))


def bundle_digest(bundle_dir):
    """The bundle's identity: the formula of src/engine/bundle/bundleDir.ts, content only."""
    digest = hashlib.sha256(b"modelops-debugger:bundle:v1\n")
    for name in bundle_files(bundle_dir):
        full = os.path.join(bundle_dir, *name.split("/"))
        if os.path.islink(full):
            digest.update(("%s\0link\0%s\n" % (name, os.readlink(full))).encode("utf-8", "surrogateescape"))
            continue
        content = hashlib.sha256()
        with open(full, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                content.update(chunk)
        size = os.stat(full).st_size
        digest.update(("%s\0%d\0%s\n" % (name, size, content.hexdigest())).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def deps_hash(bundle_dir):
    """BLAKE2b-8 over the dependency files present, in production's order (deps.ts readBundleDeps)."""
    data = b""
    for name in DEPS_FILES:
        try:
            with open(os.path.join(bundle_dir, name), "rb") as handle:
                data += handle.read()
        except OSError:
            pass  # absent: not hashed
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def bundle_spec(bundle_dir, base_python="", extra_install_args=(), install_timeout_s=DEFAULT_INSTALL_TIMEOUT_S):
    """What the engine's Dask backend hands a worker about a bundle (TaskSpec's venv fields), read
    from the bundle itself as deps.ts does: for this module's command line."""
    spec = {
        "digest": bundle_digest(bundle_dir),
        "deps_hash": deps_hash(bundle_dir),
        "deps_source": "none",
        "requirements": [],
        "requirement_options": [],
        "requires_python": "",
        "base_python": base_python,
        "extra_install_args": list(extra_install_args),
        "install_timeout_s": install_timeout_s,
    }
    project = _pyproject(bundle_dir).get("project")
    if isinstance(project, dict):
        if isinstance(project.get("requires-python"), str):
            spec["requires_python"] = project["requires-python"]
        if project.get("dependencies") is not None:
            spec["deps_source"] = "pyproject.toml"
            spec["requirements"] = list(project["dependencies"])
            return spec
    try:
        with open(os.path.join(bundle_dir, "requirements.txt"), encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except OSError:
        return spec
    spec["deps_source"] = "requirements.txt"
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            spec["requirement_options" if line.startswith("-") else "requirements"].append(line)
    return spec


def _pyproject(bundle_dir):
    path = os.path.join(bundle_dir, "pyproject.toml")
    if not os.path.exists(path):
        return {}
    try:
        import tomllib
    except ImportError:  # Python < 3.11: only the name is needed on a worker, and it is optional
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure("bad-input", "%s is not valid TOML: %s" % (path, exc)) from exc


def _project_name(bundle_dir):
    try:
        project = _pyproject(bundle_dir).get("project")
    except EnvironmentFailure:
        return None
    name = project.get("name") if isinstance(project, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


# ---- the marker and the checklist ------------------------------------------------------------


def binary_identity(path):
    """Real path, size and mtime of a binary (interpreter.ts binaryIdentity). mtimeMs is computed
    as Node computes it (seconds * 1e3 + nanoseconds / 1e6, in doubles), so that the two sides
    compare it exactly: st_mtime_ns / 1e6 can differ from Node's value in the last bit."""
    real = os.path.realpath(path)
    st = os.stat(real)
    seconds, nanoseconds = divmod(st.st_mtime_ns, 1000000000)
    return {"realPath": real, "size": st.st_size, "mtimeMs": float(seconds) * 1e3 + float(nanoseconds) / 1e6}


def same_binary(a, b):
    """Exactly the same file, as interpreter.ts sameBinary: a venv built from another binary is not sound."""
    return a["realPath"] == b.get("realPath") and a["size"] == b.get("size") and a["mtimeMs"] == b.get("mtimeMs")


def describe_binary(identity):
    """`path (N bytes, modified ISO)`, as marker.ts describeBinary (JavaScript's Date truncates to the ms)."""
    mtime = identity.get("mtimeMs")
    try:
        when = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(mtime))
        iso = when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)
    except (TypeError, ValueError, OverflowError):
        iso = "Invalid Date"
    return "%s (%s bytes, modified %s)" % (identity.get("realPath"), _js(identity.get("size")), iso)


def _js(value):
    """A value as a JavaScript template string shows it, for reasons worded as the engine's."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def read_marker(venv):
    """The marker as it is, unchecked; None when unreadable."""
    try:
        with open(os.path.join(venv, MARKER_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_marker(venv, marker):
    path = os.path.join(venv, MARKER_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2, ensure_ascii=False)
    os.rename(path + ".tmp", path)


def validate_venv(venv, key, base=None):
    """The checklist of marker.ts validateVenv, in its order, stopping at the first failure:
    {"valid", "reason" ("valid" or "<check>: <detail>"), "checks": [{name, ok, detail}], "marker"}.
    `base`: the identity of the interpreter a reuse expects the venv to be built from."""
    checks = []

    def fail(name, detail):
        checks.append({"name": name, "ok": False, "detail": detail})
        return {"valid": False, "reason": "%s: %s" % (name, detail), "checks": checks}

    def passed(name, detail):
        checks.append({"name": name, "ok": True, "detail": detail})

    if not os.path.exists(venv):
        return fail("directory", "not built yet")
    if not os.path.isdir(venv):
        return fail("directory", "%s is not a directory" % venv)
    passed("directory", venv)

    try:
        with open(os.path.join(venv, MARKER_FILE), encoding="utf-8") as handle:
            marker = json.load(handle)
    except FileNotFoundError:
        return fail("marker", "no %s: the build never finished" % MARKER_FILE)
    except (OSError, ValueError) as exc:
        return fail("marker", "%s is unreadable (%s)" % (MARKER_FILE, exc))
    python = marker.get("python") if isinstance(marker, dict) else None
    schema_ok = isinstance(python, dict) and marker.get("schema") == MARKER_SCHEMA
    if not schema_ok or not isinstance(python.get("realPath"), str):
        return fail("marker", "%s is not a schema-%d marker" % (MARKER_FILE, MARKER_SCHEMA))
    passed(
        "marker", "written %s after install and %s" % (_js(marker.get("createdAt")), _js(marker.get("functionalCheck")))
    )

    if marker.get("key") != key:
        return fail("key", "the marker says %s, the directory is %s" % (_js(marker.get("key")), key))
    passed("key", key)

    link = venv_python(venv)
    try:
        target = binary_identity(link)
        if not os.access(target["realPath"], os.X_OK):
            raise PermissionError(target["realPath"])
    except OSError:
        try:
            points_to = os.readlink(link)
        except OSError:
            points_to = None
        return fail(
            "interpreter",
            "bin/python points to %s, which does not exist" % points_to if points_to else "bin/python is missing",
        )
    passed("interpreter", "bin/python \u2192 %s" % target["realPath"])

    if not same_binary(target, python):
        return fail(
            "interpreter identity",
            "bin/python is now %s, the venv was built from %s" % (describe_binary(target), describe_binary(python)),
        )
    if base is not None and not same_binary(base, python):
        return fail(
            "interpreter identity",
            "the requested interpreter is %s, the venv was built from %s"
            % (describe_binary(base), describe_binary(python)),
        )
    passed("interpreter identity", describe_binary(target))

    version = _pyvenv_version(venv)
    if version != python.get("version"):
        return fail("version", "pyvenv.cfg says %s, the marker %s" % (version or "nothing", _js(python.get("version"))))
    passed("version", "Python %s" % version)
    return {"valid": True, "reason": "valid", "checks": checks, "marker": marker}


def _pyvenv_version(venv):
    """`version_info` (Python >= 3.11, uv) or `version` from pyvenv.cfg (marker.ts pyvenvVersion)."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, ValueError):
        return None

    def value(name):
        found = re.search(r"^\s*%s\s*=\s*(\S+)\s*$" % name, text, re.MULTILINE)
        return found.group(1) if found else None

    info = value("version_info")
    return ".".join(info.split(".")[:3]) if info is not None else value("version")


# ---- the lock (src/engine/lock/dirLock.ts) ---------------------------------------------------


def process_start_time(pid):
    """Linux: clock ticks since boot at which `pid` started (/proc/<pid>/stat field 22); '' elsewhere."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
        return stat[stat.rindex(")") + 2 :].split(" ")[19]
    except (OSError, ValueError, IndexError):
        return ""


def _iso_now():
    """`new Date().toISOString()`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def read_owner(lock_dir):
    try:
        with open(os.path.join(lock_dir, OWNER_FILE), encoding="utf-8") as handle:
            owner = json.load(handle)
        return owner if isinstance(owner, dict) else None
    except (OSError, ValueError):
        return None


def holder_gone(owner):
    """Why a holder is gone (no such pid on this host, or its pid now another process's), or None
    while it may still be alive; another host's holder is never judged."""
    if owner.get("host") != socket.gethostname():
        return None
    try:
        pid = int(owner.get("pid"))
    except (TypeError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "pid %d no longer exists" % pid
    except OSError:
        pass  # EPERM: alive, owned by someone else
    now = process_start_time(pid)
    if owner.get("startTime") and now and now != owner.get("startTime"):
        return "pid %d now belongs to another process (started at tick %s, the holder at %s)" % (
            pid,
            now,
            owner.get("startTime"),
        )
    return None


def describe_holder(holder):
    if not holder:
        return "a process that has not written its name yet"
    return "pid %s on %s (%s, since %s)" % (
        _js(holder.get("pid")),
        _js(holder.get("host")),
        _js(holder.get("purpose")),
        _js(holder.get("acquiredAt")),
    )


class DirLock:
    """A directory (mkdir is atomic) holding owner.json: pid, host, start time, nonce. A holder that
    is gone is taken over (the stale lock renamed away, which only one taker can win)."""

    def __init__(self, path, owner):
        self.path = path
        self.owner = owner

    @classmethod
    def acquire(cls, path, timeout_s, purpose, failure_kind="venv-create-failed", on_event=None, poll_s=LOCK_POLL_S):
        deadline = time.monotonic() + timeout_s
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "startTime": process_start_time(os.getpid()),
            "nonce": secrets.token_hex(8),
            "acquiredAt": _iso_now(),
            "purpose": purpose,
        }
        announced = False
        os.makedirs(os.path.dirname(path), exist_ok=True)
        while True:
            try:
                os.mkdir(path)
                with open(os.path.join(path, OWNER_FILE), "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(owner, separators=(",", ":")))
                return cls(path, owner)
            except FileExistsError:
                pass
            holder = read_owner(path)
            gone = holder_gone(holder) if holder else _ownerless_too_long(path)
            if gone:
                if _take_over(path, holder.get("nonce") if holder else None) and holder and on_event:
                    on_event({"type": "lock-takeover", "lock": path, "holder": holder, "why": gone})
                continue
            if not announced:
                if on_event:
                    on_event({"type": "lock-wait", "lock": path, "holder": holder})
                announced = True
            if time.monotonic() >= deadline:
                raise EnvironmentFailure(
                    failure_kind,
                    "Timed out after %d s waiting for the lock %s, held by %s"
                    % (round(timeout_s), path, describe_holder(holder)),
                    notes=["if that process is gone for good, remove the lock directory"],
                )
            time.sleep(poll_s)

    def release(self):
        """Release, unless someone has taken the lock over in the meantime."""
        current = read_owner(self.path)
        if current is not None and current.get("nonce") == self.owner["nonce"]:
            shutil.rmtree(self.path, ignore_errors=True)


def _ownerless_too_long(path):
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return None  # vanished: try again
    return "the lock has had no owner file for %d s" % round(age) if age > OWNERLESS_GRACE_S else None


def _take_over(path, stale_nonce):
    """Rename the stale lock aside; put it back if what was renamed is a fresh one another taker made."""
    if (read_owner(path) or {}).get("nonce") != stale_nonce:
        return False
    aside = "%s.stale-%d-%s" % (path, os.getpid(), secrets.token_hex(4))
    try:
        os.rename(path, aside)
    except OSError:
        return False
    if (read_owner(aside) or {}).get("nonce") != stale_nonce:
        try:
            os.rename(aside, path)
        except OSError:
            pass  # another lock is in place meanwhile: the fresh one is lost, its holder will notice at release
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


# ---- ensure: reuse or build ------------------------------------------------------------------


def temp_prefix(key):
    return ".tmp-%s-" % key


def install_log_file(root, key):
    return os.path.join(root, "%s.install.log" % key)


def python_version(python, where=""):
    """`X.Y.Z` of an interpreter, asked of it (or of this one)."""
    if python == sys.executable:
        return "%d.%d.%d" % sys.version_info[:3]
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentFailure("interpreter-not-found", "%s did not start%s: %s" % (python, _on(where), exc)) from exc
    if out.returncode != 0:
        raise EnvironmentFailure(
            "interpreter-not-found", "%s did not start%s: %s" % (python, _on(where), out.stderr.strip()[-300:])
        )
    return out.stdout.strip()


def ensure_venv(spec, bundle_path, runner_script, root=None, where="", on_event=None):
    """The bundle's venv: reused when its checklist passes, else built (atomically, under the
    key's lock), as cache.ts VenvCache.ensure. `spec` holds TaskSpec's venv fields. Returns
    (venv path, key, "valid" or why it was built)."""
    base = spec.get("base_python") or sys.executable
    version = python_version(base, where)
    check_requires_python(spec, base, version, where)
    key = venv_key(spec["digest"], ".".join(version.split(".")[:2]), spec["deps_hash"])
    root = root or venvs_dir()
    venv = os.path.join(root, key)
    base_identity = binary_identity(base)
    if validate_venv(venv, key, base_identity)["valid"]:
        touch(os.path.join(venv, LAST_USED_FILE))
        return venv, key, "valid"
    os.makedirs(root, exist_ok=True)
    timeout_s = spec.get("install_timeout_s", DEFAULT_INSTALL_TIMEOUT_S) + LOCK_MARGIN_S
    lock = DirLock.acquire(
        venv + ".lock", timeout_s, "building venv %s%s" % (key, " on a " + where if where else ""), on_event=on_event
    )
    try:
        again = validate_venv(venv, key, base_identity)
        if again["valid"]:  # built by whoever held the lock
            touch(os.path.join(venv, LAST_USED_FILE))
            return venv, key, "valid"
        _clear_leftovers(root, key, again)
        build_venv(spec, bundle_path, base, version, key, venv, runner_script, where)
        touch(os.path.join(venv, LAST_USED_FILE))
        return venv, key, again["reason"]
    finally:
        lock.release()


def _on(where):
    return " on the " + where if where else ""


def check_requires_python(spec, base, version, where=""):
    """The bundle's requires-python against the interpreter, before any venv is made (workers need
    not all have the same Python, so each one checks its own)."""
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
            "The bundle requires Python %s (pyproject.toml requires-python), but %s%s is Python %s"
            % (wanted, "the %s's " % where if where else "", base, version),
            notes=["give the workers another interpreter with --worker-python"],
        )


def _clear_leftovers(root, key, validity):
    """Under the key's lock: an invalid venv and any half-built directory of this key go."""
    if validity["checks"] and validity["checks"][0]["ok"]:
        remove_dir(os.path.join(root, key))
    for name in os.listdir(root):
        if name.startswith(temp_prefix(key)):
            remove_dir(os.path.join(root, name))


def remove_dir(path):
    """Renamed aside first, so a half-removed directory is never mistaken for a venv."""
    aside = os.path.join(os.path.dirname(path), ".removing-%s-%s" % (os.path.basename(path), secrets.token_hex(4)))
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def touch(path):
    """The last-used time; a read-only cache still serves its venvs (cache.ts touch)."""
    try:
        try:
            os.utime(path, None)
        except FileNotFoundError:
            with open(path, "a"):
                pass
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise


def build_venv(spec, bundle_path, base, version, key, final, runner_script, where=""):
    """One venv, built in a temporary sibling, its dependencies installed, checked to run our
    runner, marked, and only then renamed into place (build.ts buildVenv). Returns the marker."""
    started = time.monotonic()
    root = os.path.dirname(final)
    temp = os.path.join(root, "%s%d-%s" % (temp_prefix(key), os.getpid(), secrets.token_hex(4)))
    log_path = install_log_file(root, key)
    needs_install = bool(spec.get("requirements")) or bool(spec.get("requirement_options"))
    timeout_s = spec.get("install_timeout_s", DEFAULT_INSTALL_TIMEOUT_S)
    with open(log_path, "w", encoding="utf-8") as log:
        builder = " (%s %s)" % (where, socket.gethostname()) if where else ""
        log.write(
            "# modelops-debugger venv build %s%s\n# bundle %s\n# python %s (%s)\n# started %s\n\n"
            % (key, builder, bundle_path, base, version, _iso_now())
        )

        def step(kind, args):
            log.write("$ %s\n" % " ".join(args))
            log.flush()
            env = dict(os.environ, PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
            try:
                done = subprocess.run(
                    args,
                    cwd=bundle_path,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    env=env,
                )
                output, code = done.stdout.decode("utf-8", "replace"), done.returncode
            except subprocess.TimeoutExpired as exc:
                output, code = (exc.output or b"").decode("utf-8", "replace"), "timeout"
            log.write(output + "# exit %s\n" % code)
            if code != 0:
                lines = [line for line in output.splitlines() if line.strip()]
                cause = next(
                    (line for line in reversed(lines) if "error" in line.lower()),
                    lines[-1] if lines else "exit %s" % code,
                )
                what = (
                    "Creating the venv failed"
                    if kind == "venv-create-failed"
                    else "Installing the bundle's dependencies failed"
                )
                raise EnvironmentFailure(
                    kind, "%s%s: %s" % (what, _on(where), cause.strip()), output[-4000:], ["full output: %s" % log_path]
                )

        try:
            # without pip a venv takes ~50 ms instead of seconds
            step("venv-create-failed", [base, "-m", "venv"] + ([] if needs_install else ["--without-pip"]) + [temp])
            python = venv_python(temp)
            if needs_install:
                if spec.get("deps_source") == "requirements.txt":
                    what = ["-r", os.path.join(bundle_path, "requirements.txt")]
                else:
                    what = list(spec["requirements"])
                pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
                step("deps-install-failed", pip + list(spec.get("extra_install_args") or []) + what)
            else:
                log.write("# no dependencies to install\n")
            relocate_scripts(temp, final)
            functional_check = functional_check_of(spec, bundle_path, temp, runner_script)
            marker = {
                "schema": MARKER_SCHEMA,
                "key": key,
                "bundle": bundle_path,
                "bundleName": _project_name(bundle_path),
                "bundleDigest": spec["digest"],
                "depsHash": spec["deps_hash"],
                "python": dict(binary_identity(base), path=base, version=version),
                "installer": {"name": "pip", "version": _pip_version(python)}
                if needs_install
                else {"name": "venv", "version": "Python %s" % version},
                "requirements": list(spec.get("requirements") or []),
                "createdAt": _iso_now(),
                "buildMs": round((time.monotonic() - started) * 1000),
                "functionalCheck": functional_check,
            }
            if marker["bundleName"] is None:
                del marker["bundleName"]
            write_marker(temp, marker)
            os.rename(temp, final)
            log.write("\n# done in %d ms: %s\n" % (marker["buildMs"], functional_check))
            return marker
        except BaseException as exc:
            log.write("\n# FAILED: %s\n" % exc)
            shutil.rmtree(temp, ignore_errors=True)
            raise


def _pip_version(python):
    try:
        out = subprocess.run(
            [python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def relocate_scripts(temp, final):
    """Scripts in bin/ name the directory they were built in: point them at the final path."""
    bin_dir = os.path.join(temp, "bin")
    for name in os.listdir(bin_dir):
        path = os.path.join(bin_dir, name)
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 1024 * 1024:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        if temp.encode() in data:
            with open(path, "wb") as handle:
                handle.write(data.replace(temp.encode(), final.encode()))


def functional_check_of(spec, bundle_path, temp, runner_script):
    """The new venv must run our runner (build.ts functionalCheckOf): it answers `ready`, or it
    reaches the bundle's code (a bundle that fails or takes long to import is the handshake's
    to report, not the venv's), after which it gets a short grace."""
    runner = client.Runner(
        venv_python(temp),
        runner_script,
        bundle_path,
        temp,
        spec["digest"],
        env=spec.get("env") or {},
        stderr_dir=os.path.dirname(temp),
    )
    reached_at = []

    def reached():
        if runner.phase not in (None, "starting") and not reached_at:
            reached_at.append(time.monotonic())
        return bool(reached_at) and time.monotonic() - reached_at[0] >= BUNDLE_IMPORT_GRACE_S

    try:
        status, answer = runner.request("ready", "{}", FUNCTIONAL_CHECK_TIMEOUT_S, stop_when=reached)
        if status == "ok":
            return "the runner answered ready in it"
        if status == "stopped":
            return "the runner reached the bundle's code in it (the bundle is still importing)"
        if runner.phase not in (None, "starting"):
            return "the runner reached the bundle's code in it (the bundle then failed: %s)" % answer.get("outcome")
        raise EnvironmentFailure(
            "venv-create-failed",
            "The new venv cannot run the runner: %s" % client.describe_facts(answer),
            answer.get("stderr_tail", ""),
        )
    finally:
        runner.close()


# ---- command line ----------------------------------------------------------------------------


def _main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="modelops_venv_cache", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("key", help="the venv key of a bundle for an interpreter")
    key.add_argument("bundle")
    check = commands.add_parser("check", help="the validity checklist of one cached venv")
    check.add_argument("key")
    ensure = commands.add_parser("ensure", help="reuse or build a bundle's venv")
    ensure.add_argument("bundle")
    ensure.add_argument("--install-timeout", type=float, default=DEFAULT_INSTALL_TIMEOUT_S)
    ensure.add_argument("--runner", default=os.path.join(HERE, RUNNER_FILE))
    lock = commands.add_parser("lock", help="take a lock directory, hold it until stdin closes")
    lock.add_argument("dir")
    lock.add_argument("--timeout", type=float, default=10.0)
    for sub in (key, check, ensure):
        sub.add_argument("--python", default=sys.executable, help="the base interpreter")
    for sub in (check, ensure):
        sub.add_argument("--venvs-dir", default=None)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except EnvironmentFailure as exc:
        _say({"error": {"kind": exc.kind, "message": str(exc), "log_tail": exc.log_tail, "notes": exc.notes}})
        return 1


def _run(args):
    if args.command == "key":
        bundle = os.path.abspath(args.bundle)
        digest, deps = bundle_digest(bundle), deps_hash(bundle)
        xy = ".".join(python_version(args.python).split(".")[:2])
        _say({"key": venv_key(digest, xy, deps), "digest": digest, "deps_hash": deps, "python_xy": xy})
    elif args.command == "check":
        root = os.path.abspath(args.venvs_dir) if args.venvs_dir else venvs_dir()
        validity = validate_venv(os.path.join(root, args.key), args.key, binary_identity(args.python))
        validity.pop("marker", None)
        _say(validity)
    elif args.command == "ensure":
        root = os.path.abspath(args.venvs_dir) if args.venvs_dir else venvs_dir()
        bundle = os.path.abspath(args.bundle)
        spec = bundle_spec(bundle, args.python, install_timeout_s=args.install_timeout)
        events = []

        def on_event(event):  # said as it happens too: a waiting builder can be seen waiting
            events.append(event)
            _say({"event": event})

        venv, key, how = ensure_venv(spec, bundle, os.path.abspath(args.runner), root, on_event=on_event)
        _say(
            {
                "key": key,
                "path": venv,
                "python": venv_python(venv),
                "built": how != "valid",
                "reason": how,
                "events": events,
            }
        )
    else:
        events = []
        held = DirLock.acquire(
            os.path.abspath(args.dir),
            args.timeout,
            "held from the command line (%d)" % os.getpid(),
            on_event=events.append,
        )
        _say({"acquired": True, "pid": os.getpid(), "owner": held.owner, "events": events})
        sys.stdin.read()  # until the caller closes it (or dies)
        held.release()
    return 0


def _say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
