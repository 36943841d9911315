"""modelops_runner_client: the framing, and the facts a runner that dies, hangs or breaks the
protocol yields, with real Python subprocesses standing in for the runner."""

import base64
import json
import os
import shutil
import sys
import tempfile
import textwrap
import unittest

from test.python import RUNNER_DIR  # noqa: F401  (puts src/runner on sys.path)

import modelops_runner_client as rc  # noqa: E402


def frame(obj):
    return rc.encode_frame(json.dumps(obj))


class FramingTest(unittest.TestCase):
    def test_frames_split_at_every_byte(self):
        data = frame({"id": 1, "text": "é\r\n\r\n"}) + frame({"id": 2}) + frame({"id": 3, "result": [1, 2]})
        for cut in range(len(data) + 1):
            parser = rc.FrameParser()
            got = parser.feed(data[:cut]) + parser.feed(data[cut:])
            self.assertEqual([m["id"] for m in got], [1, 2, 3], "cut at %d" % cut)
        parser = rc.FrameParser()
        got = [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]
        self.assertEqual([m["id"] for m in got], [1, 2, 3])

    def test_a_header_with_other_fields_and_any_case(self):
        body = b'{"id":7}'
        header = b"content-type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH: %d\r\n\r\n" % len(body)
        data = header + body
        self.assertEqual(rc.FrameParser().feed(data), [{"id": 7}])

    def test_an_oversized_frame_is_passed_unread_and_the_next_one_read(self):
        big = frame({"id": 1, "blob": "x" * 5000})
        data = big + frame({"id": 2})
        for cut in (0, 10, len(big) - 1, len(big), len(big) + 3, len(data)):
            parser = rc.FrameParser(max_bytes=1000)
            got = parser.feed(data[:cut]) + parser.feed(data[cut:])
            self.assertIsInstance(got[0], rc.Oversized, "cut at %d" % cut)
            self.assertEqual(got[0].length, len(big) - big.index(b"\r\n\r\n") - 4)
            self.assertEqual(got[1], {"id": 2})
            self.assertLessEqual(len(parser.buffer), 1000)

    def test_noise_is_not_a_frame_and_is_handed_back(self):
        with self.assertRaises(rc.FrameError) as caught:
            rc.FrameParser().feed(b"hello from print()\n" * 300)
        self.assertTrue(caught.exception.noise.startswith(b"hello from print()"))
        with self.assertRaises(rc.FrameError) as caught:
            rc.FrameParser().feed(b"X-Other: 1\r\n\r\n{}")
        self.assertIn("without Content-Length", str(caught.exception))


FAKE_RUNNER = textwrap.dedent("""
    import faulthandler, json, os, signal, sys, time
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    how = os.environ["FAKE_HOW"]
    out = sys.stdout.buffer

    def send(obj):
        body = json.dumps(obj).encode()
        out.write(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
        out.flush()

    send({"jsonrpc": "2.0", "method": "runner/phase", "params": {"phase": "importing", "runner": "fake-runner"}})
    sys.stdin.buffer.read(10)  # the request has come
    sys.stderr.write("the bundle says goodbye\\n")
    sys.stderr.flush()
    if how == "exit":
        os._exit(3)
    if how == "signal":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "hang":
        def stuck_in_the_bundle():
            time.sleep(60)
        stuck_in_the_bundle()
    if how == "noise":
        out.write(b"not a frame at all " * 400)
        out.flush()
        time.sleep(60)
    if how == "answer":
        send({"jsonrpc": "2.0", "id": 1, "result": {"ready": True}})
        time.sleep(60)
    if how == "fill-and-die":  # as the OOM killer would end it, once sampled
        block = bytearray(64 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(0.6)
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "close-stdout":  # says nothing more, and does not end
        os.close(1)
        time.sleep(60)
    if how == "measured":
        resources = {"wall_ms": 1.5, "cpu_user_ms": 1.0, "cpu_sys_ms": 0.25, "peak_rss_kb": 9000, "peak_rss": "task"}
        send({"jsonrpc": "2.0", "id": 1, "result": {"ready": True}, "modelops": {"resources": resources}})
        time.sleep(60)
""")


class DeadRunnerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mo-pytest-runner-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.script = os.path.join(self.dir, "fake_runner.py")
        with open(self.script, "w") as handle:
            handle.write(FAKE_RUNNER)

    def request(self, how, timeout_s=20.0):
        runner = rc.Runner(
            sys.executable, self.script, self.dir, self.dir, "digest", env={"FAKE_HOW": how}, stderr_dir=self.dir
        )
        self.addCleanup(runner.close)
        return runner, runner.request("ready", "{}", timeout_s)

    def test_an_answer(self):
        runner, (status, answer) = self.request("answer")
        self.assertEqual((status, answer), ("ok", {"ready": True}))
        self.assertEqual((runner.phase, runner.runner_name), ("importing", "fake-runner"))

    def test_what_a_request_cost_as_our_runner_says_it(self):
        runner, (status, _) = self.request("measured")
        self.assertEqual(status, "ok")
        self.assertEqual(runner.last_resources["peak_rss_kb"], 9000)
        self.assertEqual(runner.last_resources["wall_ms"], 1.5)
        plain, _ = self.request("answer")
        self.assertIsNone(plain.last_resources, "production's runner says nothing")

    def test_exit_code_phase_and_stderr_tail(self):
        runner, (status, facts) = self.request("exit")
        self.assertEqual(status, "failed")
        self.assertEqual(
            (facts["outcome"], facts["exit"], facts["phase"], facts["runner"], facts["method"]),
            ("exited", {"code": 3, "signal": None}, "importing", "fake-runner", "ready"),
        )
        self.assertIn("the bundle says goodbye", facts["stderr_tail"])
        self.assertIn("the bundle says goodbye", facts["stderr_since"])
        self.assertEqual(facts["pid"], runner.pid)
        self.assertIn("exit code 3", rc.describe_facts(facts))

    def test_a_signal(self):
        _, (status, facts) = self.request("signal")
        self.assertEqual((status, facts["outcome"]), ("failed", "exited"))
        self.assertEqual(facts["exit"], {"code": None, "signal": "SIGKILL"})
        self.assertIn("killed by SIGKILL", rc.describe_facts(facts))

    def test_a_timeout_says_where_it_hung(self):
        runner, (status, facts) = self.request("hang", timeout_s=1.0)
        self.assertEqual((status, facts["outcome"], facts["exit"]), ("failed", "timeout", None))
        self.assertEqual(facts["timeout_ms"], 1000.0)
        self.assertIn("stuck_in_the_bundle", facts["stacks"] or "")
        self.assertFalse(runner.alive, "a runner that timed out is killed")

    def test_noise_on_stdout_is_a_protocol_failure_with_the_noise(self):
        _, (status, facts) = self.request("noise")
        self.assertEqual((status, facts["outcome"]), ("failed", "protocol"))
        self.assertTrue(base64.b64decode(facts["noise_b64"]).startswith(b"not a frame at all"))

    def test_a_stop_condition_ends_the_wait_and_leaves_the_runner(self):
        runner = rc.Runner(
            sys.executable, self.script, self.dir, self.dir, "digest", env={"FAKE_HOW": "hang"}, stderr_dir=self.dir
        )
        self.addCleanup(runner.close)
        status, answer = runner.request("ready", "{}", 20.0, stop_when=lambda: runner.phase == "importing")
        self.assertEqual((status, answer), ("stopped", None))
        self.assertTrue(runner.alive)

    def test_a_sigkill_comes_with_the_memory_facts_the_engine_judges(self):
        runner = rc.Runner(
            sys.executable,
            self.script,
            self.dir,
            self.dir,
            "digest",
            env={"FAKE_HOW": "fill-and-die"},
            stderr_dir=self.dir,
            memory_limit_mb=80,
        )
        self.addCleanup(runner.close)
        status, facts = runner.request("execute", "{}", 20.0)
        self.assertEqual((status, facts["outcome"], facts["exit"]["signal"]), ("failed", "exited", "SIGKILL"))
        memory = facts["memory"]
        self.assertEqual((memory["limit"]["kb"], memory["limit"]["source"]), (80 * 1024, "setting"))
        self.assertGreaterEqual(memory["last"]["rss_kb"], 64 * 1024, memory)
        self.assertTrue(0 < memory["last"]["at_ms"] <= memory["died_at_ms"], memory)
        self.assertEqual(memory["rss_from"], "proc-status" if sys.platform.startswith("linux") else "ps")
        self.assertFalse(memory["killed_by_worker"])
        if memory["limit"]["counter"] is not None:
            self.assertEqual(memory["oom_kills_before"], memory["oom_kills_after"], "no OOM kill happened")

    def test_a_runner_the_client_had_to_kill_says_so(self):
        _, (status, facts) = self.request("close-stdout")
        self.assertEqual((status, facts["outcome"], facts["exit"]["signal"]), ("failed", "exited", "SIGKILL"))
        self.assertTrue(facts["memory"]["killed_by_worker"], "never blamed on memory")

    def test_close_removes_its_stderr_file(self):
        runner, _ = self.request("exit")
        runner.close()
        self.assertFalse(os.path.exists(runner.stderr_path))


class MemoryLimitTest(unittest.TestCase):
    """The limit a runner on a worker is judged against: the same fixtures, and the same answers,
    as test/unit/oom.test.ts gives process/memory.ts."""

    GB = 1024 * 1024  # kB

    def system(self, files):
        root = tempfile.mkdtemp(prefix="mo-pytest-cgroup-")
        self.addCleanup(shutil.rmtree, root, True)
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            with open(os.path.join(root, name), "w") as handle:
                handle.write(text)
        return {"proc": os.path.join(root, "proc"), "cgroup": os.path.join(root, "cgroup"), "total_kb": 16 * self.GB}

    def limit(self, roots, setting_kb=None):
        limit = rc.memory_limit(42, setting_kb, **roots)
        return limit["kb"], limit["source"], rc.read_oom_kills(limit["counter"])

    def test_cgroup_v2_the_lowest_memory_max_up_the_path_and_its_counter(self):
        roots = self.system(
            {
                "proc/42/cgroup": "0::/kubepods/pod1/runner\n",
                "cgroup/cgroup.controllers": "cpu memory pids\n",
                "cgroup/kubepods/memory.max": "max\n",
                "cgroup/kubepods/pod1/memory.max": "%d\n" % (2 * 1024**3),
                "cgroup/kubepods/pod1/runner/memory.max": "max\n",
                "cgroup/kubepods/pod1/runner/memory.events": "oom 2\noom_kill 2\noom_group_kill 0\n",
            }
        )
        self.assertEqual(self.limit(roots), (2 * self.GB, "cgroup v2", 2))
        limit = rc.memory_limit(42, None, **roots)
        self.assertEqual(limit["counter"]["scope"], "the runner's cgroup (v2 memory.events)")

    def test_cgroup_v2_without_a_limit_is_physical_memory_with_the_cgroups_counter(self):
        roots = self.system(
            {
                "proc/42/cgroup": "0::/user.slice/app\n",
                "cgroup/cgroup.controllers": "memory\n",
                "cgroup/user.slice/memory.max": "max\n",
                "cgroup/user.slice/app/memory.max": "max\n",
                "cgroup/user.slice/app/memory.events": "oom_kill 0\n",
            }
        )
        self.assertEqual(self.limit(roots), (16 * self.GB, "physical memory", 0))

    def test_cgroup_v1_in_a_hybrid(self):
        roots = self.system(
            {
                "proc/42/cgroup": "9:name=systemd:/\n4:memory:/docker/abc\n1:cpu,cpuacct:/\n0::/\n",
                "cgroup/unified/cgroup.controllers": "",
                "cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
                "cgroup/memory/docker/abc/memory.limit_in_bytes": "%d\n" % (512 * 1024**2),
                "cgroup/memory/docker/abc/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n",
            }
        )
        self.assertEqual(self.limit(roots), (512 * 1024, "cgroup v1", 5))

    def test_cgroup_v1_seen_from_inside_a_container_and_v1s_no_limit(self):
        inside = self.system(
            {
                "proc/42/cgroup": "4:memory:/docker/abc\n",
                "cgroup/memory/memory.limit_in_bytes": "%d\n" % 1024**3,
                "cgroup/memory/memory.oom_control": "oom_kill 0\n",
            }
        )
        self.assertEqual(self.limit(inside), (self.GB, "cgroup v1", 0))
        unlimited = self.system(
            {"proc/42/cgroup": "4:memory:/\n", "cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}
        )
        self.assertEqual(self.limit(unlimited)[:2], (16 * self.GB, "physical memory"))

    def test_no_memory_cgroup_the_machines_counter_and_a_setting_first(self):
        roots = self.system({"proc/42/cgroup": "1:cpu:/\n", "proc/vmstat": "pgfault 9\noom_kill 7\n"})
        self.assertEqual(self.limit(roots), (16 * self.GB, "physical memory", 7))
        self.assertEqual(self.limit(roots, 256 * 1024), (256 * 1024, "setting", 7))
        self.assertEqual(rc.setting_limit_kb(None, {"MODELOPS_MEMORY_LIMIT_MB": "256"}), 256 * 1024)
        self.assertEqual(rc.setting_limit_kb(512, {"MODELOPS_MEMORY_LIMIT_MB": "256"}), 512 * 1024, "the option first")
        self.assertIsNone(rc.setting_limit_kb(None, {"MODELOPS_MEMORY_LIMIT_MB": "lots"}))
        self.assertIsNone(rc.setting_limit_kb(None, {}))

    def test_this_machine(self):
        limit = rc.memory_limit(os.getpid())
        self.assertIn(limit["source"], ("cgroup v2", "cgroup v1", "physical memory"))
        self.assertGreater(limit["kb"], 0)


if __name__ == "__main__":
    unittest.main()
