"""Whole vim_tiny plugin graphs (what users deploy) on ONNX Runtime's CPU provider with the op
library: fp32 and fp16 exports, fused and unfused, dynamic batch 1 / 3 / 8, against the fp32 PyTorch
model and the portable graph (standard ONNX ops only) on fresh random images."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vim_deploy.export import ExportConfig, export_onnx
from vim_deploy.export.forms import PRESETS, GraphForm
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
    export_onnx(ExportConfig(model="vim_tiny", output=path, form=PRESETS["portable"]))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return {b: sess.run(None, {"input": x})[0] for b, x in images.items()}


_OPS = GraphForm(fuse_bidirectional=True, conv_impl="op")
FORMS = {"plain": PRESETS["plain"], "fused": PRESETS["fused"], "fused+convop": _OPS,
         "convop": GraphForm(conv_impl="op"), "fused+convop+normop": _OPS.with_(norm_impl="op"),
         "normop": GraphForm(norm_impl="op"), "ort-optimized": PRESETS["ort-optimized"],
         "convop+pad8": GraphForm(conv_impl="op", token_padding=8)}


@pytest.mark.slow
@pytest.mark.parametrize("precision, form", [
    ("fp32", "plain"), ("fp32", "fused"), ("fp16", "plain"), ("fp16", "fused"), ("fp32", "fused+convop"),
    ("fp16", "fused+convop"), ("fp32", "convop"), ("fp32", "fused+convop+normop"), ("fp16", "fused+convop+normop"),
    ("fp32", "normop"), ("fp32", "ort-optimized"), ("fp16", "ort-optimized"), ("fp32", "convop+pad8")])
def test_plugin_graph_on_ort_cpu_matches_pytorch(ort_ops_lib, images, torch_logits, portable_logits, precision, form,
                                                 tmp_path):
    path = str(tmp_path / "plugin.onnx")
    export_onnx(ExportConfig(model="vim_tiny", output=path, precision=precision, form=FORMS[form]))
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


@pytest.mark.parametrize("form", ["plain", "fused", "ort-optimized"])
def test_plugin_graphs_take_a_batch_of_zero(ort_ops_lib, form, tmp_path):
    path = str(tmp_path / "g.onnx")
    export_onnx(ExportConfig(model="test_vim", output=path, form=FORMS[form]))
    sess = create_session(path, "cpu", ort_ops_lib)
    assert sess.run(None, {"input": np.zeros((0, 3, 64, 64), np.float32)})[0].shape == (0, 10)


def test_triton_repository_graph_runs_with_its_library(ort_ops_lib, tmp_path):
    """What `vim-deploy triton` writes for a plugin graph: the copied model runs with the copied library."""
    from vim_deploy.serve.triton import write_repository

    path = str(tmp_path / "g.onnx")
    export_onnx(ExportConfig(model="test_vim", output=path, form=FORMS["fused"]))
    repo = write_repository(str(tmp_path / "repo"), path, ops_library=str(ort_ops_lib))
    model = tmp_path / "repo" / "test_vim" / "1" / "model.onnx"
    sess = create_session(str(model), "cpu", tmp_path / "repo" / "lib" / ort_ops_lib.name)
    x = np.random.default_rng(4).standard_normal((3, 3, 64, 64), dtype=np.float32)
    assert repo.backend == "onnxruntime" and sess.run(None, {"input": x})[0].shape == (3, 10)
