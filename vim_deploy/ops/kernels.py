"""ctypes binding of ``libvim_kernels.so`` (the TensorRT-free CUDA core in ``plugins/selective_scan``).

The library is found as :mod:`vim_deploy.native.paths` says (``$VIM_DEPLOY_KERNELS_LIB``,
``$VIM_DEPLOY_LIB_DIR``, a checkout's ``build/``, the per-user build folder). It is loaded on first use, not at import, so the
package imports everywhere; a missing library is reported when a kernel is called, with the
command that builds it.

Calls run on PyTorch's current CUDA stream, allocate the output and any workspace through
PyTorch's caching allocator, and never synchronize.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from vim_deploy.native import paths as native_paths
from vim_deploy.errors import VimDeployError
from vim_deploy.ops.scan_direction import ScanDirection

_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
ABI_VERSION = 5
_KERNELS = {"auto": 0, "warp_specialized": 1}  # vim::ScanKernel
_lib = None


def library_path() -> Path | None:
    path, _ = native_paths.find_library(native_paths.KERNELS_LIB)
    return path


def load_library():
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if path is None or not path.exists():
        _, missing = native_paths.find_library(native_paths.KERNELS_LIB)
        raise VimDeployError(
            f"the CUDA kernel library libvim_kernels.so was not found ({missing + ' does not exist' if missing else native_paths.describe_search(native_paths.KERNELS_LIB)}).",
            "Build it with `vim-deploy plugin build` (needs nvcc) or set VIM_DEPLOY_KERNELS_LIB.",
        )
    lib = ctypes.CDLL(str(path))
    if lib.vim_kernels_abi_version() != ABI_VERSION:
        raise VimDeployError(f"{path} has C ABI {lib.vim_kernels_abi_version()}, this package needs {ABI_VERSION}.",
                             "Rebuild it: vim-deploy plugin build")
    vp = ctypes.c_void_p
    lib.vim_selective_scan_fwd.restype = ctypes.c_int
    lib.vim_selective_scan_fwd.argtypes = [
        ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp),
        ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_longlong), ctypes.c_float, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_longlong, vp, ctypes.c_size_t, vp,
    ]
    lib.vim_add_rms_norm.restype = ctypes.c_int
    lib.vim_add_rms_norm.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_int, ctypes.c_float, vp, vp, vp, vp, vp,
                                     vp]
    lib.vim_causal_conv1d_silu.restype = ctypes.c_int
    lib.vim_causal_conv1d_silu.argtypes = [
        ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, vp,
        ctypes.c_longlong, vp, vp, vp, vp, vp, vp, ctypes.c_longlong, vp,
    ]
    for name in ("vim_selective_scan_workspace_size", "vim_selective_scan_num_chunks", "vim_selective_scan_lanes"):
        getattr(lib, name).argtypes = [ctypes.c_int] * 8
    lib.vim_selective_scan_workspace_size.restype = ctypes.c_size_t
    lib.vim_selective_scan_num_chunks.restype = ctypes.c_int
    lib.vim_selective_scan_lanes.restype = ctypes.c_int
    lib.vim_last_error.restype = ctypes.c_char_p
    _lib = lib
    return lib


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    """The fp32 contiguous form the kernels take for parameters (a no-op when it already is)."""
    return None if t is None else t.float().contiguous()


def _check(lib, rc: int, what: str) -> None:
    """Turn a C ABI return code into a one-line error (vim_last_error says what was wrong)."""
    if rc != 0:
        raise VimDeployError(f"{what} failed: {lib.vim_last_error().decode()} (code {rc}).")


def row_stride_of(t: torch.Tensor) -> int | None:
    """Elements between the rows of a (batch, rows, tokens) tensor whose tokens are adjacent and whose
    rows do not overlap, else None (the kernels then need a contiguous copy). Batches may lie
    ``rows * row_stride`` or more apart (batch-major), or inside a row stride (channel-major:
    ``t.permute(1, 0, 2)`` of a (rows, batch, tokens) tensor, how the fast path keeps activations so
    that its projections are single matrix products over every image)."""
    b, r, l = t.shape
    if t.stride(2) != 1 and l > 1:
        return None
    rs = t.stride(1) if (r > 1 or t.stride(1) >= l) else l  # a single row takes any stride >= l
    if rs < l:
        return None
    if channel_major(t, rs) and not (t.stride(0) >= l and b * t.stride(0) <= rs):
        return None
    return rs


def channel_major(t: torch.Tensor, row_stride: int) -> bool:
    """Whether a (batch, rows, tokens) tensor with this row stride keeps its batches inside a row stride."""
    return t.shape[0] > 1 and t.stride(0) < t.shape[1] * row_stride


def _empty_rows_like(like: torch.Tensor, rows: int, row_stride: int, n: int = 1) -> list[torch.Tensor]:
    """n uninitialised (batch, rows, seqlen) outputs laid out like `like` (its row stride; channel-major,
    batches at like's batch stride inside each row, or batch-major), stacked one after the other in one
    buffer so that consecutive outputs form one (n * rows, ...) operand. Each view starts where its part
    of the buffer starts (the kernels write the padding too)."""
    b, _, seqlen = like.shape
    if channel_major(like, row_stride):
        buf = torch.empty((n, rows, row_stride), dtype=like.dtype, device=like.device)
        return [part.as_strided((b, rows, seqlen), (like.stride(0), row_stride, 1)) for part in buf]
    buf = torch.empty((n, b, rows, row_stride), dtype=like.dtype, device=like.device)
    return [part[..., :seqlen] for part in buf]


def _batch_stride(t: torch.Tensor, row_stride: int) -> int:
    """The batch stride to pass (0 = rows * row_stride, i.e. batches packed)."""
    b, r, _ = t.shape
    return 0 if b == 1 or t.stride(0) == r * row_stride else t.stride(0)


def _layout(tensors, dtype: torch.dtype):
    """Cast the row tensors (None allowed) to `dtype` and choose one row stride for all of them: their
    common stride when they share one (slices of padded buffers are read in place), else seqlen with
    contiguous copies of the others."""
    ts = [None if t is None else t.to(dtype) for t in tensors]
    strides = {row_stride_of(t) for t in ts if t is not None}
    if len(strides) == 1 and None not in strides:
        return ts, strides.pop()
    seqlen = next(t for t in ts if t is not None).shape[2]
    ts = [None if t is None else (t if row_stride_of(t) == seqlen else t.contiguous()) for t in ts]
    return ts, seqlen


def selective_scan_multi(directions, delta_softplus: bool = True, out_scale: float = 1.0,
                         num_chunks: int = 0, out: torch.Tensor | None = None, lanes: int = 0,
                         kernel: str = "auto") -> torch.Tensor:
    """One launch over 1 or 2 directions, each a :class:`~vim_deploy.ops.scan_direction.ScanDirection`
    (or a plain tuple in its field order ``(u, delta, A, B, C, D, z, delta_bias, reverse)``).

    Two directions give ``(y_0 + y_1) * out_scale`` (Vim's fused bidirectional branch). Row tensors
    (u, delta, z: (batch, dim, L); B, C: (batch, N, L)) are read in place when their tokens are adjacent
    and they share one row stride (e.g. slices of buffers padded to a multiple of 8 tokens, or of a
    bigger tensor along the channels, batch-major or channel-major: :func:`row_stride_of`); ``out``,
    when given, must have that row stride too (and may be channel-major).

    ``num_chunks``, ``lanes`` and ``kernel`` override the launcher's choices, for tests: ``kernel=
    "warp_specialized"`` sends every launch the warp-specialised kernel can take to it, however few blocks
    its grid has (the launcher otherwise keeps it for grids that fill whole waves).
    """
    if kernel not in _KERNELS:
        raise VimDeployError(f"selective scan kernel: kernel must be one of {', '.join(_KERNELS)}, not {kernel!r}.")
    lib = load_library()
    directions = [ScanDirection(*d) for d in directions]
    dtype = directions[0].u.dtype
    if dtype not in _DTYPES:
        raise VimDeployError(f"selective scan kernel: unsupported dtype {dtype}.")
    rows_in = [t for d in directions for t in (d.u, d.delta, d.z, d.B, d.C)]
    if out is not None:
        if out.dtype != dtype or out.shape != directions[0].u.shape or row_stride_of(out) is None:
            raise VimDeployError("selective scan kernel: `out` must be shaped and typed like u, with adjacent tokens.")
        rows_in.append(out)
    rows, row_stride = _layout(rows_in, dtype)
    if out is not None and rows[-1] is not out:
        raise VimDeployError("selective scan kernel: `out` must share the inputs' row stride.")
    dirs, strides = [], []
    for i, d in enumerate(directions):
        u, delta, z, B, C = rows[5 * i: 5 * i + 5]
        dirs.append(ScanDirection(u, delta, _f32(d.A), B, C, _f32(d.D), z, _f32(d.delta_bias), bool(d.reverse)))
        strides += [0 if t is None else _batch_stride(t, row_stride) for t in (u, delta, z, B, C)]
    strides += [0] * (10 - len(strides))
    u0 = dirs[0].u
    batch, dim, seqlen = u0.shape
    dstate = dirs[0].A.shape[1]
    code = _DTYPES[dtype]
    nd = len(dirs)
    if out is None:
        out = _empty_rows_like(u0, dim, row_stride)[0]
    ws_bytes = lib.vim_selective_scan_workspace_size(code, batch, dim, seqlen, dstate, nd, num_chunks, lanes)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=u0.device)
    arr = lambda i: (ctypes.c_void_p * 2)(*[_ptr(d[i]) for d in dirs] + [None] * (2 - nd))  # noqa: E731
    rev = (ctypes.c_int * 2)(*[int(d.reverse) for d in dirs] + [0] * (2 - nd))
    stream = torch.cuda.current_stream(u0.device).cuda_stream
    rc = lib.vim_selective_scan_fwd(code, batch, dim, seqlen, dstate, int(delta_softplus), nd,
                                    arr(0), arr(1), arr(2), arr(3), arr(4), arr(5), arr(6), arr(7), rev,
                                    (ctypes.c_longlong * 10)(*strides), float(out_scale), out.data_ptr(), num_chunks,
                                    lanes, _KERNELS[kernel], row_stride, _batch_stride(out, row_stride), ws.data_ptr(), ws_bytes, stream)
    _check(lib, rc, "selective scan kernel")
    return out


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, reverse=False,
                        num_chunks: int = 0):
    """Same signature and result as :func:`vim_deploy.ops.selective_scan.selective_scan_ref`."""
    return selective_scan_multi([ScanDirection(u, delta, A, B, C, D, z, delta_bias, reverse)], delta_softplus, 1.0,
                                num_chunks)


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       weight_bwd: torch.Tensor | None = None, bias_bwd: torch.Tensor | None = None):
    """SiLU(depthwise causal conv1d) of x (batch, dim, seqlen), as Vim's forward branch computes it
    (``F.conv1d`` with padding width-1, first seqlen outputs). With ``weight_bwd``, also the backward
    branch's conv of the flipped sequence, returned in original token order (what a reverse scan reads).
    Weights (dim, 1, width) or (dim, width). Returns one tensor, or (forward, backward), with x's row
    stride: views of (batch, dim, row_stride) buffers whose tokens past seqlen are zeros, or when x is
    channel-major (:func:`row_stride_of`), of (dim, row_stride) buffers holding (dim, batch, x's batch
    stride), each row's tokens past seqlen zeros."""
    lib = load_library()
    if x.dtype not in _DTYPES:
        raise VimDeployError(f"causal conv1d kernel: unsupported dtype {x.dtype}.")
    rs = row_stride_of(x)
    if rs is None:
        x, rs = x.contiguous(), x.shape[2]
    batch, dim, seqlen = x.shape
    sx = _batch_stride(x, rs)
    w = _f32(weight.reshape(dim, -1))
    wb = None if weight_bwd is None else _f32(weight_bwd.reshape(dim, -1))
    bf, bb = _f32(bias), _f32(bias_bwd)
    # both directions in one buffer laid out like x, backward right after forward: [u_f; u_b] is one GEMM operand
    outs = _empty_rows_like(x, dim, rs, 1 if wb is None else 2)
    out_f, out_b = outs[0], (outs[1] if len(outs) > 1 else None)
    stream = torch.cuda.current_stream(x.device).cuda_stream
    rc = lib.vim_causal_conv1d_silu(_DTYPES[x.dtype], batch, dim, seqlen, w.shape[1], rs, x.data_ptr(), sx,
                                    w.data_ptr(), _ptr(bf), out_f.data_ptr(), _ptr(wb), _ptr(bb), _ptr(out_b),
                                    _batch_stride(out_f, rs), stream)
    _check(lib, rc, "causal conv1d kernel")
    return out_f if out_b is None else (out_f, out_b)


def add_rms_norm(h: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float):
    """Upstream's fused add + RMSNorm with an fp32 residual: returns ``(normed, residual)`` where
    ``residual = residual + h.float()`` (``h.float()`` when None) and ``normed`` has h's dtype."""
    lib = load_library()
    if h.dtype not in _DTYPES:
        raise VimDeployError(f"add+RMSNorm kernel: unsupported dtype {h.dtype}.")
    h = h.contiguous()
    cols = h.shape[-1]
    rows = h.numel() // cols
    res_in = _f32(residual)
    res_out = res_in if res_in is not None else torch.empty(h.shape, dtype=torch.float32, device=h.device)
    out = torch.empty_like(h)
    w = _f32(weight)
    stream = torch.cuda.current_stream(h.device).cuda_stream
    rc = lib.vim_add_rms_norm(_DTYPES[h.dtype], rows, cols, float(eps), h.data_ptr(), _ptr(res_in), res_out.data_ptr(),
                              w.data_ptr(), out.data_ptr(), stream)
    _check(lib, rc, "add+RMSNorm kernel")
    return out, res_out
