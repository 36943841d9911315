"""Old-style target: compare the mean attack rate with an observed one.

Called as ``prevalence_target(sim_returns, target_data)`` where each
sim_return is ``{"task_id", "outputs": {name: {"size", "checksum", "inline"}}}``
with ``inline`` the base64 of the output bytes.
"""
import base64
import json

DEFAULT_ATTACK_RATE = 0.6


def prevalence_target(sim_returns, target_data):
    observed = DEFAULT_ATTACK_RATE
    if isinstance(target_data, dict) and "attack_rate" in target_data:
        observed = float(target_data["attack_rate"])
    rates = []
    for sim_return in sim_returns:
        inline = sim_return["outputs"]["summary"]["inline"]
        summary = json.loads(base64.b64decode(inline).decode("utf-8"))
        rates.append(float(summary["attack_rate"]))
    n = len(rates)
    if n == 0:
        raise ValueError("prevalence_target needs at least one replicate")
    mean = sum(rates) / n
    return {
        "loss": (mean - observed) ** 2,
        "diagnostics": {"mean_attack_rate": mean, "n": n},
        "n_replicates": n,
    }
