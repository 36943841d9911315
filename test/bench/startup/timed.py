"""Runs a command, spawn to exit, for test/bench/startup.ts; prints one JSON object on stdout.

Its wall time, the CPU it used with every descendant it waited for (wait4's rusage: Node plus
the runner it reaped), and the epoch times of spawn and exit on the clock Node's
performance.timeOrigin uses. The command's stdout goes to /dev/null, its stderr is inherited.
Usage: python3 timed.py /path/to/program arg...
"""

import json
import os
import sys
import time


def main():
    argv = sys.argv[1:]
    spawn_epoch = time.time()
    started = time.perf_counter()
    pid = os.posix_spawn(
        argv[0],
        argv,
        os.environ,
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
    )
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    reaped_epoch = time.time()
    print(
        json.dumps(
            {
                "code": os.waitstatus_to_exitcode(status),
                "wall_ms": wall * 1000,
                "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                "spawn": spawn_epoch * 1000,
                "reaped": reaped_epoch * 1000,
            }
        )
    )


if __name__ == "__main__":
    main()
