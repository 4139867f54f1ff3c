"""Build and find the native libraries of ``plugins/`` through CMake.

``libvim_kernels.so`` needs only nvcc; ``libvim_trt_plugin.so`` also needs TensorRT's headers
(found from ``--tensorrt-root``, ``TensorRT_ROOT``, ``TENSORRT_INCLUDE_DIR``, the system include
folders or a ``tensorrt`` pip wheel); ``libvim_ort_ops.so`` needs ONNX Runtime's C API headers
(``--onnxruntime-include``, ``ONNXRUNTIME_INCLUDE_DIR``, ``ONNXRUNTIME_ROOT``) and gets its CUDA
kernel when nvcc is there. None links TensorRT or ONNX Runtime.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vim_deploy.errors import VimDeployError

from vim_deploy.native import paths as native_paths
from vim_deploy.native.paths import KERNELS_LIB, ORT_OPS_LIB, PLUGIN_LIB


def build_native(build_dir: str | os.PathLike | None = None, tensorrt_root: str | None = None,
                 cuda_archs: str | None = None, werror: bool = False, jobs: int | None = None,
                 echo=print, onnxruntime_include: str | None = None) -> dict[str, Path | None]:
    """Configure and build with CMake; returns the paths of the libraries that were built.
    ``build_dir`` defaults to :func:`vim_deploy.native.paths.default_build_dir`."""
    plugins_dir = native_paths.sources_dir()
    if not (plugins_dir / "CMakeLists.txt").is_file():
        raise VimDeployError(
            f"the native sources are not in this installation ({plugins_dir} is missing).",
            "Reinstall vim-deploy from a wheel or checkout built with its setup.py (it packages plugins/), or "
            "build in a checkout and point VIM_DEPLOY_KERNELS_LIB / VIM_DEPLOY_PLUGIN_LIB / VIM_DEPLOY_ORT_OPS_LIB "
            "(or VIM_DEPLOY_LIB_DIR) at the libraries.")
    if build_dir is None:
        build_dir = native_paths.default_build_dir()
    if shutil.which("cmake") is None:
        raise VimDeployError("`cmake` was not found on PATH.", "Install CMake >= 3.18 to build the native code.")
    if shutil.which("nvcc") is None and not (onnxruntime_include or os.environ.get("ONNXRUNTIME_INCLUDE_DIR")
                                             or os.environ.get("ONNXRUNTIME_ROOT")):
        raise VimDeployError("`nvcc` was not found on PATH.",
                             "Install the CUDA toolkit to build the GPU libraries; without it only the CPU kernel of "
                             "libvim_ort_ops.so can be built (pass --onnxruntime-include).")
    build_dir = Path(build_dir)
    cfg = ["cmake", "-S", str(plugins_dir), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"]
    if onnxruntime_include:
        if not (Path(onnxruntime_include) / "onnxruntime_c_api.h").is_file():
            raise VimDeployError(f"--onnxruntime-include '{onnxruntime_include}' has no onnxruntime_c_api.h.",
                                 "Point it at the folder holding ONNX Runtime's C API headers.")
        cfg.append(f"-DONNXRUNTIME_INCLUDE_DIR={onnxruntime_include}")
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
    return {name: (build_dir / name if (build_dir / name).is_file() else None)
            for name in (KERNELS_LIB, PLUGIN_LIB, ORT_OPS_LIB)}
