"""CPU implementation of ``vim_deploy::VimSelectiveScan`` for onnx's ReferenceEvaluator.

This is how the *plugin* graph (custom node only, what TensorRT will run) is executed on a machine
without TensorRT: every standard op by onnx's reference runtime, the scan node by this NumPy
kernel (fp32 state, like the CUDA kernel), so the graph wiring around the custom nodes (layouts,
attributes, dtypes) is checked end to end.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

from vim_deploy.ops import schema


def selective_scan_numpy(u, delta, A, B, C, D, z, delta_bias, delta_softplus=1, reverse=0,
                         compute_dtype=np.float32):
    cd = compute_dtype
    u_, d_ = u.astype(cd), delta.astype(cd) + delta_bias.astype(cd)[:, None]
    if delta_softplus:
        d_ = np.where(d_ > 20.0, d_, np.log1p(np.exp(np.minimum(d_, 20.0)))).astype(cd)
    A_, B_, C_ = A.astype(cd), B.astype(cd), C.astype(cd)
    batch, dim, length = u_.shape
    h = np.zeros((batch, dim, A_.shape[1]), dtype=cd)
    y = np.empty((batch, dim, length), dtype=cd)
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        dt = d_[:, :, t, None]
        h = np.exp(dt * A_) * h + (dt * u_[:, :, t, None]) * B_[:, None, :, t]
        y[:, :, t] = np.einsum("bdn,bn->bd", h, C_[:, :, t])
    y = y + u_ * D.astype(cd)[:, None]
    zf = z.astype(cd)
    y = y * (zf / (1.0 + np.exp(-zf)))
    return y.astype(u.dtype)


class VimSelectiveScan(OpRun):
    op_domain = schema.OP_DOMAIN

    def _run(self, u, delta, A, B, C, D, z, delta_bias, delta_softplus=1, reverse=0,
             plugin_version=None, plugin_namespace=None):
        return (selective_scan_numpy(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse),)


class VimBiSelectiveScan(OpRun):
    op_domain = schema.OP_DOMAIN

    def _run(self, u_f, delta_f, A_f, B_f, C_f, D_f, bias_f, u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, z,
             delta_softplus=1, out_scale=1.0, plugin_version=None, plugin_namespace=None):
        y = selective_scan_numpy(u_f, delta_f, A_f, B_f, C_f, D_f, z, bias_f, delta_softplus, 0).astype(np.float32)
        y += selective_scan_numpy(u_b, delta_b, A_b, B_b, C_b, D_b, z, bias_b, delta_softplus, 1).astype(np.float32)
        return ((y * np.float32(out_scale)).astype(u_f.dtype),)


class VimBiCausalConv1dSilu(OpRun):
    """NumPy form of the conv node (``export --conv-impl op``): fp32 arithmetic, outputs in x's dtype."""

    op_domain = schema.OP_DOMAIN

    def _run(self, x, w_f, b_f, w_b, b_b, seq_len=0):
        D, W = w_f.shape
        L = x.shape[-1]
        S = seq_len or L
        xf = x[:, :D, :S].astype(np.float32)  # the op reads x's first D channels and first S tokens
        pad = np.zeros(xf.shape[:-1] + (W - 1,), np.float32)
        xp = np.concatenate([pad, xf, pad], axis=-1)  # token t at xp[..., t + W - 1]
        u_f = b_f.astype(np.float32)[:, None] + sum(w_f[:, k, None] * xp[..., k:k + S] for k in range(W))
        u_b = b_b.astype(np.float32)[:, None] + sum(
            w_b[:, k, None] * xp[..., 2 * (W - 1) - k:2 * (W - 1) - k + S] for k in range(W))
        silu = (lambda v: v / (1.0 + np.exp(-v)))
        tail = np.zeros(xf.shape[:-1] + (L - S,), np.float32)  # padding tokens: zeros
        return tuple(np.concatenate([silu(u), tail], axis=-1).astype(x.dtype) for u in (u_f, u_b))


class VimAddRmsNorm(OpRun):
    """NumPy form of the residual add + RMSNorm node (``export --norm-impl op``)."""

    op_domain = schema.OP_DOMAIN

    def _run(self, h, residual, weight, epsilon=1e-5):
        r = residual.astype(np.float32) + h.astype(np.float32)
        out = r / np.sqrt(np.mean(r * r, axis=-1, keepdims=True) + np.float32(epsilon)) * weight.astype(np.float32)
        return out.astype(h.dtype), r


REFERENCE_OPS = [VimSelectiveScan, VimBiSelectiveScan, VimBiCausalConv1dSilu, VimAddRmsNorm]
