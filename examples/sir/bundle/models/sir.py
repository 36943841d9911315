"""A small stochastic SIR epidemic model (daily chain-binomial, stdlib only).

Each day, with N the population:

    new_infections ~ Binomial(S, 1 - exp(-beta * I / N))
    new_recoveries ~ Binomial(I, 1 - exp(-gamma))

All randomness comes from one ``random.Random(seed)``, so a run is fully
determined by (params, seed). One run of 120 days takes about a millisecond.
"""
import math
import random

DEFAULTS = {"population": 1000, "initial_infected": 5, "days": 120}


def _binomial(rng, n, p):
    """Draw from Binomial(n, p) with one or two uniforms.

    Inversion of the CDF when the variance is small, else a rounded normal
    approximation. Deterministic for a given generator state.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - _binomial(rng, n, 1.0 - p)
    q = 1.0 - p
    if n * p * q > 25.0:
        draw = int(round(rng.gauss(n * p, math.sqrt(n * p * q))))
        return min(n, max(0, draw))
    u = rng.random()
    k = 0
    pmf = math.exp(n * math.log(q))
    cdf = pmf
    ratio = p / q
    while u > cdf and k < n:
        pmf *= (n - k) / (k + 1) * ratio
        k += 1
        cdf += pmf
    return k


def simulate(beta, gamma, seed, population=1000, initial_infected=5, days=120):
    """Run one replicate. Returns (summary dict, daily incidence list)."""
    beta = float(beta)
    gamma = float(gamma)
    population = int(population)
    initial_infected = int(initial_infected)
    days = int(days)
    if beta < 0 or gamma < 0:
        raise ValueError("beta and gamma must be non-negative, got beta=%r gamma=%r" % (beta, gamma))
    if population <= 0:
        raise ValueError("population must be positive, got %r" % population)
    if not 0 <= initial_infected <= population:
        raise ValueError("initial_infected must be in [0, population], got %r" % initial_infected)
    if days < 0:
        raise ValueError("days must be non-negative, got %r" % days)

    rng = random.Random(seed)
    s = population - initial_infected
    i = initial_infected
    r = 0
    p_recover = 1.0 - math.exp(-gamma)
    peak_infected = i
    peak_day = 0
    incidence = []
    for day in range(1, days + 1):
        if i == 0:
            incidence.append(0)
            continue
        p_infect = 1.0 - math.exp(-beta * i / population)
        new_infections = _binomial(rng, s, p_infect)
        new_recoveries = _binomial(rng, i, p_recover)
        s -= new_infections
        i += new_infections - new_recoveries
        r += new_recoveries
        incidence.append(new_infections)
        if i > peak_infected:
            peak_infected = i
            peak_day = day

    summary = {
        "attack_rate": (population - s) / float(population),
        "peak_infected": peak_infected,
        "peak_day": peak_day,
        "final_recovered": r,
    }
    return summary, incidence
