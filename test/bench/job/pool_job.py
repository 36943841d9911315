"""ProcessPoolExecutor contestant of `npm run bench:job`.

  python3 pool_job.py --bundle DIR --entrypoint bench/trivial

ProcessPoolExecutor(max_workers=2): one submit per simulation, then the aggregations in the parent,
one per parameter set, in order. The pool is warmed (both workers started) before the clock
starts; the start is reported apart. Prints one JSON line on stdout.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    common.add_job_args(parser)
    args = parser.parse_args()

    sim = common.load_sim(args.bundle)
    sets = common.parameter_sets(args.n_params, args.replicates)

    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        warm = [pool.submit(os.getpid) for _ in range(4)]
        for f in warm:
            f.result()
        start_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        per_set = [[pool.submit(sim.wire, args.entrypoint, ps["params"], seed) for seed in ps["seeds"]] for ps in sets]
        summaries = [common.aggregate(*[f.result() for f in futures]) for futures in per_set]
        job_s = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "contestant": "pool",
                "entrypoint": args.entrypoint,
                "tasks": sum(len(f) for f in per_set),
                "aggregations": len(summaries),
                "pool_start_s": start_s,
                "job_s": job_s,
                "aggregates": {ps["param_id"]: s for ps, s in zip(sets, summaries)},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
