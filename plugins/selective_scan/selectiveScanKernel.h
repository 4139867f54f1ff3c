/*
 * Selective scan (Mamba / Vision Mamba), forward, TensorRT-free CUDA core.
 *
 * Semantics are those of the ONNX node vim_deploy::VimSelectiveScan (see
 * vim_deploy/ops/schema.py): for every (batch b, channel d) and state n,
 *   delta_t = softplus(delta[b,d,t] + delta_bias[d])            (if deltaSoftplus)
 *   h_n     = exp(delta_t * A[d,n]) * h_n + delta_t * B[b,n,t] * u[b,d,t]
 *   y[b,d,t]= (sum_n C[b,n,t] * h_n + D[d] * u[b,d,t]) * silu(z[b,d,t])
 * with the state in fp32, tokens visited first-to-last, or last-to-first when `reverse`.
 * A fused bidirectional call runs a forward and a reverse direction over the same tokens and
 * writes out = (y_fwd + y_bwd) * outScale.
 *
 * Layouts: u, delta, z, out: (batch, dim, seqlen); B, C: (batch, dstate, seqlen); rows rowStride
 * elements apart (default seqlen: contiguous), batches dim * rowStride apart, except that the inputs
 * may have a larger batch stride (ScanDirection).
 * A: (dim, dstate) fp32; D, delta_bias: (dim) fp32. Element type T of u/delta/B/C/z/out:
 * fp32, fp16 or bf16. dstate: 1..256. Any batch, dim, seqlen >= 1.
 *
 * The launch path allocates nothing and never synchronizes the host (CUDA-graph capturable); the
 * caller provides a workspace of selectiveScanWorkspaceSize() bytes (0 when no sequence
 * chunking is used).
 */
#pragma once

#include "selectiveScanParams.h"

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

namespace vim
{

//! Lanes per channel the launcher will use (states of a channel split over 1..16 threads).
int32_t selectiveScanChooseLanes(SelectiveScanParams const& p);

//! Number of sequence chunks the launcher will use for these sizes (>= 1).
int32_t selectiveScanChooseChunks(SelectiveScanParams const& p);

//! Workspace bytes needed by selectiveScanForward for these sizes (0 for a single chunk).
size_t selectiveScanWorkspaceSize(SelectiveScanParams const& p);

//! Check sizes and pointers; returns nullptr when fine, else a static message.
char const* selectiveScanValidate(SelectiveScanParams const& p);

//! Launch on `stream`. Returns cudaSuccess or the first CUDA error (launch or configuration).
cudaError_t selectiveScanForward(SelectiveScanParams const& p, void* workspace, size_t workspaceBytes,
    cudaStream_t stream);

} // namespace vim
