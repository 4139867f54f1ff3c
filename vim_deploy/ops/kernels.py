"""ctypes binding of ``libvim_kernels.so`` (the TensorRT-free CUDA core in ``plugins/selective_scan``).

The library is found, in order, at ``$VIM_DEPLOY_KERNELS_LIB``, ``<repo>/build/libvim_kernels.so``,
``<repo>/plugins/build/libvim_kernels.so``. It is loaded on first use, not at import, so the
package imports everywhere; a missing library is reported when a kernel is called, with the
command that builds it.

Calls run on PyTorch's current CUDA stream, allocate the output and any workspace through
PyTorch's caching allocator, and never synchronize.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

from vim_deploy.errors import VimDeployError

_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = (_REPO / "build" / "libvim_kernels.so", _REPO / "plugins" / "build" / "libvim_kernels.so")
_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
ABI_VERSION = 3
_lib = None


def library_path() -> Path | None:
    env = os.environ.get("VIM_DEPLOY_KERNELS_LIB")
    if env:
        return Path(env)
    return next((p for p in _CANDIDATES if p.exists()), None)


def load_library():
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if path is None or not path.exists():
        raise VimDeployError(
            "the CUDA kernel library libvim_kernels.so was not found.",
            "Build it with `vim-deploy plugin build` (needs nvcc) or set VIM_DEPLOY_KERNELS_LIB.",
        )
    lib = ctypes.CDLL(str(path))
    vp = ctypes.c_void_p
    lib.vim_selective_scan_fwd.restype = ctypes.c_int
    lib.vim_selective_scan_fwd.argtypes = [
        ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp),
        ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_longlong), ctypes.c_float, vp, ctypes.c_int, ctypes.c_int, vp, ctypes.c_size_t, vp,
    ]
    if hasattr(lib, "vim_add_rms_norm"):
        lib.vim_add_rms_norm.restype = ctypes.c_int
        lib.vim_add_rms_norm.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_int, ctypes.c_float, vp, vp, vp, vp,
                                         vp, vp]
    if hasattr(lib, "vim_causal_conv1d_silu"):
        lib.vim_causal_conv1d_silu.restype = ctypes.c_int
        lib.vim_causal_conv1d_silu.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, vp, ctypes.c_longlong,
            vp, vp, vp, vp, vp, vp, vp,
        ]
    for name in ("vim_selective_scan_workspace_size", "vim_selective_scan_num_chunks", "vim_selective_scan_lanes"):
        getattr(lib, name).argtypes = [ctypes.c_int] * 8
    lib.vim_selective_scan_workspace_size.restype = ctypes.c_size_t
    lib.vim_selective_scan_num_chunks.restype = ctypes.c_int
    lib.vim_selective_scan_lanes.restype = ctypes.c_int
    if lib.vim_kernels_abi_version() != ABI_VERSION:
        raise VimDeployError(f"{path} has C ABI {lib.vim_kernels_abi_version()}, this package needs {ABI_VERSION}.",
                             "Rebuild it: vim-deploy plugin build")
    lib.vim_last_error.restype = ctypes.c_char_p
    _lib = lib
    return lib


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _rows(t: torch.Tensor | None, dtype: torch.dtype) -> tuple[torch.Tensor | None, int]:
    """A (batch, rows, seqlen) tensor the kernel can read, and its batch stride (0 = contiguous).

    Rows seqlen apart with adjacent tokens are read in place even when batches lie further apart
    (a slice of a bigger tensor, e.g. z of in_proj's output); anything else is copied.
    """
    if t is None:
        return None, 0
    t = t.to(dtype)
    b, r, l = t.shape
    if t.stride(2) == 1 and (t.stride(1) == l or r == 1) and (t.stride(0) >= r * l or b == 1):
        return t, (0 if b == 1 or t.stride(0) == r * l else t.stride(0))
    return t.contiguous(), 0


def _prep(u, delta, A, B, C, D, z, delta_bias):
    dtype = u.dtype
    if dtype not in _DTYPES:
        raise VimDeployError(f"selective scan kernel: unsupported dtype {dtype}.")
    as_f = lambda t: None if t is None else t.float().contiguous()  # noqa: E731
    (u, su), (delta, sd), (B, sb), (C, sc), (z, sz) = (_rows(t, dtype) for t in (u, delta, B, C, z))
    return (u, delta, as_f(A), B, C, as_f(D), z, as_f(delta_bias)), (su, sd, sz, sb, sc)


def selective_scan_multi(directions, delta_softplus: bool = True, out_scale: float = 1.0,
                         num_chunks: int = 0, out: torch.Tensor | None = None, lanes: int = 0) -> torch.Tensor:
    """One launch over 1 or 2 directions, each a tuple ``(u, delta, A, B, C, D, z, delta_bias, reverse)``.

    Two directions give ``(y_0 + y_1) * out_scale`` (Vim's fused bidirectional branch).
    """
    lib = load_library()
    prepped = [_prep(*d[:8]) for d in directions]
    dirs = [(*t, bool(d[8])) for (t, _), d in zip(prepped, directions)]
    strides = (ctypes.c_longlong * 10)(*[s for _, st in prepped for s in st] + [0] * (5 * (2 - len(prepped))))
    u0 = dirs[0][0]
    batch, dim, seqlen = u0.shape
    dstate = dirs[0][2].shape[1]
    code = _DTYPES[u0.dtype]
    nd = len(dirs)
    if out is None:
        out = torch.empty(u0.shape, dtype=u0.dtype, device=u0.device)
    elif out.shape != u0.shape or out.dtype != u0.dtype or not out.is_contiguous():
        raise VimDeployError("selective scan kernel: `out` must be a contiguous tensor shaped and typed like u.")
    ws_bytes = lib.vim_selective_scan_workspace_size(code, batch, dim, seqlen, dstate, nd, num_chunks, lanes)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=u0.device)
    arr = lambda i: (ctypes.c_void_p * 2)(*[_ptr(d[i]) for d in dirs] + [None] * (2 - nd))  # noqa: E731
    rev = (ctypes.c_int * 2)(*[int(d[8]) for d in dirs] + [0] * (2 - nd))
    stream = torch.cuda.current_stream(u0.device).cuda_stream
    rc = lib.vim_selective_scan_fwd(code, batch, dim, seqlen, dstate, int(delta_softplus), nd,
                                    arr(0), arr(1), arr(2), arr(3), arr(4), arr(5), arr(6), arr(7), rev,
                                    strides, float(out_scale), out.data_ptr(), num_chunks, lanes, ws.data_ptr(), ws_bytes, stream)
    if rc != 0:
        raise VimDeployError(f"selective scan kernel failed: {lib.vim_last_error().decode()} (code {rc}).")
    return out


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, reverse=False,
                        num_chunks: int = 0):
    """Same signature and result as :func:`vim_deploy.ops.selective_scan.selective_scan_ref`."""
    return selective_scan_multi([(u, delta, A, B, C, D, z, delta_bias, reverse)], delta_softplus, 1.0, num_chunks)


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       weight_bwd: torch.Tensor | None = None, bias_bwd: torch.Tensor | None = None):
    """SiLU(depthwise causal conv1d) of x (batch, dim, seqlen), as Vim's forward branch computes it
    (``F.conv1d`` with padding width-1, first seqlen outputs). With ``weight_bwd``, also the backward
    branch's conv of the flipped sequence, returned in original token order (what a reverse scan reads).
    Weights (dim, 1, width) or (dim, width). Returns one tensor, or (forward, backward)."""
    lib = load_library()
    if not hasattr(lib, "vim_causal_conv1d_silu"):
        raise VimDeployError("this libvim_kernels.so has no causal conv1d kernel.", "Rebuild it: vim-deploy plugin build")
    if x.dtype not in _DTYPES:
        raise VimDeployError(f"causal conv1d kernel: unsupported dtype {x.dtype}.")
    x, sx = _rows(x, x.dtype)
    batch, dim, seqlen = x.shape
    w = weight.reshape(dim, -1).float().contiguous()
    wb = None if weight_bwd is None else weight_bwd.reshape(dim, -1).float().contiguous()
    bf = None if bias is None else bias.float().contiguous()
    bb = None if bias_bwd is None else bias_bwd.float().contiguous()
    out_f = torch.empty((batch, dim, seqlen), dtype=x.dtype, device=x.device)
    out_b = None if wb is None else torch.empty_like(out_f)
    stream = torch.cuda.current_stream(x.device).cuda_stream
    rc = lib.vim_causal_conv1d_silu(_DTYPES[x.dtype], batch, dim, seqlen, w.shape[1], x.data_ptr(), sx,
                                    w.data_ptr(), _ptr(bf), out_f.data_ptr(), _ptr(wb), _ptr(bb), _ptr(out_b), stream)
    if rc != 0:
        raise VimDeployError(f"causal conv1d kernel failed: {lib.vim_last_error().decode()} (code {rc}).")
    return out_f if out_b is None else (out_f, out_b)


def add_rms_norm(h: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float):
    """Upstream's fused add + RMSNorm with an fp32 residual: returns ``(normed, residual)`` where
    ``residual = residual + h.float()`` (``h.float()`` when None) and ``normed`` has h's dtype."""
    lib = load_library()
    if not hasattr(lib, "vim_add_rms_norm"):
        raise VimDeployError("this libvim_kernels.so has no add+RMSNorm kernel.", "Rebuild it: vim-deploy plugin build")
    if h.dtype not in _DTYPES:
        raise VimDeployError(f"add+RMSNorm kernel: unsupported dtype {h.dtype}.")
    h = h.contiguous()
    cols = h.shape[-1]
    rows = h.numel() // cols
    res_in = None if residual is None else residual.float().contiguous()
    res_out = res_in if res_in is not None else torch.empty(h.shape, dtype=torch.float32, device=h.device)
    out = torch.empty_like(h)
    w = weight.float().contiguous()
    stream = torch.cuda.current_stream(h.device).cuda_stream
    rc = lib.vim_add_rms_norm(_DTYPES[h.dtype], rows, cols, float(eps), h.data_ptr(), _ptr(res_in), res_out.data_ptr(),
                              w.data_ptr(), out.data_ptr(), stream)
    if rc != 0:
        raise VimDeployError(f"add+RMSNorm kernel failed: {lib.vim_last_error().decode()} (code {rc}).")
    return out, res_out
