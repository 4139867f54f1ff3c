"""CUDA kernel vs the float64 reference on fresh random inputs (a GPU machine).

The reference is computed in float64 from the *same rounded* inputs the kernel sees; outputs are
poisoned with NaN before every launch, and every element must be finite afterwards.
"""

import pytest
import torch

from vim_deploy.ops.selective_scan import selective_scan_ref

pytestmark = pytest.mark.gpu

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def kernels():
    from vim_deploy.ops import kernels as k

    try:
        k.load_library()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"kernel library missing on a GPU machine: {e}")
    return k


def make(b, d, l, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    u = r(b, d, l).to(dtype)
    delta = (0.5 * r(b, d, l) - 1.0).to(dtype)
    z = r(b, d, l).to(dtype)
    A = -torch.exp(0.5 * r(d, n))
    B, C = r(b, n, l).to(dtype), r(b, n, l).to(dtype)
    D, bias = r(d), 0.3 * r(d)
    return u, delta, A, B, C, D, z, bias


def ref64(args, reverse):
    return selective_scan_ref(*(t.double() for t in args), delta_softplus=True, reverse=reverse,
                              compute_dtype=torch.float64)


def rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


def run_kernel(k, dirs, scale=1.0, num_chunks=0, lanes=0):
    out = torch.full_like(dirs[0][0], float("nan"))
    k.selective_scan_multi(dirs, True, scale, num_chunks, out=out, lanes=lanes)
    torch.cuda.synchronize()
    assert torch.isfinite(out).all(), "unwritten (NaN-poisoned) or non-finite outputs"
    return out


SHAPES = [  # (batch, dim, seqlen, dstate)
    (1, 192, 1, 16), (2, 192, 2, 16), (3, 200, 197, 16), (8, 384, 197, 16), (128, 768, 197, 16),
    (2, 192, 730, 16), (1, 768, 6085, 16), (1, 192, 16384, 16), (5, 77, 333, 1), (2, 3072, 197, 16),
    (2, 256, 150, 64), (1, 96, 97, 256), (4, 130, 61, 5),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}_d{}_l{}_n{}".format(*s))
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_kernel_matches_float64(shape, dtype, reverse):
    k = kernels()
    args = make(*shape, dtype, seed=hash((shape, str(dtype), reverse)) % 2**31)
    out = run_kernel(k, [(*args, reverse)])
    err = rel(out, ref64(args, reverse))
    print(f"{shape} {dtype} reverse={reverse}: rel err {err:.2e}")
    assert err <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", [(2, 192, 197, 16), (1, 384, 6085, 16), (3, 64, 100, 32)],
                         ids=lambda s: "b{}_d{}_l{}_n{}".format(*s))
def test_fused_bidirectional(shape, dtype):
    k = kernels()
    f = make(*shape, dtype, seed=1)
    b = make(*shape, dtype, seed=2)
    out = run_kernel(k, [(*f, False), (*b, True)], scale=0.5)
    want = (ref64(f, False) + ref64(b, True)) * 0.5
    err = rel(out, want)
    print(f"fused {shape} {dtype}: {err:.2e}")
    assert err <= TOL[dtype]


@pytest.mark.parametrize("chunks", [1, 2, 7, 64])
@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [16, 5])
def test_forced_chunking_and_lanes_agree(chunks, lanes, n):
    k = kernels()
    args = make(2, 160, 1000, n, torch.float32, seed=chunks * 10 + lanes)
    for reverse in (False, True):
        out = run_kernel(k, [(*args, reverse)], num_chunks=chunks, lanes=lanes)
        assert rel(out, ref64(args, reverse)) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("lanes", [2, 4, 8])
@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("n", [16, 7])
def test_fused_bidirectional_with_lanes(dtype, lanes, chunks, n):
    """A channel's states over 2 to 8 lanes (full tiles split their per-token work among the lanes)
    in the fused call: the second direction adds to the first one's output; L = 197 ends on a
    partial tile."""
    k = kernels()
    f = make(4, 96, 197, n, dtype, seed=40 + lanes + chunks)
    b = make(4, 96, 197, n, dtype, seed=50 + lanes + chunks)
    b = (*b[:6], f[6], b[7])  # one z for both directions, as Vim has
    out = run_kernel(k, [(*f, False), (*b, True)], scale=0.5, num_chunks=chunks, lanes=lanes)
    want = (ref64(f, False) + ref64(b, True)) * 0.5
    assert rel(out, want) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("lanes,chunks", [(1, 1), (1, 3), (0, 0), (4, 2)])
@pytest.mark.parametrize("first_reverse", [False, True], ids=["fwd_first", "rev_first"])
def test_fused_one_z_tensor_or_two(dtype, lanes, chunks, first_reverse):
    """Both directions gated by the same z tensor (as Vim's fused node passes it) or by two tensors
    holding the same values: both against float64, in either direction order, one lane and split lanes,
    one and three chunks, L = 197 ending on a partial tile."""
    k = kernels()
    f = make(6, 160, 197, 16, dtype, seed=80 + lanes + chunks)
    b = make(6, 160, 197, 16, dtype, seed=90 + lanes + chunks)
    b = (*b[:6], f[6], b[7])
    dirs = [(*f, first_reverse), (*b, not first_reverse)]
    want = (ref64(f, first_reverse) + ref64(b, not first_reverse)) * 0.5
    once = run_kernel(k, dirs, scale=0.5, num_chunks=chunks, lanes=lanes)
    twice = run_kernel(k, [dirs[0], (*b[:6], f[6].clone(), b[7], not first_reverse)], scale=0.5,
                       num_chunks=chunks, lanes=lanes)
    print(f"one z: {rel(once, want):.2e}, two equal z: {rel(twice, want):.2e}")
    assert rel(once, want) <= TOL[dtype] and rel(twice, want) <= TOL[dtype]


@pytest.mark.parametrize("batch,dim,seqlen,layout", [
    (8, 768, 197, (8, 1)),     # vim_small batch 8 / vim_tiny batch 16 @ 197: 8 lanes of 2 states, one pass
    (16, 384, 197, (8, 1)),
    (8, 384, 1025, (2, 8)),    # 8..63 channels an SM at 512+ tokens: 2 lanes of 8 states, chunked
    (8, 768, 577, (2, 4)),
    (1, 1536, 2117, (2, 15)),
])
def test_launcher_choice_matches_reference(batch, dim, seqlen, layout):
    """The launcher's own (lanes, chunks) for these shapes, against float64. `layout` is what it picks on
    a 132-SM H100 / H200; on other GPUs the layout may differ and only the numerics are checked."""
    k = kernels()
    f = make(batch, dim, seqlen, 16, torch.float16, seed=60 + batch)
    b = make(batch, dim, seqlen, 16, torch.float16, seed=70 + batch)
    b = (*b[:6], f[6], b[7])
    out = run_kernel(k, [(*f, False), (*b, True)], scale=0.5)
    want = (ref64(f, False) + ref64(b, True)) * 0.5
    lib = k.load_library()
    got = (lib.vim_selective_scan_lanes(1, batch, dim, seqlen, 16, 2, 0, 0),
           lib.vim_selective_scan_num_chunks(1, batch, dim, seqlen, 16, 2, 0, 0))
    print(f"launcher: {got[0]} lanes x {got[1]} chunks, rel {rel(out, want):.2e}")
    assert rel(out, want) <= TOL[torch.float16]
    if torch.cuda.get_device_properties(0).multi_processor_count == 132:
        assert got == layout


def shifted(t):
    """The same values in a contiguous tensor whose data pointer sits one element past an aligned one."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    v = buf[1:].view(t.shape)
    v.copy_(t)
    return v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("chunks", [1, 3])
def test_unaligned_tensors_take_the_element_copy_path(dtype, chunks):
    """Tiles arrive by 8-byte cp.async only when every row tensor is 8-byte aligned; views at odd
    element offsets go through the element-by-element copy and must give the same result."""
    k = kernels()
    f = make(2, 130, 97, 16, dtype, seed=21)
    b = make(2, 130, 97, 16, dtype, seed=22)
    fs = (shifted(f[0]), shifted(f[1]), *f[2:6], shifted(f[6]), f[7])
    bs = (shifted(b[0]), shifted(b[1]), *b[2:6], shifted(f[6]), b[7])
    assert fs[0].data_ptr() % 8 != 0
    out = shifted(torch.full_like(f[0], float("nan")))
    k.selective_scan_multi([(*fs, False), (*bs, True)], True, 0.5, chunks, out=out)
    torch.cuda.synchronize()
    assert torch.isfinite(out).all()
    b_same_z = (*b[:6], f[6], b[7])
    want = (ref64(f, False) + ref64(b_same_z, True)) * 0.5
    assert rel(out, want) <= TOL[dtype]


def test_bidirectional_entry_matches_reference():
    from vim_deploy.ops.selective_scan import selective_scan_bidirectional, selective_scan_bidirectional_ref

    f = make(2, 192, 197, 16, torch.float16, seed=5)
    b = make(2, 192, 197, 16, torch.float16, seed=6)
    fwd = (f[0], f[1], f[2], f[3], f[4], f[5], f[7])
    bwd = (b[0], b[1], b[2], b[3], b[4], b[5], b[7])
    got = selective_scan_bidirectional(fwd, bwd, f[6], True, 0.5, use_kernel=True)
    want = selective_scan_bidirectional_ref(tuple(t.double() for t in fwd), tuple(t.double() for t in bwd),
                                            f[6].double(), True, 0.5, compute_dtype=torch.float64)
    assert rel(got, want) <= 2e-3


@pytest.mark.parametrize("batch", [4, 1])
def test_model_fast_path_matches_pytorch(batch):
    """Batch 1 takes other paths: its conv outputs are batch-major (one buffer for both directions, read
    as one operand by the fused projections; two back-to-back allocations had once passed for that)."""
    from vim_deploy.models import create_model

    x = torch.randn(batch, 3, 224, 224, device="cuda")
    ref = create_model("vim_tiny").cuda().double()
    with torch.no_grad():
        want = ref(x.double())
    for precision, tol in (("fp32", 1e-5), ("fp16", 5e-3)):
        m = create_model("vim_tiny").set_precision(precision).cuda().set_fast_path(True)
        with torch.no_grad():
            got = m(x)
        err = rel(got, want)
        cos = torch.nn.functional.cosine_similarity(got.double(), want).min().item()
        print(f"model fast path {precision}: rel {err:.2e} cos {cos:.7f}")
        assert err <= tol and cos > (0.99999 if precision == "fp32" else 0.999)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_batch_strided_inputs_are_read_in_place(dtype):
    """u/delta/z/B/C given as slices of bigger tensors (the fast path's layout) give the same result."""
    k = kernels()
    b, d, l, n = 3, 192, 197, 16
    f = make(b, d, l, n, dtype, seed=31)
    g = make(b, d, l, n, dtype, seed=32)

    def inside(t, extra):  # the same values as a slice along dim 1 of a bigger (b, rows + extra, l) tensor
        big = torch.randn(t.shape[0], t.shape[1] + extra, t.shape[2], device="cuda").to(t.dtype)
        big[:, extra:] = t
        return big[:, extra:]

    fs = (inside(f[0], 7), inside(f[1], 2), f[2], inside(f[3], 12), inside(f[4], 28), f[5], inside(f[6], d), f[7])
    gs = (inside(g[0], 1), inside(g[1], 3), g[2], inside(g[3], 12), inside(g[4], 28), g[5], fs[6], g[7])
    assert not fs[0].is_contiguous() and fs[0].stride(1) == l
    out = run_kernel(k, [(*fs, False), (*gs, True)], scale=0.5)
    g_same_z = (*g[:6], f[6], g[7])
    want = (ref64(f, False) + ref64(g_same_z, True)) * 0.5
    assert rel(out, want) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("l", [1, 3, 197, 1000])
def test_causal_conv1d_silu_both_directions(dtype, l):
    import torch.nn.functional as F

    k = kernels()
    b, d, w = 2, 96, 4
    xz = torch.randn(b, 2 * d, l, device="cuda").to(dtype)
    x = xz[:, :d]  # a slice, as in the model
    wf, wb = torch.randn(d, 1, w, device="cuda"), torch.randn(d, 1, w, device="cuda")
    bf, bb = torch.randn(d, device="cuda"), torch.randn(d, device="cuda")
    got_f, got_b = k.causal_conv1d_silu(x, wf, bf, wb, bb)
    x64 = x.double()
    want_f = F.silu(F.conv1d(x64, wf.double(), bf.double(), padding=w - 1, groups=d)[..., :l])
    want_b = F.silu(F.conv1d(x64.flip(-1), wb.double(), bb.double(), padding=w - 1, groups=d)[..., :l]).flip(-1)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    assert rel(got_f, want_f) <= tol and rel(got_b, want_b) <= tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("cols", [192, 384, 768, 1000])
def test_add_rms_norm(dtype, cols):
    k = kernels()
    h = torch.randn(5, 197, cols, device="cuda").to(dtype)
    res = torch.randn(5, 197, cols, device="cuda")
    w = torch.rand(cols, device="cuda") + 0.5
    want_res = res.double() + h.double()
    want = want_res * torch.rsqrt(want_res.square().mean(-1, keepdim=True) + 1e-5) * w.double()
    out, new_res = k.add_rms_norm(h, res.clone(), w, 1e-5)
    assert out.dtype == dtype and new_res.dtype == torch.float32
    assert rel(new_res, want_res) <= 1e-6
    assert rel(out, want) <= TOL[dtype]
    out0, res0 = k.add_rms_norm(h, None, w, 1e-5)  # first block: no residual yet
    want0 = h.double() * torch.rsqrt(h.double().square().mean(-1, keepdim=True) + 1e-5) * w.double()
    assert rel(res0, h.double()) <= 1e-6 and rel(out0, want0) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("chunks", [1, 4])
def test_padded_rows(dtype, chunks):
    """Rows padded to a multiple of 8 tokens (the fast path's layout): read and written in place, the
    padding neither read (NaN there changes nothing) nor written."""
    k = kernels()
    b, d, l, n = 2, 192, 197, 16
    lp = 200
    f = make(b, d, l, n, dtype, seed=41)
    g = make(b, d, l, n, dtype, seed=42)

    def padded(t):
        buf = torch.full((t.shape[0], t.shape[1], lp), float("nan"), device="cuda").to(t.dtype)
        buf[..., :l] = t
        return buf[..., :l]

    fs = tuple(padded(t) if t.dim() == 3 else t for t in f)
    gs = tuple(padded(t) if t.dim() == 3 else t for t in g)
    gs = (*gs[:6], fs[6], gs[7])
    out_full = torch.full((b, d, lp), float("nan"), device="cuda").to(dtype)
    k.selective_scan_multi([(*fs, False), (*gs, True)], True, 0.5, chunks, out=out_full[..., :l])
    torch.cuda.synchronize()
    assert torch.isfinite(out_full[..., :l]).all() and torch.isnan(out_full[..., l:]).all()
    want = (ref64(f, False) + ref64((*g[:6], f[6], g[7]), True)) * 0.5
    assert rel(out_full[..., :l], want) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("l,lp", [(197, 200), (5, 8), (8, 8), (12, 16), (19, 24), (20, 24), (21, 32), (9, 40),
                                  (1000, 1000), (6085, 6088)])
@pytest.mark.parametrize("weights", ["aligned", "offset"])
def test_causal_conv1d_silu_padded_rows(dtype, l, lp, weights):
    """The fast path's layout (rows a multiple of 8 tokens apart, aligned: the vectorised kernel): the
    padding of x is never read (NaN there changes nothing) and the outputs' padding is written as zeros.
    L 19 / 20: the 8-token group at 8 has its right halo just past / just inside L (the element-wise or
    the vector load), 9 in a row of 40: whole groups of padding; "offset" weights are fp32 views 4 bytes
    past an aligned start (nothing may assume 16-byte aligned weights)."""
    import torch.nn.functional as F

    k = kernels()
    b, d, w = 3, 64, 4
    xz = torch.randn(b, 2 * d, lp, device="cuda").to(dtype)
    xz[..., l:] = float("nan")
    x = xz[:, :d, :l]
    if weights == "offset":
        wf, wb = (torch.randn(d * w + 1, device="cuda")[1:].view(d, 1, w) for _ in range(2))
        assert wf.data_ptr() % 16 == 4 and wf.is_contiguous()
    else:
        wf, wb = torch.randn(d, 1, w, device="cuda"), torch.randn(d, 1, w, device="cuda")
    bf, bb = torch.randn(d, device="cuda"), torch.randn(d, device="cuda")
    got_f, got_b = k.causal_conv1d_silu(x, wf, bf, wb, bb)
    only_f = k.causal_conv1d_silu(x, wf, bf)
    for got in (got_f, got_b, only_f):
        assert got.shape == (b, d, l) and got.stride(1) == lp
        assert (got.as_strided((b, d, lp), got.stride())[..., l:] == 0).all()
    x64 = x.double()
    want_f = F.silu(F.conv1d(x64, wf.double(), bf.double(), padding=w - 1, groups=d)[..., :l])
    want_b = F.silu(F.conv1d(x64.flip(-1), wb.double(), bb.double(), padding=w - 1, groups=d)[..., :l]).flip(-1)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    assert rel(got_f, want_f) <= tol and rel(got_b, want_b) <= tol and rel(only_f, want_f) <= tol


def channel_major(t, lp, fill=float("nan")):
    """The values of a (batch, rows, L) tensor in a (rows, batch, lp) buffer filled with `fill` past L,
    returned as the kernels' (batch, rows, L) view: batches lp apart inside a row stride of batch * lp."""
    b, r, l = t.shape
    buf = torch.full((r, b, lp), fill, device=t.device).to(t.dtype)
    buf[..., :l] = t.permute(1, 0, 2)
    return buf.permute(1, 0, 2)[..., :l]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("lanes,chunks", [(0, 0), (1, 1), (1, 3), (4, 2), (2, 4), (8, 1)])
@pytest.mark.parametrize("kernel", ["auto", "warp_specialized"])
def test_channel_major_rows(dtype, lanes, chunks, kernel):
    """The fast path's channel-major layout, (rows, batch, padded tokens) seen as (batch, rows, L) with
    batches lp apart inside a row stride: read and written in place, the padding neither read (NaN there
    changes nothing) nor written, against float64, with fused directions sharing z."""
    k = kernels()
    b, d, l, n, lp = 5, 160, 197, 16, 200
    f = make(b, d, l, n, dtype, seed=61 + lanes)
    g = make(b, d, l, n, dtype, seed=62 + chunks)
    g = (*g[:6], f[6], g[7])
    fs = tuple(channel_major(t, lp) if t.dim() == 3 else t for t in f)
    gs = tuple(channel_major(t, lp) if t.dim() == 3 else t for t in g)
    gs = (*gs[:6], fs[6], gs[7])
    assert fs[0].stride() == (lp, b * lp, 1) and k.row_stride_of(fs[0]) == b * lp
    out = channel_major(torch.empty(b, d, l, device="cuda", dtype=dtype), lp)
    out.fill_(float("nan"))
    k.selective_scan_multi([(*fs, False), (*gs, True)], True, 0.5, chunks, out=out, lanes=lanes, kernel=kernel)
    torch.cuda.synchronize()
    full = out.as_strided((d, b, lp), (b * lp, lp, 1))
    assert torch.isfinite(out).all() and torch.isnan(full[..., l:]).all()
    want = (ref64(f, False) + ref64(g, True)) * 0.5
    assert rel(out, want) <= TOL[dtype]
    alloc = k.selective_scan_multi([(*fs, False), (*gs, True)], True, 0.5, chunks, lanes=lanes, kernel=kernel)
    assert alloc.stride() == (lp, b * lp, 1) and rel(alloc, want) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("b,l,lp", [(3, 197, 200), (4, 5, 8), (2, 12, 16), (2, 20, 24), (2, 9, 24), (1, 197, 200),
                                    (2, 6085, 6088), (3, 13, 13)])
def test_causal_conv1d_silu_channel_major(dtype, b, l, lp):
    """x as a row slice of a channel-major (2 * dim, batch * lp) in_proj output (what the fast path
    passes): x's padding never read (NaN there), the outputs channel-major like x with each row's
    padding written as zeros; lp = 13 takes the element-wise kernel."""
    import torch.nn.functional as F

    k = kernels()
    d, w = 64, 4
    xz = torch.randn(2 * d, b, lp, device="cuda").to(dtype)
    xz[..., l:] = float("nan")
    x = xz[:d].permute(1, 0, 2)[..., :l]
    wf, wb = torch.randn(d, 1, w, device="cuda"), torch.randn(d, 1, w, device="cuda")
    bf, bb = torch.randn(d, device="cuda"), torch.randn(d, device="cuda")
    got_f, got_b = k.causal_conv1d_silu(x, wf, bf, wb, bb)
    for got in (got_f, got_b):
        assert got.shape == (b, d, l) and got.stride()[1:] == (b * lp, 1)  # (batch 1: any batch stride)
        assert (got.as_strided((d, b, lp), (b * lp, lp, 1))[..., l:] == 0).all()
    x64 = x.double()
    want_f = F.silu(F.conv1d(x64, wf.double(), bf.double(), padding=w - 1, groups=d)[..., :l])
    want_b = F.silu(F.conv1d(x64.flip(-1), wb.double(), bb.double(), padding=w - 1, groups=d)[..., :l]).flip(-1)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    assert rel(got_f, want_f) <= tol and rel(got_b, want_b) <= tol


@pytest.mark.parametrize("res", [224, 240])
def test_model_fast_path_padded_tokens(res):
    """197 / 226 tokens are padded to 200 / 232 in the fast path; results must not change."""
    from vim_deploy.models import create_model

    x = torch.randn(2, 3, res, res, device="cuda")
    ref = create_model("vim_tiny", img_size=res).cuda().double()
    m = create_model("vim_tiny", img_size=res).cuda().set_fast_path(True)
    m.load_state_dict(ref.state_dict())
    with torch.no_grad():
        want = ref(x.double())
        got = m(x)
    assert rel(got, want) <= 1e-5


def _aligned_rows(t, lp, layout):
    """A (batch, rows, L) tensor in a NaN-padded buffer of lp tokens a row, channel- or batch-major."""
    if layout == "channel_major":
        return channel_major(t, lp)
    buf = torch.full((t.shape[0], t.shape[1], lp), float("nan"), device=t.device).to(t.dtype)
    buf[..., :t.shape[2]] = t
    return buf[..., :t.shape[2]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("layout", ["channel_major", "batch_major"])
@pytest.mark.parametrize("case", ["fused", "single_reverse", "no_z_no_D", "no_softplus", "dstate7", "whole_tiles"])
@pytest.mark.parametrize("kernel", ["auto", "warp_specialized"])
def test_one_lane_aligned_rows(dtype, layout, case, kernel):
    """One lane, one chunk, 16-bit rows padded to a multiple of 8 tokens: the launches the warp-specialised
    scan takes where it applies. With 6 blocks the launcher ('auto') gives them the one-lane kernel;
    'warp_specialized' sends them to the warp-specialised one. Two 384-channel blocks a batch, the second
    partial; a partial last tile (197 tokens) or whole tiles (32); every optional input left out once; the
    padding neither read (NaN there) nor written."""
    k = kernels()
    n = 7 if case == "dstate7" else 16
    b, d, l = 3, 400, 32 if case == "whole_tiles" else 197
    lp = -(-l // 8) * 8
    softplus = case != "no_softplus"
    f = make(b, d, l, n, dtype, seed=71)
    g = make(b, d, l, n, dtype, seed=72)
    g = (*g[:6], f[6], g[7])  # the directions share z
    if case == "no_z_no_D":
        f, g = (*f[:5], None, None, f[7]), (*g[:5], None, None, g[7])
    if not softplus:  # delta used as is: small and positive, no bias
        f = (f[0], (0.1 * f[1].float().abs()).to(dtype), *f[2:7], None)
        g = (g[0], (0.1 * g[1].float().abs()).to(dtype), *g[2:7], None)
    fs = tuple(_aligned_rows(t, lp, layout) if t is not None and t.dim() == 3 else t for t in f)
    gs = tuple(_aligned_rows(t, lp, layout) if t is not None and t.dim() == 3 else t for t in g)
    if case != "no_z_no_D":
        gs = (*gs[:6], fs[6], gs[7])
    out = _aligned_rows(torch.empty(b, d, l, device="cuda", dtype=dtype), lp, layout)
    out.fill_(float("nan"))

    def ref(args, reverse):
        return selective_scan_ref(*(None if t is None else t.double() for t in args), delta_softplus=softplus,
                                  reverse=reverse, compute_dtype=torch.float64)

    if case == "single_reverse":
        k.selective_scan_multi([(*fs, True)], softplus, 1.0, 1, out=out, lanes=1, kernel=kernel)
        want = ref(f, True)
    else:
        k.selective_scan_multi([(*fs, False), (*gs, True)], softplus, 0.5, 1, out=out, lanes=1, kernel=kernel)
        want = (ref(f, False) + ref(g, True)) * 0.5
    torch.cuda.synchronize()
    full = out.as_strided((d, b, lp), (b * lp, lp, 1)) if layout == "channel_major" else out.as_strided((b, d, lp), (d * lp, lp, 1))
    assert torch.isfinite(out).all() and (lp == l or torch.isnan(full[..., l:]).all())
    assert rel(out, want) <= TOL[dtype]
