"""Scan launches for compute-sanitizer: odd sizes, tensor tails, chunking, lanes, fused directions,
large dstate, fp32/fp16/bf16 and views at unaligned offsets (the element-copy path).

    compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_scan.py

PyTorch's caching allocator is switched off here: it carves tensors out of large segments, so memcheck
could not see a read a few bytes past a tensor (a tensor's last, partial 8-byte granule). With one
cudaMalloc a tensor, every byte past a tensor is out of bounds for memcheck. The warp-specialised kernel
is forced wherever it can run (kernel="warp_specialized"), so small launches exercise it too; the other kernel
still takes every launch the warp-specialised one does not (lanes, chunks, fp32, unaligned rows).
"""

import os

os.environ["PYTORCH_NO_CUDA_MEMORY_CACHING"] = "1"  # before torch initialises CUDA

import torch  # noqa: E402

from vim_deploy.ops import kernels  # noqa: E402


def shifted(t):
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    v = buf[1:].view(t.shape)
    v.copy_(t)
    return v


def run(b, e, l, n, dtype, chunks=0, lanes=0, unaligned=False):
    mk = lambda *s: torch.randn(*s, device="cuda").to(dtype)  # noqa: E731
    d = [mk(b, e, l), mk(b, e, l), -torch.rand(e, n, device="cuda"), mk(b, n, l), mk(b, n, l),
         torch.rand(e, device="cuda"), mk(b, e, l), torch.rand(e, device="cuda")]
    out = torch.empty_like(d[0])
    if unaligned:
        d[0], d[1], d[6], out = shifted(d[0]), shifted(d[1]), shifted(d[6]), shifted(out)
    for kernel in ("auto", "warp_specialized"):
        kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5, num_chunks=chunks, out=out, lanes=lanes,
                                     kernel=kernel)
        kernels.selective_scan_multi([(*d, True)], True, 1.0, num_chunks=chunks, out=out, lanes=lanes, kernel=kernel)


def run_channel_major(b, e, l, lp, n, dtype, chunks=0, lanes=0):
    """The fast path's channel-major layout: (rows, batch, lp) buffers seen as (batch, rows, l)."""
    cm = lambda r: torch.randn(r, b, lp, device="cuda").to(dtype).permute(1, 0, 2)[..., :l]  # noqa: E731
    d = [cm(e), cm(e), -torch.rand(e, n, device="cuda"), cm(n), cm(n), torch.rand(e, device="cuda"), cm(e),
         torch.rand(e, device="cuda")]
    for kernel in ("auto", "warp_specialized"):
        kernels.selective_scan_multi([(*d, False), (*d, True)], True, 0.5, num_chunks=chunks, out=cm(e), lanes=lanes,
                                     kernel=kernel)
        kernels.selective_scan_multi([(*d, True)], True, 1.0, num_chunks=chunks, out=cm(e), lanes=lanes, kernel=kernel)


for dtype in (torch.float16, torch.float32, torch.bfloat16):
    # one lane, one chunk, 16-byte aligned 16-bit rows: the warp-specialised kernel (when forced): two blocks
    # of 384 channels, the second partial; a partial last tile; one full tile; 5 tokens
    run_channel_major(3, 400, 197, 200, 16, dtype, chunks=1, lanes=1)
    run_channel_major(2, 384, 16, 16, 16, dtype, chunks=1, lanes=1)
    run_channel_major(1, 50, 5, 8, 7, dtype, chunks=1, lanes=1)
    run_channel_major(3, 70, 197, 200, 16, dtype)
    run_channel_major(2, 64, 50, 56, 16, dtype, chunks=3, lanes=2)
    run_channel_major(5, 33, 13, 13, 16, dtype, lanes=8)
    run(2, 130, 77, 16, dtype)
    run(1, 64, 300, 16, dtype, chunks=5)
    run(3, 70, 33, 16, dtype, lanes=4)
    run(3, 70, 50, 16, dtype, lanes=2, chunks=2)  # token-split full tiles, 2 lanes, and a partial tile
    run(1, 33, 64, 7, dtype, lanes=4, chunks=3)
    run(3, 70, 50, 16, dtype, lanes=8)  # 2 states a thread: 8-token groups, a partial tile, a partial block
    run(1, 33, 64, 5, dtype, lanes=8, chunks=3)
run(2, 40, 50, 64, torch.float16)
run(1, 8, 21, 256, torch.float32)
run(2, 130, 97, 16, torch.float16, chunks=3, unaligned=True)
run(2, 130, 97, 16, torch.float32, unaligned=True)
# the fast path's other kernels: conv1d + SiLU (sliced input) and add + RMSNorm
for dtype in (torch.float16, torch.float32, torch.bfloat16):
    xz = torch.randn(2, 2 * 96, 197, device="cuda").to(dtype)
    kernels.causal_conv1d_silu(xz[:, :96], torch.randn(96, 1, 4, device="cuda"), torch.randn(96, device="cuda"),
                               torch.randn(96, 1, 4, device="cuda"), None)
    # rows 8-aligned: the vectorised conv kernel (L 19 / 20: a right halo just past / inside L)
    for l, lp in ((197, 200), (5, 8), (12, 16), (19, 24), (20, 24), (9, 40), (1000, 1000)):
        xz = torch.randn(2, 2 * 96, lp, device="cuda").to(dtype)
        kernels.causal_conv1d_silu(xz[:, :96, :l], torch.randn(96, 1, 4, device="cuda"),
                                   torch.randn(96, device="cuda"), torch.randn(96, 1, 4, device="cuda"), None)
    # channel-major x (rows of in_proj's (2 * dim, b * lp) output)
    for b, l, lp in ((3, 197, 200), (2, 20, 24), (2, 9, 24), (2, 13, 13)):
        xz = torch.randn(2 * 96, b, lp, device="cuda").to(dtype)
        kernels.causal_conv1d_silu(xz[:96].permute(1, 0, 2)[..., :l], torch.randn(96, 1, 4, device="cuda"),
                                   torch.randn(96, device="cuda"), torch.randn(96, 1, 4, device="cuda"), None)
    h = torch.randn(3, 197, 200, device="cuda").to(dtype)
    kernels.add_rms_norm(h, None, torch.rand(200, device="cuda"), 1e-5)
    kernels.add_rms_norm(h, torch.randn(3, 197, 200, device="cuda"), torch.rand(200, device="cuda"), 1e-5)
# the whole fast path once
from vim_deploy.models import create_model  # noqa: E402

m = create_model("test_vim").set_precision("fp16").cuda().set_fast_path(True)
with torch.no_grad():
    m(torch.randn(2, 3, 64, 64, device="cuda"))
torch.cuda.synchronize()
print("memcheck launches done")
