"""ModelOps Pipeline Debugger: the Dask worker side (standard library + distributed only).

The driver (modelops_dask_driver.py) ships this module to every Dask worker, with the two it is
composed of, and submits its `run_sim` and `run_agg` functions. A task never runs bundle code
in the worker process: it hands the request to a warm runner subprocess (our src/runner runner,
shipped by the driver in a payload module next to the bundle's files), started from a venv
cached on the worker, exactly as the local backend does. What comes back to the engine are
*facts* (the answer or the error payload, the exit code or signal, the runner's phase, its
stderr, stacks on a timeout), so the engine's own diagnosis (src/engine/diagnose) turns them
into the same failure kinds, messages and source lines as locally.

Here: the job's payload put in place, the per-worker pool of warm runners, and the tasks. The
venv cache is modelops_venv_cache.py (the same contract as src/engine/venv/), the runner
client modelops_runner_client.py (as src/engine/process/).
"""

import atexit
import base64
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time

import modelops_runner_client as client
import modelops_venv_cache as venv_cache

HELPER_VERSION = "1"
EVENT_TOPIC = "modelops-debugger"
# the modules a worker needs, shipped together (modelops_dask_driver.py _ship)
HELPER_MODULES = ("modelops_dask_worker.py", "modelops_runner_client.py", "modelops_venv_cache.py")
# who builds a venv and starts runners here, in what the venv cache says
WHERE = "Dask worker"


# ---- what a worker is given: the runner and the bundle ----------------------------------------


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
    return "# modelops-debugger payload: data only\nSPEC = %r\nBUNDLE = %r\nRUNNER = %r\n" % (
        spec,
        bundle_files,
        runner_files,
    )


def _spec(payload):
    """The job's settings from its payload module, with where the bundle and runner were put."""
    spec = _SPECS.get(payload)
    if spec is not None:
        return spec
    import importlib

    module = importlib.import_module(payload)
    spec = dict(module.SPEC, payload_module=payload)
    root = venv_cache.venvs_dir()
    spec["runner_dir"] = _write_tree(os.path.join(root, ".dask-runner", payload.rsplit("_", 1)[-1]), module.RUNNER)
    spec["bundle_path"] = _write_tree(os.path.join(root, ".dask-bundles", spec["digest"]), module.BUNDLE)
    _SPECS[payload] = spec
    return spec


# payload module name -> the job settings it holds, once its files are in place on this machine
_SPECS = {}


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
    # the frame cap is in the runner's environment, the memory limit in its watch: a job with
    # another cap or limit gets runners of its own
    return (spec["digest"], spec["runner_file"], spec["base_python"], spec["max_frame_bytes"], spec["memory_limit_mb"])


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
        venv, key, how = venv_cache.ensure_venv(spec, spec["bundle_path"], _runner_script(spec), where=WHERE)
    except venv_cache.EnvironmentFailure as exc:
        return None, {
            "outcome": "environment",
            "kind": exc.kind,
            "message": str(exc),
            "stderr_tail": exc.log_tail,
            "notes": exc.notes,
        }
    except OSError as exc:
        return None, _venvs_dir_failure(exc, "build the bundle's venv")
    if how != "valid":
        _emit({"type": "venv-built", "key": key, "reason": how})
    runner = client.Runner(
        venv_cache.venv_python(venv),
        _runner_script(spec),
        spec["bundle_path"],
        venv,
        spec["digest"],
        env=spec["env"],
        max_frame_bytes=spec["max_frame_bytes"],
        stderr_dir=os.path.join(venv_cache.venvs_dir(), ".dask-runner"),
        memory_limit_mb=spec["memory_limit_mb"],
    )
    status, answer = runner.request("ready", "{}", spec["ready_timeout_s"])
    if status != "ok":
        answer["stderr"] = runner.take_stderr()
        runner.close()
        return None, answer
    _emit({"type": "process-start", "pid": runner.pid, "venv": key})
    return runner, None


def _runner_script(spec):
    return os.path.join(spec["runner_dir"], spec["runner_file"])


def _give_back(spec, runner):
    with _RUNNERS_LOCK:
        _IDLE.setdefault(_slot(spec), []).append(runner)


def _retire(runner, why):
    code = runner.process.poll()
    runner.close()
    _emit(
        {
            "type": "process-end",
            "pid": runner.pid,
            "why": why,
            "uses": runner.uses,
            "exit_code": code if code is not None and code >= 0 else None,
            "signal": signal.Signals(-code).name if code is not None and code < 0 else None,
        }
    )


def _call(spec, key, method, params_json):
    """One request on a warm runner: (status, result or facts, what the runner said meanwhile).
    Its stderr since its last task goes with it (the engine writes it to logs/); a runner that
    crashed, hung or broke the protocol is retired, any other goes back to the idle ones."""
    runner, facts = _runner_for(spec)
    if runner is None:
        facts["start_failed"] = True
        return "failed", facts, None
    status, answer = runner.request(method, params_json, spec["task_timeout_s"])
    said = {
        "pid": runner.pid,
        "stderr": runner.take_stderr(),
        "captures": _take_captures(runner),
        "resources": getattr(runner, "last_resources", None),
    }
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
            _retire(
                runner, {"exited": "crashed", "timeout": "timed out", "protocol": "protocol error"}[answer["outcome"]]
            )
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
        facts = {
            "outcome": "environment",
            "kind": "protocol-error",
            "message": "The job's bundle could not be put in place on Dask worker %s: %s: %s"
            % (_where(), type(exc).__name__, exc),
            "start_failed": True,
        }
        return None, {"key": key, "status": "failed", "seed": seed, "worker": _where(), "attempts": [facts], "ms": 0}


def _venvs_dir_failure(exc, doing):
    """An OSError in the worker's venvs directory, as the engine's venv-create-failed: the path
    and the errno, named and said in words."""
    name = errno.errorcode.get(exc.errno, "error") if exc.errno else type(exc).__name__
    where = exc.filename or venv_cache.venvs_dir()
    message = (
        "The venvs directory %s on Dask worker %s cannot be used: could not %s at %s (%s: %s); "
        "give the workers another MODELOPS_VENVS_DIR"
        % (venv_cache.venvs_dir(), _where(), doing, where, name, (exc.strerror or str(exc)).lower())
    )
    return {
        "outcome": "environment",
        "kind": "venv-create-failed",
        "message": message,
        "stderr_tail": "",
        "notes": ["venvs directory: %s" % venv_cache.venvs_dir()],
    }


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
            return {
                "key": key,
                "status": "ok",
                "outputs": answer,
                "seed": seed,
                "pid": said["pid"],
                "worker": _where(),
                "attempts": attempts,
                "ms": _ms(began),
                "stderr": said["stderr"],
                "captures": said["captures"],
                "bundle_path": spec["bundle_path"],
                "descendants": said.get("descendants", []),
                "resources": said["resources"],
            }
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
            result["targets"] = {
                target: {"status": "failed", "facts": failed["attempts"][0]} for target in agg["targets"]
            }
            result["ms"] = _ms(began)
            return result
        returns = json.dumps([_sim_return(agg["param_id"], s) for s in ok])
        for target in agg["targets"]:
            params = '{"target_entrypoint":%s,"sim_returns":%s,"target_data":%s}' % (
                json.dumps(target),
                returns,
                agg["target_data_json"],
            )
            status, answer, said = _call(spec, agg["key"], "aggregate", params)
            if said is not None:
                answer.pop("stderr", None)
                answer.pop("descendants", None)
                result["pid"] = said["pid"]
                result["stderr"] += said["stderr"]
                result["descendants"] = result.get("descendants", []) + said.get("descendants", [])
                result["bundle_path"] = spec["bundle_path"]
                if said["resources"] is not None:
                    result.setdefault("resources", []).append(said["resources"])
            result["targets"][target] = (
                {"status": "ok", "result": answer} if status == "ok" else {"status": "failed", "facts": answer}
            )
            if status == "failed" and answer.get("start_failed"):
                break
    result["ms"] = _ms(began)
    return result


def _sim_return(param_id, sim):
    """A replicate as production's aggregation receives it (isolated_warm.py _serialize_sim_returns)."""
    outputs = {}
    for name, inline in sim["outputs"].items():
        data = base64.b64decode(inline)
        outputs[name] = {
            "size": len(data),
            "checksum": hashlib.blake2b(data, digest_size=32).hexdigest(),
            "inline": inline,
        }
    text = "%s-%s-%s" % (param_id[:16], sim["seed"], ",".join(sorted(sim["outputs"])))
    return {"task_id": hashlib.blake2b(text.encode(), digest_size=32).hexdigest(), "outputs": outputs}


def _take_captures(runner):
    captures, runner.captures = runner.captures, []
    return captures[:20]


def _ms(began):
    return round((time.monotonic() - began) * 1000, 3)
