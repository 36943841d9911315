"""The driver's report of a task whose result is lost after it finished (test/dask/driver.test.ts).

Run with a Python that has `distributed`: `lost_result.py SCHEDULER_ADDRESS`. It submits one
simulation-like task, says on stdout which worker holds its result ("holder ADDRESS"), and
waits for a line on stdin: the test has killed that worker. It then hands the driver the
batch as_completed yielded before the kill, as the driver's watcher would after its pause,
and prints as one JSON line everything the driver sent the engine, once the task is done again.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "runner"))

from distributed import Client, as_completed  # noqa: E402

import modelops_dask_driver  # noqa: E402

KEY = "sim-lost-0"


class Recorded:
    """The driver's channel to the engine, kept instead of framed (the framing is not under test)."""

    def __init__(self):
        self.messages = []

    def send(self, message, max_bytes=None, instead=None):
        self.messages.append(message)

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})


def simulate(seed):
    # long enough that the recomputation after the kill is still running when the driver looks
    time.sleep(2)
    return {"key": KEY, "status": "ok", "seed": seed, "outputs": {}, "pid": os.getpid()}


def wait_for(what, predicate, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("waited %d s for %s" % (timeout_s, what))
        time.sleep(0.01)


def main():
    client = Client(sys.argv[1], timeout=30)
    channel = Recorded()
    driver = modelops_dask_driver.Driver(channel)
    driver.client = client
    future = client.submit(simulate, 7, key=KEY, pure=False)
    driver.futures[KEY] = future
    driver.agg_of[KEY] = None  # no aggregation carries it: the driver fetches it itself
    completed = as_completed([future], loop=client.loop)
    batch = completed.next_batch(block=True)
    holder = sorted(client.who_has([future])[KEY])
    print("holder %s" % holder[0], flush=True)
    if sys.stdin.readline().strip() != "killed":
        raise SystemExit("the test did not kill the worker")
    # the scheduler tells the client the only copy is gone, and computes it again
    wait_for("the result to be lost", lambda: future.status != "finished")
    status_when_taken = future.status
    driver.take(completed, batch)
    sent_before = list(channel.messages)
    # nothing left to wait for when the driver took the lost task as an outcome
    if not completed.is_empty():
        driver.take(completed, completed.next_batch(block=True))
    print(
        json.dumps(
            {
                "status_when_taken": status_when_taken,
                "sent_while_lost": sent_before,
                "sent": channel.messages,
                "computed_on": sorted(client.who_has([future])[KEY]),
            }
        ),
        flush=True,
    )
    client.close()


if __name__ == "__main__":
    main()
