"""ModelOps Pipeline Debugger: one replicate in this process, for a debugger.

    python modelops_debug_harness.py BUNDLE ENTRYPOINT PARAMS_JSON SEED OUTPUTS_FILE

Finds the bundle's wire function as the runner does (production's discovery order), calls
``wire(entrypoint, params, seed)`` here, in the main thread, and writes its outputs to
OUTPUTS_FILE as ``{"outputs": {name: base64}}`` (or ``{"error": {...}}`` before re-raising what
the bundle raised, so that a debugger stops at the raising line). There is no JSON-RPC here: the
bundle's prints go to the console and cannot break anything. Standard library only.

The engine side is src/engine/replicate/debug.ts; the params arrive as the canonical JSON a job
sends (a float stays a float), the seed as its decimal digits.
"""

import base64
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import modelops_debugger_runner as runner  # noqa: E402


class _NoEngine:
    """The runner reports its start-up phases to the engine; nobody listens here."""

    def notify(self, method, params):
        pass


def _write(path, document):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)


def main(argv):
    if len(argv) != 5:
        sys.stderr.write("usage: modelops_debug_harness.py BUNDLE ENTRYPOINT PARAMS_JSON SEED OUTPUTS_FILE\n")
        return 2
    bundle, entrypoint, params_json, seed_text, outputs_file = argv
    bundle = os.path.abspath(bundle)
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    os.chdir(bundle)
    runner.channel = _NoEngine()
    wire = runner.discover_wire(bundle)
    params = json.loads(params_json)
    seed = int(seed_text)
    try:
        # the replicate: step into this call to follow it in the bundle
        outputs = wire(entrypoint, params, seed)
    except BaseException as exc:
        _write(outputs_file, {"error": {"type": type(exc).__name__, "message": str(exc)}})
        raise
    encoded = {}
    for name, value in outputs.items():
        data = value if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode("utf-8")
        encoded[str(name)] = base64.b64encode(bytes(data)).decode("ascii")
    _write(outputs_file, {"outputs": encoded})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
