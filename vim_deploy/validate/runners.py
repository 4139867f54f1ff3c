"""Backends that turn an NCHW float32 batch into float32 logits, all with ``run(x) -> np.ndarray``."""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch

from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema


class TorchRunner:
    """The PyTorch model (reference: fp32; ``fp16``/``bf16``: the deployment precision policy)."""

    def __init__(self, model, precision: str = "fp32", device: str = "cpu"):
        self.model = model.set_precision(precision).to(device).eval()
        self.device = device
        self.name = f"pytorch-{precision}"

    @torch.no_grad()
    def run(self, x: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()


_SCAN_OPS = (schema.OP_NAME, schema.BI_OP_NAME)


def _has_scan_nodes(proto: onnx.ModelProto) -> bool:
    return any(n.op_type in _SCAN_OPS and n.domain == schema.OP_DOMAIN for n in proto.graph.node)


def _has_scan_function(proto: onnx.ModelProto) -> bool:
    return any(f.name in _SCAN_OPS and f.domain == schema.OP_DOMAIN for f in proto.functions)


def onnx_kind(proto: onnx.ModelProto) -> str:
    """'plugin' (custom nodes only), 'function' (custom nodes + local function) or 'portable'."""
    if not _has_scan_nodes(proto):
        return "portable"
    return "function" if _has_scan_function(proto) else "plugin"


class OrtRunner:
    """onnxruntime on a graph it can run (portable or function mode)."""

    def __init__(self, path: str, providers: list[str] | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        avail = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        try:
            self.session = ort.InferenceSession(path, so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise VimDeployError(f"onnxruntime cannot load '{path}': {str(e).splitlines()[0][:200]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"onnxruntime-{self.session.get_providers()[0].replace('ExecutionProvider', '').lower()}"

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32)


class ReferenceRunner:
    """onnx's ReferenceEvaluator with our NumPy scan op: runs the plugin graph on any CPU."""

    def __init__(self, proto: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator

        from vim_deploy.validate.reference_op import VimBiSelectiveScan, VimSelectiveScan

        self.evaluator = ReferenceEvaluator(proto, new_ops=[VimSelectiveScan, VimBiSelectiveScan])
        self.input_name = proto.graph.input[0].name
        self.name = "onnx-reference+scan-op"

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.evaluator.run(None, {self.input_name: x})[0], dtype=np.float32)


def load_onnx(path: str) -> onnx.ModelProto:
    if not os.path.isfile(path):
        raise VimDeployError(f"ONNX file '{path}' does not exist.")
    try:
        return onnx.load(path)
    except Exception as e:  # protobuf DecodeError and friends
        raise VimDeployError(f"'{path}' is not a readable ONNX file: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}.") from None


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def runner_for_onnx(path: str):
    """The CPU backend for this graph: onnxruntime unless it has bare custom nodes."""
    proto = load_onnx(path)
    kind = onnx_kind(proto)
    return (ReferenceRunner(proto) if kind == "plugin" else OrtRunner(path)), kind, metadata(proto)
