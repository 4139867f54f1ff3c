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
                              b_b: torch.Tensor, seq_len: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, Dx, L) -> (u_f, u_b) (B, D, L), fp32 arithmetic, outputs in x's dtype; w_* (D, W), b_* (D,).

    The op reads x's first D channels (Dx >= D: the x half of in_proj's output, without a Split) and,
    when ``seq_len`` (0 < seq_len <= L) is given, only its first seq_len tokens: the rest are padding,
    read as zeros, and the outputs there are zeros (so a reverse scan starting on them keeps a zero state)."""
    D, W = w_f.shape
    L = x.shape[-1]
    valid = seq_len if seq_len else L
    xf = x[:, :D, :valid].float()
    u_f = F.conv1d(F.pad(xf, (W - 1, 0)), w_f.float().reshape(D, 1, W), b_f.float(), groups=D)
    u_b = F.conv1d(F.pad(xf, (0, W - 1)), w_b.float().flip(-1).reshape(D, 1, W), b_b.float(), groups=D)
    u_f, u_b = F.silu(u_f), F.silu(u_b)
    if valid < L:
        u_f, u_b = F.pad(u_f, (0, L - valid)), F.pad(u_b, (0, L - valid))
    return u_f.to(x.dtype), u_b.to(x.dtype)


class _BiCausalConvOnnx(torch.autograd.Function):
    """Traced as one ``vim_deploy::VimBiCausalConv1dSilu`` node with two outputs."""

    @staticmethod
    def forward(ctx, x, w_f, b_f, w_b, b_b, seq_len):
        return bi_causal_conv1d_silu_ref(x, w_f, b_f, w_b, b_b, seq_len)

    @staticmethod
    def symbolic(g, x, w_f, b_f, w_b, b_b, seq_len):
        attrs = {"seq_len_i": int(seq_len)} if seq_len else {}
        u_f, u_b = g.op(f"{schema.OP_DOMAIN}::{schema.CONV_OP_NAME}", x, w_f, b_f, w_b, b_b, outputs=2, **attrs)
        sizes = x.type().varyingSizes()
        out_type = x.type() if sizes is None else x.type().with_sizes([sizes[0], w_f.type().sizes()[0], sizes[2]])
        u_f.setType(out_type)
        u_b.setType(out_type)
        return u_f, u_b


def bi_causal_conv1d_silu(x, w_f, b_f, w_b, b_b, export_node: bool = False, seq_len: int = 0):
    """(u_f, u_b) of x's first D channels (D = w_f's rows); ``seq_len``: valid tokens, the rest padding
    (0 = all); ``export_node``: trace as one custom ONNX node (weights and biases as float32)."""
    D, W = w_f.shape[0], w_f.shape[-1]  # parameters' shapes: constants in a trace (folded with the weights)
    args = (w_f.float().reshape(D, W), b_f.float(), w_b.float().reshape(D, W), b_b.float())
    if seq_len == x.shape[-1]:
        seq_len = 0
    if export_node and torch.jit.is_tracing():
        return _BiCausalConvOnnx.apply(x, *args, int(seq_len))
    return bi_causal_conv1d_silu_ref(x, *args, seq_len=seq_len)
