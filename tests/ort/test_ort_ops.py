"""libvim_ort_ops.so on ONNX Runtime's CPU provider: each op against the float64 reference, every
attribute and input error, and whole vim_tiny plugin graphs against PyTorch and the portable graph."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from tests.ort.conftest import HEADER_DIRS, compile_ops
from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema
from vim_deploy.ort import check_scan_nodes, create_session
from vim_deploy.validate.reference_op import selective_scan_numpy

ONNX_T = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}


def _scan_model(op: str, dtype, attrs: dict, in_types: dict | None = None) -> onnx.ModelProto:
    names = schema.BI_INPUT_NAMES if op == schema.BI_OP_NAME else schema.INPUT_NAMES
    fp32 = schema.BI_FLOAT32_INPUTS if op == schema.BI_OP_NAME else schema.FLOAT32_INPUTS
    t = ONNX_T[dtype]
    types = {n: (TensorProto.FLOAT if n in fp32 else t) for n in names}
    types.update(in_types or {})
    ins = [helper.make_tensor_value_info(n, types[n], None) for n in names]
    nodes = [helper.make_node(op, list(names), ["y"], domain=schema.OP_DOMAIN, name="blk3_scan", **attrs)]
    if dtype == "bf16":  # numpy cannot hold a bfloat16 output: read it through a Cast to float32
        nodes[0].output[0] = "y_bf16"
        nodes.append(helper.make_node("Cast", ["y_bf16"], ["y"], to=TensorProto.FLOAT))
        t = TensorProto.FLOAT
    g = helper.make_graph(nodes, "scan", ins, [helper.make_tensor_value_info("y", t, None)])
    return helper.make_model(g, ir_version=8, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(schema.OP_DOMAIN, 1)])


def _rand_inputs(rng, b, d, L, n, dtype, prefix=""):
    def act(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    x = {"u": act(b, d, L), "delta": act(b, d, L) * 0.5, "A": -np.exp(act(d, n) * 0.5), "B": act(b, n, L),
         "C": act(b, n, L), "D": act(d), "z": act(b, d, L), "delta_bias": act(d) * 0.3}
    return {prefix + k if k != "z" else "z": v for k, v in x.items()}


def _to_feed(x: dict, dtype, fp32_names) -> dict:
    if dtype == "bf16":  # numpy has no bfloat16: the bits travel as uint16 with ORT's element type
        def bf16(v):
            bits = torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, TensorProto.BFLOAT16)
        return {k: (v if k in fp32_names else bf16(v)) for k, v in x.items()}
    return {k: (v if k in fp32_names else v.astype(dtype)) for k, v in x.items()}


def _as_float64(y, dtype) -> np.ndarray:
    return np.asarray(y).astype(np.float64)


def _rounded(x: dict, dtype, fp32_names) -> dict:
    """The inputs as the op sees them (rounded to T), in float64 for the reference."""
    if dtype == "bf16":
        return {k: (v if k in fp32_names else torch.from_numpy(v).to(torch.bfloat16).float().numpy()).astype(np.float64)
                for k, v in x.items()}
    return {k: (v if k in fp32_names else v.astype(dtype)).astype(np.float64) for k, v in x.items()}


TOL = {np.float32: 1e-5, np.float16: 2e-3, "bf16": 1e-2}


def _session(model, lib):
    return create_session(model, "cpu", lib)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bf16"])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("shape", [(2, 5, 33, 16), (1, 3, 1, 4), (3, 2, 70, 1)])
def test_single_scan_matches_float64(ort_ops_lib, dtype, reverse, shape):
    rng = np.random.default_rng(hash((shape, reverse)) % 2**32)
    x = _rand_inputs(rng, *shape, dtype)
    sess = _session(_scan_model(schema.OP_NAME, dtype, {"delta_softplus": 1, "reverse": reverse}), ort_ops_lib)
    y = _as_float64(sess.run(None, _to_feed(x, dtype, schema.FLOAT32_INPUTS))[0], dtype)
    assert y.shape == x["u"].shape
    ref = selective_scan_numpy(**_rounded(x, dtype, schema.FLOAT32_INPUTS), delta_softplus=1, reverse=reverse,
                               compute_dtype=np.float64)
    err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert np.isfinite(y).all() and err < TOL[dtype], err


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bf16"])
def test_bidirectional_scan_matches_float64(ort_ops_lib, dtype):
    rng = np.random.default_rng(7)
    b, d, L, n = 2, 4, 29, 16
    xf, xb = _rand_inputs(rng, b, d, L, n, dtype, "f_"), _rand_inputs(rng, b, d, L, n, dtype, "b_")
    feed_names = dict(zip(schema.BI_INPUT_NAMES, [xf["f_u"], xf["f_delta"], xf["f_A"], xf["f_B"], xf["f_C"], xf["f_D"],
                                                  xf["f_delta_bias"], xb["b_u"], xb["b_delta"], xb["b_A"], xb["b_B"],
                                                  xb["b_C"], xb["b_D"], xb["b_delta_bias"], xf["z"]]))
    sess = _session(_scan_model(schema.BI_OP_NAME, dtype, {"delta_softplus": 1, "out_scale": 0.5}), ort_ops_lib)
    y = _as_float64(sess.run(None, _to_feed(feed_names, dtype, schema.BI_FLOAT32_INPUTS))[0], dtype)
    r = _rounded(feed_names, dtype, schema.BI_FLOAT32_INPUTS)
    ref = 0.5 * (selective_scan_numpy(r["u_f"], r["delta_f"], r["A_f"], r["B_f"], r["C_f"], r["D_f"], r["z"],
                                      r["delta_bias_f"], 1, 0, np.float64)
                 + selective_scan_numpy(r["u_b"], r["delta_b"], r["A_b"], r["B_b"], r["C_b"], r["D_b"], r["z"],
                                        r["delta_bias_b"], 1, 1, np.float64))
    err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert err < TOL[dtype], err


def test_empty_batch_and_sequence_return_empty_outputs(ort_ops_lib):
    sess = _session(_scan_model(schema.OP_NAME, np.float32, {"delta_softplus": 1, "reverse": 0}), ort_ops_lib)
    for b, L in ((0, 9), (2, 0)):
        x = _rand_inputs(np.random.default_rng(0), b, 3, L, 4, np.float32)
        y = sess.run(None, x)[0]
        assert y.shape == (b, 3, L)


@pytest.mark.parametrize("attrs, needle", [
    ({"delta_softplus": 1, "reverse": 2}, "attribute 'reverse' must be 0 or 1, got 2"),
    ({"delta_softplus": -1, "reverse": 0}, "attribute 'delta_softplus' must be 0 or 1, got -1"),
    ({"delta_softplus": 1}, "required INT attribute 'reverse' is missing"),
    ({"delta_softplus": 1.0, "reverse": 0}, "attribute 'delta_softplus' must be an INT, got a FLOAT"),
])
def test_bad_attributes_fail_at_session_creation_naming_the_node(ort_ops_lib, attrs, needle):
    model = _scan_model(schema.OP_NAME, np.float32, attrs)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.register_custom_ops_library(str(ort_ops_lib))  # the library alone, without the Python pre-check
    with pytest.raises(Exception) as e:
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    assert "VimSelectiveScan node 'blk3_scan'" in str(e.value) and needle in str(e.value), str(e.value)


def test_bad_out_scale_fails_at_session_creation(ort_ops_lib):
    model = _scan_model(schema.BI_OP_NAME, np.float32, {"delta_softplus": 1, "out_scale": float("inf")})
    with pytest.raises(VimDeployError, match="VimBiSelectiveScan node 'blk3_scan': attribute 'out_scale' must be finite"):
        _session(model, ort_ops_lib)


@pytest.mark.parametrize("attrs, needle", [
    ({"delta_softplus": 1, "reverse": 0, "revrese": 1}, "unknown attribute 'revrese'"),
    ({"delta_softplus": 1, "reverse": 0.0}, "attribute 'reverse' is FLOAT, expected INT"),
    ({"reverse": 0}, "lacks the attribute(s) delta_softplus"),
])
def test_python_check_names_unknown_and_mistyped_attributes(attrs, needle):
    model = _scan_model(schema.OP_NAME, np.float32, attrs)
    with pytest.raises(VimDeployError, match="blk3_scan") as e:
        check_scan_nodes(model)
    assert needle in e.value.one_line()


@pytest.mark.parametrize("change, needle", [
    (lambda x: x.update(B=x["B"][:, :8]), "input B has shape (2, 8, 11), expected (2, 16, 11)"),
    (lambda x: x.update(A=x["A"][:3]), "input A has shape (3, 16), expected (dim, dstate) with dim = 5"),
    (lambda x: x.update(u=x["u"][0]), "input u has shape (5, 11), expected (batch, dim, seqlen)"),
    (lambda x: x.update(z=x["z"][:, :, :10]), "input z has shape (2, 5, 10), expected (2, 5, 11)"),
    (lambda x: x.update(D=x["D"][:4]), "input D has shape (4), expected (5) (dim)"),
    (lambda x: x.update(A=np.zeros((5, 300), np.float32) - 1), "dstate in 1..256"),
])
def test_bad_input_shapes_fail_at_run_naming_node_and_input(ort_ops_lib, change, needle):
    sess = _session(_scan_model(schema.OP_NAME, np.float32, {"delta_softplus": 1, "reverse": 0}), ort_ops_lib)
    x = _rand_inputs(np.random.default_rng(1), 2, 5, 11, 16, np.float32)
    change(x)
    with pytest.raises(Exception) as e:
        sess.run(None, x)
    assert "VimSelectiveScan node 'blk3_scan'" in str(e.value) and needle in str(e.value), str(e.value)


def test_wrong_input_type_fails_at_session_creation(ort_ops_lib):
    model = _scan_model(schema.OP_NAME, np.float32, {"delta_softplus": 1, "reverse": 0}, {"A": TensorProto.FLOAT16})
    with pytest.raises(VimDeployError, match="onnxruntime cannot create a session"):
        _session(model, ort_ops_lib)


@pytest.mark.skipif(len(HEADER_DIRS) < 2, reason="needs two or more ORT header folders in VIM_DEPLOY_ORT_HEADERS")
@pytest.mark.parametrize("include_dir", HEADER_DIRS[1:])
def test_compiles_warning_free_against_every_header_set(include_dir, tmp_path):
    r = compile_ops(include_dir, tmp_path / "lib.so")
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr[-3000:]


# ---- VimBiCausalConv1dSilu (export --conv-impl op) -------------------------------------------
def _conv_model(dtype, in_types: dict | None = None, **attrs) -> onnx.ModelProto:
    t = ONNX_T[dtype]
    ins = [helper.make_tensor_value_info(n, (in_types or {}).get(n, t if n == "x" else TensorProto.FLOAT), None)
           for n in schema.CONV_INPUT_NAMES]
    names = list(schema.CONV_OUTPUT_NAMES)
    node = helper.make_node(schema.CONV_OP_NAME, list(schema.CONV_INPUT_NAMES), [n + "_t" for n in names],
                            domain=schema.OP_DOMAIN, name="blk0_conv", **attrs)
    # numpy cannot hold a bfloat16 output: every output is read through a Cast to float32
    casts = [helper.make_node("Cast", [n + "_t"], [n], to=TensorProto.FLOAT) for n in names]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    g = helper.make_graph([node] + casts, "conv", ins, outs)
    return helper.make_model(g, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                             helper.make_opsetid(schema.OP_DOMAIN, 1)])


def _conv_inputs(rng, b, d, L, w, x_dim=None):
    return {"x": rng.standard_normal((b, x_dim or d, L)).astype(np.float32),
            "weight_f": (0.5 * rng.standard_normal((d, w))).astype(np.float32),
            "bias_f": rng.standard_normal(d).astype(np.float32),
            "weight_b": (0.5 * rng.standard_normal((d, w))).astype(np.float32),
            "bias_b": rng.standard_normal(d).astype(np.float32)}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bf16"])
@pytest.mark.parametrize("shape", [(2, 5, 33, 4, 0, 0), (1, 3, 1, 4, 0, 0), (3, 2, 70, 8, 0, 0), (1, 4, 9, 1, 0, 0),
                                   # (b, d, L, w, x channels past d, seq_len): the x half of xz read in
                                   # place, and padding tokens (zeros past seq_len)
                                   (2, 5, 40, 4, 5, 37), (2, 3, 16, 4, 3, 0), (1, 4, 9, 2, 0, 1)])
def test_bi_causal_conv_matches_float64(ort_ops_lib, dtype, shape):
    from vim_deploy.ops.causal_conv import bi_causal_conv1d_silu_ref

    b, d, L, w, extra, seq_len = shape
    x = _conv_inputs(np.random.default_rng(sum(shape)), b, d, L, w, x_dim=d + extra)
    fp32 = schema.CONV_INPUT_NAMES[1:]
    model = _conv_model(dtype, **({"seq_len": seq_len} if seq_len else {}))
    got = _session(model, ort_ops_lib).run(None, _to_feed(x, dtype, fp32))
    r = _rounded(x, dtype, fp32)
    want = bi_causal_conv1d_silu_ref(*(torch.from_numpy(r[k]).double() for k in schema.CONV_INPUT_NAMES),
                                     seq_len=seq_len)
    for y, ref in zip(got, want):
        y = _as_float64(y, dtype)
        assert y.shape == (b, d, L)
        if seq_len:
            assert np.all(y[..., seq_len:] == 0.0), "padding tokens must come out as exact zeros"
        err = np.linalg.norm(y - ref.numpy()) / np.linalg.norm(ref.numpy())
        assert err < TOL[dtype], err


@pytest.mark.parametrize("x_dim, seq_len", [(6, 0), (9, 0), (6, 13), (8, 1)])
def test_bi_causal_conv_reference_op_agrees(x_dim, seq_len):
    """The NumPy op of the reference evaluator (validate's slow oracle) against the torch reference."""
    from vim_deploy.ops.causal_conv import bi_causal_conv1d_silu_ref
    from vim_deploy.validate.reference_op import VimBiCausalConv1dSilu

    x = _conv_inputs(np.random.default_rng(3), 2, 6, 17, 4, x_dim=x_dim)
    got = VimBiCausalConv1dSilu._run(None, *x.values(), seq_len=seq_len)
    want = bi_causal_conv1d_silu_ref(*(torch.from_numpy(v).double() for v in x.values()), seq_len=seq_len)
    for g, w in zip(got, want):
        assert g.shape == (2, 6, 17)
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6)


def test_bi_causal_conv_empty_and_bad_shapes(ort_ops_lib):
    sess = _session(_conv_model(np.float32), ort_ops_lib)
    for b, L in ((0, 9), (2, 0)):
        x = _conv_inputs(np.random.default_rng(0), b, 3, L, 4)
        assert [y.shape for y in sess.run(None, x)] == [(b, 3, L)] * 2
    for change, needle in [
        (lambda x: x.update(weight_b=x["weight_b"][:2]), "input weight_b has shape (2, 4), expected (3, 4)"),
        (lambda x: x.update(weight_f=np.zeros((4, 4), np.float32), weight_b=np.zeros((4, 4), np.float32)),
         "input weight_f has shape (4, 4), expected (dim, width) with dim <= 3 (the channels of x)"),
        (lambda x: x.update(weight_b=x["weight_b"][:, :3]), "input weight_b has shape (3, 3), expected (3, 4)"),
        (lambda x: x.update(bias_b=x["bias_b"][:1]), "input bias_b has shape (1), expected (3) (dim)"),
        (lambda x: x.update(x=x["x"][0]), "input x has shape (3, 5), expected (batch, dim, seqlen)"),
        (lambda x: x.update(weight_f=np.zeros((3, 9), np.float32), weight_b=np.zeros((3, 9), np.float32)),
         "width in 1..8"),
    ]:
        x = _conv_inputs(np.random.default_rng(1), 2, 3, 5, 4)
        change(x)
        with pytest.raises(Exception) as e:
            sess.run(None, x)
        assert "VimBiCausalConv1dSilu node 'blk0_conv'" in str(e.value) and needle in str(e.value), str(e.value)
    # seq_len past the tokens of x: a run error; negative or FLOAT: refused at session creation
    with pytest.raises(Exception) as e:
        _session(_conv_model(np.float32, seq_len=6), ort_ops_lib).run(None, _conv_inputs(np.random.default_rng(2), 2, 3, 5, 4))
    assert "attribute seq_len = 6 exceeds the 5 tokens of x" in str(e.value), str(e.value)
    for bad, needle in ((-1, "attribute 'seq_len' must be in 0..2147483647, got -1"),
                        (2.0, "attribute 'seq_len' must be an INT, got a FLOAT")):
        with pytest.raises(Exception) as e:
            _session(_conv_model(np.float32, seq_len=bad), ort_ops_lib)
        assert "VimBiCausalConv1dSilu node 'blk0_conv'" in str(e.value) and needle in str(e.value), str(e.value)


# ---- VimAddRmsNorm (export --norm-impl op) ---------------------------------------------------
def _norm_model(dtype, epsilon=1e-5, in_types: dict | None = None) -> onnx.ModelProto:
    t = ONNX_T[dtype]
    kinds = {"h": t, "residual": TensorProto.FLOAT, "weight": TensorProto.FLOAT, **(in_types or {})}
    ins = [helper.make_tensor_value_info(n, kinds[n], None) for n in schema.ADD_NORM_INPUT_NAMES]
    attrs = {} if epsilon is None else {"epsilon": epsilon}
    node = helper.make_node(schema.ADD_NORM_OP_NAME, list(schema.ADD_NORM_INPUT_NAMES), ["out_t", "residual_out"],
                            domain=schema.OP_DOMAIN, name="blk5_norm", **attrs)
    cast = helper.make_node("Cast", ["out_t"], ["out"], to=TensorProto.FLOAT)  # numpy has no bfloat16
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in schema.ADD_NORM_OUTPUT_NAMES]
    g = helper.make_graph([node, cast], "norm", ins, outs)
    return helper.make_model(g, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                             helper.make_opsetid(schema.OP_DOMAIN, 1)])


def _norm_inputs(rng, shape):
    return {"h": rng.standard_normal(shape).astype(np.float32),
            "residual": (3 * rng.standard_normal(shape)).astype(np.float32),
            "weight": (1 + 0.1 * rng.standard_normal(shape[-1])).astype(np.float32)}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bf16"])
@pytest.mark.parametrize("shape", [(2, 7, 192), (3, 64), (1, 1, 1, 5)])
def test_add_rms_norm_matches_float64(ort_ops_lib, dtype, shape):
    from vim_deploy.ops.add_rms_norm import add_rms_norm_ref

    x = _norm_inputs(np.random.default_rng(sum(shape)), shape)
    fp32 = schema.ADD_NORM_INPUT_NAMES[1:]
    out, res = _session(_norm_model(dtype), ort_ops_lib).run(None, _to_feed(x, dtype, fp32))
    r = _rounded(x, dtype, fp32)
    want_out, want_res = add_rms_norm_ref(*(torch.from_numpy(r[k]) for k in schema.ADD_NORM_INPUT_NAMES), 1e-5)
    assert out.shape == res.shape == shape and res.dtype == np.float32
    assert np.linalg.norm(res - want_res.numpy()) / np.linalg.norm(want_res.numpy()) < 1e-6
    assert np.linalg.norm(out - want_out.numpy()) / np.linalg.norm(want_out.numpy()) < TOL[dtype]


def test_add_rms_norm_reference_op_agrees():
    from vim_deploy.ops.add_rms_norm import add_rms_norm_ref
    from vim_deploy.validate.reference_op import VimAddRmsNorm

    x = _norm_inputs(np.random.default_rng(4), (2, 9, 24))
    got = VimAddRmsNorm._run(None, *x.values(), epsilon=1e-5)
    want = add_rms_norm_ref(*(torch.from_numpy(v).double() for v in x.values()), 1e-5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=2e-5, atol=1e-6)


def test_add_rms_norm_errors(ort_ops_lib):
    with pytest.raises(VimDeployError, match="required FLOAT attribute 'epsilon' is missing"):
        _session(_norm_model(np.float32, epsilon=None), ort_ops_lib)
    with pytest.raises(VimDeployError, match="'epsilon' must be > 0"):
        _session(_norm_model(np.float32, epsilon=-1.0), ort_ops_lib)
    sess = _session(_norm_model(np.float32), ort_ops_lib)
    assert [y.shape for y in sess.run(None, _norm_inputs(np.random.default_rng(0), (0, 4, 8)))] == [(0, 4, 8)] * 2
    for change, needle in [
        (lambda x: x.update(residual=x["residual"][:, :3]), "input residual has shape (2, 3, 8), expected (2, 4, 8)"),
        (lambda x: x.update(weight=x["weight"][:5]), "input weight has shape (5), expected (8) (channels)"),
        (lambda x: x.update(h=np.zeros((2, 3000), np.float32), residual=np.zeros((2, 3000), np.float32)),
         "channels in 1..2048"),
    ]:
        x = _norm_inputs(np.random.default_rng(1), (2, 4, 8))
        change(x)
        with pytest.raises(Exception) as e:
            sess.run(None, x)
        assert "VimAddRmsNorm node 'blk5_norm'" in str(e.value) and needle in str(e.value), str(e.value)
