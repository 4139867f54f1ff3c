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
        raise VimDeployError(f"cannot write '{path}': {e.strerror or e}.") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    check_writable(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=parent)
    except OSError as e:
        raise VimDeployError(f"cannot write '{path}': {e.strerror or e}.") from None
    try:
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
