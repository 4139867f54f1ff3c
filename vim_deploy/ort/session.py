"""Create ONNX Runtime sessions that run vim-deploy's custom scan nodes.

    from vim_deploy.ort import create_session
    sess = create_session("vim_tiny.onnx", provider="cuda")      # or "cpu"
    logits = sess.run(None, {"input": images})[0]

The op library is found at the ``library`` argument, ``$VIM_DEPLOY_ORT_OPS_LIB``, then where
``vim-deploy plugin build`` writes (``$VIM_DEPLOY_LIB_DIR``, a checkout's ``build/``, the per-user build
folder; :mod:`vim_deploy.native.paths`). In C/C++ the same library is
registered with ``RegisterCustomOpsLibrary`` / ``Ort::SessionOptions::RegisterCustomOpsLibrary``, and
in Triton's onnxruntime backend with ``model_operations { op_library_filename: "..." }``.

Before ORT sees the graph, its scan nodes are checked against the op contract
(:mod:`vim_deploy.ops.schema`): unknown attributes and attributes of the wrong kind are named with
their node. The library itself checks what ORT's C API lets it see (missing or out-of-range
attributes at session creation, shapes at run time), so other programs that load it get those too.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from vim_deploy.native import paths as native_paths
from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema

OPS_LIB = "libvim_ort_ops.so"
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def ops_library_or_none(explicit: str | os.PathLike | None = None) -> Path | None:
    """The op library's path, or None when none is built (explicit paths must exist)."""
    path, missing = native_paths.find_library(OPS_LIB, explicit)
    if missing:
        raise VimDeployError(f"op library {missing} does not exist.",
                             "Build it with `vim-deploy plugin build --onnxruntime-include <dir>`.")
    return path


def find_ops_library(explicit: str | os.PathLike | None = None) -> Path:
    lib = ops_library_or_none(explicit)
    if lib is None:
        raise VimDeployError(
            f"the ONNX Runtime op library {OPS_LIB} was not found ({native_paths.describe_search(OPS_LIB)}).",
            "Build it with `vim-deploy plugin build --onnxruntime-include <folder with onnxruntime_c_api.h>` "
            "or set VIM_DEPLOY_ORT_OPS_LIB.")
    return lib


def _attr_kind(a: onnx.AttributeProto) -> str:
    return onnx.AttributeProto.AttributeType.Name(a.type)


def check_scan_nodes(proto: onnx.ModelProto) -> int:
    """Check every scan node's attributes against the contract; returns the number of scan nodes.

    ORT's C API gives a custom kernel no way to list a node's attributes, so a misspelled one
    (``revrese=1``) would otherwise be ignored silently; this check names it.
    """
    expected = {
        schema.OP_NAME: {**{k: "INT" for k in schema.INT_ATTRIBUTES}},
        schema.BI_OP_NAME: {**{k: "INT" for k in schema.BI_INT_ATTRIBUTES},
                            **{k: "FLOAT" for k in schema.BI_FLOAT_ATTRIBUTES}},
    }
    optional = {"plugin_version": "STRING", "plugin_namespace": "STRING"}
    nodes = schema.scan_nodes(proto)
    for node in nodes:
        want = expected[node.op_type]
        seen = {a.name: a for a in node.attribute}
        where = f"{node.op_type} node '{node.name}'"
        for name, a in seen.items():
            kind = want.get(name) or optional.get(name)
            if kind is None:
                raise VimDeployError(f"{where} has an unknown attribute '{name}'.",
                                     f"Its attributes are {', '.join(sorted(want))} (and plugin_version / "
                                     "plugin_namespace); re-export the graph with `vim-deploy export`.")
            if _attr_kind(a) != kind:
                raise VimDeployError(f"{where}: attribute '{name}' is {_attr_kind(a)}, expected {kind}.")
        missing = [k for k in want if k not in seen]
        if missing:
            raise VimDeployError(f"{where} lacks the attribute(s) {', '.join(missing)}.",
                                 "Re-export the graph with `vim-deploy export`.")
    return len(nodes)


def _preload_cuda(ort) -> None:
    """onnxruntime-gpu >= 1.21 can load CUDA / cuDNN from the nvidia-* wheels (those torch brings)."""
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - the session then reports which provider it got
            pass


def session_options(library: str | os.PathLike | None = None, log_severity: int = 3):
    """``onnxruntime.SessionOptions`` with the op library registered."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = log_severity
    lib = find_ops_library(library)
    try:
        so.register_custom_ops_library(str(lib))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise VimDeployError(f"onnxruntime could not load {lib}: {str(e).splitlines()[0][:200]}",
                             "Rebuild it for this machine with `vim-deploy plugin build`.") from None
    return so


def create_session(model: str | os.PathLike | onnx.ModelProto, provider: str = "cpu",
                   library: str | os.PathLike | None = None, cuda_graph: bool = False, device_id: int = 0,
                   log_severity: int = 3, tf32: bool = False, with_ops: bool = True,
                   cuda_options: dict | None = None):
    """An ``onnxruntime.InferenceSession`` on ``provider`` ('cpu' or 'cuda') with the op library.

    ``cuda_graph`` turns on ORT's CUDA graph (inputs and outputs must then be bound to fixed device
    buffers with I/O binding). ``tf32`` lets ORT's CUDA provider run fp32 matrix products in TF32
    (off: fp32 graphs compute in fp32). ``with_ops=False`` makes a plain session for graphs without
    custom nodes (portable / function). ``cuda_options`` adds CUDA provider options (strings, e.g.
    ``{"cudnn_conv_algo_search": "HEURISTIC"}``) over vim-deploy's defaults. A CUDA request on an onnxruntime without the CUDA provider
    is an error, never a silent fall back to the CPU.
    """
    import onnxruntime as ort

    if provider not in _PROVIDERS:
        raise VimDeployError(f"unknown provider '{provider}'.", "Use 'cpu' or 'cuda'.")
    proto = model if isinstance(model, onnx.ModelProto) else None
    if proto is None:
        if not os.path.isfile(model):
            raise VimDeployError(f"ONNX file '{model}' does not exist.")
        proto = onnx.load(str(model), load_external_data=False)
    if with_ops:
        check_scan_nodes(proto)
        so = session_options(library, log_severity)
    else:
        so = ort.SessionOptions()
        so.log_severity_level = log_severity
    if provider == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VimDeployError(f"this onnxruntime ({ort.__version__}) has no CUDA execution provider.",
                                 "pip install onnxruntime-gpu (matching your CUDA), or use --ort-provider cpu.")
        _preload_cuda(ort)
        # ORT's CUDA provider runs fp32 MatMul/Gemm in TF32 by default (~4e-4 relative error on vim_tiny
        # fp32 logits, measured on an H200); an fp32 graph should compute in fp32, as PyTorch's reference does.
        # cudnn_conv1d_pad_to_nc1d: the depthwise causal conv as [N, C, 1, L] for cuDNN: 20.4 vs 23.4 ms per
        # vim_tiny b128 forward on an H200 (bench/profile_ort_gpu.py).
        opts = {"device_id": str(device_id), "use_tf32": "1" if tf32 else "0", "cudnn_conv1d_pad_to_nc1d": "1"}
        if cuda_graph:
            opts["enable_cuda_graph"] = "1"
        opts.update({k: str(v) for k, v in (cuda_options or {}).items()})
        providers = [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        sess = ort.InferenceSession(src, so, providers=providers)
    except Exception as e:  # noqa: BLE001
        msg = str(e).replace("\n", " ")
        raise VimDeployError(f"onnxruntime cannot create a session: {msg[:300]}") from None
    if provider == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise VimDeployError("onnxruntime did not enable its CUDA provider (CUDA / cuDNN libraries not found?).",
                             "Check `python -c \"import onnxruntime as o; o.preload_dlls(); "
                             "print(o.get_available_providers())\"`.")
    return sess
