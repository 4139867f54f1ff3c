"""libvim_ort_ops.so under onnxruntime-gpu's CUDA execution provider (a GPU machine).

Needs onnxruntime with the CUDA provider and the library built with nvcc (``vim-deploy plugin
build --onnxruntime-include ...``, or ``$VIM_DEPLOY_ORT_OPS_LIB``). Each op against the float64
reference (fp32 / fp16 / bf16, on device buffers poisoned with NaN before the run), whole vim_tiny
plugin graphs against the fp32 PyTorch model, and ORT's CUDA graph capture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vim_deploy.ops import schema

pytestmark = pytest.mark.gpu

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
ONNX_T = {torch.float32: 1, torch.float16: 10, torch.bfloat16: 16}


def _ort():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDA provider (install onnxruntime-gpu)")
    from vim_deploy.ort import ops_library_or_none

    lib = ops_library_or_none()
    if lib is None:
        pytest.skip("libvim_ort_ops.so not built (vim-deploy plugin build --onnxruntime-include ...)")
    return ort, lib


def _scan_model(op, dtype, attrs):
    from onnx import TensorProto, helper

    names = schema.BI_INPUT_NAMES if op == schema.BI_OP_NAME else schema.INPUT_NAMES
    fp32 = schema.BI_FLOAT32_INPUTS if op == schema.BI_OP_NAME else schema.FLOAT32_INPUTS
    t = ONNX_T[dtype]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT if n in fp32 else t, None) for n in names]
    node = helper.make_node(op, list(names), ["y"], domain=schema.OP_DOMAIN, name="scan", **attrs)
    g = helper.make_graph([node], "scan", ins, [helper.make_tensor_value_info("y", t, None)])
    return helper.make_model(g, ir_version=8, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(schema.OP_DOMAIN, 1)])


def _bind(ort, sess, feeds: dict, out: torch.Tensor):
    """I/O binding on torch's device buffers: no host copies, ORT writes into `out`."""
    b = sess.io_binding()
    for name, t in feeds.items():
        b.bind_input(name, "cuda", 0, ONNX_T[t.dtype], list(t.shape), t.data_ptr())
    b.bind_output("y", "cuda", 0, ONNX_T[out.dtype], list(out.shape), out.data_ptr())
    return b


def _make(b, d, L, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    return {"u": r(b, d, L).to(dtype), "delta": (0.5 * r(b, d, L) - 1).to(dtype), "A": -torch.exp(0.5 * r(d, n)),
            "B": r(b, n, L).to(dtype), "C": r(b, n, L).to(dtype), "D": r(d), "z": r(b, d, L).to(dtype),
            "delta_bias": 0.3 * r(d)}


def _ref(x, reverse):
    from vim_deploy.ops.selective_scan import selective_scan_ref

    a = [x[k].double() for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    return selective_scan_ref(*a, delta_softplus=True, reverse=reverse, compute_dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 384, 197, 16), (2, 64, 6085, 16), (3, 40, 77, 64), (8, 192, 197, 16)])
@pytest.mark.parametrize("reverse", [0, 1])
def test_single_scan_cuda_matches_float64(dtype, shape, reverse):
    ort, lib = _ort()
    from vim_deploy.ort import create_session

    sess = create_session(_scan_model(schema.OP_NAME, dtype, {"delta_softplus": 1, "reverse": reverse}), "cuda", lib)
    x = _make(*shape, dtype, seed=hash((shape, reverse)) % 10_000)
    out = torch.full_like(x["u"], float("nan"))
    sess.run_with_iobinding(_bind(ort, sess, x, out))
    torch.cuda.synchronize()
    ref = _ref(x, bool(reverse))
    err = ((out.double() - ref).norm() / ref.norm()).item()
    assert torch.isfinite(out).all() and err < TOL[dtype], err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 384, 197, 16), (8, 192, 6085, 16)])
def test_bidirectional_scan_cuda_matches_float64(dtype, shape):
    ort, lib = _ort()
    from vim_deploy.ort import create_session

    sess = create_session(_scan_model(schema.BI_OP_NAME, dtype, {"delta_softplus": 1, "out_scale": 0.5}), "cuda", lib)
    f, bw = _make(*shape, dtype, 1), _make(*shape, dtype, 2)
    bw["z"] = f["z"]
    order = [f["u"], f["delta"], f["A"], f["B"], f["C"], f["D"], f["delta_bias"],
             bw["u"], bw["delta"], bw["A"], bw["B"], bw["C"], bw["D"], bw["delta_bias"], f["z"]]
    out = torch.full_like(f["u"], float("nan"))
    sess.run_with_iobinding(_bind(ort, sess, dict(zip(schema.BI_INPUT_NAMES, order)), out))
    torch.cuda.synchronize()
    ref = 0.5 * (_ref(f, False) + _ref(bw, True))
    err = ((out.double() - ref).norm() / ref.norm()).item()
    assert torch.isfinite(out).all() and err < TOL[dtype], err


def test_bad_shape_on_cuda_is_an_error_not_a_crash():
    ort, lib = _ort()
    from vim_deploy.ort import create_session

    sess = create_session(_scan_model(schema.OP_NAME, torch.float32, {"delta_softplus": 1, "reverse": 0}), "cuda", lib)
    x = {k: v.cpu().numpy() for k, v in _make(2, 8, 9, 4, torch.float32, 3).items()}
    x["C"] = x["C"][:, :2]
    with pytest.raises(Exception, match="VimSelectiveScan node 'scan': input C has shape"):
        sess.run(None, x)


@pytest.fixture(scope="module")
def photos():
    from vim_deploy.models import get_cfg
    from vim_deploy.validate.inputs import load_images, random_batches

    cfg = get_cfg("vim_tiny")
    pics, _ = load_images("skimage", 224, cfg["crop_pct"], cfg["mean"], cfg["std"])
    rnd = np.concatenate(list(random_batches(8, 8, 224, 99)))
    return {"photos": pics, "random": rnd}


@pytest.fixture(scope="module")
def torch_fp32(photos):
    from vim_deploy.models import create_model

    m = create_model("vim_tiny", seed=0).cuda().eval()
    with torch.no_grad():
        return {k: m(torch.from_numpy(v).cuda()).float().cpu().numpy() for k, v in photos.items()}


@pytest.mark.parametrize("precision, fused, conv_impl", [("fp32", False, "conv"), ("fp16", False, "conv"),
                                                        ("fp32", True, "conv"), ("fp16", True, "conv"),
                                                        ("fp32", True, "op"), ("fp16", True, "op"),
                                                        ("fp32", True, "op+norm"), ("fp16", True, "op+norm"),
                                                        ("fp32", True, "op+norm/8"), ("fp16", True, "op+norm/8")])
def test_plugin_graph_on_ort_cuda_matches_pytorch(photos, torch_fp32, precision, fused, conv_impl, tmp_path):
    ort, lib = _ort()
    from vim_deploy.export import ExportConfig, export_onnx
    from vim_deploy.ort import create_session
    from vim_deploy.validate.compare import compare_logits

    path = str(tmp_path / "g.onnx")
    from vim_deploy.export.forms import GraphForm

    impl, pad = (conv_impl.split("/") + ["1"])[:2]  # conv impl [/ token padding]
    form = GraphForm(fuse_bidirectional=fused, conv_impl=impl.split("+")[0], norm_impl="op" if "norm" in impl else "ops",
                     token_padding=int(pad))
    export_onnx(ExportConfig(model="vim_tiny", output=path, precision=precision, form=form))
    sess = create_session(path, "cuda", lib)
    for key, x in photos.items():
        for b in (1, 3, 8):  # dynamic batch
            out = np.concatenate([sess.run(None, {"input": x[i:i + b]})[0] for i in range(0, len(x), b)])
            m = compare_logits(out, torch_fp32[key])
            print(f"{precision} fused={fused} conv={conv_impl} {key} b{b}: cosine_min={m.cosine_min:.7f} rel_l2={m.rel_l2:.2e} "
                  f"top1={m.top1_agreement:.3f}")
            if precision == "fp32":
                assert m.cosine_min >= 0.99999 and m.rel_l2 <= 1e-5, m
            else:
                assert m.cosine_min >= 0.999, m
            if key == "photos":
                assert m.top1_agreement == 1.0, m


def test_graph_traced_on_cuda_is_the_cpu_trace(tmp_path):
    """export's --trace-device cuda (what bench uses on a GPU) writes the graph CPU tracing writes: the
    same nodes in the same order, initializers equal up to fp16 folding, and the same logits on ORT."""
    ort, lib = _ort()
    import onnx
    from onnx import numpy_helper

    from vim_deploy.export import ExportConfig, export_onnx
    from vim_deploy.export.forms import PRESETS
    from vim_deploy.ort import create_session

    paths = {}
    for dev in ("cpu", "cuda"):
        paths[dev] = str(tmp_path / f"{dev}.onnx")
        export_onnx(ExportConfig(model="vim_tiny", output=paths[dev], precision="fp16", form=PRESETS["ort-optimized"],
                                 trace_device=dev))
    g = {dev: onnx.load(p).graph for dev, p in paths.items()}
    assert [(n.op_type, list(n.input), list(n.output)) for n in g["cpu"].node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in g["cuda"].node]
    inits = {dev: {t.name: numpy_helper.to_array(t) for t in g[dev].initializer} for dev in g}
    assert inits["cpu"].keys() == inits["cuda"].keys()
    for name, a in inits["cpu"].items():
        np.testing.assert_allclose(inits["cuda"][name].astype(np.float64), a.astype(np.float64), rtol=1e-3, atol=1e-6,
                                   err_msg=name)
    x = np.random.default_rng(5).standard_normal((3, 3, 224, 224), dtype=np.float32)
    out = {dev: create_session(p, "cuda", lib).run(None, {"input": x})[0] for dev, p in paths.items()}
    assert np.isfinite(out["cpu"]).all()
    np.testing.assert_allclose(out["cuda"], out["cpu"], rtol=0, atol=2e-3 * np.abs(out["cpu"]).max())


@pytest.mark.parametrize("ort_optimized", [False, True], ids=["plain", "ort-optimized"])
def test_ort_cuda_graph_replay_matches_plain_run(tmp_path, ort_optimized):
    ort, lib = _ort()
    from vim_deploy.export import ExportConfig, export_onnx
    from vim_deploy.ort import create_session

    path = str(tmp_path / "g.onnx")
    from vim_deploy.export.forms import PRESETS

    form = PRESETS["ort-optimized" if ort_optimized else "plain"]
    export_onnx(ExportConfig(model="vim_tiny", output=path, precision="fp16", dynamic_batch=False, batch_size=2,
                             form=form))
    x = torch.randn(2, 3, 224, 224, device="cuda")
    plain = create_session(path, "cuda", lib).run(None, {"input": x.cpu().numpy()})[0]
    sess = create_session(path, "cuda", lib, cuda_graph=True)
    out = torch.full((2, 1000), float("nan"), device="cuda")
    b = sess.io_binding()
    b.bind_input("input", "cuda", 0, 1, [2, 3, 224, 224], x.data_ptr())
    b.bind_output(sess.get_outputs()[0].name, "cuda", 0, 1, [2, 1000], out.data_ptr())
    for _ in range(4):  # warm-up runs, capture, replays
        out.fill_(float("nan"))
        sess.run_with_iobinding(b)
        torch.cuda.synchronize()
        assert torch.isfinite(out).all()
        np.testing.assert_allclose(out.cpu().numpy(), plain, rtol=0, atol=1e-3)
    x.copy_(torch.randn_like(x))  # a replay reads the bound buffer's new contents
    sess.run_with_iobinding(b)
    torch.cuda.synchronize()
    fresh = create_session(path, "cuda", lib).run(None, {"input": x.cpu().numpy()})[0]
    np.testing.assert_allclose(out.cpu().numpy(), fresh, rtol=0, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 384, 197, 4), (8, 768, 6085, 4), (3, 40, 1, 3), (2, 64, 700, 8),
                                   # + (x channels past dim, seq_len): xz's x half in place, padding tokens
                                   (128, 384, 200, 4, 384, 197), (2, 64, 700, 4, 0, 513), (3, 40, 9, 3, 7, 1)])
def test_bi_causal_conv_cuda_matches_float64(dtype, shape):
    """VimBiCausalConv1dSilu on the CUDA provider: both outputs against the float64 reference, on
    device buffers poisoned with NaN (padding tokens must come out as exact zeros)."""
    from onnx import TensorProto, helper

    from vim_deploy.ops.causal_conv import bi_causal_conv1d_silu_ref

    ort, lib = _ort()
    from vim_deploy.ort import create_session

    b, d, L, W, extra, seq_len = shape + (0, 0)[len(shape) - 4:]
    t = ONNX_T[dtype]
    names = schema.CONV_INPUT_NAMES
    ins = [helper.make_tensor_value_info(n, t if n == "x" else TensorProto.FLOAT, None) for n in names]
    outs = [helper.make_tensor_value_info(n, t, None) for n in schema.CONV_OUTPUT_NAMES]
    node = helper.make_node(schema.CONV_OP_NAME, list(names), list(schema.CONV_OUTPUT_NAMES), domain=schema.OP_DOMAIN,
                            name="conv", **({"seq_len": seq_len} if seq_len else {}))
    model = helper.make_model(helper.make_graph([node], "conv", ins, outs), ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(schema.OP_DOMAIN, 1)])
    sess = create_session(model, "cuda", lib)
    g = torch.Generator(device="cuda").manual_seed(sum(shape))
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    feeds = {"x": r(b, d + extra, L).to(dtype), "weight_f": 0.5 * r(d, W), "bias_f": r(d), "weight_b": 0.5 * r(d, W),
             "bias_b": r(d)}
    got = [torch.full((b, d, L), float("nan"), device="cuda", dtype=dtype) for _ in range(2)]
    bind = sess.io_binding()
    for name, v in feeds.items():
        bind.bind_input(name, "cuda", 0, ONNX_T[v.dtype], list(v.shape), v.data_ptr())
    for name, o in zip(schema.CONV_OUTPUT_NAMES, got):
        bind.bind_output(name, "cuda", 0, t, list(o.shape), o.data_ptr())
    sess.run_with_iobinding(bind)
    torch.cuda.synchronize()
    want = bi_causal_conv1d_silu_ref(*(v.double() for v in feeds.values()), seq_len=seq_len)
    for o, w in zip(got, want):
        assert torch.isfinite(o).all()
        if seq_len:
            assert (o[..., seq_len:] == 0).all()
        rel = ((o.double() - w).norm() / w.norm()).item()
        assert rel <= TOL[dtype], rel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(128, 197, 192), (2, 197, 768), (3, 5, 2048), (7, 33)])
def test_add_rms_norm_cuda_matches_float64(dtype, shape):
    """VimAddRmsNorm on the CUDA provider: out (T) and residual_out (fp32) against float64, NaN-poisoned."""
    from onnx import TensorProto, helper

    from vim_deploy.ops.add_rms_norm import add_rms_norm_ref

    ort, lib = _ort()
    from vim_deploy.ort import create_session

    t = ONNX_T[dtype]
    ins = [helper.make_tensor_value_info("h", t, None), helper.make_tensor_value_info("residual", TensorProto.FLOAT, None),
           helper.make_tensor_value_info("weight", TensorProto.FLOAT, None)]
    outs = [helper.make_tensor_value_info("out", t, None), helper.make_tensor_value_info("residual_out", TensorProto.FLOAT, None)]
    node = helper.make_node(schema.ADD_NORM_OP_NAME, list(schema.ADD_NORM_INPUT_NAMES), list(schema.ADD_NORM_OUTPUT_NAMES),
                            domain=schema.OP_DOMAIN, name="norm", epsilon=1e-5)
    model = helper.make_model(helper.make_graph([node], "norm", ins, outs), ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(schema.OP_DOMAIN, 1)])
    sess = create_session(model, "cuda", lib)
    g = torch.Generator(device="cuda").manual_seed(sum(shape))
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    feeds = {"h": r(*shape).to(dtype), "residual": 3 * r(*shape), "weight": 1 + 0.1 * r(shape[-1])}
    got = [torch.full(shape, float("nan"), device="cuda", dtype=dtype),
           torch.full(shape, float("nan"), device="cuda", dtype=torch.float32)]
    bind = sess.io_binding()
    for name, v in feeds.items():
        bind.bind_input(name, "cuda", 0, ONNX_T[v.dtype], list(v.shape), v.data_ptr())
    for name, o in zip(schema.ADD_NORM_OUTPUT_NAMES, got):
        bind.bind_output(name, "cuda", 0, ONNX_T[o.dtype], list(o.shape), o.data_ptr())
    sess.run_with_iobinding(bind)
    torch.cuda.synchronize()
    want = add_rms_norm_ref(feeds["h"].double(), feeds["residual"].double(), feeds["weight"].double(), 1e-5)
    for o, w, tol in zip(got, want, (TOL[dtype], 1e-6)):
        assert torch.isfinite(o).all()
        rel = ((o.double() - w).norm() / w.norm()).item()
        assert rel <= tol, rel
