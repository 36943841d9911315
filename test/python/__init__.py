"""Unit tests of the Python side's worker modules (src/runner), standard library unittest:

    python3 -m unittest discover -s test/python -t .

(run from the repository's root; /usr/bin/python3, which the Dask workers use, too).
Importing this package puts src/runner on sys.path, where the modules are shipped from."""

import os
import sys

RUNNER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src", "runner")
if RUNNER_DIR not in sys.path:
    sys.path.insert(0, RUNNER_DIR)
