"""ModelOps Pipeline Debugger: read one file on a Dask worker, for the editor's Cluster view (standard library only).

The driver's `dask/read-file` executes this file's source on one worker, given
modelops_cluster_inspect.py's (so the venvs and bundles directories are found exactly as
`cluster inspect` finds them), and calls `read_file(params)` off the worker's event loop. Read
only, and only two kinds of file, each checked after every symlink is resolved:
  log        {venvs}/{venv}/logs/{name}       a runner's stderr log (or any log a venv keeps)
  pyproject  {bundles}/bundles/{digest}/pyproject.toml
Anything else, or a path that leads out of those places, is refused. At most `max_bytes` are read
a call: from `offset` when given (the next call's offset is this call's `end`, so repeated calls
stream what was appended), else the file's last `max_bytes` (its tail).

The result's shape is typed once in src/engine/cluster/workerFile.ts.
"""

import os

# the driver puts the inspection module here before running this file; by hand, it is imported
inspect = globals().get("modelops_cluster_inspect")
if inspect is None:
    import modelops_cluster_inspect as inspect

MAX_BYTES_CAP = 1 << 20


def read_file(params):
    """`params`: path, kind ('log' | 'pyproject'), offset (optional), max_bytes, venvs_dir/bundles_dir (optional)."""
    path = params["path"]
    kind = params.get("kind")
    real = os.path.realpath(path)
    if kind == "log":
        roots = [root for root, _ in inspect._venvs_dirs(params.get("venvs_dir"))]
        allowed = any(_is_log_of(real, os.path.realpath(root)) for root in roots)
        where = "a venv's logs/ in %s" % " or ".join(roots)
    elif kind == "pyproject":
        root = os.path.join(inspect._bundles_dir(params.get("bundles_dir"))[0], "bundles")
        allowed = _is_pyproject_in(real, os.path.realpath(root))
        where = "a bundle's pyproject.toml in %s" % root
    else:
        raise ValueError("unknown kind of file %r: 'log' or 'pyproject'" % (kind,))
    if not allowed:
        raise PermissionError("refused: %s is not %s" % (path, where))
    max_bytes = max(1, min(int(params.get("max_bytes") or MAX_BYTES_CAP), MAX_BYTES_CAP))
    with open(real, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = params.get("offset")
        restarted = offset is not None and offset > size  # truncated or replaced since the last call
        if offset is None or restarted:
            start = max(0, size - max_bytes)
        else:
            start = int(offset)
        handle.seek(start)
        data = handle.read(min(max_bytes, max(0, size - start)))
    kept = _whole_characters(data)
    return {
        "path": path,
        "size": size,
        "start": start,
        "end": start + len(kept),
        "text": kept.decode("utf-8", "replace"),
        "restarted": restarted,
        "mtime": os.stat(real).st_mtime,
    }


def _is_log_of(real, root):
    """{root}/{venv}/logs/{name}: exactly that depth, nothing above the root."""
    relative = os.path.relpath(real, root)
    parts = relative.split(os.sep)
    return not relative.startswith("..") and len(parts) == 3 and parts[1] == "logs"


def _is_pyproject_in(real, root):
    relative = os.path.relpath(real, root)
    parts = relative.split(os.sep)
    return not relative.startswith("..") and len(parts) == 2 and parts[1] == "pyproject.toml"


def _whole_characters(data):
    """`data` without a UTF-8 character cut at its end (the next read starts with it whole)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # a lead byte: is its character complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data
