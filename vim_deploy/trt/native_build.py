"""Build and find the native libraries of ``plugins/`` (CUDA core + TensorRT plugin) through CMake.

``libvim_kernels.so`` needs only nvcc; ``libvim_trt_plugin.so`` also needs TensorRT's headers
(found from ``--tensorrt-root``, ``TensorRT_ROOT``, ``TENSORRT_INCLUDE_DIR``, the system include
folders or a ``tensorrt`` pip wheel). Neither links TensorRT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vim_deploy.errors import VimDeployError

REPO = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO / "plugins"
DEFAULT_BUILD_DIR = REPO / "build"
KERNELS_LIB = "libvim_kernels.so"
PLUGIN_LIB = "libvim_trt_plugin.so"


def find_plugin_library(explicit: str | None = None) -> Path:
    """The TensorRT plugin .so: ``explicit``, ``$VIM_DEPLOY_PLUGIN_LIB`` or the default build folder."""
    for cand in (explicit, os.environ.get("VIM_DEPLOY_PLUGIN_LIB"), DEFAULT_BUILD_DIR / PLUGIN_LIB):
        if cand and Path(cand).is_file():
            return Path(cand)
    if explicit:
        raise VimDeployError(f"plugin library '{explicit}' does not exist.")
    raise VimDeployError("the TensorRT plugin library libvim_trt_plugin.so was not found.",
                         "Build it with `vim-deploy plugin build --tensorrt-root <TensorRT folder>` "
                         "(needs nvcc and TensorRT's headers), or pass --plugin.")


def build_native(build_dir: str | os.PathLike = DEFAULT_BUILD_DIR, tensorrt_root: str | None = None,
                 cuda_archs: str | None = None, werror: bool = False, jobs: int | None = None,
                 echo=print) -> dict[str, Path | None]:
    """Configure and build with CMake; returns the paths of the libraries that were built."""
    for tool in ("cmake", "nvcc"):
        if shutil.which(tool) is None:
            raise VimDeployError(f"`{tool}` was not found on PATH.",
                                 "Install the CUDA toolkit (nvcc) and CMake >= 3.18 to build the native code.")
    build_dir = Path(build_dir)
    cfg = ["cmake", "-S", str(PLUGINS_DIR), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    if tensorrt_root:
        if not (Path(tensorrt_root) / "include" / "NvInferRuntime.h").is_file():
            raise VimDeployError(f"--tensorrt-root '{tensorrt_root}' has no include/NvInferRuntime.h.",
                                 "Point it at the TensorRT folder that holds include/ (and lib/).")
        cfg.append(f"-DTensorRT_ROOT={tensorrt_root}")
    if cuda_archs:
        cfg.append(f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}")
    if werror:
        cfg.append("-DVIM_WERROR=ON")
    for cmd in (cfg, ["cmake", "--build", str(build_dir), "-j", str(jobs or os.cpu_count() or 2)]):
        echo("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout.splitlines():
            if any(k in line for k in ("vim-deploy", "error", "warning", "Built target", "Linking")):
                echo("  " + line.strip())
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise VimDeployError(f"native build failed ({cmd[1]} step, exit {proc.returncode}).",
                                 f"Last lines:\n{tail}")
    return {name: (build_dir / name if (build_dir / name).is_file() else None) for name in (KERNELS_LIB, PLUGIN_LIB)}
