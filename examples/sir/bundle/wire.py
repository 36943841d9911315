"""Wire function of the SIR example bundle.

``wire(entrypoint, params, seed)`` runs one replicate and returns two outputs,
each compact JSON bytes:

* ``summary``: ``{"attack_rate", "peak_infected", "peak_day", "final_recovered"}``
* ``incidence``: the list of daily new infections
"""
import json

from models import sir

ENTRYPOINTS = ("models.sir/baseline",)


def wire(entrypoint, params, seed):
    if entrypoint not in ENTRYPOINTS:
        raise ValueError("Unknown entrypoint %r; supported: %s" % (entrypoint, ", ".join(ENTRYPOINTS)))
    options = {key: params[key] for key in sir.DEFAULTS if key in params}
    summary, incidence = sir.simulate(params["beta"], params["gamma"], seed, **options)
    return {
        "summary": json.dumps(summary, separators=(",", ":")).encode("utf-8"),
        "incidence": json.dumps(incidence, separators=(",", ":")).encode("utf-8"),
    }
