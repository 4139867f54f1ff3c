/*
 * Depthwise causal conv1d + SiLU (the step before each scan of a Vim block), TensorRT-free.
 *
 *   fwd[b,d,t] = silu(bias_f[d] + sum_k w_f[d,k] * x[b,d,t-(W-1)+k])      (x = 0 outside 0..L-1)
 *   bwd[b,d,t] = silu(bias_b[d] + sum_k w_b[d,k] * x[b,d,t+(W-1)-k])
 *
 * The backward line is the causal conv of the flipped sequence read in original token order, which
 * is what Vim's backward branch scans in reverse. Both come out of one pass over x. It serves the
 * PyTorch fast path (TensorRT has its own convolution layers); x may be a slice of a bigger tensor
 * (its batch stride), the outputs are (batch, dim, seqlen) with rows rowStride apart, and the tokens of
 * a row from seqlen to its length are written as zeros. Batch-major layouts (batch stride >= dim *
 * rowStride) give a row rowStride tokens; channel-major ones, (dim, batch, tokens) with batch * batch
 * stride <= rowStride (the fast path's: its projections are then single matrix products over every
 * image), give a row its batch stride.
 */
#pragma once

#include "selectiveScanKernel.h" // ScanDType

namespace vim
{

struct CausalConvParams
{
    ScanDType dtype{ScanDType::kHALF};
    int32_t batch{0};
    int32_t dim{0};
    int32_t seqlen{0};
    int32_t width{4};            //!< kernel width, 1..8 (Vim: 4)
    void const* x{nullptr};
    int32_t rowStride{0};        //!< elements between rows of x and of the outputs; 0 = seqlen
    int64_t xBatchStride{0};     //!< elements; 0 = dim * rowStride
    int64_t outBatchStride{0};   //!< elements between batches of both outputs; 0 = dim * rowStride
    float const* weight[2]{};    //!< (dim, width) fp32; weight[1] null = no backward output
    float const* bias[2]{};      //!< (dim) fp32, may be null
    void* out[2]{};
};

char const* causalConv1dSiluValidate(CausalConvParams const& p);

cudaError_t causalConv1dSilu(CausalConvParams const& p, cudaStream_t stream);

} // namespace vim
