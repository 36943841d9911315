"""ModelOps Pipeline Debugger: the warm subprocess runner.

Speaks the production ModelOps runner protocol (JSON-RPC 2.0 framed by
``Content-Length`` headers; methods ``ready``, ``execute``, ``aggregate``,
``shutdown``) so the engine can drive it exactly as production drives
``modelops/worker/subprocess_runner.py``, and accepts the same argv
(``--bundle-path --venv-path --bundle-digest``).

What it adds, and why:

* Before any bundle code is imported, the protocol moves off fd 0 and fd 1.
  fd 0 then reads /dev/null and fd 1 writes into a pipe this runner drains.
  A ``print``, a C-level ``write(1, ...)`` or a child process can therefore
  never corrupt a frame or swallow a request.
* Every such stray write is still *recorded*, with the Python stack of the
  writer where there is one, and reported to the engine as a ``runner/stdout``
  notification: production would have choked on it, so the user must hear.
* ``runner/phase`` notifications say how far start-up got, so a death is
  attributed to the phase it happened in; ``runner/fatal`` carries a start-up
  exception as structured frames instead of leaving only a stderr traceback.
* ``faulthandler`` dumps every thread's stack on SIGSEGV and on SIGUSR1, so a
  hung runner can be asked where it is.
* Every process the bundle starts (``os.fork``, ``multiprocessing``, ``subprocess``,
  ``os.posix_spawn``) is reported as a ``runner/spawned`` notification with the stack that
  started it, so one that outlives its task can be named and located; a forked child gets
  /dev/null in place of the protocol pipes, so it can never hold them open or write into them.

Standard library only; Python >= 3.9. The engine-side types that mirror this
file live in ``src/engine/protocol.ts``. ``modelops_runner.py`` next to this file is the
script to run: Python caches the bytecode of imported modules, never of the script itself.
"""

# Start-up time is the product here (every warm process pays it), so only builtin modules
# are imported up front: no json (it pulls in re and enum), threading, argparse or base64.
import _signal
import _thread
import binascii
import faulthandler
import os
import resource
import sys
import time

RUNNER_NAME = "modelops-debugger-runner"
RUNNER_VERSION = "1"

# Stray-output reports are capped so a library that floods stdout cannot
# flood the protocol channel too; what is left out is counted, never hidden.
MAX_CAPTURE_REPORTS = 200
MAX_CAPTURE_TEXT = 4000

# JSON-RPC error codes, as production uses them.
EXECUTION_FAILED = -32000
AGGREGATION_FAILED = -32001
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603

RESULT_TOO_LARGE = -32002

EXIT_FATAL = 1
EXIT_NO_WIRE = 2


def _max_frame_bytes():
    """The engine's frame cap (src/engine/process/frameCap.ts): an answer above it is refused here,
    before it is sent, as `result-too-large`, instead of being cut off by the engine."""
    try:
        return int(os.environ.get("MODELOPS_MAX_FRAME_BYTES", ""))
    except ValueError:
        return 64 * 1024 * 1024


MAX_FRAME_BYTES = _max_frame_bytes()
# an error report over the cap keeps this much of its message and of its traceback
CLIPPED_TEXT_CHARS = 64 * 1024


# --------------------------------------------------------------------------
# JSON as production's runner writes it (compact, ASCII, NaN/Infinity allowed), through the
# C accelerator directly so that importing `json` (and with it `re`) is not a start-up cost.


def _not_serializable(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


try:
    import _json

    class _DecodeContext(object):
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__
        memo = {}

    _scan = _json.make_scanner(_DecodeContext())
    _encode = _json.make_encoder(
        None, _not_serializable, _json.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def json_loads(text):
        try:
            value, end = _scan(text, 0)
        except StopIteration as exc:
            raise ValueError("invalid JSON at character %d" % exc.value) from None
        if text[end:].strip():
            raise ValueError("extra data after JSON at character %d" % end)
        return value

    def json_dumps(value):
        return "".join(_encode(value, 0))

except (ImportError, AttributeError, TypeError):  # not CPython: the plain module
    import json

    json_loads = json.loads

    def json_dumps(value):
        return json.dumps(value, separators=(",", ":"))


def b64encode(data):
    return binascii.b2a_base64(data, newline=False).decode("ascii")


class RawJson(bytes):
    """A value already encoded as JSON (ASCII), spliced into the frame as it is: the per-task
    measures, formatted once instead of built as a dict and encoded again."""


class EncodedOutputs(dict):
    """An execute result: output name -> its base64, as ASCII bytes. Base64 needs no JSON escapes,
    so the frame is assembled from these bytes as they are: a 20 MB output is copied once into the
    frame, instead of being turned into a str, scanned for escapes, joined and encoded again
    (six copies of 27 MB, most of the time a large result took)."""


def frame_of(message):
    """The whole frame (header and body) of a message, as one bytes object."""
    result = message.get("result")
    if type(result) is EncodedOutputs:
        parts = [b'{"jsonrpc":"2.0","id":', json_dumps(message.get("id")).encode("utf-8"), b',"result":{']
        for i, (name, value) in enumerate(result.items()):
            parts.extend((b"," if i else b"", json_dumps(name).encode("utf-8"), b':"', value, b'"'))
        parts.append(b"}")
        if "modelops" in message:
            parts.extend((b',"modelops":', _encoded(message["modelops"])))
        parts.append(b"}")
        length = sum(len(part) for part in parts)
        if length > MAX_FRAME_BYTES:
            raise FrameTooLarge(length)
        parts.insert(0, b"Content-Length: %d\r\n\r\n" % length)
        return b"".join(parts)
    extras = message.get("modelops")
    if type(extras) is RawJson:
        rest = json_dumps({key: value for key, value in message.items() if key != "modelops"}).encode("utf-8")
        body = b'%s,"modelops":%s}' % (rest[:-1], extras)
    else:
        body = json_dumps(message).encode("utf-8")
    if len(body) > MAX_FRAME_BYTES:
        raise FrameTooLarge(len(body))
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def _encoded(value):
    return value if type(value) is RawJson else json_dumps(value).encode("utf-8")


class FrameTooLarge(Exception):
    """A message longer than the engine's frame cap: never sent."""

    def __init__(self, size):
        Exception.__init__(self, "a %d-byte frame exceeds the %d-byte cap" % (size, MAX_FRAME_BYTES))
        self.size = size


class ResultTooLarge(Exception):
    """An answer that would exceed the frame cap; `data` is the -32002 error's data."""

    def __init__(self, data):
        Exception.__init__(self, "result too large")
        self.data = data


class NoWireFunction(RuntimeError):
    """The bundle declares no wire function in any of production's places."""


# --------------------------------------------------------------------------
# The protocol channel: private copies of the original fd 0 and fd 1.


class Channel:
    def __init__(self, in_fd, out_fd):
        self._in = os.fdopen(in_fd, "rb", buffering=65536)
        self._out_fd = out_fd
        self._lock = _thread.allocate_lock()

    def read_message(self):
        """One framed message, or None on EOF. Raises ValueError on a bad frame."""
        length = None
        while True:
            line = self._in.readline()
            if not line:
                return None
            line = line.rstrip(b"\r\n")
            if not line:
                break
            key, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("invalid header: %r" % line[:80])
            if key.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            raise ValueError("missing Content-Length header")
        body = self._in.read(length)
        if len(body) != length:
            return None
        return json_loads(body.decode("utf-8"))

    def send(self, message):
        frame = frame_of(message)
        with self._lock:
            view = memoryview(frame)
            while view:
                written = _real_os_write(self._out_fd, view)
                view = view[written:]

    def notify(self, method, params):
        try:
            try:
                self.send({"jsonrpc": "2.0", "method": method, "params": params})
            except FrameTooLarge:  # a start-up exception with a huge message: its report, clipped
                self.send({"jsonrpc": "2.0", "method": method, "params": clip_texts(params)})
        except OSError:
            pass  # the engine is gone; nothing left to tell
        except FrameTooLarge as exc:
            sys.stderr.write("modelops runner: %s notification not sent: %s\n" % (method, exc))


_real_os_write = os.write
MAIN_THREAD = _thread.get_ident()
fd1_drain = None  # type: Fd1Drain
channel = None  # type: Channel
state = {"phase": "starting"}


# --------------------------------------------------------------------------
# Stray stdout: where it came from, and the report that production never made.


_RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))


def _runner_file(filename):
    """This runner's own files (the entry script and this module) are never the user's."""
    return os.path.dirname(os.path.abspath(filename)) == _RUNNER_DIR


def _python_stack(frame, limit=40):
    """Innermost-last frames of user code (this runner's own frames left out)."""
    frames = []
    while frame is not None and len(frames) < limit:
        code = frame.f_code
        if not _runner_file(code.co_filename):
            frames.append({"file": code.co_filename, "line": frame.f_lineno, "function": code.co_name})
        frame = frame.f_back
    frames.reverse()
    return frames


class CaptureReporter:
    def __init__(self):
        self.reports = 0
        self.suppressed_bytes = 0
        self._lock = _thread.allocate_lock()

    def report(self, source, data, stack, approximate=False, thread=None):
        """Forward the bytes to stderr (the user still sees them) and report them. `thread` names
        the writer when it is not the main thread: production redirects sys.stdout only around
        the call, so a thread's print breaks its frames whenever it lands between two tasks."""
        try:
            _real_os_write(2, data)
        except OSError:
            pass
        with self._lock:
            if self.reports >= MAX_CAPTURE_REPORTS:
                self.suppressed_bytes += len(data)
                return
            self.reports += 1
        clipped = data[:MAX_CAPTURE_TEXT]
        channel.notify(
            "runner/stdout",
            {
                "source": source,
                "phase": state["phase"],
                "text": clipped.decode("utf-8", "replace"),
                "bytes_b64": b64encode(clipped),
                "size": len(data),
                "stack": stack,
                "approximate": approximate,
                "thread": thread,
            },
        )

    def finish(self):
        if self.suppressed_bytes:
            channel.notify(
                "runner/stdout",
                {
                    "source": "suppressed",
                    "phase": state["phase"],
                    "text": "",
                    "bytes_b64": "",
                    "size": self.suppressed_bytes,
                    "stack": [],
                    "approximate": True,
                },
            )
            self.suppressed_bytes = 0


reporter = CaptureReporter()


class CapturedStdoutBuffer(object):
    """``sys.stdout.buffer``: binary writes, blamed on their caller."""

    def __init__(self, owner):
        self._owner = owner

    def write(self, data):
        data = bytes(data)
        self._owner._capture(data, sys._getframe(1))
        return len(data)

    def flush(self):
        self._owner.flush()

    def writable(self):
        return True

    def fileno(self):
        return 1

    def isatty(self):
        return False


class CapturedStdout(object):
    """``sys.stdout``: text writes, coalesced per call site so one ``print``
    (several ``write`` calls from the same line) is one report."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self):
        self.buffer = CapturedStdoutBuffer(self)
        self._pending = b""
        self._pending_stack = None
        self._pending_site = None
        self._pending_thread = None
        self._lock = _thread.allocate_lock()

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        self._capture(text.encode("utf-8", "replace"), sys._getframe(1))
        return len(text)

    def _capture(self, data, frame):
        stack = _python_stack(frame)
        thread = _thread_name()
        site = (stack[-1]["file"], stack[-1]["line"], thread) if stack else (None, None, thread)
        with self._lock:
            if self._pending and site != self._pending_site:
                self._emit_locked()
            if not self._pending:
                self._pending_stack, self._pending_site, self._pending_thread = stack, site, thread
            self._pending += data
            if data.endswith(b"\n"):
                self._emit_locked()

    def _emit_locked(self):
        if self._pending:
            data, stack, thread = self._pending, self._pending_stack, self._pending_thread
            self._pending, self._pending_stack, self._pending_site, self._pending_thread = b"", None, None, None
            reporter.report("sys.stdout", data, stack, thread=thread)

    def flush(self):
        with self._lock:
            self._emit_locked()

    def fileno(self):
        return 1

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False


def _thread_name():
    """None for the main thread, else the writing thread's name (threading's, when it made it)."""
    ident = _thread.get_ident()
    if ident == MAIN_THREAD:
        return None
    threading = sys.modules.get("threading")
    thread = threading._active.get(ident) if threading is not None else None
    return thread.name if thread is not None else "thread 0x%x" % ident


def _guarded_os_write(fd, data):
    """``os.write`` aimed at fd 1 from Python: blame the exact caller."""
    if fd == 1:
        data = bytes(data)
        reporter.report("os.write", data, _python_stack(sys._getframe(1)), thread=_thread_name())
        return len(data)
    return _real_os_write(fd, data)


class Fd1Drain(object):
    """Reads what reaches fd 1 below Python (C extensions, child processes,
    ``sys.__stdout__``). There is no writer stack for those bytes; the main
    thread's stack at the moment they arrive is reported as an approximation."""

    def __init__(self, read_fd, main_ident):
        self._fd = read_fd
        self._main = main_ident
        self._running = _thread.allocate_lock()
        # set while bytes read from the pipe are being reported (see settle)
        self.busy = False

    def start(self):
        self._running.acquire()
        _thread.start_new_thread(self._run, ())

    def join(self, timeout):
        """True once the pipe's end was read (every writer gone), False after `timeout`."""
        if self._running.acquire(True, timeout):
            self._running.release()
            return True
        return False

    def _run(self):
        # readable first, then busy, then read: at every moment bytes a task's child wrote are
        # either still in the pipe (settle sees them) or being reported (busy). Reading first
        # left a gap between the read and `busy` in which settle found neither, and the task was
        # answered before its child's bytes were reported (then blamed on no task)
        import select

        try:
            while True:
                try:
                    select.select([self._fd], [], [])
                except (OSError, ValueError):
                    return
                self.busy = True
                try:
                    try:
                        data = os.read(self._fd, 65536)
                    except OSError:
                        return
                    if not data:
                        return
                    frame = sys._current_frames().get(self._main)
                    stack = _python_stack(frame) if frame else []
                    if not stack:
                        # the main thread is back in the runner (the call returned, it waits in
                        # settle): the process the task started is the likeliest writer
                        stack = state.get("spawn_stack") or []
                    reporter.report("fd", data, stack, approximate=True)
                finally:
                    self.busy = False
        finally:
            self._running.release()

    def settle(self, limit_s=0.05):
        """Called by the main thread before it answers a task: what a child process wrote to fd 1
        during the task (`subprocess.run(["echo", ...])`) is reported before the answer, so the
        engine blames the task that ran it, not the next one. One ioctl when nothing is waiting;
        a writer that never stops is given `limit_s`, never more."""
        if not (self.busy or _unread_bytes(self._fd)):
            return
        import time

        deadline = time.monotonic() + limit_s
        while (self.busy or _unread_bytes(self._fd)) and time.monotonic() < deadline:
            time.sleep(0.0005)


# FIONREAD: Linux's value on most architectures, macOS's; termios has the others' (imported by
# the bundle or not at all: its import would cost every runner's start-up)
_FIONREAD = 0x4004667F if sys.platform == "darwin" else getattr(sys.modules.get("termios"), "FIONREAD", 0x541B)


def _unread_bytes(fd):
    try:
        import fcntl

        return int.from_bytes(fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except Exception:
        return 0


def widen_pipes(*fds):
    """A bundle that writes megabytes to stderr should not wait on every 64 KiB for the engine
    to read: give the pipes 1 MiB where Linux allows it (fcntl is a builtin, no start-up cost)."""
    try:
        import fcntl

        for fd in fds:
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except Exception:
        pass  # not Linux, not a pipe, or over /proc/sys/fs/pipe-max-size: the default will do


def protect_stdio():
    """Move the protocol off fd 0/1 before any bundle code can touch them."""
    global channel
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.close(write_fd)
    widen_pipes(2, proto_out)
    channel = Channel(proto_in, proto_out)
    global fd1_drain
    drain = fd1_drain = Fd1Drain(read_fd, _thread.get_ident())
    drain.start()
    sys.stdin = open(os.devnull, "r", encoding="utf-8")
    sys.stdout = CapturedStdout()
    os.write = _guarded_os_write
    report_spawns()
    return drain


# --------------------------------------------------------------------------
# Processes the bundle starts: reported with the Python stack that started them.


_real_fork = os.fork
_hooked_modules = set()


def _report_spawn(pid, via, argv, frame):
    if argv is not None:
        argv = [os.fsdecode(arg) if isinstance(arg, (bytes, str)) else str(arg) for arg in argv]
    stack = _python_stack(frame)
    state["spawn_stack"] = stack
    channel.notify("runner/spawned", {"pid": pid, "via": via, "command": argv, "stack": stack})


def _fork():
    pid = _real_fork()
    if pid > 0:
        _report_spawn(pid, "os.fork", None, sys._getframe(1))
    return pid


def _spawn_reporter(real, via):
    def spawn(path, argv, *args, **kwargs):
        pid = real(path, argv, *args, **kwargs)
        _report_spawn(pid, via, argv, sys._getframe(1))
        return pid

    return spawn


def _fork_exec_reporter(real):
    def fork_exec(*args, **kwargs):
        pid = real(*args, **kwargs)
        argv = args[0] if args else None
        _report_spawn(pid, "subprocess", argv if isinstance(argv, (list, tuple)) else None, sys._getframe(1))
        return pid

    fork_exec.modelops_reporter = True
    return fork_exec


def hook_subprocess():
    """subprocess (and its C helper) are not imported at start-up, which would cost every runner
    their import: their fork_exec is wrapped once the bundle has imported them (checked after
    the bundle's import and before each request). multiprocessing's spawn and forkserver start
    their processes through the same function."""
    if len(_hooked_modules) == 2:
        return
    for name, attr in (("_posixsubprocess", "fork_exec"), ("subprocess", "_fork_exec")):
        module = sys.modules.get(name)
        if name in _hooked_modules or module is None:
            continue
        _hooked_modules.add(name)
        real = getattr(module, attr, None)  # subprocess._fork_exec: Python >= 3.11 only
        if real is not None and not getattr(real, "modelops_reporter", False):
            setattr(module, attr, _fork_exec_reporter(real))


def _forget_protocol_in_child():
    """A forked child (multiprocessing, os.fork) inherits the protocol pipes: give it /dev/null
    in their place, so it can neither write into the engine's stream nor keep it open after the
    runner ends. Locks another thread held at the fork are new ones in the child."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, channel._in.fileno(), inheritable=False)
        os.dup2(devnull, channel._out_fd, inheritable=False)
        os.close(devnull)
    except (OSError, ValueError):
        pass  # nothing to forget
    channel._lock = _thread.allocate_lock()
    reporter._lock = _thread.allocate_lock()
    if isinstance(sys.stdout, CapturedStdout):
        sys.stdout._lock = _thread.allocate_lock()


_real_exit = os._exit
_RUNNER_PID = os.getpid()


def _os_exit(code):
    """``os._exit`` skips every handler and flushes nothing: say where it was called (a line on
    stderr and a ``runner/exiting`` notification), so "exited with code 17" gets its line.
    Forked children (multiprocessing ends each with os._exit) are not the runner: left alone."""
    if os.getpid() != _RUNNER_PID:
        _real_exit(code)
    try:
        stack = _python_stack(sys._getframe(1))
        where = (
            "%s:%d in %s()" % (stack[-1]["file"], stack[-1]["line"], stack[-1]["function"]) if stack else "runner code"
        )
        _real_os_write(2, ("modelops runner: os._exit(%r) called at %s\n" % (code, where)).encode("utf-8", "replace"))
        channel.notify(
            "runner/exiting",
            {"via": "os._exit", "code": code, "phase": state["phase"], "stack": stack, "thread": _thread_name()},
        )
    except BaseException:
        pass  # exiting is what was asked for, whatever the report does
    _real_exit(code)


def report_spawns():
    os._exit = _os_exit
    os.fork = _fork
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            setattr(os, name, _spawn_reporter(getattr(os, name), "posix_spawn"))
    os.register_at_fork(after_in_child=_forget_protocol_in_child)


def finish_captures(drain):
    """Report every stray byte before the process ends (exit paths only)."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.__stdout__.flush()
    except Exception:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the pipe's last writer in this process goes away
    os.close(devnull)
    if not drain.join(0.05):
        # a process the bundle started still holds fd 1, so no end of the pipe will come: report
        # what is in it now, and exit (the engine ends the process group, that process with it)
        drain.settle(0.2)
    reporter.finish()


# --------------------------------------------------------------------------
# Start-up: production's discovery order.


def set_phase(phase, **extra):
    state["phase"] = phase
    params = {"phase": phase}
    params.update(extra)
    channel.notify("runner/phase", params)


def _load_from_file(bundle, relpath, func_name):
    import importlib.util

    path = os.path.join(bundle, relpath)
    name = "_modelops_wire_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load wire module from %s" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, func_name)


def _load_spec(bundle, spec, origin):
    module_part, sep, func_name = spec.partition(":")
    if not sep or not func_name:
        raise ValueError("%s: wire spec %r is not of the form module:function" % (origin, spec))
    set_phase("importing", module=module_part, origin=origin)
    if "/" in module_part or module_part.endswith(".py"):
        return _load_from_file(bundle, module_part, func_name)
    __import__(module_part)  # importlib itself would be a start-up cost (it imports warnings)
    obj = sys.modules[module_part]
    for part in func_name.split("."):
        obj = getattr(obj, part)
    return obj


def _has_wire_entry_point():
    """Cheap pre-scan of sys.path for a ``modelops.wire`` entry point, so the
    common case does not pay for importing importlib.metadata."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), "rb") as f:
                        if b"modelops.wire" in f.read():
                            return True
                except OSError:
                    continue
    return False


def _toml_wire(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        import tomllib  # Python >= 3.11

        return tomllib.loads(raw.decode("utf-8")).get("modelops", {}).get("wire")
    except ImportError:
        import re

        section = None
        for line in raw.decode("utf-8").splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[] ")
            elif section == "modelops":
                match = re.match(r'wire\s*=\s*["\']([^"\']+)["\']', line)
                if match:
                    return match.group(1)
        return None


def discover_wire(bundle):
    set_phase("discovering")
    if _has_wire_entry_point():
        import importlib
        import importlib.metadata as metadata

        importlib.invalidate_caches()
        found = metadata.entry_points()
        eps = (
            list(found.select(group="modelops.wire"))
            if hasattr(found, "select")
            else list(found.get("modelops.wire", []))
        )
        if len(eps) > 1:
            raise RuntimeError("Multiple wire entry points found: %s" % [ep.value for ep in eps])
        if eps:
            set_phase("importing", module=eps[0].value, origin="entry point modelops.wire")
            return eps[0].load()
    manifest = os.path.join(bundle, ".modelops", "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest, "rb") as f:
            spec = json_loads(f.read().decode("utf-8")).get("wire")
        if spec:
            return _load_spec(bundle, spec, ".modelops/manifest.json")
    toml = os.path.join(bundle, ".modelops", "modelops.toml")
    if os.path.isfile(toml):
        spec = _toml_wire(toml)
        if spec:
            return _load_spec(bundle, spec, ".modelops/modelops.toml")
    if os.path.isfile(os.path.join(bundle, "wire.py")):
        return _load_spec(bundle, "wire:wire", "wire.py")
    raise NoWireFunction("No wire specified: install an entry point, provide .modelops manifest, or add wire.py")


# --------------------------------------------------------------------------
# Requests.


def _bundle_side(filename):
    """Frames worth showing: not this runner's, not importlib's machinery."""
    return not _runner_file(filename) and not filename.startswith("<frozen importlib")


# Formatting an exception runs the bundle's own ``__str__``, which may raise or never return:
# it gets this long (an alarm in the main thread) before the type name stands in for the message.
STR_TIMEOUT_S = 2.0


class _FormatTimeout(BaseException):
    """Raised by the alarm when an exception's ``__str__`` did not return in time."""


def _on_format_alarm(signum, frame):
    raise _FormatTimeout()


def _guarded(func, timeout_s=STR_TIMEOUT_S):
    """``(func(), None)``, or ``(None, why)`` when it raised or ran past ``timeout_s``.

    SIGALRM only reaches the main thread, and only between bytecodes: a ``__str__`` stuck in C
    code that never checks for signals still hangs, and then the engine's task timeout ends it.
    An alarm the bundle had set is put back, minus the time spent here."""
    import time

    main = _thread.get_ident() == MAIN_THREAD and hasattr(_signal, "setitimer")
    if main:
        previous_handler = _signal.signal(_signal.SIGALRM, _on_format_alarm)
        previous_timer = _signal.setitimer(_signal.ITIMER_REAL, timeout_s)
        began = time.monotonic()
    try:
        try:
            return func(), None
        finally:
            if main:
                _signal.setitimer(_signal.ITIMER_REAL, 0)
    except _FormatTimeout:
        return None, "<__str__ did not return within %g s>" % timeout_s
    except BaseException as failure:  # the bundle's __str__ raised (even SystemExit): no message
        return None, "<__str__ raised %s>" % type(failure).__name__
    finally:
        if main:  # the handler first: an alarm still pending then goes where it always went
            _signal.signal(_signal.SIGALRM, previous_handler)
            if previous_timer[0] > 0:
                left = max(previous_timer[0] - (time.monotonic() - began), 0.001)
                _signal.setitimer(_signal.ITIMER_REAL, left, previous_timer[1])


def safe_str(exc):
    text, why = _guarded(lambda: str(exc))
    return text if isinstance(text, str) else why


def exception_data(exc):
    """What the engine needs to know about an exception from bundle code: type, message, frames.
    Any BaseException (SystemExit, KeyboardInterrupt, GeneratorExit, subclasses) is welcome, and
    its ``__str__`` is never trusted to return (see ``_guarded``)."""
    import traceback

    summary = [fs for fs in traceback.extract_tb(exc.__traceback__) if _bundle_side(fs.filename)]
    lines = ["Traceback (most recent call last):\n"] if summary else []
    lines += traceback.format_list(summary)
    message = safe_str(exc)
    if isinstance(exc, SyntaxError):  # its caret lines are worth the second call to __str__
        last, _ = _guarded(lambda: traceback.format_exception_only(type(exc), exc))
        lines += last or ["%s: %s\n" % (type(exc).__name__, message)]
    else:
        lines.append("%s: %s\n" % (type(exc).__name__, message) if message else "%s\n" % type(exc).__name__)
    data = {
        "exc_type": type(exc).__name__,
        "exc": message,
        # production sends the full text; ours leaves out the runner's own frames
        "traceback": "".join(lines),
        "frames": [
            {"file": fs.filename, "line": fs.lineno, "function": fs.name, "code": fs.line or ""} for fs in summary
        ],
    }
    if not isinstance(exc, Exception):
        data["base_exception"] = True
    if isinstance(exc, SystemExit):
        code = exc.code
        data["exit_code"] = code if code is None or isinstance(code, int) else safe_str(code)
    if isinstance(exc, KeyboardInterrupt):
        data["signal"] = getattr(exc, "modelops_signal", None)
    return data


def _on_sigint(signum, frame):
    """Python's own SIGINT handler, plus a mark: a KeyboardInterrupt that a signal caused is
    told apart from one that bundle code raised."""
    interrupt = KeyboardInterrupt()
    interrupt.modelops_signal = "SIGINT"
    raise interrupt


def encode_outputs(result):
    if not isinstance(result, dict):
        raise TypeError("wire function returned %s; expected a dict of output name -> bytes" % type(result).__name__)
    encoded = EncodedOutputs()
    for name, value in result.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            # b2a_base64 reads a contiguous buffer as it is: no copy
            raw = bytes(value) if isinstance(value, memoryview) and not value.c_contiguous else value
        elif isinstance(value, str):
            raw = value.encode("utf-8")
        else:
            raw = json_dumps(value).encode("utf-8")
        encoded[str(name)] = binascii.b2a_base64(raw, newline=False)
    return encoded


def call_watching_return(func, *args):
    """`func(*args)`, and func's own frame once it has returned (its f_lineno is then the line of
    its `return`), or None. It costs one profile event per call: the hook removes itself at the
    first frame it sees, and is not set at all when someone else is profiling."""
    code = getattr(func, "__code__", None)
    if code is None or sys.getprofile() is not None:
        return func(*args), None
    seen = []

    def first_frame(frame, event, arg):
        if event == "call":
            seen.append(frame)
            sys.setprofile(None)

    sys.setprofile(first_frame)
    try:
        result = func(*args)
    finally:
        sys.setprofile(None)
    frame = seen[0] if seen and seen[0].f_code is code else None
    return result, frame


def check_result_size(method, encoded, returned):
    """Raise ResultTooLarge when the answer would exceed the frame cap: measured from the encoded
    outputs (base64 needs no JSON escapes, so this is the frame size to a few bytes)."""
    size = 64 + sum(len(name) + len(value) + 6 for name, value in encoded.items())
    if size <= MAX_FRAME_BYTES:
        return
    outputs = []
    for name, value in encoded.items():
        padding = 2 if value.endswith(b"==") else 1 if value.endswith(b"=") else 0
        outputs.append({"name": name, "bytes": len(value) // 4 * 3 - padding, "encoded_bytes": len(value) + 2})
    frames = []
    if returned is not None:
        code = returned.f_code
        frames.append(
            {
                "file": code.co_filename,
                "line": returned.f_lineno,
                "function": code.co_name,
                "code": _source_line(code.co_filename, returned.f_lineno),
            }
        )
    raise ResultTooLarge(
        {
            "kind": "result-too-large",
            "method": method,
            "frame_bytes": size,
            "max_frame_bytes": MAX_FRAME_BYTES,
            "outputs": outputs,
            "frames": frames,
        }
    )


def _source_line(filename, line):
    import linecache

    return linecache.getline(filename, line).strip()


def too_large_response(message, response, size):
    """What to send instead of a response over the frame cap: an error report with its message
    and traceback clipped (still the task's exception), or result-too-large naming each member."""
    error = response.get("error")
    if error is not None and isinstance(error.get("data"), dict):
        return dict(response, error=dict(error, data=clip_texts(error["data"])))
    result = response.get("result")
    members = result.items() if isinstance(result, dict) else [("result", result)]
    outputs = [
        {"name": str(name), "encoded_bytes": len(value) + 2 if isinstance(value, bytes) else len(json_dumps(value))}
        for name, value in members
    ]
    data = {
        "kind": "result-too-large",
        "method": message.get("method"),
        "frame_bytes": size,
        "max_frame_bytes": MAX_FRAME_BYTES,
        "outputs": outputs,
    }
    return {
        "jsonrpc": "2.0",
        "id": response.get("id"),
        "error": {"code": RESULT_TOO_LARGE, "message": "Result too large", "data": data},
    }


def clip_texts(data):
    """An error report's long texts (message, traceback, stray output) cut to fit the frame cap."""
    data = dict(data)
    for field in ("exc", "traceback", "text"):
        text = data.get(field)
        if isinstance(text, str) and len(text) > CLIPPED_TEXT_CHARS:
            data[field] = "%s\n... [%d characters left out: the report exceeded the %d-byte frame cap]" % (
                text[:CLIPPED_TEXT_CHARS],
                len(text) - CLIPPED_TEXT_CHARS,
                MAX_FRAME_BYTES,
            )
    return data


def resolve_target(bundle, target_entrypoint):
    import importlib
    import inspect

    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    if ":" in target_entrypoint:
        module_name, _, attr = target_entrypoint.partition(":")
    else:
        module_name, _, attr = target_entrypoint.rpartition("/")
    if module_name.startswith("dummy."):
        module_name = module_name[len("dummy.") :]
    if not module_name or not attr:
        raise ValueError("target entrypoint %r is not module:function" % target_entrypoint)
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if inspect.isclass(obj) and hasattr(obj, "evaluate"):
        obj = obj().evaluate
    return obj


def _is_calabaria_target(func):
    import inspect

    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return False
    return len(names) == 0 or names == ["data_paths"]


def run_aggregation(func, sim_returns, target_data):
    import math

    if _is_calabaria_target(func):
        raise RuntimeError(
            "Calabaria-style targets (@calibration_target) need polars and Arrow outputs; "
            "this runner evaluates (sim_returns, target_data) evaluators only"
        )
    result = func(sim_returns, target_data)
    if not isinstance(result, dict) or "loss" not in result:
        raise TypeError("target returned %r; expected a dict with a 'loss'" % type(result).__name__)
    loss = float(result["loss"])
    if not math.isfinite(loss):
        raise ValueError("target returned a non-finite loss: %r" % loss)
    return {
        "loss": loss,
        "diagnostics": result.get("diagnostics", {}),
        "n_replicates": int(result.get("n_replicates", len(sim_returns))),
        "outputs": {},
    }


class Runner(object):
    def __init__(self, bundle, venv, digest, wire):
        self.bundle = bundle
        self.venv = venv
        self.digest = digest
        self.wire = wire

    def ready(self):
        return {
            "ready": True,
            "bundle_digest": self.digest,
            "python": sys.executable,
            "version": "%d.%d" % sys.version_info[:2],
            "pid": os.getpid(),
            "venv": self.venv,
            "runner": RUNNER_NAME,
            "runner_version": RUNNER_VERSION,
        }

    def execute(self, entrypoint, params, seed, bundle_digest=None):
        if bundle_digest is not None and bundle_digest != self.digest:
            raise ValueError("bundle digest mismatch: runner has %s, request names %s" % (self.digest, bundle_digest))
        state["phase"] = "execute"
        state["spawn_stack"] = None
        try:
            result, returned = call_watching_return(self.wire, entrypoint, params, seed)
            sys.stdout.flush()
            fd1_drain.settle()
            encoded = encode_outputs(result)
            check_result_size("execute", encoded, returned)
            return encoded
        finally:
            state["phase"] = "serving"

    def aggregate(self, target_entrypoint, sim_returns, target_data=None, bundle_digest=None):
        state["phase"] = "aggregate-import"
        state["spawn_stack"] = None
        try:
            func = resolve_target(self.bundle, target_entrypoint)
            state["phase"] = "aggregate"
            result = run_aggregation(func, sim_returns, target_data)
            sys.stdout.flush()
            fd1_drain.settle()
            return result
        finally:
            state["phase"] = "serving"


def handle(runner, message):
    """The response to one request (None for notifications)."""
    msg_id = message.get("id")
    method = message.get("method")
    params = message.get("params", {})
    if params is None:
        params = {}

    def error(code, text, data=None):
        err = {"code": code, "message": text}
        if data is not None:
            err["data"] = data
        return {"jsonrpc": "2.0", "id": msg_id, "error": err}

    hook_subprocess()
    handlers = {"ready": runner.ready, "execute": runner.execute, "aggregate": runner.aggregate}
    if method == "shutdown":
        return {"jsonrpc": "2.0", "id": msg_id, "result": {"ok": True}}
    if method not in handlers:
        return error(METHOD_NOT_FOUND, "Method not found: %s" % method)
    if not isinstance(params, dict):
        return error(INVALID_PARAMS, "Invalid params: expected an object")
    try:
        return {"jsonrpc": "2.0", "id": msg_id, "result": handlers[method](**params)}
    except ResultTooLarge as exc:  # refused before sending: the runner stays warm
        return error(RESULT_TOO_LARGE, "Result too large", exc.data)
    except TypeError as exc:
        if (
            method in ("execute", "aggregate")
            and exc.__traceback__ is not None
            and exc.__traceback__.tb_next is not None
        ):
            # raised inside user code, not by the call signature
            return error(*_user_error(method, params, exc))
        return error(INTERNAL_ERROR, "Internal error", safe_str(exc))
    except BaseException as exc:  # user code raised, even SystemExit or KeyboardInterrupt: report, stay warm
        if method in ("execute", "aggregate"):
            return error(*_user_error(method, params, exc))
        if not isinstance(exc, Exception):
            raise
        return error(INTERNAL_ERROR, "Internal error", safe_str(exc))


def _user_error(method, params, exc):
    data = exception_data(exc)
    if method == "execute":
        data["entrypoint"] = params.get("entrypoint")
        return EXECUTION_FAILED, "Execution failed", data
    data["target_entrypoint"] = params.get("target_entrypoint")
    return AGGREGATION_FAILED, "Aggregation failed", data


USAGE = "usage: modelops_runner.py --bundle-path PATH [--venv-path PATH] [--bundle-digest DIGEST]"


def parse_args(argv):
    """Production's argv (argparse would cost more start-up time than the rest of the runner)."""
    known = {"--bundle-path": "bundle_path", "--venv-path": "venv_path", "--bundle-digest": "bundle_digest"}
    values = {"bundle_path": None, "venv_path": "", "bundle_digest": ""}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, sep, value = arg.partition("=")
        if name not in known:
            raise SystemExit("%s\nunknown argument: %s" % (USAGE, arg))
        if not sep:
            i += 1
            if i >= len(argv):
                raise SystemExit("%s\n%s needs a value" % (USAGE, name))
            value = argv[i]
        values[known[name]] = value
        i += 1
    if values["bundle_path"] is None:
        raise SystemExit("%s\n--bundle-path is required" % USAGE)
    return values


def main(argv=None):
    global MAIN_THREAD
    MAIN_THREAD = _thread.get_ident()
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _on_sigint)
    drain = protect_stdio()
    faulthandler.enable(file=sys.stderr, all_threads=True)
    if hasattr(faulthandler, "register"):
        faulthandler.register(_signal.SIGUSR1, file=sys.stderr, all_threads=True)
    set_phase("starting", runner=RUNNER_NAME, runner_version=RUNNER_VERSION, pid=os.getpid())
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bundle = os.path.abspath(args["bundle_path"])
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    try:
        wire = discover_wire(bundle)
        hook_subprocess()
        sys.stdout.flush()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from bundle code included
        return die(drain, exc)
    runner = Runner(bundle, args["venv_path"], args["bundle_digest"], wire)
    stderr_is_file = _stderr_position() is not None
    set_phase("serving")
    while True:
        try:
            message = channel.read_message()
        except ValueError as exc:
            sys.stderr.write("modelops runner: unreadable frame: %s\n" % exc)
            continue
        if message is None:
            break
        start = _stderr_position() if stderr_is_file else None
        measured = MEASURE_TASKS and message.get("method") in _MEASURED_METHODS
        if measured:
            cpu, began = _getrusage(_RUSAGE_SELF), _perf_counter()
        response = handle(runner, message)
        if response is not None and (measured or start is not None):
            # the engine reads the answer whenever it can, by when the next task may have written
            # more: where this one's stderr starts and ends in the log, said by the writer
            stderr = b'"stderr":[%d,%d]' % (start, _stderr_position()) if start is not None else None
            if measured:
                usage = b'"resources":' + task_usage(cpu, began)
                response["modelops"] = RawJson(b"{%s,%s}" % (usage, stderr) if stderr else b"{%s}" % usage)
            else:
                response["modelops"] = RawJson(b"{%s}" % stderr)
        if response is not None and message.get("id") is not None:
            if STDERR_MARKS and isinstance(message.get("id"), int):
                _mark_stderr(message["id"])
            try:
                channel.send(response)
            except FrameTooLarge as exc:
                channel.send(too_large_response(message, response, exc.size))
        if message.get("method") == "shutdown":
            break
    finish_captures(drain)
    return 0


def task_usage(cpu, began):
    """What one request cost this process, from the CPU times and the clock taken as it began: wall
    time, CPU time of all its threads (user and system), and its peak resident memory; as JSON
    (RawJson), formatted once as it goes into the answer's frame (a dict encoded per task cost a
    trivial task's runner more than the measures). Plain functions and module state, not an object
    per request: each allocation is a measurable share of a trivial task.

    On Linux the peak is the request's own, from /proc/self/status: the kernel's high-water mark
    (VmHWM) is reset (``5`` to /proc/self/clear_refs) whenever it stands above the resident size
    (VmRSS), so it always starts from the resident size at the last measure. Both are read only
    when the process faulted in a page since that measure (the fault counts come with the CPU
    times): without a fault its resident size cannot have grown, and the peak is the resident
    size then. Resetting and reading at every request cost more than a trivial task itself
    (the reset takes the address space's write lock). Elsewhere, or where /proc cannot be
    written, the peak is the process's so far (ru_maxrss), and ``peak_rss`` says so
    ("process" rather than "task")."""
    wall = _perf_counter() - began
    end = _getrusage(_RUSAGE_SELF)
    peak = _own_peak(end.ru_minflt + end.ru_majflt) if _peak["status"] is not None else None
    of = b"task"
    if peak is None:
        # kilobytes on Linux, bytes on macOS
        peak, of = (end.ru_maxrss // 1024 if sys.platform == "darwin" else end.ru_maxrss), b"process"
    return RawJson(
        b'{"wall_ms":%.3f,"cpu_user_ms":%.3f,"cpu_sys_ms":%.3f,"peak_rss_kb":%d,"peak_rss":"%s"}'
        % (
            wall * 1000,
            (end.ru_utime - cpu.ru_utime) * 1000,
            (end.ru_stime - cpu.ru_stime) * 1000,
            peak,
            of,
        )
    )


def _open_peak():
    """/proc/self/clear_refs and /proc/self/status, opened once for the runner's life (None
    where there is no such thing or it cannot be written: macOS, a locked-down /proc)."""
    try:
        clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
        status = os.open("/proc/self/status", os.O_RDONLY)
        os.write(clear_refs, b"5")
    except OSError:
        return {"clear_refs": None, "status": None, "faults": -1, "rss_kb": None}
    return {"clear_refs": clear_refs, "status": status, "faults": -1, "rss_kb": None}


def _own_peak(faults):
    if faults == _peak["faults"] and _peak["rss_kb"] is not None:
        return _peak["rss_kb"]
    try:
        status = os.pread(_peak["status"], 4096, 0)
        peak = _status_kb(status, b"VmHWM:")
        rss = _status_kb(status, b"VmRSS:")
        if peak > rss:
            os.write(_peak["clear_refs"], b"5")  # the next request's peak starts from here
    except (OSError, ValueError):
        _peak["rss_kb"] = None
        return None
    _peak["faults"] = faults
    _peak["rss_kb"] = rss
    return peak


def _status_kb(status, field):
    at = status.index(field)
    return int(status[at + len(field) : status.index(b"kB", at)])


_getrusage = resource.getrusage
_RUSAGE_SELF = resource.RUSAGE_SELF
_perf_counter = time.perf_counter

# MODELOPS_RESOURCES=off: no per-task measures in the answers (as production's runner), so that
# test/bench/runnerCost.ts can tell what measuring costs
MEASURE_TASKS = os.environ.get("MODELOPS_RESOURCES") != "off"
_MEASURED_METHODS = frozenset(("execute", "aggregate"))
_peak = _open_peak() if MEASURE_TASKS else {"status": None}

# The engine reads stderr through a pipe and asks where each answer's stderr ends (stderrMarks.ts)
STDERR_MARKS = os.environ.get("MODELOPS_STDERR_MARKS") == "1"


def _mark_stderr(request_id):
    try:
        sys.stderr.flush()
        _real_os_write(2, b"\0MO|%d\0" % request_id)
    except (OSError, ValueError):
        pass  # stderr is gone: the engine then measures the span itself


def _stderr_position():
    """Where the next stderr byte goes in the runner's log, when stderr is a file (the engine's
    jobs); None for a pipe or a terminal. Everyone writing through fd 2 moves it, children too."""
    try:
        return os.lseek(2, 0, 1)
    except OSError:
        return None


def die(drain, exc):
    """Start-up failed: tell the engine what and where, then exit as production would."""
    no_wire = isinstance(exc, NoWireFunction)
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FATAL)
    else:
        code = EXIT_NO_WIRE if no_wire else EXIT_FATAL
    data = exception_data(exc)
    data.update({"phase": state["phase"], "exit_code": code, "no_wire": no_wire})
    finish_captures(drain)
    channel.notify("runner/fatal", data)
    sys.stderr.write(data["traceback"])
    sys.stderr.flush()
    return code
