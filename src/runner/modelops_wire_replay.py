"""ModelOps Pipeline Debugger: a runner's recorded exchange, played back (standard library only).

`cluster handshake` records a runner's handshake on a Dask worker byte for byte
(modelops_cluster_actions.py `_record`). To diagnose it with exactly the rules a local handshake
uses, the engine starts this script in the runner's place (src/engine/cluster/workerHandshake.ts):
it writes what the runner wrote, to the same fds, at the same times after its spawn, and ends as
the runner ended (its exit code, or the signal that killed it). The engine's WarmProcess reads it
as it reads a live runner: frames, stray stdout bytes, stderr, the exit.

    MODELOPS_WIRE_REPLAY=recording.json MODELOPS_WIRE_REPLAY_T0=<epoch s of the spawn> \\
        python3 modelops_wire_replay.py --bundle-path … --venv-path … --bundle-digest …

What the engine writes to it is read and dropped. A recording that ended in a timeout is not
ended by this script: the engine's timeout ends it. So that the engine need not wait that timeout
out a second time, this script creates the file MODELOPS_WIRE_REPLAY_AT_TIMEOUT names (if set)
once it has written what the runner wrote before it timed out. What the runner wrote after it was
sent SIGUSR1 (its stack dump) is written once this script is sent SIGUSR1.
"""

import base64
import json
import os
import signal
import sys
import threading
import time

# a timed-out recording waits for the engine's kill at most this long
WAIT_FOR_KILL_S = 600.0
FDS = {"out": 1, "err": 2}


def main():
    with open(os.environ["MODELOPS_WIRE_REPLAY"], encoding="utf-8") as handle:
        wire = json.load(handle)
    t0 = float(os.environ.get("MODELOPS_WIRE_REPLAY_T0") or time.time())
    signalled = []
    signal.signal(signal.SIGUSR1, lambda *_: signalled.append(time.time()))
    threading.Thread(target=_drain, daemon=True).start()
    usr1_at = wire.get("usr1_at")
    events = [e for e in wire["events"] if e["fd"] in FDS]
    before = [e for e in events if usr1_at is None or e["t"] < usr1_at]
    for event in before:
        _write_at(t0 + event["t"] / 1000.0, event)
    if wire.get("timed_out"):
        at_timeout = os.environ.get("MODELOPS_WIRE_REPLAY_AT_TIMEOUT")
        if at_timeout:
            os.close(os.open(at_timeout, os.O_CREAT | os.O_WRONLY, 0o600))
        if usr1_at is not None:
            until = time.time() + WAIT_FOR_KILL_S
            while not signalled and time.time() < until:
                time.sleep(0.01)
            for event in events[len(before) :]:
                _write_at(signalled[0] + (event["t"] - usr1_at) / 1000.0, event)
        time.sleep(WAIT_FOR_KILL_S)
        return 1
    _sleep_until(t0 + wire["exit_at"] / 1000.0)
    exit_info = wire["exit"]
    if exit_info.get("signal"):
        sig = getattr(signal, exit_info["signal"], signal.SIGKILL)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(1)
    return exit_info.get("code") or 0


def _write_at(when, event):
    _sleep_until(when)
    data = base64.b64decode(event["b64"])
    view = memoryview(data)
    while view:
        view = view[os.write(FDS[event["fd"]], view) :]


def _sleep_until(when):
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def _drain():
    try:
        while os.read(0, 1 << 16):
            pass
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
