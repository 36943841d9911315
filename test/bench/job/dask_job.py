"""Dask contestant of `npm run bench:job`: production's submission scheme on a LocalCluster.

  python3 dask_job.py --bundle DIR --entrypoint bench/trivial [--saturation inf]

2 worker processes × 1 thread on 127.0.0.1, dashboard off. One client.submit per simulation,
key `sim-{param_id}-{i}`, then per parameter set one aggregation `agg-{param_id}` that takes that
set's simulation futures as positional arguments (pure=False throughout), as production's
job runner does. Timed: from the first submit until every future is done and the aggregations
are gathered. The cluster start (until both workers are up and have imported the simulation)
and its close are timed apart. Prints one JSON line on stdout; Dask's logs go to stderr.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def _warm():
    import wire  # noqa: F401  (the bundle's module; PYTHONPATH set by common.use_bundle)

    return os.getpid()


def main():
    parser = argparse.ArgumentParser()
    common.add_job_args(parser)
    parser.add_argument(
        "--saturation",
        default="default",
        help="'default' (Dask's own), or a number / 'inf' for distributed.scheduler.worker-saturation",
    )
    args = parser.parse_args()

    sim = common.load_sim(args.bundle)
    sets = common.parameter_sets(args.n_params, args.replicates)

    import dask
    import distributed

    if args.saturation != "default":
        dask.config.set({"distributed.scheduler.worker-saturation": float(args.saturation)})
    saturation = dask.config.get("distributed.scheduler.worker-saturation")

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(2)
    if args.bundle:
        client.run(_warm)
    cluster_start_s = time.perf_counter() - t0

    try:
        t1 = time.perf_counter()
        sims, aggs = [], []
        for ps in sets:
            pid = ps["param_id"]
            futures = [
                client.submit(sim.wire, args.entrypoint, ps["params"], seed, key="sim-%s-%d" % (pid, i), pure=False)
                for i, seed in enumerate(ps["seeds"])
            ]
            sims.extend(futures)
            aggs.append(client.submit(common.aggregate, *futures, key="agg-%s" % pid, pure=False))
        submit_s = time.perf_counter() - t1
        distributed.wait(sims + aggs)
        summaries = client.gather(aggs)
        job_s = time.perf_counter() - t1
        failed = sum(1 for f in sims + aggs if f.status != "finished")
    finally:
        t2 = time.perf_counter()
        client.close()
        cluster.close()
        close_s = time.perf_counter() - t2

    print(
        json.dumps(
            {
                "contestant": "dask",
                "dask_version": distributed.__version__,
                "worker_saturation": saturation if saturation != float("inf") else "inf",
                "entrypoint": args.entrypoint,
                "tasks": len(sims),
                "aggregations": len(aggs),
                "failed": failed,
                "cluster_start_s": cluster_start_s,
                "submit_loop_s": submit_s,
                "job_s": job_s,
                "close_s": close_s,
                "aggregates": {ps["param_id"]: s for ps, s in zip(sets, summaries)},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
