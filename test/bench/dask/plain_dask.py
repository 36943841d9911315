"""Plain-Dask contestant of `npm run bench:dask`: the same tasks as `modelops-debugger run
--backend dask`, submitted by ordinary Dask client code to the same running cluster.

  python3 plain_dask.py --scheduler tcp://HOST:PORT --job examples/sir/job.json

One client.submit per simulation, key `sim-{param_id}-{i}`, the bundle's wire function called in
the worker process itself; per parameter set one `agg-{param_id}` task taking that set's futures
as positional arguments and calling each target with production's serialized sim returns
(pure=False throughout). Timed: from the first submit until every aggregation is gathered.
Prints one JSON line on stdout.
"""

import argparse
import base64
import hashlib
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "job"))
import common  # noqa: E402  (production's param_id and seeds)


def simulate(bundle, entrypoint, params, seed):
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    wire = importlib.import_module("wire")
    return wire.wire(entrypoint, params, seed)


def aggregate(bundle, targets, target_data, param_id, seeds, *outputs):
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    returns = []
    for seed, out in zip(seeds, outputs):
        serialized = {
            name: {
                "size": len(data),
                "checksum": hashlib.blake2b(data, digest_size=32).hexdigest(),
                "inline": base64.b64encode(data).decode(),
            }
            for name, data in out.items()
        }
        task_id = hashlib.blake2b(
            ("%s-%s-%s" % (param_id[:16], seed, ",".join(sorted(out)))).encode(), digest_size=32
        ).hexdigest()
        returns.append({"task_id": task_id, "outputs": serialized})
    results = {}
    for target in targets:
        module, _, name = target.partition(":")
        results[target] = getattr(importlib.import_module(module), name)(returns, target_data)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scheduler", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args()
    with open(args.job) as handle:
        job = json.load(handle)
    bundle = os.path.abspath(os.path.join(os.path.dirname(args.job), job["bundle"]))
    sets = []
    for params in job["parameter_sets"]:
        param_id = common.make_param_id(params)
        sets.append(
            {
                "param_id": param_id,
                "params": params,
                "seeds": [common.replicate_seed(param_id, i) for i in range(job["replicates"])],
            }
        )

    import distributed

    t0 = time.perf_counter()
    client = distributed.Client(args.scheduler, timeout=10)
    connect_s = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        aggs = []
        for s in sets:
            futures = [
                client.submit(
                    simulate,
                    bundle,
                    job["entrypoint"],
                    s["params"],
                    seed,
                    key="sim-%s-%d" % (s["param_id"], i),
                    pure=False,
                )
                for i, seed in enumerate(s["seeds"])
            ]
            aggs.append(
                client.submit(
                    aggregate,
                    bundle,
                    job.get("targets", []),
                    job.get("target_data"),
                    s["param_id"],
                    s["seeds"],
                    *futures,
                    key="agg-%s" % s["param_id"],
                    pure=False,
                )
            )
        results = client.gather(aggs)
        job_s = time.perf_counter() - t1
    finally:
        client.close()
    print(
        json.dumps(
            {
                "contestant": "plain-dask",
                "connect_s": connect_s,
                "job_s": job_s,
                "tasks": sum(len(s["seeds"]) for s in sets),
                "aggregates": {s["param_id"]: r for s, r in zip(sets, results)},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
