"""Output files are written whole or not at all: temp file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile

from vim_deploy.errors import VimDeployError


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before hours of work) when ``path`` cannot be written."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise VimDeployError(f"output '{path}' is a directory.", "Give a file name, e.g. model.onnx.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise VimDeployError(f"cannot write '{path}': folder '{parent}' does not exist.", "Create it first.")
    if not os.access(parent, os.W_OK):
        raise VimDeployError(f"cannot write '{path}': folder '{parent}' is not writable.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise VimDeployError(f"cannot write '{path}': the file exists and is read-only.")
    try:  # os.access says yes to root on read-only or virtual file systems: probe for real
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise VimDeployError(f"cannot write '{path}': folder '{parent}' does not take new files "
                             f"({e.strerror or e}: a read-only or virtual file system?).",
                             "Write to a folder of your own, e.g. the current one.") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_safe(obj):
    """A copy of `obj` that strict JSON accepts: NaN / inf floats become None (null)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps_json(obj) -> str:
    """Strict JSON text (no NaN / Infinity tokens), indented, with a final newline."""
    import json

    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    check_writable(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=parent)
    except OSError as e:
        raise VimDeployError(f"cannot write '{path}': folder '{parent}' does not take new files "
                             f"({e.strerror or e}: a read-only or virtual file system?).",
                             "Write to a folder of your own, e.g. the current one.") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would give 0666 & ~umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise VimDeployError(f"cannot write '{path}': {e.strerror or e}.") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
