"""ModelOps Pipeline Debugger runner: the script to start (see modelops_debugger_runner.py).

Kept to these few lines because Python caches the bytecode of imported modules but compiles
the script it is given on every start. The runner's own bytecode is cached even when
PYTHONDONTWRITEBYTECODE is set; the user's setting is restored before any bundle code runs.
"""

import sys

_dont_write_bytecode = sys.dont_write_bytecode
sys.dont_write_bytecode = False
from modelops_debugger_runner import main  # noqa: E402

sys.dont_write_bytecode = _dont_write_bytecode
sys.exit(main())
