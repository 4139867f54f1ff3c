"""Exported graphs: reading them (metadata, which scan form they hold), onnx's reference evaluator as a
runner, and the choice of runner for a graph (:func:`runner_for_onnx`)."""

from __future__ import annotations

import os

import numpy as np
import onnx

from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema
from vim_deploy.runtimes.base import Runner
from vim_deploy.runtimes.onnxrt import OrtRunner


def _has_scan_nodes(proto: onnx.ModelProto) -> bool:
    return bool(schema.scan_nodes(proto))


def _has_scan_function(proto: onnx.ModelProto) -> bool:
    return any(f.name in schema.SCAN_OPS and f.domain == schema.OP_DOMAIN for f in proto.functions)


def onnx_kind(proto: onnx.ModelProto) -> str:
    """'plugin' (custom nodes only), 'function' (custom nodes + local function) or 'portable'."""
    if not _has_scan_nodes(proto):
        return "portable"
    return "function" if _has_scan_function(proto) else "plugin"


class ReferenceRunner(Runner):
    """onnx's ReferenceEvaluator with our NumPy scan op: runs the plugin graph on any CPU."""

    def __init__(self, proto: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        from vim_deploy.validate.reference_op import REFERENCE_OPS

        self.evaluator = ReferenceEvaluator(proto, new_ops=REFERENCE_OPS)
        self.input_name = proto.graph.input[0].name
        self.name = "onnx-reference+scan-op"

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.evaluator.run(None, {self.input_name: x})[0], dtype=np.float32)


def load_onnx(path: str, load_external_data: bool = True) -> onnx.ModelProto:
    """The graph at ``path``, or one line saying why not (missing, empty, not ONNX). ``load_external_data=False``
    reads only the structure (what build and the Triton writer need)."""
    if not os.path.isfile(path):
        raise VimDeployError(f"ONNX file '{path}' does not exist.")
    if os.path.getsize(path) == 0:
        raise VimDeployError(f"ONNX file '{path}' is empty (0 bytes).", "Export it again with `vim-deploy export`.")
    try:
        return onnx.load(path, load_external_data=load_external_data)
    except Exception as e:  # protobuf DecodeError and friends
        raise VimDeployError(f"'{path}' is not a readable ONNX file: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}.") from None


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


RUNTIMES = ("auto", "onnxruntime", "reference")


def runner_for_onnx(path: str, runtime: str = "auto", provider: str | None = None, ops_library=None):
    """The backend for this graph.

    Portable and function graphs run on onnxruntime. Plugin graphs (bare custom nodes) run on
    onnxruntime with vim-deploy's op library (``runtime`` 'onnxruntime', or 'auto' when the library
    is built), else on onnx's reference evaluator with the NumPy scan op ('reference': the slow
    oracle). ``provider``: 'cpu' or 'cuda' for onnxruntime (default: CUDA when available for graphs
    without custom nodes, the CPU for plugin graphs).
    """
    from vim_deploy.ort import find_ops_library, ops_library_or_none

    if runtime not in RUNTIMES:
        raise VimDeployError(f"unknown runtime '{runtime}'.", f"Use one of {', '.join(RUNTIMES)}.")
    proto = load_onnx(path)
    kind = onnx_kind(proto)
    if kind != "plugin":
        return OrtRunner(path, provider=provider), kind, metadata(proto)
    if runtime == "reference":
        return ReferenceRunner(proto), kind, metadata(proto)
    lib = find_ops_library(ops_library) if runtime == "onnxruntime" else ops_library_or_none(ops_library)
    if lib is None:
        if provider == "cuda":
            find_ops_library()  # raises: a CUDA run of a plugin graph needs the op library
        return ReferenceRunner(proto), kind, metadata(proto)
    return OrtRunner(path, provider=provider or "cpu", ops_library=lib, plugin_graph=True), kind, metadata(proto)
