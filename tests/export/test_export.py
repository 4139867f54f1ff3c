"""Export end to end: custom nodes present and well-formed, graphs compute what PyTorch computes."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from vim_deploy.export import ExportConfig, export_onnx
from vim_deploy.export.forms import PRESETS, GraphForm
from vim_deploy.models import create_model
from vim_deploy.ops import schema
from vim_deploy.validate.reference_op import REFERENCE_OPS


def _ort(path, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def _refeval(path, x):
    return ReferenceEvaluator(str(path), new_ops=REFERENCE_OPS).run(None, {"input": x})[0]


def _rel(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def _cos_min(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    paths = {}
    for impl in ("plugin", "function", "portable"):
        paths[impl] = d / f"{impl}.onnx"
        export_onnx(ExportConfig(model="vim_tiny", output=str(paths[impl]), form=GraphForm(scan_impl=impl)))
    return paths


def test_plugin_graph_has_48_wellformed_scan_nodes(tiny_fp32):
    m = onnx.load(str(tiny_fp32["plugin"]))
    onnx.checker.check_model(m, full_check=True)
    scans = [n for n in m.graph.node if n.op_type == schema.OP_NAME]
    assert len(scans) == 48 and all(n.domain == schema.OP_DOMAIN for n in scans)
    assert {n.name for n in scans} == {f"layers.{i}.mixer.scan_{d}" for i in range(24) for d in ("fwd", "bwd")}
    for n in scans:
        attrs = {a.name: a for a in n.attribute}
        assert onnx.helper.get_attribute_value(attrs["plugin_version"]) == schema.PLUGIN_VERSION.encode()
        assert attrs["delta_softplus"].type == onnx.AttributeProto.INT and attrs["delta_softplus"].i == 1
        assert attrs["reverse"].i == (1 if n.name.endswith("bwd") else 0)
        assert len(n.input) == 8 and len(n.output) == 1
    # no flips left (backward branch as reverse scans), no Identity
    ops = {n.op_type for n in m.graph.node}
    assert "Identity" not in ops
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["img_size"] == "224" and meta["precision"] == "fp32" and "normalize" in meta["preprocessing"]
    assert meta["weights_seed"] == "0"  # the seed as a value of its own (validate rebuilds the weights from it)
    assert any(o.domain == schema.OP_DOMAIN for o in m.opset_import)


def test_portable_graph_has_only_standard_ops(tiny_fp32):
    m = onnx.load(str(tiny_fp32["portable"]))
    assert all(n.domain in ("", "ai.onnx") for n in m.graph.node)
    assert not m.functions and all(o.domain in ("", "ai.onnx") for o in m.opset_import)


def test_function_graph_keeps_nodes_and_function(tiny_fp32):
    m = onnx.load(str(tiny_fp32["function"]))
    assert sum(n.op_type == schema.OP_NAME for n in m.graph.node) == 48
    assert [(f.domain, f.name) for f in m.functions] == [(schema.OP_DOMAIN, schema.OP_NAME)]


def test_tiny_fp32_parity_all_modes(tiny_fp32):
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("vim_tiny")(torch.from_numpy(x)).numpy()
    outs = {"plugin": _refeval(tiny_fp32["plugin"], x), "function": _ort(tiny_fp32["function"], x),
            "portable": _ort(tiny_fp32["portable"], x)}
    for impl, y in outs.items():
        print(impl, _rel(y, ref), _cos_min(y, ref))
        assert _rel(y, ref) < 1e-5, impl
        assert _cos_min(y, ref) > 0.99999
        assert (y.argmax(1) == ref.argmax(1)).all()


def test_tiny_fp16_parity(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("vim_tiny")(torch.from_numpy(x)).numpy()
    for impl in ("plugin", "portable"):
        p = tmp_path / f"{impl}16.onnx"
        export_onnx(ExportConfig(model="vim_tiny", output=str(p), form=GraphForm(scan_impl=impl), precision="fp16"))
        m = onnx.load(str(p))
        scans = [n for n in m.graph.node if n.op_type == schema.OP_NAME]
        if impl == "plugin":
            types = {vi.name: vi.type.tensor_type.elem_type for vi in m.graph.value_info}
            types.update({t.name: t.data_type for t in m.graph.initializer})
            n0 = scans[0]
            for i, name in enumerate(schema.INPUT_NAMES):
                want = onnx.TensorProto.FLOAT if name in schema.FLOAT32_INPUTS else onnx.TensorProto.FLOAT16
                assert types[n0.input[i]] == want, name
        y = _refeval(p, x) if impl == "plugin" else _ort(p, x)
        assert y.dtype == np.float32  # fp32 I/O around an fp16 graph
        print(impl, _rel(y, ref), _cos_min(y, ref))
        assert _cos_min(y, ref) > 0.999


@pytest.mark.parametrize("model", ["vim_small", "vim_base", "vim_tiny_stride8", "vim_small_stride8"])
def test_other_variants_reduced_depth(model, tmp_path):
    p = tmp_path / "m.onnx"
    res = export_onnx(ExportConfig(model=model, output=str(p), model_kwargs={"depth": 2}))
    assert res.num_scan_nodes == 4
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = create_model(model, depth=2)(torch.from_numpy(x)).numpy()
    y = _refeval(p, x)
    assert _rel(y, ref) < 1e-5


def test_opset18_and_other_resolution(tmp_path):
    p = tmp_path / "m.onnx"
    res = export_onnx(ExportConfig(model="test_vim", output=str(p), opset=18, img_size=96, form=PRESETS["portable"]))
    assert res.img_size == 96
    m = onnx.load(str(p))
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [18]
    x = np.random.default_rng(3).standard_normal((2, 3, 96, 96), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("test_vim", img_size=96)(torch.from_numpy(x)).numpy()
    assert _rel(_ort(p, x), ref) < 1e-5


def test_flip_form_also_exports(tmp_path):
    p = tmp_path / "flip.onnx"
    export_onnx(ExportConfig(model="test_vim", output=str(p), form=GraphForm(bidirectional="flip")))
    m = onnx.load(str(p))
    assert all(a.i == 0 for n in m.graph.node if n.op_type == schema.OP_NAME for a in n.attribute if a.name == "reverse")
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("test_vim")(torch.from_numpy(x)).numpy()
    assert _rel(_refeval(p, x), ref) < 1e-5


def test_dynamic_batch(tiny_fp32):
    x = np.random.default_rng(5).standard_normal((5, 3, 224, 224), dtype=np.float32)
    assert _ort(tiny_fp32["portable"], x).shape == (5, 1000)


@pytest.mark.parametrize("impl", ["plugin", "function", "portable"])
def test_fused_bidirectional_export(impl, tmp_path):
    p = tmp_path / f"bi_{impl}.onnx"
    res = export_onnx(ExportConfig(model="vim_tiny", output=str(p), form=GraphForm(scan_impl=impl, fuse_bidirectional=True),
                                   model_kwargs={"depth": 4}))
    m = onnx.load(str(p))
    bi = [n for n in m.graph.node if n.op_type == schema.BI_OP_NAME]
    if impl == "portable":
        assert not bi and res.num_scan_nodes == 0 and all(n.domain in ("", "ai.onnx") for n in m.graph.node)
    else:
        assert len(bi) == 4 and res.num_scan_nodes == 4
        assert not [n for n in m.graph.node if n.op_type == schema.OP_NAME]
        attrs = {a.name: a for a in bi[0].attribute}
        assert attrs["out_scale"].type == onnx.AttributeProto.FLOAT and attrs["out_scale"].f == 0.5
        assert attrs["delta_softplus"].i == 1 and len(bi[0].input) == 15
    x = np.random.default_rng(6).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("vim_tiny", depth=4)(torch.from_numpy(x)).numpy()
    y = _refeval(p, x) if impl == "plugin" else _ort(p, x)
    assert _rel(y, ref) < 1e-5


def test_fused_needs_reverse_form(tmp_path):
    from vim_deploy.errors import VimDeployError

    with pytest.raises(VimDeployError, match="reverse form"):
        export_onnx(ExportConfig(model="test_vim", output=str(tmp_path / "x.onnx"),
                                 form=GraphForm(fuse_bidirectional=True, bidirectional="flip")))


@pytest.mark.parametrize("fused, pad", [(True, 1), (False, 1), (True, 8), (False, 8)])
def test_onnxruntime_only_ops_graph_matches_pytorch(fused, pad, tmp_path):
    """--conv-impl op --norm-impl op: one VimBiCausalConv1dSilu per block, one VimAddRmsNorm per block
    after the first; the graph (on the reference evaluator's NumPy ops) computes what PyTorch computes,
    also with the tokens padded (197 -> 200: the conv node's seq_len says which are real)."""
    p = tmp_path / "ortops.onnx"
    form = GraphForm(fuse_bidirectional=fused, conv_impl="op", norm_impl="op", token_padding=pad)
    export_onnx(ExportConfig(model="vim_tiny", output=str(p), form=form, model_kwargs={"depth": 4}))
    m = onnx.load(str(p))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count(schema.CONV_OP_NAME) == 4 and ops.count(schema.ADD_NORM_OP_NAME) == 3
    assert "Conv" in ops and ops.count("Conv") == 1  # the patch embedding only
    assert {n.op_type for n in schema.ort_only_nodes(m)} == {schema.CONV_OP_NAME, schema.ADD_NORM_OP_NAME}
    meta = {e.key: e.value for e in m.metadata_props}
    assert meta["conv_impl"] == "op" and meta["norm_impl"] == "op" and meta["token_padding"] == str(pad)
    assert GraphForm.from_metadata(meta) == form and meta["graph_form"] == form.name
    for n in m.graph.node:
        if n.op_type == schema.CONV_OP_NAME:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            assert attrs == ({"seq_len": 197} if pad > 1 else {}), attrs
    x = np.random.default_rng(8).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        ref = create_model("vim_tiny", depth=4)(torch.from_numpy(x)).numpy()
    assert _rel(_refeval(p, x), ref) < 1e-5


@pytest.mark.parametrize("kw, needle", [({"norm_impl": "op", "scan_impl": "portable"}, "--norm-impl op needs"),
                                        ({"conv_impl": "op", "bidirectional": "flip"}, "--conv-impl op needs"),
                                        ({"norm_impl": "fused"}, "--norm-impl 'fused' is not a graph form choice"),
                                        ({"conv_impl": "taps"}, "--conv-impl 'taps' is not a graph form choice"),
                                        ({"token_padding": 8}, "--pad-tokens needs --conv-impl op"),
                                        ({"token_padding": 0, "conv_impl": "op"}, "--token-padding 0 is not")])
def test_onnxruntime_only_ops_need_the_plugin_graph(kw, needle, tmp_path):
    from vim_deploy.errors import VimDeployError

    with pytest.raises(VimDeployError, match=needle):
        export_onnx(ExportConfig(model="test_vim", output=str(tmp_path / "x.onnx"), form=GraphForm(**kw)))


@pytest.mark.parametrize("device, needle", [("tpu", "unknown trace device"), ("cuda", "sees no CUDA GPU")])
def test_bad_trace_device_is_one_line(device, needle, tmp_path, monkeypatch):
    from vim_deploy.errors import VimDeployError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    out = tmp_path / "x.onnx"
    with pytest.raises(VimDeployError, match=needle):
        export_onnx(ExportConfig(model="test_vim", output=str(out), trace_device=device))
    assert not out.exists()


def test_a_batch_of_zero_images_runs(tmp_path):
    """A dynamic-batch graph takes a batch of 0 (an empty request) and returns (0, classes), not an error inside
    the patch embedding's Reshape."""
    p = tmp_path / "p.onnx"
    export_onnx(ExportConfig(model="test_vim", output=str(p), form=PRESETS["portable"]))
    for b in (0, 2):
        assert _ort(p, np.random.default_rng(9).standard_normal((b, 3, 64, 64), dtype=np.float32)).shape == (b, 10)
