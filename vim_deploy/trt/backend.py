"""The TensorRT-family Python package to build and run engines with, and its logger.

``tensorrt`` (TensorRT 10.x / 11.x) is preferred, ``tensorrt_rtx`` (TensorRT for RTX, same nvinfer1 API
family) is the fallback; ``VIM_DEPLOY_TRT_BACKEND`` forces one.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from vim_deploy.errors import VimDeployError

BACKENDS = ("tensorrt", "tensorrt_rtx")

# Compute capabilities TensorRT-RTX 1.7's runtime accepts (its own refusal on an H100 lists them); its
# builder makes plans on any machine, but an engine deserializes only on these GPUs.
RTX_RUNTIME_CAPABILITIES = ((8, 0), (8, 6), (8, 9), (12, 0), (12, 1))


def import_backend():
    """The TensorRT Python module to build with, or a one-line error saying what to install."""
    forced = os.environ.get("VIM_DEPLOY_TRT_BACKEND")
    names = (forced,) if forced else BACKENDS
    errors = []
    for name in names:
        try:
            mod = importlib.import_module(name)
            if name == "tensorrt_rtx":
                _ensure_rtx_parser_can_load(mod)
            return mod
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise VimDeployError(
        "no TensorRT Python package is installed (" + "; ".join(errors) + ").",
        "Install TensorRT for your GPU (NVIDIA's `tensorrt` wheel or JetPack), or the trt-rtx extra "
        "(`pip install 'vim-deploy[trt-rtx]'`) to build plans on this machine; on Jetson, run the printed "
        "trtexec command on the board.",
    )


def _ensure_rtx_parser_can_load(mod) -> None:
    """TensorRT-RTX's ONNX parser dlopens the unversioned libtensorrt_rtx.so, which the wheel lacks."""
    try:
        import tensorrt_rtx_libs  # noqa: F401

        libdir = Path(tensorrt_rtx_libs.__file__).parent
    except ImportError:
        return
    versioned = sorted(libdir.glob("libtensorrt_rtx.so.*"))
    link = libdir / "libtensorrt_rtx.so"
    if link.exists() or not versioned:
        return
    try:
        link.symlink_to(versioned[0].name)
    except OSError:
        raise VimDeployError(
            f"TensorRT-RTX's ONNX parser needs {link}, which is missing and cannot be created here.",
            f"Run: ln -s {versioned[0].name} {link}",
        ) from None


def make_logger(trt):
    """A TensorRT logger that writes warnings and errors to stderr (trt.Logger prints to stdout, where
    they mix with the command's report)."""
    class _StderrLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.WARNING:
                tag = "E" if severity <= trt.ILogger.Severity.ERROR else "W"
                print(f"[TensorRT {tag}] {msg}", file=sys.stderr, flush=True)

    return _StderrLogger()


def check_runtime_supports_gpu(trt, capability: tuple[int, int]) -> None:
    """Refuse, before deserializing, a GPU the backend's runtime cannot run engines on (TensorRT-RTX
    1.7 and Hopper, compute capability 9.0), with what to use instead."""
    if trt.__name__ != "tensorrt_rtx":
        return
    if capability in RTX_RUNTIME_CAPABILITIES or capability > max(RTX_RUNTIME_CAPABILITIES):
        return
    supported = ", ".join(f"{a}.{b}" for a, b in RTX_RUNTIME_CAPABILITIES)
    raise VimDeployError(
        f"tensorrt_rtx {trt.__version__} runs engines only on GPUs of compute capability {supported} or newer; "
        f"this GPU is {capability[0]}.{capability[1]}.",
        "On Hopper and other datacenter GPUs use NVIDIA TensorRT (the `tensorrt` package): build the engine with "
        "it on the target. The plugin graph also runs on ONNX Runtime with libvim_ort_ops.so (docs/onnxruntime.md).")
