"""How deep a JSON-RPC message our runner can decode: frames of growing nesting sent to a real
runner until it cannot answer (src/engine/pyjson/depth.ts explains the limit it sets from this).

    python3 test/bench/runner-json-depth.py [PYTHON]

Needs dist/ built (node esbuild.mjs). Prints the deepest message (the outer object counts as
one level) that the runner read and answered.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "dist", "runner", "modelops_runner.py")
PYTHON = sys.argv[1] if len(sys.argv) > 1 else sys.executable


def frame(body):
    data = body.encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


def read_message(stream):
    header = b""
    while not header.endswith(b"\r\n\r\n"):
        byte = stream.read(1)
        if not byte:
            return None
        header += byte
    length = int(header.split(b":", 1)[1].split(b"\r\n", 1)[0])
    return json.loads(stream.read(length))


def answered(bundle, depth):
    inner = depth - 2  # the message object, then params
    body = '{"jsonrpc":"2.0","id":1,"method":"probe","params":{"x":%s}}' % ("[" * inner + "]" * inner)
    runner = subprocess.Popen(
        [PYTHON, RUNNER, "--bundle-path", bundle],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        runner.stdin.write(frame(body))
        runner.stdin.flush()
        while True:
            message = read_message(runner.stdout)
            if message is None:
                return False
            if message.get("id") == 1:
                return True
    finally:
        runner.kill()
        runner.wait()


def main():
    with tempfile.TemporaryDirectory() as bundle:
        with open(os.path.join(bundle, "wire.py"), "w") as handle:
            handle.write("def wire(entrypoint, params, seed):\n    return {}\n")
        low, high = 3, 200000
        assert answered(bundle, low) and not answered(bundle, high)
        while high - low > 1:
            middle = (low + high) // 2
            if answered(bundle, middle):
                low = middle
            else:
                high = middle
        version = subprocess.run(
            [PYTHON, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
        ).stdout.strip()
        print("Python %s: the runner decodes messages nested up to %d levels deep" % (version, low))


if __name__ == "__main__":
    main()
