"""`validate` end to end on a tiny model: reports are written and failures fail."""

import json

import numpy as np
import pytest

from vim_deploy.validate import compare_logits, judge
from vim_deploy.validate.compare import THRESHOLDS
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("g")
    for impl in ("plugin", "portable"):
        r = run_cli("export", "-q", "--model", "test_vim", "--scan-impl", impl, "-o", f"{impl}.onnx", cwd=d)
        assert r.returncode == 0, r.stderr
    r = run_cli("export", "-q", "--model", "test_vim", "--precision", "fp16", "-o", "plugin16.onnx", cwd=d)
    assert r.returncode == 0, r.stderr
    return d


def test_validate_reports_pass(graphs):
    r = run_cli("validate", "--onnx", "plugin.onnx", "--onnx", "portable.onnx", "--onnx", "plugin16.onnx",
                "--runtime", "reference", "--images", "skimage", "--num-random", "4", "--report-json", "r.json",
                "--report-md", "r.md", cwd=graphs)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    rep = json.loads((graphs / "r.json").read_text())
    assert rep["passed"] and len(rep["inputs"]["images"]) == 6
    assert "reference: 4/10 samples" in r.stderr and "onnx-reference+scan-op: 10/10 samples" in r.stderr  # progress
    rows = {(x["graph"], x["precision"], x["backend"]): x for x in rep["results"]}
    assert rows[("plugin", "fp32", "onnx-reference+scan-op")]["metrics"]["cosine_min"] >= 0.99999
    assert rows[("portable", "fp32", "onnxruntime-cpu")]["metrics"]["top1_agreement"] == 1.0
    assert rows[("plugin", "fp16", "onnx-reference+scan-op")]["metrics"]["cosine_min"] >= 0.999
    assert ("pytorch", "fp16", "pytorch-fp16") in rows
    md = (graphs / "r.md").read_text()
    assert "| onnx-reference+scan-op | plugin" in md and "PASSED" in md


def test_validate_fails_on_unmet_threshold(graphs):
    """A threshold no real graph meets (rel-L2 0) fails the run; out-of-range ones are usage errors (matrix)."""
    r = run_cli("validate", "--onnx", "portable.onnx", "--num-random", "2", "--max-rel-l2", "0", cwd=graphs)
    assert r.returncode == 1 and "FAILED" in r.stderr and "Traceback" not in r.stderr


def test_metrics_detect_differences():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 10))
    assert not judge(compare_logits(ref, ref), THRESHOLDS["fp32"])
    noisy = ref + 0.01 * rng.standard_normal(ref.shape)
    assert judge(compare_logits(noisy, ref), THRESHOLDS["fp32"])  # fp32 thresholds reject 1% noise
    assert judge(compare_logits(np.full_like(ref, np.nan), ref), THRESHOLDS["fp16"])  # NaN never passes
    swapped = ref.copy()
    swapped[0] = -swapped[0]
    assert compare_logits(swapped, ref).top1_agreement < 1.0


def test_validate_engine_error_paths(graphs, tmp_path):
    """Engine validation is unverified on a GPU here; its input checks are not."""
    (tmp_path / "e.plan").write_bytes(b"not an engine")
    r = run_cli("validate", "-q", "--engine", str(tmp_path / "e.plan"), cwd=tmp_path)
    assert r.returncode == 1 and "e.plan.json' is missing" in r.stderr and "Traceback" not in r.stderr
    meta = {"onnx_metadata": {"model_name": "test_vim", "img_size": "64", "precision": "fp32",
                              "checkpoint": "seeded-random(seed=0)", "model_overrides": "{}"}}
    (tmp_path / "e.plan.json").write_text(json.dumps(meta))
    r = run_cli("validate", "-q", "--engine", str(tmp_path / "e.plan"), cwd=tmp_path)
    import torch

    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("vim-deploy: error:")]
    assert len(errors) == 1, r.stderr
    if not torch.cuda.is_available():
        assert "needs a CUDA GPU" in errors[0]
    else:  # no TensorRT there, or a file that is not an engine: either way one line that says so
        assert "tensorrt" in errors[0].lower() or "engine" in errors[0].lower(), errors[0]


def test_a_checkpoint_with_another_class_count_is_one_line(tmp_path):
    """A graph exported from a 10-class checkpoint, validated with a 7-class one: one line, exit 1."""
    import torch

    from tests.helpers import run_cli
    from vim_deploy.models import create_model

    torch.save({"model": create_model("test_vim").state_dict()}, tmp_path / "c10.pth")
    torch.save({"model": create_model("test_vim", num_classes=7).state_dict()}, tmp_path / "c7.pth")
    assert run_cli("export", "-q", "-m", "test_vim", "-c", "c10.pth", "-o", "g.onnx", cwd=tmp_path).returncode == 0
    r = run_cli("validate", "--onnx", "g.onnx", "-c", "c7.pth", "--num-random", "2", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "the graph has 10 classes, the checkpoint c7.pth 7" in r.stderr and "c10.pth" in r.stderr


def test_non_finite_inputs_and_logits_are_warned_about(caplog):
    """A runner whose logits hold NaN, or an input batch with NaN / inf, gets a warning line naming it."""
    import logging

    import numpy as np

    from vim_deploy import log
    from vim_deploy.validate.validation import _run_all

    class Nan:
        name = "some-backend"

        def infer(self, x):
            y = np.zeros((len(x), 3), np.float32)
            y[0, 1] = np.nan
            return y

    log.LOGGER.propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="vim_deploy"):
            x = np.ones((2, 3, 4, 4), np.float32)
            x[1, 0, 0, 0] = np.inf
            _run_all(Nan(), [x], what="reference")
    finally:
        log.LOGGER.propagate = False
    text = caplog.text
    assert "reference: an input batch holds 1 NaN / inf values" in text
    assert "some-backend: 1 of 6 logits are NaN / inf (1 of 2 samples)" in text
