"""The floor for `npm run bench:cluster`: a bare `client.run` of a no-op on every worker.

One process, as the CLI is one: Python's start, distributed's import, the connection, then one
`client.run` on all workers (timed alone), then one call per worker on its own thread, as the
driver's `inspect` asks them (timed alone). Prints one JSON line.
"""

import json
import sys
import threading
import time

from distributed import Client


def noop():
    return None


def main():
    with Client(sys.argv[1], timeout=120) as client:
        workers = sorted(client.scheduler_info()["workers"])
        started = time.monotonic()
        client.run(noop)
        run_ms = (time.monotonic() - started) * 1000
        started = time.monotonic()
        threads = [
            threading.Thread(target=client.run, args=(noop,), kwargs={"workers": [address]}) for address in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        per_worker_ms = (time.monotonic() - started) * 1000
    print(json.dumps({"workers": len(workers), "run_ms": round(run_ms, 1), "per_worker_ms": round(per_worker_ms, 1)}))


if __name__ == "__main__":
    main()
