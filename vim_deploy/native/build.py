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

#: Vim's deployment targets: Jetson Xavier (72), Turing, Ampere, Jetson Orin (87), Ada, Hopper, Blackwell,
#: Jetson Thor (110), RTX Blackwell; `--cuda-archs all` builds those the found nvcc supports (CMakeLists.txt).
ALL_ARCHS = "all"
#: Minutes to build on 2 CPUs: about 1.5 for one architecture, 0.75 for each more (measured: 1.4 min for
#: 90-real, 6.9 min for the nine of `all`; the scan kernel's translation unit dominates).


def _minutes(n: int) -> str:
    return f"about {1.5 + 0.75 * (n - 1):.1f} min on 2 CPUs"


def gpus_present() -> list[tuple[str, str]]:
    """(name, compute capability "9.0") of each GPU nvidia-smi lists here; [] without a GPU or a driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [tuple(x.strip() for x in line.split(",", 1)) for line in out.stdout.splitlines() if "," in line]


def nvcc_default_arch() -> str | None:
    """The oldest architecture the found nvcc builds (its default target: 75 for CUDA 13)."""
    try:
        out = subprocess.run(["nvcc", "--list-gpu-arch"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    archs = [line.split("_", 1)[1] for line in out.split() if line.startswith("compute_")]
    return archs[0] if archs else None


def choose_archs(cuda_archs: str | None) -> tuple[str | None, str]:
    """(the CMAKE_CUDA_ARCHITECTURES to pass, None for CMake's full list; a line saying what and why)."""
    if cuda_archs == ALL_ARCHS:
        return None, f"CUDA architectures: every deployment target nvcc supports (--cuda-archs all); {_minutes(9)}"
    if cuda_archs:
        n = len([a for a in cuda_archs.split(";") if not a.endswith("virtual")]) or 1
        return cuda_archs, f"CUDA architectures: {cuda_archs} (--cuda-archs); {_minutes(n)}"
    gpus = gpus_present()
    if gpus:
        caps = sorted({cc.replace(".", "") for _, cc in gpus})
        names = ", ".join(sorted({n for n, _ in gpus}))
        return ";".join(f"{c}-real" for c in caps), (
            f"CUDA architectures: sm_{', sm_'.join(caps)} (the GPUs here: {names}); {_minutes(len(caps))}. "
            "--cuda-archs all builds every deployment target "
            "(Jetson Xavier/Orin/Thor, Turing to Blackwell), --cuda-archs 87-real one of them")
    arch = nvcc_default_arch()
    if arch is None:
        return None, "CUDA architectures: every deployment target nvcc supports (nvcc did not list its own)"
    return f"{arch}-real;{arch}-virtual", (
        f"CUDA architectures: sm_{arch} with its PTX (no GPU here: nvcc's default target, which newer GPUs run "
        f"through the driver's JIT, without the sm_90-only kernels); {_minutes(1)}. Build for your GPU with "
        "--cuda-archs 90-real (Hopper), 87-real (Orin), ..., or every deployment target with --cuda-archs all "
        f"({_minutes(9)})")


def _cmake_messages(output: str) -> list[str]:
    """CMake's status lines of ours and its warning / error paragraphs, each whole on one line (CMake wraps
    a message over several indented lines)."""
    out, block = [], None
    for line in output.splitlines():
        if line.startswith(("CMake Warning", "CMake Error", "CMake Deprecation")):
            block = [line.strip()]
            continue
        if block is not None:
            if line.strip():
                block.append(line.strip())
                continue
            if len(block) > 1:  # a blank line ends the paragraph (the first one follows the header)
                out.append(" ".join(block))
                block = None
            continue
        if any(k in line for k in ("vim-deploy", "error", "warning", "Built target", "Linking")):
            out.append(line.strip())
    if block:
        out.append(" ".join(block))
    return out


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
    if shutil.which("nvcc") is not None:
        archs, why = choose_archs(cuda_archs)
        echo(why)
        if archs:
            cfg.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    if werror:
        cfg.append("-DVIM_WERROR=ON")
    for cmd in (cfg, ["cmake", "--build", str(build_dir), "-j", str(jobs or os.cpu_count() or 2)]):
        echo("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in _cmake_messages(proc.stdout):
            echo("  " + line)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise VimDeployError(f"native build failed ({cmd[1]} step, exit {proc.returncode}).",
                                 f"Last lines:\n{tail}")
    return {name: (build_dir / name if (build_dir / name).is_file() else None)
            for name in (KERNELS_LIB, PLUGIN_LIB, ORT_OPS_LIB)}
