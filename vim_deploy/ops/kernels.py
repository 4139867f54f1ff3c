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
ABI_VERSION = 2
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
        ctypes.c_float, vp, ctypes.c_int, ctypes.c_int, vp, ctypes.c_size_t, vp,
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


def _prep(u, delta, A, B, C, D, z, delta_bias):
    dtype = u.dtype
    if dtype not in _DTYPES:
        raise VimDeployError(f"selective scan kernel: unsupported dtype {dtype}.")
    as_t = lambda t: None if t is None else t.to(dtype).contiguous()  # noqa: E731
    as_f = lambda t: None if t is None else t.float().contiguous()  # noqa: E731
    return as_t(u), as_t(delta), as_f(A), as_t(B), as_t(C), as_f(D), as_t(z), as_f(delta_bias)


def selective_scan_multi(directions, delta_softplus: bool = True, out_scale: float = 1.0,
                         num_chunks: int = 0, out: torch.Tensor | None = None, lanes: int = 0) -> torch.Tensor:
    """One launch over 1 or 2 directions, each a tuple ``(u, delta, A, B, C, D, z, delta_bias, reverse)``.

    Two directions give ``(y_0 + y_1) * out_scale`` (Vim's fused bidirectional branch).
    """
    lib = load_library()
    dirs = [(*_prep(*d[:8]), bool(d[8])) for d in directions]
    u0 = dirs[0][0]
    batch, dim, seqlen = u0.shape
    dstate = dirs[0][2].shape[1]
    code = _DTYPES[u0.dtype]
    nd = len(dirs)
    if out is None:
        out = torch.empty_like(u0)
    elif out.shape != u0.shape or out.dtype != u0.dtype or not out.is_contiguous():
        raise VimDeployError("selective scan kernel: `out` must be a contiguous tensor shaped and typed like u.")
    ws_bytes = lib.vim_selective_scan_workspace_size(code, batch, dim, seqlen, dstate, nd, num_chunks, lanes)
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=u0.device)
    arr = lambda i: (ctypes.c_void_p * 2)(*[_ptr(d[i]) for d in dirs] + [None] * (2 - nd))  # noqa: E731
    rev = (ctypes.c_int * 2)(*[int(d[8]) for d in dirs] + [0] * (2 - nd))
    stream = torch.cuda.current_stream(u0.device).cuda_stream
    rc = lib.vim_selective_scan_fwd(code, batch, dim, seqlen, dstate, int(delta_softplus), nd,
                                    arr(0), arr(1), arr(2), arr(3), arr(4), arr(5), arr(6), arr(7), rev,
                                    float(out_scale), out.data_ptr(), num_chunks, lanes, ws.data_ptr(), ws_bytes, stream)
    if rc != 0:
        raise VimDeployError(f"selective scan kernel failed: {lib.vim_last_error().decode()} (code {rc}).")
    return out


def selective_scan_cuda(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, reverse=False,
                        num_chunks: int = 0):
    """Same signature and result as :func:`vim_deploy.ops.selective_scan.selective_scan_ref`."""
    return selective_scan_multi([(u, delta, A, B, C, D, z, delta_bias, reverse)], delta_softplus, 1.0, num_chunks)
