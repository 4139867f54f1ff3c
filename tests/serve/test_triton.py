"""`vim-deploy triton`: repositories whose every config.pbtxt parses with Triton's own model_config.proto
(tritonclient ships it), the written graph runs on ONNX Runtime, the preprocessing model preprocesses as
validate does, and bad input is one line each."""

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.helpers import run_cli


def model_config_pb2():
    tc = pytest.importorskip("tritonclient", reason="tritonclient (the test extra) is not installed")
    path = Path(tc.__file__).parent / "grpc" / "model_config_pb2.py"  # without tritonclient.grpc's grpc import
    spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse(path: Path):
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2().ModelConfig())


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("triton")
    for args, name in ((["--form", "portable"], "portable.onnx"), ([], "plain.onnx"),
                       (["--static-batch"], "static.onnx")):
        assert run_cli("export", "-q", "-m", "test_vim", *args, "-o", name, cwd=d).returncode == 0
    (d / "libvim_ort_ops.so").write_bytes(b"\x7fELF stand-in")  # copied, not loaded, by the writer
    return d


def test_portable_graph_repository_runs_on_onnxruntime(graphs, tmp_path):
    import onnxruntime as ort

    r = run_cli("triton", "--onnx", str(graphs / "portable.onnx"), "--out", str(tmp_path / "repo"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = parse(tmp_path / "repo" / "test_vim" / "config.pbtxt")
    assert cfg.backend == "onnxruntime" and cfg.max_batch_size == 32 and cfg.HasField("dynamic_batching")
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("input", [3, 64, 64])]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("logits", [10])]
    assert not cfg.model_operations.op_library_filename  # standard ops only: no library
    sess = ort.InferenceSession(str(tmp_path / "repo" / "test_vim" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)})[0].shape == (2, 10)
    assert "tritonserver --model-repository=" in r.stdout


def test_plugin_graph_repository_with_the_op_library_and_the_ensemble(graphs, tmp_path):
    out = tmp_path / "repo"
    r = run_cli("triton", "--onnx", str(graphs / "plain.onnx"), "--out", str(out), "--ensemble", "--max-batch", "8",
                "--ort-ops-library", str(graphs / "libvim_ort_ops.so"), "--serving-root", "/models", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    configs = {p.parent.name: parse(p) for p in out.glob("*/config.pbtxt")}
    assert set(configs) == {"test_vim", "test_vim_preprocess", "test_vim_ensemble"}
    model = configs["test_vim"]
    assert list(model.model_operations.op_library_filename) == ["/models/lib/libvim_ort_ops.so"]
    assert (out / "lib" / "libvim_ort_ops.so").read_bytes() == (graphs / "libvim_ort_ops.so").read_bytes()
    assert model.max_batch_size == 8 and configs["test_vim_preprocess"].backend == "python"
    ens = configs["test_vim_ensemble"]
    assert ens.platform == "ensemble" and [s.model_name for s in ens.ensemble_scheduling.step] == [
        "test_vim_preprocess", "test_vim"]
    assert ens.input[0].data_type == model_config_pb2().TYPE_STRING


def test_the_preprocessing_model_preprocesses_as_validate_does(graphs, tmp_path):
    from PIL import Image

    from vim_deploy.models import get_cfg
    from vim_deploy.validate.inputs import preprocess

    out = tmp_path / "repo"
    assert run_cli("triton", "--onnx", str(graphs / "portable.onnx"), "--out", str(out), "--ensemble",
                   cwd=tmp_path).returncode == 0
    spec = importlib.util.spec_from_file_location("written_preprocess", out / "test_vim_preprocess" / "1" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    cfg = get_cfg("test_vim")
    want = preprocess(img, 64, cfg["crop_pct"], cfg["mean"], cfg["std"])
    np.testing.assert_array_equal(mod.preprocess_bytes(buf.getvalue()), want)


def test_engine_repository_uses_the_tensorrt_backend(graphs, tmp_path):
    (tmp_path / "e.plan").write_bytes(b"plan")
    (tmp_path / "e.plan.json").write_text(json.dumps({"profile": {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64],
                                                                  "max": [16, 3, 64, 64]}}))
    (tmp_path / "libvim_trt_plugin.so").write_bytes(b"\x7fELF stand-in")
    r = run_cli("triton", "--onnx", str(graphs / "plain.onnx"), "--engine", "e.plan", "--plugins",
                "libvim_trt_plugin.so", "--out", "repo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = parse(tmp_path / "repo" / "test_vim" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 16
    assert (tmp_path / "repo" / "test_vim" / "1" / "model.plan").read_bytes() == b"plan"
    assert (tmp_path / "repo" / "lib" / "libvim_trt_plugin.so").is_file()
    assert "--backend-config=tensorrt,plugins=" in r.stdout and "LD_PRELOAD=" in r.stdout


def test_bad_input_is_one_line_each(graphs, tmp_path):
    other = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Foo", ["x"], ["y"], domain="com.other")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3])]),
        opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.other", 1)])
    onnx.save(other, str(tmp_path / "other.onnx"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [
        (["--onnx", "nope.onnx", "--out", "r1"], "ONNX file 'nope.onnx' does not exist"),
        (["--onnx", "other.onnx", "--out", "r2"], "com.other, which Triton's backends cannot serve"),
        (["--onnx", str(graphs / "portable.onnx"), "--out", "full"], "'full' exists and is not an empty folder"),
        (["--onnx", str(graphs / "plain.onnx"), "--out", "r3", "--ort-ops-library", "no/lib.so"],
         "op library 'no/lib.so' does not exist"),
        (["--onnx", str(graphs / "static.onnx"), "--out", "r4", "--ensemble"], "needs a model that batches"),
    ]
    for args, text in cases:
        r = run_cli("triton", *args, cwd=tmp_path)
        assert r.returncode == 1 and text in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not any((tmp_path / d).exists() for d in ("r1", "r2", "r3", "r4"))
