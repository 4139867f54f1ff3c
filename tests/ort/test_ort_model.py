"""Whole vim_tiny plugin graphs (what users deploy) on ONNX Runtime's CPU provider with the op
library: fp32 and fp16 exports, fused and unfused, dynamic batch 1 / 3 / 8, against the fp32 PyTorch
model and the portable graph (standard ONNX ops only) on fresh random images."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vim_deploy.export import ExportConfig, export_onnx
from vim_deploy.models import create_model
from vim_deploy.ort import create_session
from vim_deploy.validate.compare import compare_logits

BATCHES = (1, 3, 8)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(2026)
    return {b: rng.standard_normal((b, 3, 224, 224), dtype=np.float32) for b in BATCHES}


@pytest.fixture(scope="module")
def torch_logits(images):
    model = create_model("vim_tiny", seed=0).eval()
    with torch.no_grad():
        return {b: model(torch.from_numpy(x)).numpy() for b, x in images.items()}


@pytest.fixture(scope="module")
def portable_logits(images, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("portable") / "portable.onnx")
    export_onnx(ExportConfig(model="vim_tiny", output=path, scan_impl="portable"))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return {b: sess.run(None, {"input": x})[0] for b, x in images.items()}


@pytest.mark.slow
@pytest.mark.parametrize("precision, fused, conv_impl, layout", [
    ("fp32", False, "conv", "tokens"), ("fp32", True, "conv", "tokens"), ("fp16", False, "conv", "tokens"),
    ("fp16", True, "conv", "tokens"), ("fp32", True, "taps", "tokens"), ("fp16", True, "taps", "tokens"),
    ("fp32", False, "conv", "channels"), ("fp16", True, "conv", "channels"), ("fp32", True, "taps", "channels"),
    ("fp32", True, "op", "tokens"), ("fp16", True, "op", "tokens"), ("fp32", False, "op", "tokens"),
    ("fp32", True, "op+norm", "tokens"), ("fp16", True, "op+norm", "tokens"), ("fp32", False, "conv+norm", "tokens"),
    # tokens padded to a multiple of 8 (197 -> 200; --ort-optimized), every projection layout
    ("fp32", True, "op+norm", "tokens/8"), ("fp16", True, "op+norm", "tokens/8"), ("fp32", True, "op+norm", "hybrid/8"),
    ("fp16", True, "op+norm", "hybrid/8"), ("fp32", False, "op", "channels/8"), ("fp32", True, "op", "tokens/16")])
def test_plugin_graph_on_ort_cpu_matches_pytorch(ort_ops_lib, images, torch_logits, portable_logits, precision, fused,
                                                 conv_impl, layout, tmp_path):
    path = str(tmp_path / "plugin.onnx")
    layout, _, pad = layout.partition("/")
    export_onnx(ExportConfig(model="vim_tiny", output=path, precision=precision, fuse_bidirectional=fused,
                             conv_impl=conv_impl.split("+")[0], norm_impl="op" if "norm" in conv_impl else "ops",
                             projection_layout=layout, token_padding=int(pad or 1)))
    sess = create_session(path, "cpu", ort_ops_lib)
    for b, x in images.items():
        out = sess.run(None, {"input": x})[0]
        assert out.shape == (b, 1000) and out.dtype == np.float32
        m = compare_logits(out, torch_logits[b])
        mp = compare_logits(out, portable_logits[b])
        if precision == "fp32":
            assert m.cosine_min >= 0.99999 and m.rel_l2 <= 1e-5, (b, m)
            assert mp.cosine_min >= 0.99999 and mp.rel_l2 <= 1e-5, (b, mp)
        else:
            assert m.cosine_min >= 0.999, (b, m)
            assert mp.cosine_min >= 0.999, (b, mp)
