"""Shared helpers of the Python contestants of `npm run bench:job` (stdlib only).

Ids and seeds as ModelOps computes them (modelops-contracts make_param_id, SimulationStudy.to_simjob),
so every contestant runs the very same (params, seed) tasks as `modelops-debugger run`:
  param_id = blake2b("contracts:param:v1|" + json.dumps(params, sort_keys, compact), digest_size=32).hex
  seed_i   = int.from_bytes(blake2b(f"{param_id}:{i}", digest_size=8), "big") % 2**32

Also a command line used by job.ts:
  common.py calibrate [--target-ms 5]            -> {"iterations", "ns_per_iteration"}
  common.py cputime --bundle DIR [--calls 200] [--parallel 2]  -> CPU seconds of one bench/cpu5ms call
  common.py tasks [--n-params 20] [--replicates 200]  -> the parameter sets, their ids and seeds
"""

import argparse
import hashlib
import importlib
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_param_id(params):
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(("contracts:param:v1|" + text).encode(), digest_size=32).hexdigest()


def replicate_seed(param_id, i):
    digest = hashlib.blake2b(("%s:%d" % (param_id, i)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 2**32


def parameter_sets(n_params, replicates):
    """[{param_id, params: {"p": float}, seeds: [...]}], params {"p": 0.0}, {"p": 1.0}, ..."""
    sets = []
    for k in range(n_params):
        params = {"p": float(k)}
        param_id = make_param_id(params)
        sets.append(
            {"param_id": param_id, "params": params, "seeds": [replicate_seed(param_id, i) for i in range(replicates)]}
        )
    return sets


def use_bundle(bundle):
    """Makes the bundle's wire.py importable here and in every child process (PYTHONPATH)."""
    paths = [bundle, HERE] if bundle else [HERE]
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))


def load_sim(bundle):
    """The module holding wire(): the generated bundle's wire.py, else benchsim.py beside this file."""
    use_bundle(bundle)
    return importlib.import_module("wire" if bundle else "benchsim")


def value_of(sim_return):
    return float(json.loads(sim_return["value"]))


def summarize(values):
    """What each aggregation computes: count, mean, population std, min, max."""
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n)
    return {"count": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def aggregate(*sim_returns):
    return summarize([value_of(r) for r in sim_returns])


def add_job_args(parser):
    parser.add_argument(
        "--bundle", default="", help="the generated bench bundle (default: benchsim.py beside this script)"
    )
    parser.add_argument("--entrypoint", default="bench/trivial", choices=["bench/trivial", "bench/cpu5ms"])
    parser.add_argument("--n-params", type=int, default=20)
    parser.add_argument("--replicates", type=int, default=200)


def calibrate(target_ms):
    import benchsim

    per_iter = []
    for _ in range(9):
        n = 100000
        t0 = time.thread_time()
        benchsim.burn(12345, n)
        per_iter.append((time.thread_time() - t0) / n)
    ns = statistics.median(per_iter) * 1e9
    return {"iterations": max(1, round(target_ms * 1e6 / ns)), "ns_per_iteration": ns}


def _batches(bundle, calls, entrypoint, n_batches):
    """(CPU seconds per call (thread_time), wall seconds per call), for n_batches batches of `calls` calls."""
    sim = load_sim(bundle)
    sets = parameter_sets(1, calls)
    params, seeds = sets[0]["params"], sets[0]["seeds"]
    sim.wire(entrypoint, params, seeds[0])  # warm
    batches = []
    for _ in range(n_batches):
        t0, w0 = time.thread_time(), time.perf_counter()
        for seed in seeds:
            sim.wire(entrypoint, params, seed)
        batches.append(((time.thread_time() - t0) / calls, (time.perf_counter() - w0) / calls))
    return batches


def cputime(bundle, calls, entrypoint, parallel):
    """One simulation's CPU time, measured in `parallel` processes at once (2: both cores busy, as in
    a job), and the wall time per call meanwhile: on a shared VM two busy processes may get less
    than two cores, and then wall exceeds CPU."""
    if parallel <= 1:
        batches = _batches(bundle, calls, entrypoint, 5)
    else:
        import concurrent.futures

        with concurrent.futures.ProcessPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(_batches, bundle, calls, entrypoint, 2) for _ in range(parallel)]
            batches = [b for f in futures for b in f.result()]
    cpu = [c for c, _ in batches]
    wall = [w for _, w in batches]
    return {
        "cpu_s_per_call": statistics.median(cpu),
        "wall_s_per_call": statistics.median(wall),
        "batches": cpu,
        "parallel": parallel,
    }


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate")
    cal.add_argument("--target-ms", type=float, default=5.0)
    cpu = sub.add_parser("cputime")
    cpu.add_argument("--bundle", default="")
    cpu.add_argument("--calls", type=int, default=200)
    cpu.add_argument("--entrypoint", default="bench/cpu5ms")
    cpu.add_argument("--parallel", type=int, default=1, help="measure in this many processes at once")
    tasks = sub.add_parser("tasks")
    tasks.add_argument("--n-params", type=int, default=20)
    tasks.add_argument("--replicates", type=int, default=200)
    args = parser.parse_args()
    if args.command == "calibrate":
        sys.path.insert(0, HERE)
        out = calibrate(args.target_ms)
    elif args.command == "cputime":
        out = cputime(args.bundle, args.calls, args.entrypoint, args.parallel)
    else:
        out = parameter_sets(args.n_params, args.replicates)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
