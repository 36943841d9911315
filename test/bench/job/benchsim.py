"""The benchmark's simulation, identical for every contestant of `npm run bench:job`.

job.ts copies this file into a generated bundle as `wire.py` (so our runner finds `wire.py:wire`),
with ITERATIONS replaced by the count calibrated to ~5 ms of CPU on the machine; the Dask, pool
and floor contestants import that same generated `wire.py`. Stdlib only.

Entrypoints:
  bench/trivial  returns a float computed from the parameters and the seed;
  bench/cpu5ms   first runs a fixed integer loop of ITERATIONS steps (~5 ms of CPU), then the same.
The loop does a fixed amount of work (not "spin until 5 ms have passed"), so a contestant whose
scheduling overhead steals CPU from the simulations pays for it in wall time.
"""

import json

ITERATIONS = 60000  # replaced by job.ts with the calibrated count


def burn(seed, iterations):
    x = seed & 0x7FFFFFFF
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def simulate(entrypoint, params, seed):
    p = float(params["p"])
    if entrypoint == "bench/trivial":
        return p + (seed % 1000003) / 1000003.0
    if entrypoint == "bench/cpu5ms":
        return p + burn(seed, ITERATIONS) / 2147483648.0
    raise ValueError("unknown entrypoint %r: bench/trivial or bench/cpu5ms" % (entrypoint,))


def wire(entrypoint, params, seed):
    return {"value": json.dumps(simulate(entrypoint, params, seed)).encode()}
