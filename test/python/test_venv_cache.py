"""modelops_venv_cache: the key, the marker and its checklist, the lock and its takeover rules."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from test.python import RUNNER_DIR  # puts src/runner on sys.path

import modelops_venv_cache as vc  # noqa: E402


class Scratch(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mo-pytest-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, relative, data):
        path = os.path.join(self.dir, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        return path


class KeyTest(Scratch):
    def test_key_is_productions_form(self):
        key = vc.venv_key("0123456789abcdef" * 4, "3.11", "fedcba9876543210")
        self.assertEqual(key, "0123456789ab-py3.11-fedcba98")

    def test_deps_hash_is_blake2b_8_over_the_files_in_productions_order(self):
        self.write("pyproject.toml", "[project]\nname = 'h'\n")
        self.write("requirements.txt", "b==2\n")
        self.write("uv.lock", "version = 1\n")
        expected = hashlib.blake2b(b"version = 1\nb==2\n[project]\nname = 'h'\n", digest_size=8).hexdigest()
        self.assertEqual(vc.deps_hash(self.dir), expected)
        self.write("poetry.lock", "x\n")
        self.assertNotEqual(vc.deps_hash(self.dir), expected)

    def test_digest_counts_content_not_caches_nor_mtimes(self):
        self.write("wire.py", "x = 1\n")
        self.write("models/m.py", "y = 2\n")
        before = vc.bundle_digest(self.dir)
        for junk in ("__pycache__/wire.cpython-311.pyc", ".git/HEAD", "models/m.pyc", ".DS_Store", ".venv/bin/x"):
            self.write(junk, "junk")
        os.utime(os.path.join(self.dir, "wire.py"), (0, 0))
        self.assertEqual(vc.bundle_digest(self.dir), before)
        self.write("models/m.py", "y = 3\n")
        self.assertNotEqual(vc.bundle_digest(self.dir), before)

    def test_digest_formula_and_links(self):
        self.write("b.py", "b")
        self.write("a/x.py", "ax")
        os.symlink("b.py", os.path.join(self.dir, "link.py"))
        self.assertEqual(vc.bundle_files(self.dir), ["a/x.py", "b.py", "link.py"])
        files = (("a/x.py", "ax"), ("b.py", "b"))
        lines = "".join("%s\0%d\0%s\n" % (n, len(c), hashlib.sha256(c.encode()).hexdigest()) for n, c in files)
        text = "modelops-debugger:bundle:v1\n" + lines + "link.py\0link\0b.py\n"
        self.assertEqual(vc.bundle_digest(self.dir), hashlib.sha256(text.encode()).hexdigest())

    def test_bundle_spec_reads_requirements_txt_lines_and_options(self):
        self.write("requirements.txt", "# a comment\nnumpy>=1.20  # why\n--find-links /wheels\n\nscipy\n")
        spec = vc.bundle_spec(self.dir)
        self.assertEqual(
            (spec["deps_source"], spec["requirements"], spec["requirement_options"]),
            ("requirements.txt", ["numpy>=1.20", "scipy"], ["--find-links /wheels"]),
        )


class MarkerTest(Scratch):
    """A venv made here (without pip: fast), marked as the cache marks it."""

    def make_venv(self, key="0123456789ab-py3.11-fedcba98"):
        venv = os.path.join(self.dir, key)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        marker = {
            "schema": 1,
            "key": key,
            "bundle": self.dir,
            "bundleDigest": "0" * 64,
            "depsHash": "0" * 16,
            "python": dict(
                vc.binary_identity(sys.executable), path=sys.executable, version="%d.%d.%d" % sys.version_info[:3]
            ),
            "installer": {"name": "venv", "version": "x"},
            "requirements": [],
            "createdAt": "now",
            "buildMs": 1,
            "functionalCheck": "test",
        }
        vc.write_marker(venv, marker)
        return venv, key

    def test_mtime_is_nodes_to_the_last_bit(self):
        path = self.write("python", "")
        os.utime(path, ns=(0, 1700000008123520141))
        # Node: 1700000008 * 1e3 + 123520141 / 1e6; st_mtime_ns / 1e6 would be 1700000008123.5203
        self.assertEqual(vc.binary_identity(path)["mtimeMs"], 1700000008123.52)

    def test_marker_round_trip_and_a_valid_venv(self):
        venv, key = self.make_venv()
        self.assertEqual(vc.read_marker(venv)["key"], key)
        validity = vc.validate_venv(venv, key, vc.binary_identity(sys.executable))
        self.assertEqual(validity["reason"], "valid")
        self.assertEqual(
            [c["name"] for c in validity["checks"]],
            ["directory", "marker", "key", "interpreter", "interpreter identity", "version"],
        )

    def test_each_check_fails_on_its_own_tampering(self):
        cases = [
            ("directory", lambda venv: shutil.rmtree(venv), "directory: not built yet"),
            (
                "marker",
                lambda venv: os.unlink(os.path.join(venv, vc.MARKER_FILE)),
                "marker: no .modelops-venv.json: the build never finished",
            ),
            ("marker", lambda venv: self.edit(venv, schema=2), "marker: .modelops-venv.json is not a schema-1 marker"),
            ("key", lambda venv: self.edit(venv, key="x"), "key: the marker says x, the directory is "),
            (
                "interpreter",
                lambda venv: os.unlink(os.path.join(venv, "bin", "python")),
                "interpreter: bin/python is missing",
            ),
            (
                "interpreter identity",
                lambda venv: self.edit(venv, python=dict(vc.read_marker(venv)["python"], size=1)),
                "interpreter identity: bin/python is now ",
            ),
            (
                "version",
                lambda venv: self.edit(venv, python=dict(vc.read_marker(venv)["python"], version="3.0.1")),
                "version: pyvenv.cfg says ",
            ),
        ]
        for name, tamper, reason in cases:
            with self.subTest(reason):
                venv, key = self.make_venv("%s-py3.11-fedcba98" % hashlib.sha256(reason.encode()).hexdigest()[:12])
                tamper(venv)
                validity = vc.validate_venv(venv, key)
                self.assertFalse(validity["valid"])
                self.assertEqual(validity["checks"][-1]["name"], name)
                self.assertTrue(validity["reason"].startswith(reason), validity["reason"])

    def test_another_requested_interpreter_is_refused(self):
        venv, key = self.make_venv()
        other = dict(vc.binary_identity(sys.executable))
        other["mtimeMs"] += 0.001  # a microsecond is another binary: compared exactly
        self.assertTrue(
            vc.validate_venv(venv, key, other)["reason"].startswith(
                "interpreter identity: the requested interpreter is "
            )
        )

    def edit(self, venv, **fields):
        marker = vc.read_marker(venv)
        marker.update(fields)
        vc.write_marker(venv, marker)


class BuildTest(Scratch):
    """A build is marked only once our runner started in the new venv (build.ts functionalCheckOf)."""

    def spec(self):
        self.write("bundle/wire.py", "def wire(entrypoint, params, seed):\n    return {}\n")
        bundle = os.path.join(self.dir, "bundle")
        return vc.bundle_spec(bundle, sys.executable), bundle

    def test_a_venv_that_cannot_run_the_runner_is_not_kept(self):
        spec, bundle = self.spec()
        runner = self.write("broken_runner.py", "import sys\nsys.stderr.write('no runner here\\n')\nsys.exit(3)\n")
        root = os.path.join(self.dir, "venvs")
        with self.assertRaises(vc.EnvironmentFailure) as caught:
            vc.ensure_venv(spec, bundle, runner, root)
        self.assertEqual(caught.exception.kind, "venv-create-failed")
        self.assertIn("The new venv cannot run the runner: the runner ended (exit code 3)", str(caught.exception))
        self.assertIn("no runner here", str(caught.exception))
        # neither a venv nor a half-built directory nor the lock: only the install log, to read
        self.assertEqual([n for n in os.listdir(root) if not n.endswith(".install.log")], [])

    def test_a_built_venv_is_marked_valid_then_reused(self):
        spec, bundle = self.spec()
        root = os.path.join(self.dir, "venvs")
        runner = os.path.join(RUNNER_DIR, vc.RUNNER_FILE)
        venv, key, how = vc.ensure_venv(spec, bundle, runner, root)
        self.assertEqual(how, "directory: not built yet")
        self.assertEqual(vc.read_marker(venv)["functionalCheck"], "the runner answered ready in it")
        self.assertEqual(vc.ensure_venv(spec, bundle, runner, root), (venv, key, "valid"))


class LockTest(Scratch):
    def dead_pid(self):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        return child.pid

    def stale_lock(self, **owner):
        path = os.path.join(self.dir, "k.lock")
        os.mkdir(path)
        full = {
            "pid": os.getpid(),
            "host": vc.socket.gethostname(),
            "startTime": "",
            "nonce": "stale",
            "acquiredAt": "then",
            "purpose": "test",
        }
        full.update(owner)
        with open(os.path.join(path, vc.OWNER_FILE), "w") as handle:
            vc.json.dump(full, handle)
        return path

    def test_owner_file_is_the_engines(self):
        lock = vc.DirLock.acquire(os.path.join(self.dir, "k.lock"), 1, "purpose")
        owner = vc.read_owner(lock.path)
        self.assertEqual(list(owner), ["pid", "host", "startTime", "nonce", "acquiredAt", "purpose"])
        self.assertEqual(owner["pid"], os.getpid())
        self.assertRegex(owner["acquiredAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        lock.release()
        self.assertFalse(os.path.exists(lock.path))

    def test_a_dead_holder_is_taken_over(self):
        pid = self.dead_pid()
        path = self.stale_lock(pid=pid)
        events = []
        lock = vc.DirLock.acquire(path, 5, "test", on_event=events.append)
        self.assertEqual([(e["type"], e["why"]) for e in events], [("lock-takeover", "pid %d no longer exists" % pid)])
        self.assertNotEqual(vc.read_owner(path)["nonce"], "stale")
        self.assertEqual([n for n in os.listdir(self.dir) if ".stale-" in n], [])
        lock.release()

    @unittest.skipUnless(vc.process_start_time(os.getpid()), "needs /proc (Linux)")
    def test_a_reused_pid_is_taken_over(self):
        path = self.stale_lock(startTime="1")
        events = []
        vc.DirLock.acquire(path, 5, "test", on_event=events.append).release()
        self.assertIn("now belongs to another process", events[0]["why"])

    def test_a_live_holder_is_waited_for_then_the_wait_times_out_naming_it(self):
        path = self.stale_lock(startTime=vc.process_start_time(os.getpid()))
        events = []
        with self.assertRaises(vc.EnvironmentFailure) as caught:
            vc.DirLock.acquire(path, 0.3, "test", on_event=events.append)
        self.assertEqual(caught.exception.kind, "venv-create-failed")
        self.assertIn("held by pid %d on " % os.getpid(), str(caught.exception))
        self.assertEqual([e["type"] for e in events], ["lock-wait"])

    def test_a_holder_on_another_host_is_never_judged(self):
        path = self.stale_lock(pid=self.dead_pid(), host="elsewhere.invalid")
        with self.assertRaises(vc.EnvironmentFailure):
            vc.DirLock.acquire(path, 0.2, "test")

    def test_an_ownerless_lock_is_waited_for_then_taken_after_its_grace(self):
        path = os.path.join(self.dir, "k.lock")
        os.mkdir(path)
        with self.assertRaises(vc.EnvironmentFailure):
            vc.DirLock.acquire(path, 0.2, "test")
        old = time.time() - vc.OWNERLESS_GRACE_S - 1
        os.utime(path, (old, old))
        vc.DirLock.acquire(path, 1, "test").release()

    def test_release_leaves_a_lock_taken_over_meanwhile(self):
        lock = vc.DirLock.acquire(os.path.join(self.dir, "k.lock"), 1, "test")
        with open(os.path.join(lock.path, vc.OWNER_FILE), "w") as handle:
            vc.json.dump({"nonce": "someone else"}, handle)
        lock.release()
        self.assertTrue(os.path.isdir(lock.path))

    def test_one_of_two_threads_holds_it_at_a_time(self):
        path = os.path.join(self.dir, "k.lock")
        inside = []

        def hold():
            lock = vc.DirLock.acquire(path, 10, "test", poll_s=0.01)
            inside.append(1)
            self.assertEqual(len(inside), 1)
            time.sleep(0.05)
            inside.pop()
            lock.release()

        threads = [threading.Thread(target=hold) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        self.assertEqual(inside, [])


if __name__ == "__main__":
    unittest.main()
