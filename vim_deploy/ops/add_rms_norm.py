"""A Vim block's residual add + RMSNorm: the reference and its ONNX node (``export --norm-impl op``).

Upstream runs ``residual = residual + h; h = RMSNorm(residual)`` as one Triton kernel with an fp32
residual; in ONNX the same is ~10 element-wise / reduce nodes per block, each a kernel launch and a
pass over the activations on ONNX Runtime's CUDA provider. As one ``vim_deploy::VimAddRmsNorm`` node
(contract in :mod:`vim_deploy.ops.schema`) the op library runs the fast path's one-pass kernel
(``plugins/vim_block/addRmsNormKernel.cu``).
"""

from __future__ import annotations

import torch

from vim_deploy.ops import schema


def add_rms_norm_ref(h: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float):
    """(out in h's dtype, fp32 residual_out); arithmetic in fp32 (float64 when the inputs are)."""
    cd = torch.float64 if residual.dtype == torch.float64 else torch.float32
    r = residual.to(cd) + h.to(cd)
    out = r * torch.rsqrt(r.square().mean(dim=-1, keepdim=True) + eps) * weight.to(cd)
    return out.to(h.dtype), r


class _AddRmsNormOnnx(torch.autograd.Function):
    """Traced as one ``vim_deploy::VimAddRmsNorm`` node with two outputs."""

    @staticmethod
    def forward(ctx, h, residual, weight, eps: float):
        return add_rms_norm_ref(h, residual, weight, eps)

    @staticmethod
    def symbolic(g, h, residual, weight, eps):
        out, res = g.op(f"{schema.OP_DOMAIN}::{schema.ADD_NORM_OP_NAME}", h, residual, weight,
                        epsilon_f=float(eps), outputs=2)
        out.setType(h.type())
        res.setType(residual.type())
        return out, res


def add_rms_norm(h, residual, weight, eps: float, export_node: bool = False):
    """(out, residual_out); ``export_node``: trace as one custom ONNX node (weight as float32)."""
    if export_node and torch.jit.is_tracing():
        return _AddRmsNormOnnx.apply(h, residual.float(), weight.float(), float(eps))
    return add_rms_norm_ref(h, residual.float(), weight.float(), eps)
