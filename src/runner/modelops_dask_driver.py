"""ModelOps Pipeline Debugger: the Dask driver (standard library + distributed only).

The engine starts this with a Python that can import `distributed` and speaks JSON-RPC to it
over stdin/stdout with Content-Length frames, as it does to runners. Every method and
notification is typed once on the engine's side (src/engine/backends/dask/protocol.ts).

It connects a `dask.distributed.Client` to an existing scheduler, ships this directory's
worker helper, the runner scripts and the bundle to the workers, submits `sim-{param_id}-{i}`
tasks and one `agg-{param_id}` task per parameter set that takes the simulations' futures as
positional arguments (pure=False, as production does), and streams back, as notifications:
the workers' task events (`client.subscribe_topic`), workers joining and leaving (the
scheduler's "all" topic), every task's result or Dask-side error as it completes
(`as_completed` in a thread), and the loss of the scheduler.

With `performance_report` in `dask/connect`, the job runs inside Dask's own
`performance_report(filename, mode="inline")` (production's ENABLE_PERF_REPORT), opened once the
scheduler is known to be able to make one and closed, writing the file, on `dask/close`.
"""

import json
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import modelops_dask_worker as helper  # noqa: E402
import modelops_runner_client as runner_client  # noqa: E402

# JSON-RPC error codes of this driver's own failures
SCHEDULER_UNREACHABLE = -32010
SUBMIT_FAILED = -32011
PLUGIN_FAILED = -32012
REPORT_UNAVAILABLE = -32013
NO_SUCH_WORKER = -32014
WORKER_SILENT = -32015
READ_FAILED = -32016
# what _run_on_worker_within gives for a worker that has not answered in time
NO_ANSWER = object()
# fetching one finished result from a worker
# how often finished tasks are reported, at most
REPORT_INTERVAL_S = 0.05
RESULT_TIMEOUT_S = 120


class Channel:
    """Frames on the protocol fds. fd 1 is moved aside first, so that anything a library prints
    goes to stderr instead of corrupting a frame."""

    def __init__(self):
        self.out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.input = os.fdopen(os.dup(0), "rb", buffering=0)
        self.lock = threading.Lock()
        self.parser = runner_client.FrameParser()
        self.pending = []

    def read(self):
        while not self.pending:
            chunk = self.input.read(1 << 16)
            if not chunk:
                return None
            self.pending.extend(self.parser.feed(chunk))
        return self.pending.pop(0)

    def send(self, message, max_bytes=None, instead=None):
        """One frame. With `max_bytes`, a message whose frame would be larger is replaced by
        `instead(size)` (the engine refuses frames over its cap without reading them)."""
        frame = runner_client.encode_frame(json.dumps(message, separators=(",", ":"), default=str))
        if max_bytes is not None and len(frame) > max_bytes:
            frame = runner_client.encode_frame(json.dumps(instead(len(frame)), separators=(",", ":"), default=str))
        with self.lock:
            # one write() per frame; a write cut short by a signal is finished, never left half a frame
            view = memoryview(frame)
            while view:
                view = view[self.out.write(view) :]

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})


class RpcError(Exception):
    def __init__(self, code, kind, message):
        super().__init__(message)
        self.code = code
        self.kind = kind


class Driver:
    def __init__(self, channel):
        self.channel = channel
        self.client = None
        self.address = None
        self.futures = {}
        # sim key -> its aggregation's key (None: no aggregation carries its result); agg key -> its sims
        self.agg_of = {}
        self.set_sims = {}
        # the engine names every task (src/engine/job/taskKeys.ts); an aggregation is known by
        # its key being here, a simulation by being in agg_of, never by parsing a key
        self.agg_keys = set()
        # simulations already said to have finished (dask/sims-finished)
        self.said_finished = set()
        self.cancelled = False
        self.report_max_bytes = None
        self.lost_reported = False
        self.watcher = None
        # Dask's performance_report, open from connect to close (--dask-performance-report)
        self.performance_report = None
        self.performance_report_file = None

    # ---- methods ------------------------------------------------------------------------------

    def connect(self, params):
        import distributed

        try:
            self.client = distributed.Client(params["scheduler"], timeout=params["timeout_s"], set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
            raise RpcError(
                SCHEDULER_UNREACHABLE,
                "scheduler-unreachable",
                "Could not connect to the Dask scheduler at %s within %s s: %s: %s"
                % (params["scheduler"], params["timeout_s"], type(exc).__name__, exc),
            ) from exc
        self.address = params["scheduler"]
        if params.get("performance_report"):
            self._open_performance_report(params["performance_report"])
        self.client.subscribe_topic(helper.EVENT_TOPIC, self._on_worker_event)
        self.client.subscribe_topic("all", self._on_scheduler_event)
        info = self.client.scheduler_info()
        return {
            "scheduler": info.get("address", params["scheduler"]),
            "dask_version": distributed.__version__,
            "python": sys.version.split()[0],
            "workers": sorted(info.get("workers", {})),
        }

    def submit(self, params):
        """Ship the helper, the runner and the bundle; then submit every task, returning at once."""
        client = self.client
        self.report_max_bytes = params.get("report_max_bytes")
        payload = self._ship(params)
        try:
            sims_and_aggs = []
            for item in params["sets"]:
                # one client.map per parameter set: one graph update for its replicates instead of
                # one per task (the submit loop is most of the client's cost); the keys are still
                # production's, one per task, pure=False
                keys = [sim["key"] for sim in item["sims"]]
                futures = (
                    client.map(
                        helper.run_sim,
                        [payload] * len(keys),
                        keys,
                        [sim["seed"] for sim in item["sims"]],
                        [item["params_json"]] * len(keys),
                        key=keys,
                        pure=False,
                    )
                    if keys
                    else []
                )
                by_replicate = {sim["replicate"]: future for sim, future in zip(item["sims"], futures)}
                done = {entry["replicate"]: entry["result"] for entry in item["done"]}
                agg = item.get("agg")
                for key, future in zip(keys, futures):
                    self.futures[key] = future
                    self.agg_of[key] = agg["key"] if agg is not None else None
                sims_and_aggs.extend(futures)
                if agg is not None:
                    self.agg_keys.add(agg["key"])
                    self.set_sims[agg["key"]] = futures
                    # an earlier run's results (resume) are passed as plain values
                    args = [by_replicate[i] if i in by_replicate else done[i] for i in range(item["replicates"])]
                    future = client.submit(helper.run_agg, payload, agg, *args, key=agg["key"], pure=False)
                    self.futures[agg["key"]] = future
                    sims_and_aggs.append(future)
        except Exception as exc:
            raise RpcError(
                SUBMIT_FAILED,
                "protocol-error",
                "Submitting to the Dask scheduler failed: %s: %s" % (type(exc).__name__, exc),
            ) from exc
        self.watcher = threading.Thread(
            target=self._watch, args=(sims_and_aggs,), name="modelops-as-completed", daemon=True
        )
        self.watcher.start()
        return {"tasks": len(sims_and_aggs)}

    def cancel(self, params):
        self.cancelled = True
        futures = list(self.futures.values())
        if futures and self.client is not None:
            self.client.cancel(futures)
        return {"cancelled": len(futures)}

    def close(self, params):
        report = self._close_performance_report() if self.performance_report is not None else None
        if self.client is not None:
            try:
                self.client.close(timeout=params.get("timeout_s", 5))
            except Exception as exc:  # the scheduler may be gone: the engine is told, nothing waits
                sys.stderr.write("modelops-debugger driver: closing the client: %s: %s\n" % (type(exc).__name__, exc))
        return {"closed": True, "performance_report": report} if report else {"closed": True}

    def inspect(self, params):
        """`cluster inspect`: every worker's facts (modelops_cluster_inspect.py, its source sent and
        run there, off the worker's event loop), each worker asked on its own thread with a hard
        deadline: a worker that has not answered by then is said to be silent, never waited for."""
        sources = _sources("modelops_cluster_inspect.py")
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        processing = self.client.processing()
        timeout_s = float(params["timeout_s"])
        ask = {k: params.get(k) for k in ("venvs_dir", "bundles_dir", "runner_scan")}
        ask["size_budget_s"] = timeout_s / 2
        answers = {}
        guard = threading.Lock()
        call = params.get("call")

        def entry_of(address, answer):
            worker = workers[address]
            metrics = worker.get("metrics") or {}
            entry = {
                "address": address,
                "host": worker.get("host"),
                "name": str(worker.get("name", "")),
                "nthreads": worker.get("nthreads"),
                "memory_limit": worker.get("memory_limit"),
                "memory": metrics.get("memory"),
                "processing": len(processing.get(address, ())),
            }
            entry.update(answer)
            return entry

        def one(address):
            started = time.monotonic()
            value = self._run_on_worker(address, sources, "inspect_worker", ask)
            answer = (
                {"error": "%s: %s" % (type(value).__name__, value)}
                if isinstance(value, BaseException)
                else {"facts": value}
            )
            answer["ms"] = round((time.monotonic() - started) * 1000, 1)
            with guard:
                answers[address] = answer
            if call is not None:
                # each worker as it answers: a view of 64 workers fills in as they come, the slow ones last
                self.channel.notify("dask/inspect-worker", {"call": call, "worker": entry_of(address, answer)})

        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(a,), daemon=True) for a in sorted(workers)]
        for thread in threads:
            thread.start()
        deadline = started + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with guard:
            answered = dict(answers)
        out = []
        for address in sorted(workers):
            out.append(
                entry_of(address, answered.get(address) or {"no_answer": True, "ms": round(timeout_s * 1000, 1)})
            )
        return {
            "scheduler": info.get("address", self.address),
            "workers": out,
            "timeout_s": timeout_s,
            "ms": round((time.monotonic() - started) * 1000, 1),
        }

    def act(self, params):
        """`cluster handshake|rm-venv|clear-lock|rm-orphans`: one action on the one worker named
        (modelops_cluster_actions.py, sent with the inspection module it reuses and run there off
        the worker's event loop), with a hard deadline: a worker that has not answered by then is
        said to be silent, never waited for. Our runner's files are read here and sent as text."""
        sources = _sources("modelops_cluster_inspect.py", "modelops_cluster_actions.py")
        address = params["worker"]
        workers = sorted(self.client.scheduler_info().get("workers", {}))
        if address not in workers:
            raise RpcError(
                NO_SUCH_WORKER,
                "bad-input",
                "The scheduler at %s has no worker %s; its workers: %s" % (self.address, address, ", ".join(workers)),
            )
        ask = dict(params.get("params") or {})
        runner_files = ask.pop("runner_files", None)
        if runner_files:
            ask["runner_sources"] = {}
            for name, path in runner_files.items():
                with open(path, encoding="utf-8") as handle:
                    ask["runner_sources"][name] = handle.read()
        timeout_s = float(params["timeout_s"])
        started = time.monotonic()
        value = self._run_on_worker_within(address, sources, "act", (params["action"], ask), timeout_s)
        if value is NO_ANSWER:
            answer = {"no_answer": True}
        elif isinstance(value, BaseException):
            answer = {"error": "%s: %s" % (type(value).__name__, value)}
        else:
            answer = {"result": value}
        answer.update(worker=address, timeout_s=timeout_s, ms=round((time.monotonic() - started) * 1000, 1))
        return answer

    def read_file(self, params):
        """The editor's Cluster view: part of one file on one worker (a runner's stderr log, a bundle's
        pyproject.toml), read there by modelops_cluster_read.py, which refuses any other file. With
        a hard deadline, as `inspect`: a worker that does not answer in time is said to, never waited for."""
        sources = _sources("modelops_cluster_inspect.py", "modelops_cluster_read.py")
        address = params["worker"]
        timeout_s = float(params["timeout_s"])
        ask = {k: params.get(k) for k in ("path", "kind", "offset", "max_bytes", "venvs_dir", "bundles_dir")}
        value = self._run_on_worker_within(address, sources, "read_file", (ask,), timeout_s)
        if value is NO_ANSWER:
            said = "%s did not answer within %s s (reading %s)" % (address, timeout_s, ask["path"])
            raise RpcError(WORKER_SILENT, "dask-stalled", said)
        if isinstance(value, BaseException):
            kind = "bad-input" if isinstance(value, (PermissionError, ValueError)) else "dask-task-erred"
            said = "%s: reading %s: %s: %s" % (address, ask["path"], type(value).__name__, value)
            raise RpcError(READ_FAILED, kind, said)
        return value

    # ---- our code on one worker (inspect, act, read-file) -------------------------------------

    def _run_on_worker(self, address, sources, function, *args):
        """`function(*args)` of our modules (`sources`, _call_on_worker) on the one worker at `address`,
        through the scheduler (`client.run`): what it returned, or the exception it raised there or
        on the way (the worker left, the scheduler went). Waits as long as that takes."""
        try:
            got = self.client.run(_call_on_worker, sources, function, *args, workers=[address], on_error="return")
            return got.get(address, RuntimeError("the scheduler returned no answer for it"))
        except Exception as exc:
            return exc

    def _run_on_worker_within(self, address, sources, function, args, timeout_s):
        """_run_on_worker with a hard deadline: NO_ANSWER when the worker has not answered by then (it
        is never waited for: the call goes on in a daemon thread, its answer dropped)."""
        box = {}
        thread = threading.Thread(
            target=lambda: box.update(value=self._run_on_worker(address, sources, function, *args)), daemon=True
        )
        thread.start()
        thread.join(timeout_s)
        return box.get("value", NO_ANSWER)

    # ---- Dask's performance report ------------------------------------------------------------

    def _open_performance_report(self, filename):
        """Dask's performance_report around everything the job does, as production's
        ENABLE_PERF_REPORT does. The scheduler makes the report (with bokeh, when the context
        closes): whether it can is asked first, so that a job is not run for a report that
        cannot be written."""
        from distributed import performance_report

        why = self.client.run_on_scheduler(_performance_report_unavailable)
        if why:
            raise RpcError(
                REPORT_UNAVAILABLE,
                "dask-report-unavailable",
                "The Dask scheduler at %s cannot make Dask's performance report (--dask-performance-report): %s"
                % (self.address, why),
            )
        report = performance_report(filename=filename, mode="inline")
        # performance_report finds its client with get_client(): ours is not the default one
        with self.client.as_current():
            report.__enter__()
        self.performance_report = report
        self.performance_report_file = filename

    def _close_performance_report(self):
        """Closes the report (the scheduler renders it, this process writes the file): the
        file and its size, or why it could not be written."""
        report, self.performance_report = self.performance_report, None
        filename = self.performance_report_file
        try:
            with self.client.as_current():
                report.__exit__(None, None, None)
            return {"file": filename, "bytes": os.path.getsize(filename)}
        except Exception as exc:
            return {"file": filename, "error": "%s: %s" % (type(exc).__name__, exc)}

    # ---- what the workers are given -----------------------------------------------------------

    def _ship(self, params):
        """The worker helper (a zip of the modules it is composed of), and a payload module holding
        the runner scripts and the bundle's files as data, each uploaded with distributed's
        UploadFile plugin under a name that says its content: every worker, also one that joins
        later, gets both before it takes tasks. One zip rather than three modules: a worker that
        joins later sets its plugins up concurrently, and the helper must never be imported
        before the modules it imports are in place."""
        import hashlib
        import tempfile
        import zipfile

        from distributed.diagnostics.plugin import UploadFile

        runner_files = {}
        for name, path in params["runner_files"].items():
            with open(path, "rb") as handle:
                runner_files[name] = handle.read()
        bundle_files = {}
        for name in params["bundle_files"]:
            with open(os.path.join(params["bundle_dir"], *name.split("/")), "rb") as handle:
                bundle_files[name] = handle.read()
        source = helper.payload_source(bundle_files, runner_files, params["spec"])
        payload = "modelops_dask_payload_%s" % hashlib.sha256(source.encode()).hexdigest()[:16]
        modules = {}
        for name in helper.HELPER_MODULES:
            with open(os.path.join(HERE, name), "rb") as handle:
                modules[name] = handle.read()
        digest = hashlib.sha256(b"".join(b"%s\0%d\0%s" % (n.encode(), len(d), d) for n, d in sorted(modules.items())))
        helper_name = "modelops-debugger-helper-%s" % digest.hexdigest()[:16]
        with tempfile.TemporaryDirectory(prefix="modelops-dask-") as temp:
            payload_file = os.path.join(temp, payload + ".py")
            with open(payload_file, "w") as handle:
                handle.write(source)
            # named by content: a newer helper goes first on the workers' sys.path, beside any older one
            helper_file = os.path.join(temp, helper_name.replace("-", "_") + ".zip")
            with zipfile.ZipFile(helper_file, "w") as archive:
                for name, data in sorted(modules.items()):
                    archive.writestr(name, data)
            present = self.client.run_on_scheduler(_worker_plugin_names)
            for path, name in ((helper_file, helper_name), (payload_file, payload)):
                if name in present:
                    continue  # uploading it again would reload the helper and restart its warm runners
                try:
                    answers = self.client.register_worker_plugin(UploadFile(path), name=name)
                except Exception as exc:
                    raise RpcError(
                        PLUGIN_FAILED,
                        "protocol-error",
                        "Shipping %s to the Dask workers failed: %s: %s" % (name, type(exc).__name__, exc),
                    ) from exc
                for worker, answer in (answers or {}).items():
                    if isinstance(answer, dict) and answer.get("status") == "error":
                        raise RpcError(
                            PLUGIN_FAILED,
                            "protocol-error",
                            "Dask worker %s could not set up %s: %s" % (worker, name, answer.get("exception")),
                        )
        return payload

    # ---- what happens -------------------------------------------------------------------------

    def _watch(self, futures):
        """Every task's outcome as it completes (no polling: as_completed is driven by the
        scheduler's reports). Only aggregations are gathered: each hands back its simulations'
        results, so the client fetches one result per parameter set, as plain Dask code would,
        instead of one per task. Simulations are gathered one by one only where no aggregation
        carries them (a set aggregated by an earlier run, or an aggregation that erred)."""
        from distributed import as_completed

        try:
            completed = as_completed(futures, loop=self.client.loop)
            # batches: everything that finished since the last look, so that under load one
            # message reports many tasks
            for batch in completed.batches():
                self.take(completed, batch)
                # let completions gather for a moment: tasks finish hundreds a second, and one
                # message (and one wake of this thread, which shares the GIL with the client's
                # event loop) for each would cost the job more than the report is worth
                time.sleep(REPORT_INTERVAL_S)
        except Exception as exc:  # as_completed itself failed: the engine must not wait forever
            self._lost("watching the tasks failed: %s: %s" % (type(exc).__name__, exc))
            return
        self.channel.notify("dask/all-done", {"cancelled": self.cancelled})

    def take(self, completed, batch):
        """Reports a batch of tasks as_completed yielded. A task that finished and whose result was
        then lost with its worker (killed, out of memory) before this look is "lost", or "pending"
        again: Dask computes it again, so it is no outcome yet. It goes back into `completed`,
        which yields it once it is done again."""
        settled = []
        for future in batch:
            # read once: the client's event loop changes it in another thread
            status = future.status
            if status in ("finished", "error", "cancelled"):
                settled.append((future, status))
            else:
                completed.add(future)
        # simulations whose results come with their set's aggregation: that they finished is known
        # now, from the scheduler's report, at no extra cost; said first, for progress, and once
        # (a lost one finishes twice)
        finished = [
            f.key
            for f, status in settled
            if status == "finished" and self.agg_of.get(f.key) is not None and f.key not in self.said_finished
        ]
        if finished:
            self.said_finished.update(finished)
            self.channel.notify("dask/sims-finished", {"keys": finished})
        for future, status in settled:
            key = future.key
            if status == "finished":
                if key in self.agg_keys or self.agg_of.get(key) is None:
                    self._fetch(future)
            else:
                self._report(future, self._exception(future), ok=False)
                if key in self.agg_keys:
                    self._gather_sims(self.set_sims.pop(key, []))
            self.futures.pop(key, None)

    def _fetch(self, future):
        """A finished task's result, reported; if it cannot be had, why."""
        try:
            result = future.result(timeout=RESULT_TIMEOUT_S)
        except Exception as exc:
            self._report(future, exc, ok=False)
            return
        self._report(future, result, ok=True)
        self.set_sims.pop(future.key, None)

    def _gather_sims(self, sims):
        finished = {f.key: f for f in sims if f.status == "finished"}
        if not finished:
            return
        try:
            results = self.client.gather(finished, errors="skip")
        except Exception as exc:
            sys.stderr.write(
                "modelops-debugger driver: gathering the simulations of an erred aggregation: %s: %s\n"
                % (type(exc).__name__, exc)
            )
            return
        for key, result in results.items():
            self._report(finished[key], result, ok=True)

    def _exception(self, future):
        if future.status == "cancelled":
            return None
        try:
            return future.exception(timeout=RESULT_TIMEOUT_S)
        except Exception as exc:  # the scheduler cannot say: that is the cause to report
            return exc

    def _report(self, future, result, ok):
        key = future.key
        if ok and key in self.agg_keys and isinstance(result, dict):
            # each simulation in its own frame, then the aggregation without them: a frame per
            # simulation whatever the size of a set (a set of ten 20 MB replicates is ten frames)
            for sim in result.get("sims", []):
                self._sim_done(sim.get("key"), sim)
            self.channel.notify("dask/agg-done", {"key": key, "result": dict(result, sims=[])})
        elif ok:
            self._sim_done(key, result)
        elif future.status == "cancelled" or type(result).__name__ == "CancelledError":
            if self.client.status not in ("running", "newly-created") and not self.cancelled:
                self._lost("the client's connection to the scheduler is %s" % self.client.status)
            elif not self.cancelled:
                self.channel.notify(
                    "dask/task-erred",
                    {
                        "key": key,
                        "exc_type": "CancelledError",
                        "message": "the task was cancelled on the Dask side",
                        "traceback": "",
                    },
                )
        else:
            text = (
                "".join(traceback.format_exception(type(result), result, result.__traceback__))
                if isinstance(result, BaseException)
                else ""
            )
            self.channel.notify(
                "dask/task-erred",
                {"key": key, "exc_type": type(result).__name__, "message": str(result), "traceback": text[-4000:]},
            )

    def _sim_done(self, key, result):
        message = {"jsonrpc": "2.0", "method": "dask/sim-done", "params": {"key": key, "result": result}}
        self.channel.send(
            message,
            self.report_max_bytes,
            lambda size: {
                "jsonrpc": "2.0",
                "method": "dask/sim-done",
                "params": {"key": key, "result": _too_large_sim(result, size, self.report_max_bytes)},
            },
        )

    def _lost(self, why):
        if self.lost_reported:
            return
        self.lost_reported = True
        self.channel.notify(
            "dask/scheduler-lost",
            {"scheduler": self.address, "message": "Lost the Dask scheduler at %s: %s" % (self.address, why)},
        )

    def _on_worker_event(self, event):
        _, message = event
        self.channel.notify("dask/event", message)

    def _on_scheduler_event(self, event):
        _, message = event
        action = message.get("action")
        if action == "add-worker":
            self.channel.notify("dask/worker", {"action": "added", "worker": message.get("worker"), "processing": []})
        elif action == "remove-worker":
            keys = sorted(str(k) for k in message.get("processing-tasks", ()))
            self.channel.notify(
                "dask/worker", {"action": "removed", "worker": message.get("worker"), "processing": keys}
            )


def _too_large_sim(result, size, cap):
    """A simulation whose report would exceed the engine's frame cap: failed, as result-too-large,
    naming each output and its size (the runner checked the outputs alone against the cap; the
    report carries more)."""
    outputs = [{"name": name, "encoded_bytes": len(value) + 2} for name, value in (result.get("outputs") or {}).items()]
    facts = {
        "outcome": "error",
        "method": "execute",
        "pid": result.get("pid", 0),
        "phase": None,
        "runner": None,
        "fatal": None,
        "exit": None,
        "error": {
            "code": -32002,
            "message": "Result too large",
            "data": {
                "kind": "result-too-large",
                "method": "execute",
                "frame_bytes": size,
                "max_frame_bytes": cap,
                "outputs": outputs,
            },
        },
        "stderr_since": "",
        "stderr_tail": "",
        "stderr_bytes": 0,
        "elapsed_ms": result.get("ms", 0),
        "timeout_ms": 0,
        "bundle_path": result.get("bundle_path", ""),
    }
    return {
        "key": result.get("key"),
        "status": "failed",
        "seed": result.get("seed"),
        "worker": result.get("worker", ""),
        "attempts": list(result.get("attempts", [])) + [facts],
        "ms": result.get("ms", 0),
    }


def _performance_report_unavailable(dask_scheduler=None):
    """Run on the scheduler: why it cannot make a performance report (it renders the report's
    figures with bokeh, which its dashboard components import), or None when it can."""
    try:
        import distributed.dashboard.components.scheduler  # noqa: F401
        import distributed.dashboard.components.shared  # noqa: F401
    except Exception as exc:  # ImportError, or the version check's own ImportError
        import distributed
        from distributed import versions

        needed = ""
        low, high = getattr(versions, "MIN_BOKEH_VERSION", None), getattr(versions, "MAX_BOKEH_VERSION", None)
        if low:
            needed = "; Dask %s needs bokeh >= %s%s on the scheduler" % (
                distributed.__version__,
                low,
                ", <= %s" % high if high else "",
            )
        return "%s: %s%s" % (type(exc).__name__, exc, needed)
    return None


async def _call_on_worker(sources, function, *args):
    """Run on a worker (sent by value: this is __main__): our modules' sources ((file name, source)
    pairs, in order), each executed in a namespace of its own that holds those before it as modules
    by their names (modelops_cluster_actions.py finds modelops_cluster_inspect there), then the last
    one's `function(*args)` called in a thread, so that the worker's event loop (heartbeats, other
    clients) goes on meanwhile. Nothing is imported into the worker."""
    import asyncio
    import types

    modules = {}
    namespace = {}
    for file_name, source in sources:
        name = file_name[: -len(".py")]
        namespace = dict(modules, __name__=name)
        exec(compile(source, file_name, "exec"), namespace)
        modules[name] = types.SimpleNamespace(**namespace)
    return await asyncio.get_running_loop().run_in_executor(None, namespace[function], *args)


def _sources(*file_names):
    """Our modules' sources, read here to be sent with _call_on_worker."""
    sources = []
    for file_name in file_names:
        with open(os.path.join(HERE, file_name), encoding="utf-8") as handle:
            sources.append((file_name, handle.read()))
    return sources


def _worker_plugin_names(dask_scheduler=None):
    """Run on the scheduler: the worker plugins it hands to every worker."""
    return list(dask_scheduler.worker_plugins)


METHODS = {
    "dask/connect": "connect",
    "dask/submit": "submit",
    "dask/cancel": "cancel",
    "dask/close": "close",
    "dask/inspect": "inspect",
    "dask/act": "act",
    "dask/read-file": "read_file",
}


def main():
    channel = Channel()
    driver = Driver(channel)
    while True:
        message = channel.read()
        if message is None:
            break
        method, request_id = message.get("method"), message.get("id")
        name = METHODS.get(method)
        if name is None:
            if request_id is not None:
                channel.send(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "error": {"code": -32601, "message": "unknown method %s" % method},
                    }
                )
            continue
        try:
            result = getattr(driver, name)(message.get("params") or {})
            channel.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        except RpcError as exc:
            channel.send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": exc.code, "message": str(exc), "data": {"kind": exc.kind}},
                }
            )
        except Exception as exc:  # a bug here: said in full, never swallowed
            channel.send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {
                        "code": -32603,
                        "message": "%s: %s" % (type(exc).__name__, exc),
                        "data": {"kind": "protocol-error", "traceback": traceback.format_exc()[-4000:]},
                    },
                }
            )
        if method == "dask/close":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
