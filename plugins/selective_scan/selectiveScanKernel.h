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

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

namespace vim
{

enum class ScanDType : int32_t
{
    kFLOAT = 0,
    kHALF = 1,
    kBF16 = 2,
};

//! Pointers of one scan direction (device memory).
struct ScanDirection
{
    void const* u{nullptr};
    void const* delta{nullptr};
    float const* A{nullptr};
    void const* B{nullptr};
    void const* C{nullptr};
    float const* D{nullptr};        //!< may be null (no skip term)
    void const* z{nullptr};         //!< may be null (no gating)
    float const* deltaBias{nullptr}; //!< may be null
    bool reverse{false};
    //! Batch strides in elements (0 = contiguous). Within a batch, rows (channels of u/delta/z, states
    //! of B/C) are always seqlen apart and tokens adjacent; a larger batch stride lets a caller pass
    //! slices of a bigger tensor (z of an (in_proj) output holding x and z, B/C of x_proj's output).
    int64_t uBatchStride{0};
    int64_t deltaBatchStride{0};
    int64_t zBatchStride{0};
    int64_t bBatchStride{0};
    int64_t cBatchStride{0};
};

struct SelectiveScanParams
{
    int32_t batch{0};
    int32_t dim{0};
    int32_t seqlen{0};
    int32_t dstate{0};
    ScanDType dtype{ScanDType::kFLOAT};
    bool deltaSoftplus{true};
    int32_t numDirections{1};   //!< 1, or 2 for the fused bidirectional form
    ScanDirection dir[2];
    float outScale{1.0f};       //!< multiplies the (summed) output
    void* out{nullptr};
    int32_t numChunks{0};       //!< sequence chunks; 0 = choose (see selectiveScanChooseChunks)
    int32_t smCount{0};         //!< used when choosing chunks; 0 = query the current device
    int32_t lanesPerChannel{0}; //!< lanes sharing a channel's states (1, 2, 4; N <= 16); 0 = choose
    //! Elements between consecutive rows (channels of u/delta/z/out, states of B/C); 0 = seqlen. A
    //! larger stride lets rows be padded (e.g. to a multiple of 8 tokens, so that the matrix products
    //! around the scan get aligned operands); tokens seqlen..rowStride-1 are neither read nor written.
    int32_t rowStride{0};
};

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
