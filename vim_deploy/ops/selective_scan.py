"""Selective scan: the pure-PyTorch reference beside the paths that replace it.

Following mamba_ssm's ``ops/selective_scan_interface.py``, the reference
(:func:`selective_scan_ref`) has the signature of the fast paths and is what every kernel, plugin
and engine test compares against. :func:`selective_scan` is what the model calls: it emits the
custom ONNX node while ``torch.onnx.export`` traces, runs the CUDA kernel library when the caller
asked for it and it is loaded, and runs the reference otherwise.

Shapes (``r`` = real): u, delta, z ``r(B D L)``; A ``r(D N)``; B, C ``r(B N L)``; D, delta_bias ``r(D)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vim_deploy.ops import schema


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    reverse: bool = False,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sequential scan, mamba_ssm ``selective_scan_ref`` semantics, plus ``reverse``.

    ``h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t``; ``y_t = <C_t, h_t> + D * u_t``;
    ``y *= silu(z)``. Everything is computed in ``compute_dtype`` (float32 as mamba_ssm's kernel
    keeps its state; float64 for tests) and cast back to ``u.dtype``. With ``reverse`` the
    recurrence runs from the last token to the first, which equals flipping every ``(.., L)``
    input, scanning forward and flipping the result back.
    """
    dtype_in = u.dtype
    cd = compute_dtype
    u, delta, A, B, C = (t.to(cd) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(cd)[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    x = u.new_zeros((batch, dim, A.shape[1]))
    ys = [None] * length
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        d_i = delta[:, :, i, None]  # (B, D, 1)
        x = torch.exp(d_i * A) * x + (d_i * u[:, :, i, None]) * B[:, None, :, i]
        ys[i] = torch.einsum("bdn,bn->bd", x, C[:, :, i])
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.to(cd)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cd))
    return y.to(dtype_in)


def _placeholder(like: torch.Tensor) -> torch.Tensor:
    """What a scan node's call returns while torch.onnx traces the model: zeros of the output's shape and
    dtype, made outside the tracer. The symbolic replaces the call by one node, and no traced value is
    kept: the graph's structure does not depend on it (export checks the model's real output separately,
    outside the tracer). Computing the reference scan here cost most of an export at large resolutions
    (vim_tiny 1248 px, batch 8: ~4 min on 2 CPUs)."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        return torch.zeros(like.shape, dtype=like.dtype, device=like.device)
    finally:
        torch._C._set_tracing_state(state)


class _SelectiveScanOnnx(torch.autograd.Function):
    """Traced as one ``vim_deploy::VimSelectiveScan`` node by torch.onnx's TorchScript exporter."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus: int, reverse: int):
        return _placeholder(u)

    @staticmethod
    def symbolic(g, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse):
        out = g.op(
            f"{schema.OP_DOMAIN}::{schema.OP_NAME}",
            u, delta, A, B, C, D, z, delta_bias,
            delta_softplus_i=int(delta_softplus),
            reverse_i=int(reverse),
            plugin_version_s=schema.PLUGIN_VERSION,
            plugin_namespace_s=schema.PLUGIN_NAMESPACE,
        )
        out.setType(u.type())
        return out


class _BiSelectiveScanOnnx(torch.autograd.Function):
    """Traced as one ``vim_deploy::VimBiSelectiveScan`` node (both directions of a Vim block)."""

    @staticmethod
    def forward(ctx, u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
                delta_softplus: int, out_scale: float):
        return _placeholder(u_f)

    @staticmethod
    def symbolic(g, u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
                 delta_softplus, out_scale):
        out = g.op(
            f"{schema.OP_DOMAIN}::{schema.BI_OP_NAME}",
            u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
            delta_softplus_i=int(delta_softplus), out_scale_f=float(out_scale),
            plugin_version_s=schema.PLUGIN_VERSION, plugin_namespace_s=schema.PLUGIN_NAMESPACE,
        )
        out.setType(u_f.type())
        return out


def selective_scan_bidirectional_ref(fwd, bwd, z, delta_softplus: bool = True, out_scale: float = 1.0,
                                     compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(scan(fwd..., z) + scan_reverse(bwd..., z)) * out_scale``; ``fwd``/``bwd`` = (u, delta, A, B, C, D, delta_bias)."""
    u_f, d_f, A_f, B_f, C_f, D_f, b_f = fwd
    u_b, d_b, A_b, B_b, C_b, D_b, b_b = bwd
    y = selective_scan_ref(u_f, d_f, A_f, B_f, C_f, D_f, z, b_f, delta_softplus, False, compute_dtype).to(compute_dtype)
    y = y + selective_scan_ref(u_b, d_b, A_b, B_b, C_b, D_b, z, b_b, delta_softplus, True, compute_dtype).to(compute_dtype)
    return (y * out_scale).to(u_f.dtype)


def selective_scan_bidirectional(fwd, bwd, z, delta_softplus: bool = True, out_scale: float = 1.0,
                                 use_kernel: bool = False) -> torch.Tensor:
    """Both directions of a Vim block: one ONNX node when exporting, one kernel launch on CUDA."""
    if _in_onnx_export():
        return _BiSelectiveScanOnnx.apply(*fwd, *bwd, z, int(delta_softplus), float(out_scale))
    if use_kernel and z.is_cuda:
        from vim_deploy.ops import kernels

        (u_f, d_f, A_f, B_f, C_f, D_f, b_f), (u_b, d_b, A_b, B_b, C_b, D_b, b_b) = fwd, bwd
        return kernels.selective_scan_multi([(u_f, d_f, A_f, B_f, C_f, D_f, z, b_f, False),
                                             (u_b, d_b, A_b, B_b, C_b, D_b, z, b_b, True)],
                                            delta_softplus, out_scale)
    return selective_scan_bidirectional_ref(fwd, bwd, z, delta_softplus, out_scale)


def _in_onnx_export() -> bool:
    return bool(getattr(torch.onnx, "is_in_onnx_export", lambda: False)())


def selective_scan(
    u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool = True, reverse: bool = False,
    use_kernel: bool = False,
) -> torch.Tensor:
    """The scan as the model calls it; see the module docstring for which path runs."""
    if _in_onnx_export():
        return _SelectiveScanOnnx.apply(u, delta, A, B, C, D, z, delta_bias, int(delta_softplus), int(reverse))
    if use_kernel and u.is_cuda:
        from vim_deploy.ops import kernels  # imported lazily: needs the compiled library

        return kernels.selective_scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
