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
