"""Where vim-deploy's native sources and built libraries are, for a source checkout and an install alike.

A checkout keeps the C++/CUDA sources in ``plugins/`` and builds into ``build/``. ``pip install .`` and
wheels carry a copy of those sources inside the package (``vim_deploy/_native/plugins``, put there by
``setup.py``), so ``vim-deploy plugin build`` works from any install; without a checkout it builds into
a per-user folder.

A library (``libvim_kernels.so``, ``libvim_trt_plugin.so``, ``libvim_ort_ops.so``) is searched, in order:

1. an explicit path (``--plugin``, ``--ort-ops-library``, a function argument);
2. its own environment variable: ``VIM_DEPLOY_KERNELS_LIB``, ``VIM_DEPLOY_PLUGIN_LIB``,
   ``VIM_DEPLOY_ORT_OPS_LIB``;
3. ``$VIM_DEPLOY_LIB_DIR/<library>``;
4. ``<checkout>/build/<library>`` when vim-deploy runs from a source checkout;
5. the per-user build folder ``$XDG_DATA_HOME/vim-deploy/build`` (``~/.local/share/vim-deploy/build``).

``vim-deploy plugin build`` writes to ``$VIM_DEPLOY_LIB_DIR`` when set, else to the checkout's ``build/``,
else to the per-user folder: the first place the search looks after the variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from vim_deploy.errors import VimDeployError

KERNELS_LIB = "libvim_kernels.so"
PLUGIN_LIB = "libvim_trt_plugin.so"
ORT_OPS_LIB = "libvim_ort_ops.so"

LIB_ENV = {KERNELS_LIB: "VIM_DEPLOY_KERNELS_LIB", PLUGIN_LIB: "VIM_DEPLOY_PLUGIN_LIB", ORT_OPS_LIB: "VIM_DEPLOY_ORT_OPS_LIB"}
LIB_DIR_ENV = "VIM_DEPLOY_LIB_DIR"

_PACKAGE = Path(__file__).resolve().parents[1]  # the vim_deploy package
_CHECKOUT = _PACKAGE.parent


def checkout_root() -> Path | None:
    """The source checkout vim-deploy runs from (editable install or PYTHONPATH), or None."""
    if (_CHECKOUT / "plugins" / "CMakeLists.txt").is_file() and (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT
    return None


def sources_dir() -> Path:
    """The folder with the native CMake project: the checkout's ``plugins/``, else the packaged copy."""
    root = checkout_root()
    return root / "plugins" if root else _PACKAGE / "_native" / "plugins"


def user_build_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vim-deploy" / "build"


def default_build_dir() -> Path:
    """Where ``vim-deploy plugin build`` writes the libraries (see the module docstring)."""
    if os.environ.get(LIB_DIR_ENV):
        return Path(os.environ[LIB_DIR_ENV])
    root = checkout_root()
    return root / "build" if root else user_build_dir()


def search_path(library: str) -> list[Path]:
    """Candidate paths of ``library`` after the explicit path and its variable, in search order."""
    dirs = []
    if os.environ.get(LIB_DIR_ENV):
        dirs.append(Path(os.environ[LIB_DIR_ENV]))
    root = checkout_root()
    if root:
        dirs += [root / "build", root / "plugins" / "build"]
    dirs.append(user_build_dir())
    return [d / library for d in dirs]


def find_library(library: str, explicit: str | os.PathLike | None = None) -> tuple[Path | None, str | None]:
    """(path or None, the source that named a missing file). An explicit path or a set variable that
    names no file is reported rather than skipped: the user asked for that file."""
    if explicit:
        return (Path(explicit), None) if Path(explicit).is_file() else (None, f"'{explicit}'")
    env = LIB_ENV.get(library)
    if env and os.environ.get(env):
        p = Path(os.environ[env])
        return (p, None) if p.is_file() else (None, f"{env}='{p}'")
    return next((p for p in search_path(library) if p.is_file()), None), None


def describe_search(library: str) -> str:
    """One line for error notes: where the library was looked for."""
    env = LIB_ENV.get(library, "")
    places = ", ".join(str(p.parent) for p in search_path(library))
    return f"searched ${env}, then {places}"


def find_plugin_library(explicit: str | None = None) -> Path:
    """The TensorRT plugin .so: ``explicit``, ``$VIM_DEPLOY_PLUGIN_LIB``, then the search path of
    this module."""
    path, missing = find_library(PLUGIN_LIB, explicit)
    if path is not None:
        return path
    if missing:
        raise VimDeployError(f"plugin library {missing} does not exist.")
    raise VimDeployError(f"the TensorRT plugin library libvim_trt_plugin.so was not found "
                         f"({describe_search(PLUGIN_LIB)}).",
                         "Build it with `vim-deploy plugin build --tensorrt-root <TensorRT folder>` "
                         "(needs nvcc and TensorRT's headers), or pass --plugin.")
