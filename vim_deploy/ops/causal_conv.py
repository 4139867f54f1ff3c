"""Both directions' depthwise causal conv1d + SiLU of a Vim block: the reference and its ONNX node.

The reference is what upstream computes (``silu(conv1d(x))`` for the forward branch, the same over
the flipped sequence with ``conv1d_b`` for the backward one, returned in token order). When a model
is exported with ``--conv-impl op`` the pair becomes one ``vim_deploy::VimBiCausalConv1dSilu`` node
(contract in :mod:`vim_deploy.ops.schema`), served by the ONNX Runtime op library's CUDA kernel
(``plugins/vim_block/causalConv1dKernel.cu``, the fast path's) and CPU loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vim_deploy.ops import schema


def bi_causal_conv1d_silu_ref(x: torch.Tensor, w_f: torch.Tensor, b_f: torch.Tensor, w_b: torch.Tensor,
                              b_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, D, L) -> (u_f, u_b), fp32 arithmetic, outputs in x's dtype; w_* (D, W), b_* (D,)."""
    D, W = w_f.shape
    xf = x.float()
    u_f = F.conv1d(F.pad(xf, (W - 1, 0)), w_f.float().reshape(D, 1, W), b_f.float(), groups=D)
    u_b = F.conv1d(F.pad(xf, (0, W - 1)), w_b.float().flip(-1).reshape(D, 1, W), b_b.float(), groups=D)
    return F.silu(u_f).to(x.dtype), F.silu(u_b).to(x.dtype)


class _BiCausalConvOnnx(torch.autograd.Function):
    """Traced as one ``vim_deploy::VimBiCausalConv1dSilu`` node with two outputs."""

    @staticmethod
    def forward(ctx, x, w_f, b_f, w_b, b_b):
        return bi_causal_conv1d_silu_ref(x, w_f, b_f, w_b, b_b)

    @staticmethod
    def symbolic(g, x, w_f, b_f, w_b, b_b):
        u_f, u_b = g.op(f"{schema.OP_DOMAIN}::{schema.CONV_OP_NAME}", x, w_f, b_f, w_b, b_b, outputs=2)
        u_f.setType(x.type())
        u_b.setType(x.type())
        return u_f, u_b


def bi_causal_conv1d_silu(x, w_f, b_f, w_b, b_b, export_node: bool = False):
    """(u_f, u_b); ``export_node``: trace as one custom ONNX node (weights and biases as float32)."""
    D, W = w_f.shape[0], w_f.shape[-1]  # parameters' shapes: constants in a trace (folded with the weights)
    args = (w_f.float().reshape(D, W), b_f.float(), w_b.float().reshape(D, W), b_b.float())
    if export_node and torch.jit.is_tracing():
        return _BiCausalConvOnnx.apply(x, *args)
    return bi_causal_conv1d_silu_ref(x, *args)
