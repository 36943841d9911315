"""The floor's child for `npm run bench:job`: the least a warm Python worker can do per task.

  python3 echo_child.py [BUNDLE_DIR]

Reads `Content-Length: N\\r\\n\\r\\n` + N bytes of JSON-RPC requests on stdin and answers each with
one framed JSON-RPC response on stdout: `ready` -> {"ready": true, "pid"}; `execute`
{entrypoint, params, seed} -> {output_name: base64} from the bundle's wire(); `shutdown` -> null,
then exit. Stdlib only; no stdout protection, no notifications, no logging.
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    sim = common.load_sim(sys.argv[1] if len(sys.argv) > 1 else "")
    wire = sim.wire
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        length = None
        while True:
            line = stdin.readline()
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        msg = json.loads(stdin.read(length))
        method = msg.get("method")
        if method == "execute":
            p = msg["params"]
            outputs = wire(p["entrypoint"], p["params"], p["seed"])
            result = {k: base64.b64encode(v).decode("ascii") for k, v in outputs.items()}
        elif method == "ready":
            result = {"ready": True, "pid": os.getpid()}
        else:
            result = None
        body = json.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "result": result}).encode()
        stdout.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stdout.flush()
        if method == "shutdown":
            return


if __name__ == "__main__":
    main()
